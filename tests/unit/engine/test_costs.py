"""Reported costs: an unusable figure is recorded as unknown, never fails the task."""

from __future__ import annotations

import sys
import threading
import uuid
from pathlib import Path

import pytest

from directorate.actors.runners import CommandRunner
from directorate.persistence.models import Task, TaskKind, TaskStatus
from directorate.verifiers.tools.figures import read_cost

HUGE = "1" + "0" * 400  # a 401-digit integer: no float holds it

COSTS = [
    pytest.param('{"cost_usd": 1.25}', 1.25, None, id="a-cost"),
    pytest.param('{"total_cost_usd": 3}', 3.0, None, id="total-cost-int"),
    pytest.param("{}", None, None, id="none-reported"),
    pytest.param('{"cost_usd": 1e308}', None, "absurdly large", id="1e308"),
    pytest.param('{"cost_usd": ' + HUGE + "}", None, "absurdly large", id="401-digits"),
    pytest.param('{"cost_usd": NaN}', None, "not a finite", id="nan"),
    pytest.param('{"cost_usd": Infinity}', None, "not a finite", id="infinity"),
    pytest.param('{"cost_usd": -1}', None, "not a finite", id="negative"),
    pytest.param('{"cost_usd": "abc"}', None, "not a number", id="a-string"),
    pytest.param('{"cost_usd": true}', None, "not a number", id="a-bool"),
]


def task(tmp_path: Path) -> Task:
    return Task(
        id=uuid.uuid4(),
        directive_id=uuid.uuid4(),
        kind=TaskKind.STEP,
        instructions="do it",
        workdir=str(tmp_path),
        log_path=str(tmp_path / "agent.log"),
    )


@pytest.mark.parametrize(("line", "cost", "note"), COSTS)
def test_an_agent_that_exits_0_succeeds_whatever_cost_it_reports(
    tmp_path: Path, line: str, cost: float | None, note: str | None
) -> None:
    agent = tmp_path / "agent.py"
    agent.write_text(f"import sys\nsys.stdin.read()\nprint({line!r})\n")
    result = CommandRunner([sys.executable, str(agent)], timeout_s=30).run(
        task(tmp_path), threading.Event()
    )
    assert result.status is TaskStatus.SUCCEEDED
    assert result.cost_usd == cost
    if note is None:
        assert result.cost_note is None
    else:
        assert result.cost_note is not None and note in result.cost_note
        assert len(result.cost_note) < 120  # one short line, even for 401 digits


def test_the_first_key_present_decides() -> None:
    assert read_cost({"cost_usd": "abc", "total_cost_usd": 2.0})[0] is None
    assert read_cost({"total_cost_usd": 2.0}) == (2.0, None)
