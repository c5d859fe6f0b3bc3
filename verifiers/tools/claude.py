"""Claude Code (``claude``), in print mode.

Runs ``claude -p --output-format json`` with the instructions on stdin; its last
line is one JSON object (``result``, ``is_error``, ``total_cost_usd``, ``usage``,
``num_turns``, ``session_id``, ``permission_denials``). Failure is ``is_error``
(``subtype`` can still say ``"success"``); ``error_max_turns`` and
``error_max_budget_usd`` carry no ``result``, the reason is in ``errors``.

Permissions: ``--permission-mode acceptEdits`` lets it edit files under its working
directory (the step's worktree; for planning, the repository, where the plan file
is) and nothing outside; other tools (Bash) only as ``extra_args`` allows them, for
example ``["--allowedTools", "Bash(python -m pytest:*)"]``. A judge gets
``--permission-mode default``: it reads, and every edit is refused. Sessions are
kept for a step's rework (``--resume``) and not written for runs no one resumes
(``--no-session-persistence``).
``CLAUDE_CODE_MAX_RETRIES=0``: a refused key fails in a second instead of after
three minutes of silent retries, so the engine can say so.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from .base import (
    Invocation,
    Purpose,
    RunSettings,
    ToolReport,
    checked_session_id,
    executable,
    looks_unreachable,
    one_line,
)
from .figures import last_json_object, read_cost, read_counts
from .outcomes import permission_denials, report_failure
from .prices import PriceTable


class ClaudeCode:
    name = "claude-code"
    binary = "claude"
    resumes = True

    def invocation(
        self, settings: RunSettings, instructions_file: Path, workdir: Path | None
    ) -> Invocation:
        argv = [*executable(settings, self.binary), "-p", "--output-format", "json"]
        # A judge asks for nothing: in print mode whatever needs a permission is refused.
        mode = "default" if settings.purpose is Purpose.JUDGE else "acceptEdits"
        argv += ["--permission-mode", mode]
        if settings.model:
            argv += ["--model", settings.model]
        budget = settings.budget_usd
        if budget is not None and math.isfinite(budget) and budget > 0:
            argv += ["--max-budget-usd", f"{budget:.2f}"]
        if settings.resume_session:
            argv += ["--resume", settings.resume_session]
        elif not settings.keep_session:
            argv.append("--no-session-persistence")
        argv += settings.extra_args
        return Invocation(
            argv=tuple(argv),
            env={"CLAUDE_CODE_MAX_RETRIES": "0", "DISABLE_AUTOUPDATER": "1"},
        )

    def read(
        self,
        stdout: str,
        stderr: str,
        exit_code: int | None,
        settings: RunSettings,
        prices: PriceTable,
    ) -> ToolReport:
        report = last_json_object(stdout)
        cost, cost_note = read_cost(report)
        failure = report_failure(report)
        if failure is None and not report and exit_code not in (0, None):
            failure = one_line(stderr) or f"claude exited with status {exit_code} and no report"
        result = report.get("result")
        model_usage = report.get("modelUsage")
        model = next(iter(model_usage), None) if isinstance(model_usage, dict) else None
        return ToolReport(
            result=result.replace("\x00", "")[:4000]
            if isinstance(result, str) and result.strip()
            else None,
            failure=failure,
            unavailable=_unavailable(report, failure),
            cost_usd=cost,
            cost_note=cost_note,
            **read_counts(report),
            model=model if isinstance(model, str) else None,
            session_id=checked_session_id(report.get("session_id")),
            denials=permission_denials(report),
        )

    def session_files(
        self, env: Mapping[str, str], workdir: Path, session_ids: Sequence[str]
    ) -> list[Path]:
        """Claude keeps a project's transcripts in ``projects/<its path, each / and .
        as ->`` under its config folder: a step's worktree is a project of its own,
        so the whole folder goes with it."""
        config = env.get("CLAUDE_CONFIG_DIR") or os.path.join(env.get("HOME", ""), ".claude")
        if not config.strip() or not Path(config).is_absolute():
            return []
        escaped = "".join(c if c.isalnum() else "-" for c in str(workdir))
        folder = Path(config) / "projects" / escaped
        return [folder] if folder.exists() else []


def _unavailable(report: Mapping[str, object], failure: str | None) -> str | None:
    """The tool's message when it could not use its model: Claude says so with an
    ``api_error_status`` (401, 403...) or ``terminal_reason: api_error`` and zero
    tokens, or in words (``Not logged in``)."""
    if failure is None:
        return None
    status = report.get("api_error_status")
    if isinstance(status, int) and status in (401, 403, 407):
        return failure
    if report.get("terminal_reason") == "api_error" or looks_unreachable(failure):
        return failure
    return None
