"""Aider (``aider``), one message and out.

Runs ``aider --message-file INSTRUCTIONS --yes-always ...``: Aider reads no stdin,
so the instructions go by the file's name. Its output is text, no JSON. Each model
call ends with ``Tokens: 1.2k sent, 80 received.`` (rounded by Aider) and, for a
model it knows the price of, ``Cost: $0.0030 message, $0.0061 session.`` (the
session figure is the run's total, reported: not priced by us). Without a ``Cost:``
the table prices the tokens.

**It exits 0 when its model refused it**: an authentication failure is only the text
``litellm.AuthenticationError: ...``. So a ``litellm.<Name>Error`` line that no later
model call (``Tokens:``) follows fails the run, whatever the exit status; a refused
key, a missing key, a connection that failed or a model the provider does not have
marks it unavailable. Errors Aider retried and got past (``Retrying in ...``) are
not failures.

What it is told, and why:

- ``--yes-always``: no one answers its questions (add a file it names, create one).
- ``--no-auto-commits --no-dirty-commits``: directorate commits the step's work.
- ``--no-gitignore``: else it adds ``.aider*`` to the repository's .gitignore.
- ``--chat-history-file /dev/null --input-history-file /dev/null --map-tokens 0``:
  nothing of its own in the worktree (``.aider.chat.history.md``,
  ``.aider.input.history`` and the repository map's ``.aider.tags.cache.v4/`` would
  be committed with the step). Without the map it sees the files its instructions or
  its own answers name. With ``.aider*`` in your .gitignore, ``extra_args =
  ["--map-tokens", "1024"]`` gives it the map back.
- ``--no-suggest-shell-commands``: with ``--yes-always`` it would run them.
- ``--no-detect-urls``, ``--no-check-update``, ``--no-show-release-notes``,
  ``--no-analytics``, ``--no-show-model-warnings``: no side traffic or noise.
- ``--no-pretty --no-stream``, and ``COLUMNS=100000``: plain lines, none wrapped (a
  judge's JSON verdict stays whole).

Permissions: it edits only the files of its working directory's repository, and
refuses git-ignored ones ("Skipping edits to ... that matches gitignore spec",
counted as a denial). So planning runs ``--no-git``: the plan file lives in
``.directorate/``, which directorate keeps out of git. A judge runs ``--chat-mode
ask``: it answers, edits nothing. No session id: ``resumes`` is False (its
``--restore-chat-history`` replays a folder's chat file, not a session; we write
none), and nothing persists to clean up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from .base import (
    Invocation,
    Purpose,
    RunSettings,
    ToolReport,
    answer_text,
    executable,
    looks_unreachable,
    one_line,
)
from .figures import MAX_TASK_COST_USD, MAX_TASK_TOKENS
from .prices import PriceTable

QUIET = (
    "--yes-always",
    "--no-auto-commits",
    "--no-dirty-commits",
    "--no-gitignore",
    "--no-check-update",
    "--no-show-release-notes",
    "--no-show-model-warnings",
    "--no-pretty",
    "--no-stream",
    "--no-analytics",
    "--no-suggest-shell-commands",
    "--no-detect-urls",
    "--chat-history-file",
    "/dev/null",
    "--input-history-file",
    "/dev/null",
    "--map-tokens",
    "0",
)

UNAVAILABLE_ERRORS = frozenset(
    {"AuthenticationError", "PermissionDeniedError", "APIConnectionError", "NotFoundError"}
)
"""litellm errors that say the model cannot be reached or used as configured."""

_ERROR = re.compile(r"^litellm\.(\w+):\s*(.*)$")
_TOKENS = re.compile(
    r"^Tokens: (?P<sent>[\d.]+k?) sent"
    r"(?:, (?P<write>[\d.]+k?) cache write)?"
    r"(?:, (?P<hit>[\d.]+k?) cache hit)?"
    r", (?P<received>[\d.]+k?) received\."
)
_SESSION_COST = re.compile(r"Cost: \$(?P<message>[\d.]+) message, \$(?P<session>[\d.]+) session\.")
_MODEL = re.compile(r"^Main model: (\S+)")
_DENIED = re.compile(r"^Skipping edits to .* that matches (git|aider)ignore spec\.", re.MULTILINE)
_HEADER = (
    "Aider v",
    "Main model:",
    "Weak model:",
    "Editor model:",
    "Git repo:",
    "Repo-map:",
    "Added ",
    "Update git ",
    "HTTPSConnectionPool(",
    "Warning:",
    "https://aider.chat/",
)
"""Lines of Aider's own before the first answer: its banner and notices."""
_NOTICE = ("Retrying in ", "litellm.", "Applied edit to ", "Skipping edits to ")


class Aider:
    name = "aider"
    binary = "aider"
    resumes = False

    def invocation(
        self, settings: RunSettings, instructions_file: Path, workdir: Path | None
    ) -> Invocation:
        argv = [*executable(settings, self.binary), "--message-file", str(instructions_file)]
        argv += QUIET
        if settings.purpose is Purpose.JUDGE:
            argv += ["--chat-mode", "ask"]
        elif settings.purpose is Purpose.PLAN:
            argv.append("--no-git")  # it refuses to write the git-excluded plan file
        if settings.model:
            argv += ["--model", settings.model]
        argv += settings.extra_args
        return Invocation(argv=tuple(argv), stdin=False, env={"COLUMNS": "100000"})

    def read(
        self,
        stdout: str,
        stderr: str,
        exit_code: int | None,
        settings: RunSettings,
        prices: PriceTable,
    ) -> ToolReport:
        lines = stdout.replace("\x00", "").splitlines()
        calls = [i for i, line in enumerate(lines) if _TOKENS.match(line)]
        errors = [i for i, line in enumerate(lines) if _ERROR.match(line)]
        failure: str | None = None
        unavailable = False
        if errors and (not calls or errors[-1] > calls[-1]):
            match = _ERROR.match(lines[errors[-1]])
            assert match is not None
            failure = one_line(_paragraph(lines, errors[-1]))
            unavailable = match.group(1) in UNAVAILABLE_ERRORS
        if failure is None and exit_code not in (0, None):
            failure = _last_words(stderr) or _last_words(stdout)
            failure = failure or f"aider exited with status {exit_code}"
        model = next((m.group(1) for line in lines if (m := _MODEL.match(line))), None)
        model = model or settings.model
        tokens, tokens_note, cost, cost_note, estimated = _spent(lines, calls, model, prices)
        return ToolReport(
            result=_answer(lines, calls),
            failure=failure,
            unavailable=failure
            if failure and (unavailable or looks_unreachable(failure))
            else None,
            cost_usd=cost,
            cost_note=cost_note,
            cost_estimated=estimated,
            tokens=tokens,
            tokens_note=tokens_note,
            turns=len(calls) or None,
            model=model,
            denials=len(_DENIED.findall("\n".join(lines))),
        )

    def session_files(
        self, env: Mapping[str, str], workdir: Path, session_ids: Sequence[str]
    ) -> list[Path]:
        """Nothing: its chat and input histories go to /dev/null and it keeps no
        repository map (the files it would write are in the worktree itself)."""
        return []


def _figure(text: str | None) -> int:
    """Aider's rounded count: ``80``, ``1.2k``, ``12k``."""
    if not text:
        return 0
    if text.endswith("k"):
        return round(float(text[:-1]) * 1000)
    return int(float(text))


def _spent(
    lines: list[str], calls: list[int], model: str | None, prices: PriceTable
) -> tuple[int | None, str | None, float | None, str | None, bool]:
    """(tokens, why unknown, dollars, why unknown, priced by the table)."""
    if not calls:
        return None, None, None, None, False
    sent = hit = received = 0
    try:
        for index in calls:
            match = _TOKENS.match(lines[index])
            assert match is not None
            sent += _figure(match["sent"]) + _figure(match["write"])
            hit += _figure(match["hit"])
            received += _figure(match["received"])
    except (ValueError, OverflowError):
        return None, "a Tokens: line holds no count", None, None, False
    tokens = max(sent - hit, 0) + received  # as Claude's: cache reads do not count
    if tokens > MAX_TASK_TOKENS:
        return None, f"its Tokens: lines add up to {tokens}, absurdly large", None, None, False
    reported = [m for line in lines if (m := _SESSION_COST.search(line))]
    if reported:
        try:
            cost = float(reported[-1]["session"])  # the run's total so far
        except ValueError:
            return tokens, None, None, "its Cost: line holds no figure", False
        if cost > MAX_TASK_COST_USD:
            return tokens, None, None, f"its cost ${cost:g} is absurdly large", False
        return tokens, None, cost, None, False
    priced, note = prices.cost(model, sent, received, hit)
    return tokens, None, priced, note, priced is not None


def _answer(lines: list[str], calls: list[int]) -> str | None:
    """The model's last answer: what Aider printed before its last ``Tokens:`` line,
    back to the previous one (or its banner)."""
    if not calls:
        return None
    start = calls[-2] + 1 if len(calls) > 1 else 0
    body = lines[start : calls[-1]]
    if len(calls) == 1:
        banner = [i for i, line in enumerate(body) if line.startswith(_HEADER)]
        body = body[banner[-1] + 1 :] if banner else body
    kept = [line for line in body if not line.startswith(_NOTICE)]
    return answer_text("\n".join(kept).strip())


def _paragraph(lines: list[str], start: int) -> str:
    """An error as Aider printed it: its line, the lines a narrow terminal wrapped it
    onto, and Aider's advice (up to a blank line or its retry notice)."""
    end = start + 1
    while end < len(lines) and lines[end].strip() and not lines[end].startswith(_NOTICE):
        end += 1
    return " ".join(lines[start:end])


def _last_words(text: str) -> str | None:
    lines = [
        line
        for line in text.replace("\x00", "").splitlines()
        if line.strip() and not line.startswith(("Warning: Input is not a terminal", "HTTPS"))
    ]
    return one_line(lines[-1]) if lines else None
