"""Google's Gemini CLI (``gemini``), headless.

Runs ``gemini --output-format json --skip-trust --approval-mode auto_edit`` with the
instructions on stdin (not a terminal: headless, no ``-p`` needed). It prints one
JSON document, pretty-printed over many lines: ``session_id``, ``response`` (the
answer) and ``stats.models.<model>.tokens`` (``prompt`` counts ``cached`` ones;
``candidates`` and ``thoughts`` are output), no cost: the price table costs each
model's tokens. On failure the document, with an ``error`` object (``message``,
``code``), goes to stderr and stdout is empty; the exit status is a fatal error's
code (41 authentication, 42 input such as an unknown ``--resume``, 52 config, 53
turn limit, 55 untrusted folder) or the API's HTTP status modulo 256 (401 -> 145).

Permissions: ``auto_edit`` lets it edit files under its working directory (the
step's worktree; for planning, the repository, where the plan file is); a write
outside it is refused ("Path not in workspace"), and headless it is not even
offered what needs a confirmation (the shell). A judge gets ``--approval-mode
default``: read-only tools only. ``--skip-trust``: a folder it has not been told to
trust makes it exit 55. Sessions: a rework resumes with ``--resume SESSION_ID``;
chats are kept per project (``<GEMINI_CLI_HOME or HOME>/.gemini/tmp/<project>/``)
whatever ``keep_session`` says (Gemini has no switch for it): they go with the
worktree (``session_files``).

Its auth: an API key (``GEMINI_API_KEY``) needs ``security.auth.selectedType =
"gemini-api-key"`` in its settings.json when the model API is overridden
(``GOOGLE_GEMINI_BASE_URL``): else exit 41 "Invalid auth method selected.".
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .base import (
    Invocation,
    Purpose,
    RunSettings,
    ToolReport,
    answer_text,
    checked_session_id,
    executable,
    looks_unreachable,
    one_line,
)
from .figures import MAX_TASK_COST_USD, MAX_TASK_TOKENS, MAX_TASK_TURNS
from .prices import PriceTable

UNAVAILABLE_EXITS = {
    41: "authentication",
    52: "configuration",
    55: "untrusted folder",
}
"""Fatal exits that no rework can mend: the tool is not set up to reach its model."""

UNAVAILABLE_CODES = (401, 403, 407)
"""HTTP statuses of a refused key or project."""

# stderr lines that are Gemini's standing notices, not a reason.
_NOISE = re.compile(
    r"^(Warning: 256-color|Ripgrep is not available|Approval mode overridden|\s+at |\s*status: )"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_DENIED = re.compile(
    r"^Error executing tool \S+: (Path not in workspace|Tool \"[^\"]*\" not found|"
    r".*denied by policy|.*requires user confirmation)",
    re.MULTILINE,
)
"""A tool use its approval mode or workspace refused (stderr, one line per use)."""


class Gemini:
    name = "gemini"
    binary = "gemini"
    resumes = True

    def invocation(
        self, settings: RunSettings, instructions_file: Path, workdir: Path | None
    ) -> Invocation:
        argv = [*executable(settings, self.binary), "--output-format", "json", "--skip-trust"]
        mode = "default" if settings.purpose is Purpose.JUDGE else "auto_edit"
        argv += ["--approval-mode", mode]
        if settings.model:
            argv += ["--model", settings.model]
        if settings.resume_session:
            argv += ["--resume", settings.resume_session]
        argv += settings.extra_args
        return Invocation(argv=tuple(argv))

    def read(
        self,
        stdout: str,
        stderr: str,
        exit_code: int | None,
        settings: RunSettings,
        prices: PriceTable,
    ) -> ToolReport:
        report = _document(stdout) or _document(stderr)
        error = report.get("error")
        failure: str | None = None
        unavailable = False
        if isinstance(error, Mapping):
            failure = _error_text(error.get("message")) or "gemini reported an error"
            code = error.get("code")
            unavailable = isinstance(code, int) and (
                code in UNAVAILABLE_CODES or code in UNAVAILABLE_EXITS
            )
        elif error is not None:
            failure = "gemini reported an error"
        if failure is None and exit_code not in (0, None):
            failure = _stderr_reason(stderr) or f"gemini exited with status {exit_code}"
            unavailable = exit_code in UNAVAILABLE_EXITS
        if failure is not None and exit_code in UNAVAILABLE_EXITS:
            unavailable = True
        spent = _figures(report.get("stats"), prices)
        return ToolReport(
            result=answer_text(report.get("response")),
            failure=failure,
            unavailable=failure
            if failure and (unavailable or looks_unreachable(failure))
            else None,
            cost_usd=spent.cost,
            cost_note=spent.cost_note,
            cost_estimated=spent.cost is not None,
            tokens=spent.tokens,
            tokens_note=spent.tokens_note,
            turns=spent.turns,
            model=spent.model or settings.model,
            session_id=checked_session_id(report.get("session_id")),
            denials=len(_DENIED.findall(stderr.replace("\x00", ""))),
        )

    def session_files(
        self, env: Mapping[str, str], workdir: Path, session_ids: Sequence[str]
    ) -> list[Path]:
        """Gemini names each project folder it has run in (``projects.json`` under
        ``.gemini``: path -> short name) and keeps its chats in ``tmp/<name>/`` and
        its shell history in ``history/<name>/``: a step's worktree is a project of
        its own, so both folders go with it."""
        home = env.get("GEMINI_CLI_HOME") or env.get("HOME", "")
        if not home.strip() or not Path(home).is_absolute():
            return []
        runtime = Path(home) / ".gemini"
        try:
            registry = json.loads((runtime / "projects.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        projects = registry.get("projects") if isinstance(registry, dict) else None
        name = projects.get(str(workdir)) if isinstance(projects, dict) else None
        if not isinstance(name, str) or not _PLAIN_NAME.fullmatch(name):
            return []
        return [
            folder
            for folder in (runtime / "tmp" / name, runtime / "history" / name)
            if folder.exists()
        ]


_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
"""A project's short name as Gemini makes it (never a path: nothing outside goes)."""


def _document(text: str) -> dict[str, Any]:
    """The last JSON object in ``text`` that starts at the beginning of a line (Gemini
    pretty-prints it; on stderr it follows its error messages and stack trace)."""
    text = text.replace("\x00", "")
    decoder = json.JSONDecoder()
    starts = [m.start() for m in re.finditer(r"^\{", text, re.MULTILINE)]
    for start in reversed(starts):
        try:
            value, _ = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict) and ({"session_id", "response", "error", "stats"} & set(value)):
            return value
    return {}


def _error_text(message: object) -> str | None:
    """The error's message on one line; an API error it quotes whole (``{"error":
    {"code": 401, "message": ..., "status": "UNAUTHENTICATED"}}``) as ``401
    UNAUTHENTICATED: <the API's message>``."""
    if not isinstance(message, str):
        return None
    try:
        quoted = json.loads(message) if message.lstrip().startswith("{") else None
    except (ValueError, RecursionError):
        quoted = None
    inner = quoted.get("error") if isinstance(quoted, dict) else None
    if isinstance(inner, dict) and isinstance(inner.get("message"), str):
        head = " ".join(str(inner[key]) for key in ("code", "status") if key in inner)
        return one_line(f"{head}: {inner['message']}" if head else inner["message"])
    return one_line(message)


def _stderr_reason(stderr: str) -> str | None:
    """The last line of stderr that is neither a standing notice nor a stack frame."""
    lines = [
        _ANSI.sub("", line)
        for line in stderr.replace("\x00", "").splitlines()
        if line.strip() and not _NOISE.match(line)
    ]
    return one_line(lines[-1]) if lines else None


def _count(tokens: Mapping[str, Any], key: str) -> int | None:
    value = tokens.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TASK_TOKENS:
        return None
    return value


class _Spent(NamedTuple):
    tokens: int | None = None
    tokens_note: str | None = None
    cost: float | None = None
    cost_note: str | None = None
    turns: int | None = None
    model: str | None = None


def _figures(stats: Any, prices: PriceTable) -> _Spent:
    """Tokens, dollars and turns over every model the run used (its router may call a
    second one), and its main model. Tokens count as Claude's do: uncached input and
    output (thoughts are billed as output), not cache reads."""
    models = stats.get("models") if isinstance(stats, Mapping) else None
    if not isinstance(models, Mapping) or not models:
        return _Spent()
    tokens = turns = 0
    dollars: float | None = 0.0
    cost_note: str | None = None
    main: str | None = None
    for model, figures in models.items():
        counts = figures.get("tokens") if isinstance(figures, Mapping) else None
        if not isinstance(model, str) or not isinstance(counts, Mapping):
            return _Spent(tokens_note="stats.models holds a model without tokens")
        parts = {key: _count(counts, key) for key in ("prompt", "cached", "candidates", "thoughts")}
        bad = [key for key, value in parts.items() if value is None]
        if bad:
            shown = repr(counts.get(bad[0]))[:60]
            return _Spent(
                tokens_note=f"stats.models.{model[:60]}.tokens.{bad[0]} {shown} is not a count"
            )
        prompt = parts["prompt"] or 0
        cached = min(parts["cached"] or 0, prompt)
        output = (parts["candidates"] or 0) + (parts["thoughts"] or 0)
        tokens += prompt - cached + output
        cost, note = prices.cost(model, prompt, output, cached)
        if cost is None:
            dollars, cost_note = None, cost_note or note
        elif dollars is not None:
            dollars += cost
        turns += _requests(figures)
        main = main or model
    if tokens > MAX_TASK_TOKENS:
        return _Spent(tokens_note=f"stats add up to {tokens} tokens, absurdly large", model=main)
    if dollars is not None and dollars > MAX_TASK_COST_USD:
        dollars, cost_note = None, "its tokens priced come to an absurd cost"
    return _Spent(
        tokens, None, dollars, cost_note, turns if 0 < turns <= MAX_TASK_TURNS else None, main
    )


def _requests(figures: Mapping[str, Any]) -> int:
    """The model calls of the session itself (``roles.main``), else all of them."""
    roles = figures.get("roles")
    main = roles.get("main") if isinstance(roles, Mapping) else None
    source = main if isinstance(main, Mapping) else figures.get("api")
    count = source.get("totalRequests") if isinstance(source, Mapping) else None
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_TASK_TURNS:
        return 0
    return count
