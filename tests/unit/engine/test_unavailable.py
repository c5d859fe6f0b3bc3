"""``unavailable_reason``: when a finished attempt is an agent that could not reach
its model (pause and ask) rather than bad work (judge it, rework it)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from directorate.actors.core.unavailable import failure_line, unavailable_reason
from directorate.actors.runners import TaskResult
from directorate.persistence.models import Task, TaskKind, TaskStatus

F, OK, CANCELLED, TIMED_OUT = (
    TaskStatus.FAILED,
    TaskStatus.SUCCEEDED,
    TaskStatus.CANCELLED,
    TaskStatus.TIMED_OUT,
)
LOGIN = "Not logged in · Please run /login"
ZERO: dict[str, Any] = {"cost_usd": 0.0, "tokens": 0, "turns": 0}
UNKNOWN: dict[str, Any] = {"cost_usd": None, "tokens": None, "turns": None}


def res(status: TaskStatus = F, summary: str | None = "boom", **values: Any) -> TaskResult:
    return TaskResult(status=status, summary=summary, exit_code=1, **values)


def earlier(status: TaskStatus = F, summary: str | None = "boom", **values: Any) -> Task:
    figures = {"cost_usd": 0.0, "tokens": 0, "turns": 0} | values
    return Task(
        id=uuid.uuid4(),
        directive_id=uuid.uuid4(),
        kind=TaskKind.STEP,
        instructions="",
        status=status,
        summary=summary,
        **figures,
    )


ROWS: list[tuple[str, TaskResult, list[Task], str | None]] = [
    # The tool said so: its own words, whatever came before.
    ("tool says unavailable", res(unavailable=LOGIN, **ZERO), [], LOGIN),
    ("tool says it, usage unknown", res(unavailable=LOGIN, **UNKNOWN), [], LOGIN),
    (
        "tool says it, after a timeout",
        res(TIMED_OUT, unavailable="connect ECONNREFUSED"),
        [],
        "connect ECONNREFUSED",
    ),
    ("blank message is no message", res(unavailable="  ", **UNKNOWN), [], None),
    # Never for work that succeeded or that we stopped.
    ("succeeded", res(OK, unavailable=LOGIN), [], None),
    ("cancelled", res(CANCELLED, unavailable=LOGIN), [], None),
    # The same failure twice with usage reported as zero.
    ("once is not enough", res(**ZERO), [], None),
    (
        "twice, zero usage",
        res(**ZERO),
        [earlier()],
        "boom (the same failure 2 times in a row, no tokens or turns used)",
    ),
    (
        "twice, tokens only reported",
        res(tokens=0),
        [earlier(turns=None)],
        "boom (the same failure 2 times in a row, no tokens or turns used)",
    ),
    (
        "twice, first line of the summary",
        res(summary="boom\nat line 3", **ZERO),
        [earlier(summary="boom\nat line 9")],
        "boom (the same failure 2 times in a row, no tokens or turns used)",
    ),
    ("different failures", res(**ZERO), [earlier(summary="bang")], None),
    ("earlier one succeeded", res(**ZERO), [earlier(OK)], None),
    ("earlier one cancelled", res(**ZERO), [earlier(CANCELLED)], None),
    ("earlier one used tokens", res(**ZERO), [earlier(tokens=120)], None),
    ("earlier one cost money", res(**ZERO), [earlier(cost_usd=0.01)], None),
    ("this one used turns", res(cost_usd=0.0, tokens=0, turns=3), [earlier()], None),
    ("this one cost money", res(cost_usd=0.02, tokens=0, turns=0), [earlier()], None),
    # Unknown usage is not zero usage: scripted agents that fail go through rework.
    ("unknown usage now", res(**UNKNOWN), [earlier()], None),
    ("unknown usage before", res(**ZERO), [earlier(tokens=None, turns=None)], None),
    (
        "only the latest earlier task counts",
        res(**ZERO),
        [earlier(), earlier(summary="x")],
        "boom (the same failure 2 times in a row, no tokens or turns used)",
    ),
    ("a timeout is not a repeated failure", res(TIMED_OUT, **ZERO), [earlier()], None),
    ("no failure line at all", res(summary=None, **ZERO), [earlier(summary=None)], None),
]


@pytest.mark.parametrize(
    ("now", "before", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_unavailable_reason(now: TaskResult, before: list[Task], expected: str | None) -> None:
    assert unavailable_reason(now, before) == expected


def test_n_repeats_need_n_minus_one_earlier_failures() -> None:
    now = res(**ZERO)
    assert unavailable_reason(now, [earlier()], n=3) is None
    found = unavailable_reason(now, [earlier(), earlier()], n=3)
    assert found == "boom (the same failure 3 times in a row, no tokens or turns used)"
    assert unavailable_reason(now, [earlier(), earlier()], n=1) is None  # n < 2: tool only


def test_the_output_line_stands_in_for_a_missing_summary() -> None:
    assert failure_line(None, "starting\nfatal: no route to host\n") == "fatal: no route to host"
    assert failure_line("  \n", "x") == "x"
    assert failure_line(None, None) is None
    now = res(summary=None, output_tail="...\nECONNRESET", **ZERO)
    before = earlier(summary=None, output_tail="ECONNRESET")
    assert unavailable_reason(now, [before]) is not None


def test_the_same_failure_only_in_error_twice_with_zero_usage_is_unavailable() -> None:
    """Keyed as stored attempts are: ``error`` is not stored, so it is not the key."""

    def failed() -> TaskResult:
        return TaskResult(status=TaskStatus.FAILED, exit_code=1, error="connection refused",
                          output_tail="connecting...\nretrying", tokens=0, turns=0)  # fmt: skip

    first = failed()
    stored = Task(id=uuid.uuid4(), directive_id=uuid.uuid4(), kind=TaskKind.STEP,
                  instructions="", status=TaskStatus.FAILED, summary=first.summary or None,
                  output_tail=first.output_tail, tokens=0, turns=0, cost_usd=0.0)  # fmt: skip
    assert unavailable_reason(failed(), [stored]) is not None
