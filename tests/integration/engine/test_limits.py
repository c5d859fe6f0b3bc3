"""Limits beside dollars (issue 11, point 4), through a real engine on a real database
with real agent subprocesses (``tests/agents/usage_agent.py``): the token and turn
breakers trip, kill and ask, and resume when approved; each task is told the dollars
left in ``DIRECTORATE_BUDGET_USD``."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import AGENTS, pid_alive, wait_for

from directorate.actors import CommandRunner, DirectiveSpec, DirectiveStatus, StepSpec


class UsageAgent:
    """``usage_agent.py`` with a script file, and the records of its runs."""

    def __init__(self, root: Path, script: dict[str, Any]) -> None:
        self.records = root / "records"
        self.records.mkdir(parents=True)
        self.script = root / "script.json"
        self.script.write_text(json.dumps({"record_dir": str(self.records), **script}))

    def runner(self) -> CommandRunner:
        argv = [sys.executable, str(AGENTS / "usage_agent.py"), str(self.script)]
        return CommandRunner(argv, timeout_s=60, kill_grace_s=5)

    def runs(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in self.records.glob("*.json")]

    def run_of(self, step: str, attempt: int = 1) -> dict[str, Any]:
        [run] = [r for r in self.runs() if r["step"] == step and r["attempt"] == attempt]
        return run


def events(engine: Any, directive_id: uuid.UUID, kind: str) -> list[Any]:
    found = engine.db.reads.events_after(directive_id, limit=100_000)
    return [e for e in found if e.event_type == kind]


def task_of(engine: Any, directive_id: uuid.UUID, task_id: str) -> Any:
    return next(t for t in engine.db.reads.tasks_of_directive(directive_id) if str(t.id) == task_id)


#: (limit, the total it caps, the heavy step's report and its figure, what the stopped
#: agent reports, what each later run reports)
BREAKERS = {
    "max_total_tokens": (
        "total_tokens",
        # Claude Code's shape; 900,000 cache reads count for nothing (actors.usage).
        {"usage": {"input_tokens": 4000, "cache_creation_input_tokens": 1000,
                   "output_tokens": 500, "cache_read_input_tokens": 900_000}},
        5500,
        {"usage": {"input_tokens": 100, "output_tokens": 50}},
        150,
        {"usage": {"input_tokens": 90, "output_tokens": 10}},
        100,
    ),
    "max_agent_turns": (
        "total_agent_turns",
        {"num_turns": 12},
        12,
        {"num_turns": 2},
        2,
        {"num_turns": 1},
        1,
    ),
}  # fmt: skip
LIMIT = {"max_total_tokens": 5000, "max_agent_turns": 10}


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "raise_to", [pytest.param(True, id="raised"), pytest.param(False, id="default-raise")]
)
@pytest.mark.parametrize("limit", list(BREAKERS))
def test_token_and_turn_breakers_trip_kill_ask_and_resume_when_approved(
    engine_factory: Any, tmp_path: Path, limit: str, raise_to: bool
) -> None:
    total, heavy, heavy_figure, stopped, stopped_figure, later, later_figure = BREAKERS[limit]
    started = tmp_path / "slow-started"
    agent = UsageAgent(
        tmp_path / "agent",
        {
            "steps": {
                # Reports only once "slow" runs, so the trip finds an agent to stop.
                "heavy": {"after": str(started), "report": heavy},
                "slow": {
                    "started": str(started),
                    "report": stopped,
                    "attempts": {"1": {"hang": True}, "2": {"report": later}},
                },
                "after": {"report": later},
            }
        },
    )
    engine = engine_factory(runner=agent.runner())
    directive_id = engine.submit(
        DirectiveSpec(
            title="Limits",
            goal="Trip a breaker beside dollars",
            autonomy_level="full_auto",
            steps=[
                StepSpec(name="heavy"),
                StepSpec(name="slow"),
                StepSpec(name="after", depends_on=["heavy", "slow"]),
            ],
            **{limit: LIMIT[limit]},
        )
    )
    engine.start_directive(directive_id)

    # Tripped: paused, asked, which limit said; the sibling's agent stopped.
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.PAUSED
    [approval] = engine.db.reads.pending_approvals(directive_id)
    assert approval.approval_type == "circuit_breaker"
    assert approval.context == {
        "limit": limit, "figure": heavy_figure, "threshold": LIMIT[limit], "reason": None,
    }  # fmt: skip
    [tripped] = events(engine, directive_id, "circuit_breaker_tripped")
    assert tripped.severity == "warning"
    assert (tripped.data["limit"], tripped.data["figure"]) == (limit, heavy_figure)
    assert tripped.data["threshold"] == LIMIT[limit]
    slow = agent.run_of("slow")
    wait_for(lambda: task_of(engine, directive_id, slow["DIRECTORATE_TASK_ID"]).finished_at)
    slow_task = task_of(engine, directive_id, slow["DIRECTORATE_TASK_ID"])
    assert slow_task.status == "cancelled"
    assert not pid_alive(slow["pid"])
    assert "after" not in {r["step"] for r in agent.runs()}  # nothing new was dispatched
    # What each agent reported is on its task row and in the directive's total, the
    # stopped agent's report included.
    heavy_task = task_of(engine, directive_id, agent.run_of("heavy")["DIRECTORATE_TASK_ID"])
    column = "tokens" if limit == "max_total_tokens" else "turns"
    assert getattr(heavy_task, column) == heavy_figure
    assert getattr(slow_task, column) == stopped_figure
    used = heavy_figure + stopped_figure
    assert getattr(engine.db.reads.directive(directive_id), total) == used

    if raise_to:
        new = used * 10
        engine.approve(approval.id, responded_by="ana", **{limit: new})
    else:  # by default above where the total stands now (not only twice the old limit)
        new = max(LIMIT[limit] * 2, -(-used * 3 // 2))
        engine.approve(approval.id, responded_by="ana")
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
    directive = engine.db.reads.directive(directive_id)
    assert getattr(directive, limit) == new
    assert getattr(directive, total) == used + 2 * later_figure  # slow again, then after
    [done] = events(engine, directive_id, "directive_completed")
    assert done.data[total] == used + 2 * later_figure
    [raised] = events(engine, directive_id, "limit_raised")
    assert raised.data == {"limit": limit, "old": LIMIT[limit], "new": new}
    assert len(events(engine, directive_id, "circuit_breaker_tripped")) == 1  # asked once
    assert agent.run_of("slow", attempt=2) and agent.run_of("after")


@pytest.mark.timeout(60)
def test_each_task_is_told_the_dollars_left_when_it_is_dispatched(
    engine_factory: Any, tmp_path: Path
) -> None:
    agent = UsageAgent(
        tmp_path / "agent",
        {
            "plan": {"steps": [{"name": "first"}, {"name": "second", "depends_on": ["first"]}]},
            "planning": {"report": {"total_cost_usd": 0.5}},
            "steps": {"first": {"report": {"total_cost_usd": 1.255}}, "second": {}},
        },
    )
    engine = engine_factory(runner=agent.runner())
    directive_id = engine.submit(
        DirectiveSpec(
            title="Budget",
            goal="Hand on the budget",
            max_total_cost_usd=5.0,
            autonomy_level="full_auto",
        )
    )
    unlimited = engine.submit(
        DirectiveSpec(
            title="Free",
            goal="No dollar limit",
            autonomy_level="full_auto",
            steps=[StepSpec(name="only")],
        )
    )
    engine.start_directive(directive_id)
    engine.start_directive(unlimited)
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
    assert engine.wait(unlimited, timeout=30) is DirectiveStatus.COMPLETED

    runs = [r for r in agent.runs() if r["DIRECTORATE_DIRECTIVE_ID"] == str(directive_id)]
    told = {r["step"]: r["DIRECTORATE_BUDGET_USD"] for r in runs}
    # $5 at first; $4.50 after planning's $0.50; $3.245 left is told as $3.24.
    assert told == {"the plan": "5.00", "first": "4.50", "second": "3.24"}
    rows = {str(t.id): t.budget_usd for t in engine.db.reads.tasks_of_directive(directive_id)}
    assert sorted(rows.values()) == [3.24, 4.5, 5.0]
    [only] = [r for r in agent.runs() if r["DIRECTORATE_DIRECTIVE_ID"] == str(unlimited)]
    assert only["DIRECTORATE_BUDGET_USD"] == ""  # no dollar limit: set, and empty
    [only_task] = engine.db.reads.tasks_of_directive(unlimited)
    assert only_task.budget_usd is None


@pytest.mark.timeout(60)
def test_unusable_tokens_and_turns_are_unknown_with_a_warning_and_the_task_succeeds(
    engine_factory: Any, tmp_path: Path
) -> None:
    agent = UsageAgent(
        tmp_path / "agent",
        {"steps": {"only": {"report": {"tokens": float("nan"), "num_turns": "many"}}}},
    )
    engine = engine_factory(runner=agent.runner())
    directive_id = engine.submit(
        DirectiveSpec(
            title="Odd report",
            goal="Report nonsense",
            autonomy_level="full_auto",
            max_total_tokens=1000,
            max_agent_turns=10,
            steps=[StepSpec(name="only")],
        )
    )
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
    [task] = engine.db.reads.tasks_of_directive(directive_id)
    assert (task.status, task.tokens, task.turns) == ("succeeded", None, None)
    [tokens] = events(engine, directive_id, "tokens_unknown")
    [turns] = events(engine, directive_id, "turns_unknown")
    assert tokens.severity == turns.severity == "warning"
    assert tokens.data == {"task_id": str(task.id), "reason": "tokens nan is not a finite figure"}
    assert turns.data == {"task_id": str(task.id), "reason": "num_turns 'many' is not a number"}
    directive = engine.db.reads.directive(directive_id)
    assert (directive.total_tokens, directive.total_agent_turns) == (0, 0)
