"""An agent that could not reach its model (issue 15 point 4), in the pure
decisions: the step waits ready with its rework count, the directive pauses and asks
once; approving retries, denying (or expiry) fails; no rework, no regeneration."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs
import pytest
from decision_helpers import (
    NOW,
    PlanOutcome,
    Simulation,
    World,
    approval,
    chain,
    changes_of,
    directive,
    directive_moves,
    dstate,
    effects_of,
    every,
    judgement,
    notes,
    one,
    run_directive,
    run_step,
    sstate,
    step,
    step_moves,
    task,
)

from directorate.actors import messages as m
from directorate.actors.core import changes as c
from directorate.actors.runners import TaskResult
from directorate.persistence.models import (
    ApprovalStatus,
    ApprovalType,
    ConfidenceLevel,
    DirectiveStatus,
    StepSpec,
    StepStatus,
    TaskKind,
    TaskStatus,
)

A, D, S = ApprovalType, DirectiveStatus, StepStatus
LOGIN = "Not logged in · Please run /login"


def unavailable(message: str = LOGIN) -> TaskResult:
    return TaskResult(status=TaskStatus.FAILED, exit_code=1, summary=message, unavailable=message)


def running_step(status: DirectiveStatus = D.ACTIVE, **values: Any) -> Any:
    """A step whose attempt 2 (after one rework) runs, and that attempt's task."""
    d = directive(status=status)
    s = step(d, chain(d), "build", S.RUNNING, attempt=2, rework_count=1)
    t = task(d, step_id=s.id, attempt=2)
    return sstate(s, d, last_task=t, **values), t


# ================================================================= the step


def test_an_unavailable_agent_pauses_the_directive_and_asks_once() -> None:
    state, t = running_step()
    decision = run_step(state, m.TaskFinished(t.id, unavailable()))
    assert changes_of(decision) == [
        "TaskRecorded",
        "StepMoved",
        "DirectiveMoved",
        "TasksCancelRequested",
        "RequireNoPending",
        "Note",
        "ApprovalOpened",
        "Note",
    ]
    assert step_moves(decision) == [(S.RUNNING, S.READY)]
    assert one(decision, c.StepMoved).values == {}  # rework count and attempt as they were
    assert directive_moves(decision) == [(D.ACTIVE, D.PAUSED)]
    assert notes(decision) == ["agent_unavailable", "approval_requested"]
    event = next(n for n in every(decision, c.Note) if n.event_type == "agent_unavailable")
    assert event.data == {
        "message": LOGIN,
        "step_id": state.step.id,
        "step_name": "build",
        "task_id": t.id,
        "attempt": 2,
    }
    opened = one(decision, c.ApprovalOpened)
    assert (opened.kind, opened.step_id) == (A.AGENT_UNAVAILABLE, state.step.id)
    assert LOGIN in opened.description and "approve to run the step again" in opened.description
    assert opened.context["context"] == "step"
    assert effects_of(decision) == ["CancelJobs"]  # no Evaluate: nothing is judged


def test_a_second_unavailable_step_only_waits_with_the_first() -> None:
    state, t = running_step(D.PAUSED, unavailable_pending=True)
    decision = run_step(state, m.TaskFinished(t.id, unavailable()))
    assert changes_of(decision) == ["TaskRecorded", "StepMoved"]
    assert step_moves(decision) == [(S.RUNNING, S.READY)]
    # The directive is told: still paused it waits; answered meanwhile, it grants the step.
    assert effects_of(decision) == ["TellDirective"]


def test_paused_by_a_person_meanwhile_it_still_asks_without_moving() -> None:
    state, t = running_step(D.PAUSED)
    decision = run_step(state, m.TaskFinished(t.id, unavailable()))
    assert directive_moves(decision) == []
    assert notes(decision) == ["agent_unavailable", "approval_requested"]
    assert one(decision, c.ApprovalOpened).kind is A.AGENT_UNAVAILABLE


def test_the_approval_expires_with_the_engines_approval_timeout() -> None:
    state, t = running_step()
    state = attrs.evolve(state, settings=attrs.evolve(state.settings, approval_timeout_s=60))
    opened = one(run_step(state, m.TaskFinished(t.id, unavailable())), c.ApprovalOpened)
    assert opened.expires_at == NOW + timedelta(seconds=60)


@pytest.mark.parametrize(
    "report",
    [
        pytest.param(TaskResult(status=TaskStatus.FAILED, summary="boom"), id="usage-unknown"),
        pytest.param(
            TaskResult(status=TaskStatus.FAILED, summary="boom", tokens=0, turns=0),
            id="zero-usage-once",
        ),
    ],
)
def test_a_failure_that_is_not_unavailable_is_judged_as_before(report: TaskResult) -> None:
    state, t = running_step()
    decision = run_step(state, m.TaskFinished(t.id, report))
    assert step_moves(decision) == [(S.RUNNING, S.EVALUATING)]
    assert "Evaluate" in effects_of(decision)
    assert not every(decision, c.ApprovalOpened)


def test_the_same_zero_usage_failure_twice_is_unavailable() -> None:
    state, t = running_step()
    before = task(
        state.directive,
        step_id=state.step.id,
        attempt=1,
        status=TaskStatus.FAILED,
        summary="connect ECONNREFUSED 127.0.0.1:443",
        tokens=0,
        turns=0,
    )
    state = attrs.evolve(state, earlier_tasks=(before,))
    report = TaskResult(
        status=TaskStatus.FAILED, summary="connect ECONNREFUSED 127.0.0.1:443", tokens=0, turns=0
    )
    decision = run_step(state, m.TaskFinished(t.id, report))
    message = one(decision, c.ApprovalOpened).context["message"]
    assert message.startswith("connect ECONNREFUSED 127.0.0.1:443 (the same failure 2 times")


def test_no_attempt_is_dispatched_while_the_question_is_pending() -> None:
    d = directive()
    s = step(d, chain(d), "build", S.READY)
    decision = run_step(sstate(s, d, unavailable_pending=True), m.RunStep())
    assert effects_of(decision) == ["TellDirective"]
    assert not every(decision, c.TaskCreated)


# ================================================================= planning


def planning_state(status: DirectiveStatus = D.PLANNING, **values: Any) -> Any:
    d = directive(status=status, chain_generation_count=0)
    latest = task(d, kind=TaskKind.PLANNING, attempt=1)
    fallback = PlanOutcome(steps=(StepSpec(name="research"),), rejected="no plan file")
    return dstate(d, None, planning=latest, plan=fallback, **values)


def test_an_unavailable_planning_agent_pauses_without_a_default_chain() -> None:
    state = planning_state()
    decision = run_directive(state, m.PlanningFinished(state.planning.id, unavailable()))
    assert directive_moves(decision) == [(D.PLANNING, D.PAUSED)]
    assert not every(decision, c.ChainCreated)
    assert notes(decision) == ["agent_unavailable", "approval_requested"]  # no plan_rejected
    opened = one(decision, c.ApprovalOpened)
    assert (opened.kind, opened.step_id, opened.context["context"]) == (
        A.AGENT_UNAVAILABLE,
        None,
        "planning",
    )
    assert "approve to plan again" in opened.description


def test_an_unavailable_planning_agent_asks_once() -> None:
    state = planning_state(D.PAUSED)
    asked = approval(state.directive, A.AGENT_UNAVAILABLE)
    state = attrs.evolve(state, approvals=(asked,))
    decision = run_directive(state, m.PlanningFinished(state.planning.id, unavailable()))
    assert changes_of(decision) == ["TaskRecorded"]


# ================================================================= the answer


def paused_on(step_id_of: str | None) -> Any:
    """A paused directive whose agent could not reach its model, on step ``build``
    (ready, as the step left it) or in planning (no chain)."""
    if step_id_of is None:
        state = planning_state(D.PAUSED)
        state = attrs.evolve(state, planning=attrs.evolve(state.planning, status=TaskStatus.FAILED))
        asked = approval(state.directive, A.AGENT_UNAVAILABLE, context={"message": LOGIN})
    else:
        d = directive(status=D.PAUSED)
        ch = chain(d)
        s = step(d, ch, "build", S.READY, rework_count=1)
        state = dstate(d, ch, [s])
        asked = approval(d, A.AGENT_UNAVAILABLE, step_id=s.id, context={"message": LOGIN})
    return attrs.evolve(state, approvals=(asked,)), asked


def test_approving_retries_the_step() -> None:
    state, asked = paused_on("build")
    decision = run_directive(state, m.AnswerApproval(asked.id, True, "ann"))
    assert directive_moves(decision) == [(D.PAUSED, D.ACTIVE)]
    assert one(decision, c.Grant).step_ids == (state.steps[0].id,)
    assert not every(decision, c.ChainSuperseded)


def test_approving_plans_again() -> None:
    state, asked = paused_on(None)
    decision = run_directive(state, m.AnswerApproval(asked.id, True, "ann"))
    assert directive_moves(decision) == [(D.PAUSED, D.PLANNING)]
    assert one(decision, c.TaskCreated).task.kind is TaskKind.PLANNING
    assert "RunPlanning" in effects_of(decision)
    assert not every(decision, c.ChainCreated)  # not the fallback of the failed attempt


@pytest.mark.parametrize("where", ["build", None])
def test_denying_fails_the_directive_with_the_tools_message(where: str | None) -> None:
    state, asked = paused_on(where)
    decision = run_directive(state, m.AnswerApproval(asked.id, False, "ann"))
    assert directive_moves(decision) == [(D.PAUSED, D.FAILED)]
    failed = next(n for n in every(decision, c.Note) if n.event_type == "directive_failed")
    assert failed.data["reason"] == f"the agent could not reach its model: {LOGIN} (retry denied)"


def test_an_expired_question_fails_the_directive() -> None:
    state, asked = paused_on("build")
    asked = attrs.evolve(asked, expires_at=NOW - timedelta(seconds=1))
    state = attrs.evolve(state, approvals=(asked,))
    decision = run_directive(state, m.Tick())
    assert directive_moves(decision) == [(D.PAUSED, D.FAILED)]
    assert one(decision, c.ApprovalAnswered).status is ApprovalStatus.EXPIRED


@pytest.mark.parametrize("where", ["build", None])
def test_resume_while_asked_is_the_approvals_yes(where: str | None) -> None:
    state, asked = paused_on(where)
    decision = run_directive(state, m.Resume(by="ann"))
    answered = one(decision, c.ApprovalAnswered)
    assert (answered.approval.id, answered.status, answered.by) == (
        asked.id,
        ApprovalStatus.APPROVED,
        "ann",
    )
    assert decision.reply is (D.ACTIVE if where else D.PLANNING)


def test_nothing_is_granted_while_the_question_is_pending() -> None:
    state, _ = paused_on("build")
    state = attrs.evolve(state, directive=attrs.evolve(state.directive, status=D.ACTIVE))
    assert run_directive(state, m.StepChanged(state.steps[0].id)) == c.NOTHING


# ================================================================= the whole loop


def test_parallel_unavailable_steps_ask_once_then_a_retry_completes() -> None:
    d = directive(status=D.DRAFT, started_at=None, chain_generation_count=0)
    plan = PlanOutcome(steps=(StepSpec(name="left"), StepSpec(name="right")))
    reports = {"agent": unavailable()}
    sim = Simulation(
        world=World(directive=d),
        judge=lambda w, s: judgement(ConfidenceLevel.GREEN),
        planner=lambda w: plan,
        report=lambda: reports["agent"],
    )
    sim.world.directive = attrs.evolve(sim.world.directive, explicit_steps=list(plan.steps))
    sim.send(None, m.Start())
    sim.run()
    w = sim.world
    assert w.directive.status is D.PAUSED
    assert [a.approval_type for a in w.pending()] == [A.AGENT_UNAVAILABLE]
    assert w.events.count("agent_unavailable") == 1
    assert "step_rework" not in w.events and "chain_superseded" not in w.events
    assert {s.status for s in w.steps.values()} == {S.READY}
    assert all(s.rework_count == 0 for s in w.steps.values())
    steps_run = [t for t in w.tasks.values() if t.kind is TaskKind.STEP]
    assert len(steps_run) == 2  # one each; the second was cancelled by the pause
    reports["agent"] = TaskResult(status=TaskStatus.SUCCEEDED, exit_code=0, output_tail="done")
    sim.send(None, m.AnswerApproval(w.pending()[0].id, True, "ann"))
    sim.run()
    assert w.directive.status is D.COMPLETED
    assert len([t for t in w.tasks.values() if t.kind is TaskKind.STEP]) == 4


def test_a_step_that_waited_on_a_question_answered_meanwhile_is_dispatched_again() -> None:
    """B read its state while the question was pending; a person approved before B's
    report was written. B ends ready in an active directive: the directive must be
    told, or no one dispatches B."""
    d = directive(status=D.PAUSED)
    ch = chain(d)
    a_step = step(d, ch, "a", S.READY)
    b_step = step(d, ch, "b", S.RUNNING, attempt=1)
    t = task(d, step_id=b_step.id, attempt=1)
    asked = approval(d, A.AGENT_UNAVAILABLE, step_id=a_step.id, context={"message": LOGIN})
    w = World(directive=d, chains=[ch], steps={a_step.id: a_step, b_step.id: b_step},
              tasks={t.id: t}, approvals={asked.id: asked})  # fmt: skip
    b_state = w.step_state(b_step.id)
    assert b_state.unavailable_pending
    answered = run_directive(w.directive_state(), m.AnswerApproval(asked.id, True, "me", None))
    w.apply(answered.changes)
    granted = one(answered, c.Grant).step_ids
    assert b_step.id not in granted  # b was still running
    decision = run_step(b_state, m.TaskFinished(t.id, unavailable()))
    w.apply(decision.changes)
    assert w.directive.status is D.ACTIVE and w.steps[b_step.id].status is S.READY
    assert effects_of(decision) == ["TellDirective"]
    # Told, the directive grants b.
    told = run_directive(w.directive_state(), m.Tick())
    assert b_step.id in one(told, c.Grant).step_ids
