"""The generic kind: any command (``[agent] command``), instructions on stdin.

Its last JSON line, if any, is its report, read as before there were kinds:
``summary`` or ``result``; ``cost_usd`` or ``total_cost_usd``; ``tokens``,
``total_tokens`` or ``usage``; ``num_turns`` or ``turns``; ``session_id``;
failure by ``success: false`` or Claude's and Codex's words
(``verifiers.tools.outcomes``). Its argv is the command as written, then
``extra_args``; resuming is ``[agent] resume_args``, added by the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .base import Invocation, RunSettings, ToolReport, checked_session_id
from .figures import last_json_object, read_cost, read_counts
from .outcomes import permission_denials, report_failure
from .prices import PriceTable


class Command:
    name = "command"
    binary = ""
    resumes = False

    def invocation(
        self, settings: RunSettings, instructions_file: Path, workdir: Path | None
    ) -> Invocation:
        if not settings.executable:
            raise ValueError("kind 'command' needs [agent] command")
        return Invocation(argv=(*settings.executable, *settings.extra_args))

    def read(
        self,
        stdout: str,
        stderr: str,
        exit_code: int | None,
        settings: RunSettings,
        prices: PriceTable,
    ) -> ToolReport:
        report = last_json_object(stdout)
        return report_of(report)

    def session_files(
        self, env: Mapping[str, str], workdir: Path, session_ids: Sequence[str]
    ) -> list[Path]:
        return []


def report_of(report: Mapping[str, Any]) -> ToolReport:
    """A generic JSON report as a ``ToolReport`` (also a Python callable's answer)."""
    cost, cost_note = read_cost(report)
    failure = report_failure(report)
    return ToolReport(
        result=summary_of(report),
        failure=failure,
        unavailable=failure if failure and _says_unavailable(report) else None,
        cost_usd=cost,
        cost_note=cost_note,
        **read_counts(report),
        session_id=checked_session_id(report.get("session_id")),
        denials=permission_denials(report),
    )


def summary_of(report: Mapping[str, Any]) -> str | None:
    for key in ("summary", "result"):
        value = report.get(key)
        if isinstance(value, str) and value.strip():
            return value.replace("\x00", "")[:4000]
    return None


def _says_unavailable(report: Mapping[str, Any]) -> bool:
    """A report that says its model could not be used: ``"unavailable": true``, or
    Claude Code's shape (an agent script wrapping ``claude``)."""
    return (
        report.get("unavailable") is True
        or report.get("api_error_status") in (401, 403, 407)
        or report.get("terminal_reason") == "api_error"
    )
