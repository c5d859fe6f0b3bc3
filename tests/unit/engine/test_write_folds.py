"""How a decision's changes become statements: fewer, bigger ones with the same
guards (issue 13). Each case lists the changes and the statements they must make."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest
from decision_helpers import directive, judgement, result, step, task

from directorate.actors.core import changes as c
from directorate.actors.writes import write
from directorate.persistence import ops
from directorate.persistence.models import ConfidenceLevel, Step, StepStatus

S = StepStatus
D = directive()
A = step(D, name="a")


def moved(s: Step, old: StepStatus, new: StepStatus, **values: object) -> c.StepMoved:
    return c.StepMoved(step=attrs.evolve(s, status=old), new=new, values=values)


def dispatch() -> list[c.Change]:
    new = task(D, step_id=A.id, attempt=1)
    return [
        moved(A, S.PENDING, S.READY),
        moved(A, S.READY, S.RUNNING, attempt=1),
        c.RequireLiveChain(chain_id=A.chain_id),
        c.TaskCreated(task=new),
        c.Note(event_type="step_started", data={}, step_id=A.id),
    ]


def report_and_verdict() -> list[c.Change]:
    verdict = judgement(ConfidenceLevel.GREEN)
    last = task(D, step_id=A.id, attempt=1)
    return [
        c.TaskRecorded(task_id=last.id, result=result(), step=A),
        moved(A, S.RUNNING, S.EVALUATING),
        c.EvaluationStored(judgement=verdict, chain_id=A.chain_id, step=A, task_id=last.id),
        moved(A, S.EVALUATING, S.PASSED, confidence_score=1.0),
        c.ChainProgress(chain_id=A.chain_id),
    ]


def two_steps_progress() -> list[c.Change]:
    b = step(D, name="b")
    return [
        moved(A, S.EVALUATING, S.PASSED),
        moved(b, S.EVALUATING, S.PASSED),
        c.ChainProgress(chain_id=A.chain_id),
    ]


CASES: list[tuple[str, Callable[[], list[c.Change]], list[str], list[str]]] = [
    # name, changes, the statements (by a piece of each, in order), the events in order
    (
        "dispatch: ready and running in one move, its guard and its task in it",
        dispatch,
        ["WITH moved AS (UPDATE chain_steps"],
        ["step_status_changed", "step_status_changed", "step_started"],
    ),
    (
        "report and verdict: one move running -> passed returning the chain's progress",
        report_and_verdict,
        ["UPDATE tasks SET status", "UPDATE chain_steps", "INSERT INTO directive_evaluations"],
        ["task_finished", "step_status_changed", "evaluation_completed", "step_status_changed"],
    ),
    (
        "two steps moved: the progress is read on its own, after both",
        two_steps_progress,
        ["UPDATE chain_steps", "UPDATE chain_steps", "SELECT count(*) FROM chain_steps s"],
        ["step_status_changed", "step_status_changed"],
    ),
]


@pytest.mark.parametrize(
    ("changes", "statements", "events"), [x[1:] for x in CASES], ids=[x[0] for x in CASES]
)
def test_changes_make_these_statements(
    changes: Callable[[], list[c.Change]], statements: list[str], events: list[str]
) -> None:
    written = write(D.id, changes())
    sql = [" ".join(op.sql.split()) for op in written.tx.ops]
    assert len(sql) == len(statements), sql
    assert all(piece in op for op, piece in zip(sql, statements, strict=True)), sql
    assert [e.event_type for e in written.tx.events] == events


def test_the_move_that_returns_the_progress_is_named() -> None:
    written = write(D.id, report_and_verdict())
    assert written.progress is not None
    op = written.tx.ops[written.progress]
    assert op.sql.startswith("UPDATE chain_steps") and op.returning and op.guard
    assert op.params["_expected"] == "running" and op.params["status"] == "passed"
    assert write(D.id, two_steps_progress()).progress is None


def test_a_dispatch_requires_an_active_directive_and_inserts_only_if_it_moved() -> None:
    (op,) = write(D.id, dispatch()).tx.ops
    assert op.guard
    assert "d.status = 'active'" in op.sql and "INSERT INTO tasks" in op.sql
    assert "FROM moved" in op.sql


SEEN = c.Seen(
    total_cost_usd=1.25,
    total_tokens=10,
    total_agent_turns=3,
    max_total_cost_usd=None,
    max_total_tokens=500,
    max_agent_turns=None,
)


def test_a_dispatch_as_seen_also_requires_the_totals_limits_and_no_waiting_breaker() -> None:
    changes = dispatch()
    changes[2] = c.RequireLiveChain(chain_id=A.chain_id, seen=SEEN)
    (op,) = write(D.id, changes).tx.ops  # still one statement
    sql = " ".join(op.sql.split())
    assert op.guard and "INSERT INTO tasks" in sql
    for column in ops.SEEN_COLUMNS:
        assert f"d.{column} IS NOT DISTINCT FROM %(seen_{column})s" in sql
        assert op.params[f"seen_{column}"] == getattr(SEEN, column)
    assert "a.approval_type IN ('circuit_breaker', 'agent_unavailable')" in sql
    plain = " ".join(write(D.id, dispatch()).tx.ops[0].sql.split())
    assert "IS NOT DISTINCT FROM" not in plain and "directive_approvals" not in plain


def test_a_live_chain_guard_on_its_own_carries_what_was_seen() -> None:
    (op,) = write(D.id, [c.RequireLiveChain(chain_id=A.chain_id, seen=SEEN)]).tx.ops
    assert op.guard and "d.total_cost_usd IS NOT DISTINCT FROM" in op.sql
    assert op.params["seen_max_total_tokens"] == 500
