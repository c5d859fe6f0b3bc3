"""Whether an agent's own report says its run failed, whatever its exit status.

Agents exit 0 on failures of their own: Claude Code's ``-p --output-format json``
ends with ``"is_error": true`` (its ``subtype`` may still say ``"success"``;
``error_max_turns`` and ``error_max_budget_usd`` carry the reason in ``errors``, and
no ``result``); Codex's ``exec --json`` ends with a ``turn.failed`` line; a generic
agent may say ``"success": false``. Such a run fails its attempt, with the tool's
own words as the reason. Permission denials are counted, to be shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REASON_CHARS = 500


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return " ".join(value.split())[:REASON_CHARS]
    if isinstance(value, Mapping):
        return _text(value.get("message")) or _text(value.get("error"))
    if isinstance(value, list):
        parts = [part for part in (_text(item) for item in value) if part]
        return "; ".join(parts)[:REASON_CHARS] or None
    return None


def report_failure(report: Mapping[str, Any]) -> str | None:
    """Why the agent's report says its run failed; None when it does not."""
    subtype = report.get("subtype")
    if report.get("is_error") is True:
        return (
            _text(report.get("errors"))
            or _text(report.get("result"))
            or (f"the agent reported an error ({subtype})" if isinstance(subtype, str) else None)
            or "the agent reported an error"
        )
    if isinstance(subtype, str) and subtype.startswith("error_"):
        return _text(report.get("errors")) or f"the agent stopped: {subtype}"
    if report.get("type") == "turn.failed":
        return _text(report.get("error")) or "the agent's turn failed"
    if report.get("success") is False:
        return _text(report.get("error")) or _text(report.get("summary")) or "success: false"
    return None


def permission_denials(report: Mapping[str, Any]) -> int:
    """How many tool uses the agent's permissions refused (Claude's ``permission_denials``)."""
    denials = report.get("permission_denials")
    return len(denials) if isinstance(denials, list) else 0
