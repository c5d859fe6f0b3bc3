"""A verdict that comes after its step or directive moved on is not stored, but what
its judges spent is: the sessions ran (the directive's cost is the sum of every
session, and the breakers must see it)."""

from __future__ import annotations

import attrs
import pytest
from decision_helpers import (
    approval,
    chain,
    directive,
    dstate,
    judgement,
    run_directive,
    run_step,
    sstate,
    step,
    task,
)

from directorate.actors import messages as m
from directorate.actors import writes
from directorate.actors.core import changes as c
from directorate.persistence.models import (
    ApprovalType,
    ConfidenceLevel,
    DirectiveStatus,
    StepStatus,
    TaskStatus,
)

D, S = DirectiveStatus, StepStatus
PAID = {"cost_usd": 2.5, "tokens": 1000, "turns": 3}


@pytest.mark.parametrize(
    ("directive_status", "step_status", "current"),
    [
        pytest.param(D.CANCELLED, S.EVALUATING, True, id="directive-ended"),
        pytest.param(D.ACTIVE, S.RUNNING, True, id="step-moved-on"),
        pytest.param(D.ACTIVE, S.EVALUATING, False, id="stale-attempt"),
    ],
)
@pytest.mark.parametrize("spent", [True, False], ids=["spent", "free"])
def test_a_late_step_verdict_counts_only_what_its_judges_spent(
    directive_status: DirectiveStatus, step_status: StepStatus, current: bool, spent: bool
) -> None:
    d = directive(status=directive_status)
    s = step(d, chain(d), "build", step_status, attempt=2)
    last = task(d, step_id=s.id, attempt=2, status=TaskStatus.SUCCEEDED)
    judged = task(d, step_id=s.id, attempt=2 if current else 1, status=TaskStatus.SUCCEEDED)
    verdict = judgement(ConfidenceLevel.GREEN, **(PAID if spent else {}))
    decision = run_step(sstate(s, d, last_task=last), m.EvaluationFinished(judged.id, verdict))
    assert not [ch for ch in decision.changes if isinstance(ch, c.EvaluationStored)]
    added = [ch for ch in decision.changes if isinstance(ch, c.JudgeSpent)]
    if spent:
        [only] = added
        assert (only.judgement, only.step, only.task_id) == (verdict, s, judged.id)
    else:
        assert added == []


def test_the_late_spending_is_written_as_usage_with_its_event() -> None:
    d = directive(status=D.CANCELLED)
    s = step(d, chain(d), "build", S.EVALUATING, attempt=1)
    t = task(d, step_id=s.id, attempt=1, status=TaskStatus.SUCCEEDED)
    verdict = judgement(ConfidenceLevel.GREEN, **PAID)
    decision = run_step(sstate(s, d, last_task=t), m.EvaluationFinished(t.id, verdict))
    tx = writes.write(d.id, decision.changes).tx
    assert any("total_cost_usd" in op.sql for op in tx.ops)  # ops.add_usage
    [data] = [e.data for e in tx.events if e.event_type == "judge_usage"]
    assert (data["cost_usd"], data["tokens"], data["turns"]) == (2.5, 1000, 3)
    assert data["step_name"] == "build"


@pytest.mark.parametrize("why", ["superseded", "paused", "review-pending"], ids=lambda w: str(w))
def test_a_late_directive_review_counts_what_its_judges_spent(why: str) -> None:
    d = directive(status=D.PAUSED if why == "paused" else D.ACTIVE)
    ch = chain(d)
    s = step(d, ch, "only", S.PASSED)
    asked = [approval(d, ApprovalType.DIRECTIVE_REVIEW)] if why == "review-pending" else []
    state = dstate(d, ch, [s], asked)
    reviewed = chain(d, generation=2) if why == "superseded" else ch
    verdict = attrs.evolve(judgement(ConfidenceLevel.GREEN), **PAID)
    decision = run_directive(state, m.DirectiveReviewed(reviewed.id, verdict))
    assert [type(x).__name__ for x in decision.changes] == ["JudgeSpent"]
    assert decision.effects == ()
