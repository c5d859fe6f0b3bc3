"""What an agent's last report line says of how its run went, in the formats the
real tools write (issue 15): a failure it reports fails the attempt, exit 0 or not."""

from __future__ import annotations

from typing import Any

import pytest

from directorate.actors.outcomes import permission_denials, report_failure

CASES: list[tuple[str, dict[str, Any], str | None]] = [
    (
        "claude, fine",
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "result": "done",
            "total_cost_usd": 0.1,
        },
        None,
    ),
    (
        "claude, not logged in (exit 0, subtype success)",
        {
            "type": "result",
            "subtype": "success",
            "is_error": True,
            "result": "Not logged in · Please run /login",
        },
        "Not logged in · Please run /login",
    ),
    (
        "claude, max turns: no result, the reason in errors",
        {
            "type": "result",
            "subtype": "error_max_turns",
            "is_error": True,
            "errors": ["Reached maximum number of turns (1)"],
        },
        "Reached maximum number of turns (1)",
    ),
    (
        "claude, budget, is_error false but an error subtype",
        {"type": "result", "subtype": "error_max_budget_usd", "is_error": False},
        "the agent stopped: error_max_budget_usd",
    ),
    ("claude, is_error with nothing else", {"is_error": True}, "the agent reported an error"),
    (
        "codex, turn failed",
        {"type": "turn.failed", "error": {"message": "401 Unauthorized"}},
        "401 Unauthorized",
    ),
    ("codex, turn completed", {"type": "turn.completed", "usage": {"input_tokens": 5}}, None),
    (
        "generic, success false",
        {"success": False, "summary": "tests still fail"},
        "tests still fail",
    ),
    ("generic, nothing said", {}, None),
    ("is_error as a string is not a boolean", {"is_error": "yes"}, None),
]


@pytest.mark.parametrize(("case", "report", "reason"), CASES, ids=[c[0] for c in CASES])
def test_a_reported_failure_and_its_reason(
    case: str, report: dict[str, Any], reason: str | None
) -> None:
    assert report_failure(report) == reason


def test_a_long_reason_is_one_bounded_line() -> None:
    reason = report_failure({"is_error": True, "result": "line\n" * 1000})
    assert reason is not None and "\n" not in reason and len(reason) <= 500


def test_permission_denials_are_counted() -> None:
    denials = [{"tool_name": "Write", "tool_input": {"file_path": "/etc/x"}}] * 2
    assert permission_denials({"permission_denials": denials}) == 2
    assert permission_denials({"permission_denials": "many"}) == 0
    assert permission_denials({}) == 0
