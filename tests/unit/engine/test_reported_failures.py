"""What an agent's last report line says of how its run went, in the formats the
real tools write (issue 15): a failure it reports fails the attempt, exit 0 or not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from directorate.verifiers.tools.outcomes import permission_denials, report_failure

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


RECORDED = Path(__file__).resolve().parents[2] / "agents" / "recorded"


def last_json(path: Path) -> dict[str, Any]:
    for line in reversed(path.read_text().splitlines()):
        if line.startswith("{"):
            value: dict[str, Any] = json.loads(line)
            return value
    return {}


@pytest.mark.parametrize(
    ("case", "failed"),
    [
        ("claude/edit", False),
        ("claude/judge", False),
        ("claude/unauthorized", True),
        ("claude/not-logged-in", True),
        ("claude/max-turns", True),
        ("claude/max-budget", True),
        ("codex/edit", False),
        ("codex/unauthorized", True),
    ],
)
def test_the_real_tools_recorded_outputs(case: str, failed: bool) -> None:
    """What claude 2.1.332 and codex 0.171.0 printed against the loopback server."""
    report = last_json(RECORDED / f"{case}.stdout")
    assert report, case
    reason = report_failure(report)
    assert (reason is not None) is failed, (case, reason)
    if case == "claude/max-turns":
        assert reason == "Reached maximum number of turns (1)"
    if case == "codex/unauthorized":
        assert reason is not None and "401 Unauthorized" in reason


def test_claudes_recorded_denial_is_counted() -> None:
    report = last_json(RECORDED / "claude" / "permission-denied.stdout")
    assert permission_denials(report) >= 1
