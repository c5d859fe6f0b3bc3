"""OpenAI Codex CLI (``codex exec``).

Runs ``codex exec --json --skip-git-repo-check --sandbox workspace-write -`` with the
instructions on stdin (``-``). Its output is JSON lines: ``thread.started``
(``thread_id``, the session), ``item.completed`` items (the answer is the last
``agent_message``), then ``turn.completed`` (``usage``: tokens, no cost) or
``turn.failed`` (``error.message``). The default sandbox is read-only;
``workspace-write`` lets it write its working directory (the step's worktree, or
for planning the repository, where the plan file is) and nothing outside but the
temporary folders. A judge runs ``--sandbox read-only``. A rework attempt runs
``codex exec ... resume THREAD_ID -``. Codex reports no dollars: the price table
costs its tokens (``input_tokens`` includes ``cached_input_tokens``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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
from .figures import MAX_TASK_TOKENS
from .prices import PriceTable


class Codex:
    name = "codex"
    binary = "codex"
    resumes = True

    def invocation(
        self, settings: RunSettings, instructions_file: Path, workdir: Path | None
    ) -> Invocation:
        sandbox = "read-only" if settings.purpose is Purpose.JUDGE else "workspace-write"
        argv = [*executable(settings, self.binary), "exec", "--json", "--skip-git-repo-check"]
        argv += ["--sandbox", sandbox]
        if settings.model:
            argv += ["--model", settings.model]
        if not settings.keep_session and not settings.resume_session:
            argv.append("--ephemeral")  # no rollout file for a run no one resumes
        argv += settings.extra_args
        if settings.resume_session:
            argv += ["resume", settings.resume_session]
        argv.append("-")
        return Invocation(argv=tuple(argv))

    def read(
        self,
        stdout: str,
        stderr: str,
        exit_code: int | None,
        settings: RunSettings,
        prices: PriceTable,
    ) -> ToolReport:
        events = _events(stdout)
        thread: str | None = None
        answer: str | None = None
        failure: str | None = None
        usage: dict[str, Any] | None = None
        model = settings.model
        for event in events:
            kind = event.get("type")
            if kind == "thread.started":
                thread = checked_session_id(event.get("thread_id"))
            elif kind == "item.completed":
                item = event.get("item")
                if isinstance(item, dict) and item.get("type") == "agent_message":
                    text = item.get("text")
                    answer = text if isinstance(text, str) and text.strip() else answer
            elif kind == "turn.completed":
                found = event.get("usage")
                usage = found if isinstance(found, dict) else usage
            elif kind in ("turn.failed", "error"):
                error = event.get("error") if kind == "turn.failed" else event
                message = error.get("message") if isinstance(error, dict) else None
                failure = one_line(message if isinstance(message, str) else None) or failure
                failure = failure or "codex's turn failed"
        if failure is None and exit_code not in (0, None):
            failure = _stderr_reason(stderr) or f"codex exited with status {exit_code}"
        tokens, tokens_note, cost, cost_note = _priced(usage, model, prices)
        return ToolReport(
            result=answer_text(answer),
            failure=failure,
            unavailable=failure if failure and looks_unreachable(failure) else None,
            cost_usd=cost,
            cost_note=cost_note,
            cost_estimated=cost is not None,
            tokens=tokens,
            tokens_note=tokens_note,
            turns=sum(1 for event in events if event.get("type") == "turn.completed") or None,
            model=model,
            session_id=thread,
        )

    def session_files(
        self, env: Mapping[str, str], workdir: Path, session_ids: Sequence[str]
    ) -> list[Path]:
        """Codex keeps ``sessions/YYYY/MM/DD/rollout-<time>-<thread id>.jsonl`` under
        ``CODEX_HOME`` (default ``~/.codex``)."""
        home = env.get("CODEX_HOME") or str(Path(env.get("HOME", "")) / ".codex")
        sessions = Path(home) / "sessions"
        if not Path(home).is_absolute() or not sessions.is_dir():
            return []
        found: list[Path] = []
        for session in session_ids:
            if checked_session_id(session) is None:
                continue
            found += sorted(sessions.glob(f"*/*/*/rollout-*-{session}.jsonl"))
        return found


def _events(stdout: str) -> list[dict[str, Any]]:
    events = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                events.append(value)
    return events


def _stderr_reason(stderr: str) -> str | None:
    """The last stderr line that is not codex's standing warning about PATH aliases."""
    lines = [line for line in stderr.splitlines() if line.strip() and "PATH aliases" not in line]
    return one_line(lines[-1]) if lines else None


def _count(usage: Mapping[str, Any], key: str) -> int | None:
    value = usage.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TASK_TOKENS:
        return None
    return value


def _priced(
    usage: Mapping[str, Any] | None, model: str | None, prices: PriceTable
) -> tuple[int | None, str | None, float | None, str | None]:
    """(tokens, why unknown, dollars, why unknown). Tokens count as Claude's do:
    uncached input and output, not cache reads."""
    if usage is None:
        return None, None, None, None
    parts = {
        key: _count(usage, key) for key in ("input_tokens", "cached_input_tokens", "output_tokens")
    }
    bad = [key for key, value in parts.items() if value is None]
    if bad:
        return None, f"usage.{bad[0]} {usage.get(bad[0])!r:.60} is not a count", None, None
    total_in, cached, out = (
        parts["input_tokens"] or 0,
        parts["cached_input_tokens"] or 0,
        parts["output_tokens"] or 0,
    )
    tokens = max(total_in - cached, 0) + out
    cost, cost_note = prices.cost(model, total_in, out, cached)
    return tokens, None, cost, cost_note
