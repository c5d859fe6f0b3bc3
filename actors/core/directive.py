"""The directive's decisions: ``decide(state, message) -> Decision`` (DESIGN §2, §8).

Pure: the state is what the database holds (plus this engine's running jobs), the
decision is what to commit and then do. A request that is not allowed is refused
with the error the caller gets, and nothing else.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import attrs

from directorate.persistence.errors import (
    CircuitBreakerTripped,
    InvalidInput,
    InvalidTransition,
)
from directorate.persistence.models import (
    Approval,
    ApprovalStatus,
    ApprovalType,
    AutonomyLevel,
    ConfidenceLevel,
    DirectiveStatus,
    Severity,
    StepStatus,
    Task,
    TaskStatus,
)
from directorate.persistence.validation import reject_nul

from .. import messages as m
from .build import approval, new_chain
from .changes import (
    NOTHING,
    ApprovalAnswered,
    ApprovalsCancelled,
    CancelJobs,
    Decision,
    EvaluationStored,
    LimitRaised,
    Note,
    RetireSteps,
    StartSteps,
    StepAnswered,
    StepMoved,
    StopSelf,
    StopStaleAgent,
    TaskRecorded,
    TasksAbandoned,
    TasksCancelRequested,
    late_judge_spending,
    refuse,
)
from .escalation import (
    BREAKER_LIMITS,
    Trip,
    current_figure,
    raised_limit,
    regeneration_trip,
    regenerations_left,
    unknown_limits,
    with_spent,
)
from .flow import (
    _asked,
    advance,
    can_move,
    complete,
    fail,
    ingest,
    moved,
    plan,
    regenerate,
    tripped,
    with_status,
)
from .recovery import stale_agent_note
from .state import DirectiveState
from .unavailable import asked, denied_reason, unavailable_reason


def decide(state: DirectiveState, message: m.DirectiveMessage) -> Decision:
    """What the directive does about ``message``, as it stands in ``state``."""
    handler: Callable[[DirectiveState, Any], Decision] = _HANDLERS[type(message)]
    return handler(state, message)


def _refused(state: DirectiveState, target: DirectiveStatus) -> Decision:
    return refuse(InvalidTransition(state.directive.status, target, "directive"))


# ----------------------------------------------------------------- requests


def _start(state: DirectiveState, message: m.Start) -> Decision:
    directive = state.directive
    if directive.status is not DirectiveStatus.DRAFT:
        return _refused(state, DirectiveStatus.PLANNING)
    if not directive.explicit_steps:
        return plan(state).replying(DirectiveStatus.PLANNING)
    chain = new_chain(state, directive.explicit_steps, rationale=None)
    # The row as this write leaves it (what its steps decide on; the columns only
    # the database sets, timestamps and the event count, no decision reads).
    started = attrs.evolve(
        directive,
        status=DirectiveStatus.ACTIVE,
        started_at=state.now,
        chain_generation_count=chain.generation,
    )
    return Decision(
        changes=(
            moved(state, DirectiveStatus.ACTIVE, started_at=state.now),
            chain,
            Note(
                event_type="planning_completed",
                data={"source": "explicit steps", "chain_id": chain.chain_id},
            ),
        ),
        effects=(StartSteps(chain.steps, directive=started),),
        reply=DirectiveStatus.ACTIVE,
    )


def _recover(state: DirectiveState, message: m.Recover) -> Decision:
    stale = _stale_planning(state)
    if stale is not None:  # first make sure a dead engine's planning agent is gone
        return Decision(effects=(StopStaleAgent(stale),))
    status = state.directive.status
    if status is DirectiveStatus.PLANNING:
        if state.awaiting_plan and state.plan is not None:
            return ingest(state, state.plan)  # planned just before the engine stopped
        return plan(state) + Decision(
            changes=(
                Note(
                    event_type="planning_recovered",
                    data={"message": "planning again after an engine restart"},
                    severity=Severity.WARNING,
                ),
            )
        )
    if status in (DirectiveStatus.ACTIVE, DirectiveStatus.PAUSED) and state.chain is not None:
        return Decision(effects=(StartSteps(),)) + advance(state)
    return NOTHING  # paused while planning: resume plans (or ingests) then


def _stale_planning(state: DirectiveState) -> Task | None:
    """The unfinished planning task of an engine that is gone, if any."""
    task = state.planning
    if (
        state.chain is None
        and state.directive.status in (DirectiveStatus.PLANNING, DirectiveStatus.PAUSED)
        and task is not None
        and not task.status.finished
        and task.id not in state.live_tasks
    ):
        return task
    return None


def _stale_agent_stopped(state: DirectiveState, message: m.StaleAgentStopped) -> Decision:
    """The old planning agent is gone: record what was done, finish its task as
    abandoned, and recover as if it had never been."""
    note = stale_agent_note(message.task_id, message.check)
    noted = Decision(changes=(note,) if note is not None else ())
    task = _stale_planning(state)
    if task is None or task.id != message.task_id:
        return noted  # the directive has moved on meanwhile
    abandoned = attrs.evolve(state, planning=attrs.evolve(task, status=TaskStatus.CANCELLED))
    return (
        noted
        + Decision(changes=(TasksAbandoned(live=state.live_tasks),))
        + _recover(abandoned, m.Recover())
    )


def _pause(state: DirectiveState, message: m.Pause) -> Decision:
    if state.directive.status not in (DirectiveStatus.ACTIVE, DirectiveStatus.PLANNING):
        return _refused(state, DirectiveStatus.PAUSED)
    return Decision(
        changes=(
            moved(state, DirectiveStatus.PAUSED, message.by),
            TasksCancelRequested(reason="the directive was paused"),
        ),
        effects=(CancelJobs("paused"),),
        reply=DirectiveStatus.PAUSED,
    )


def _resume(state: DirectiveState, message: m.Resume) -> Decision:
    if state.directive.status is not DirectiveStatus.PAUSED:
        return _refused(state, DirectiveStatus.ACTIVE)
    waiting = state.pending(ApprovalType.AGENT_UNAVAILABLE)
    if waiting:  # resuming says the agent works again: that approval's yes
        answer = m.AnswerApproval(waiting[0].id, True, message.by, "resumed")
        return _answer(state, answer)
    return _resumed(state, message.by)


def _resumed(state: DirectiveState, by: str | None) -> Decision:
    """Out of a pause: go on planning (or use the plan that finished meanwhile), or
    go active and take up the chain where it stands."""
    if state.chain is None:
        if state.awaiting_plan and state.plan is not None:
            return ingest(state, state.plan, by=by).replying(DirectiveStatus.ACTIVE)
        return plan(state, by=by).replying(DirectiveStatus.PLANNING)
    after = with_status(state, DirectiveStatus.ACTIVE)
    return (
        Decision(changes=(moved(state, DirectiveStatus.ACTIVE, by),), effects=(StartSteps(),))
        + advance(after)
    ).replying(DirectiveStatus.ACTIVE)


def _stop(state: DirectiveState, message: m.Stop) -> Decision:
    if not can_move(state, DirectiveStatus.CANCELLED):
        return _refused(state, DirectiveStatus.CANCELLED)
    return Decision(
        changes=(
            moved(state, DirectiveStatus.CANCELLED, message.by, completed_at=state.now),
            TasksCancelRequested(reason="the directive was stopped"),
            ApprovalsCancelled(),
        ),
        effects=(CancelJobs("stopped"), RetireSteps(), StopSelf()),
        reply=DirectiveStatus.CANCELLED,
    )


def _regenerate(state: DirectiveState, message: m.Regenerate) -> Decision:
    status = state.directive.status
    if status not in (DirectiveStatus.ACTIVE, DirectiveStatus.PAUSED) or state.chain is None:
        return _refused(state, DirectiveStatus.PLANNING)
    try:
        reject_nul("reason", message.reason)
        reject_nul("by", message.by)
    except InvalidInput as exc:
        return refuse(exc)
    if state.breaker_open:
        return refuse(
            CircuitBreakerTripped(
                "a circuit breaker is open: answer its approval before regenerating"
            )
        )
    trip = regeneration_trip(state.directive)
    if trip is not None:
        error = CircuitBreakerTripped(f"{trip.describe()}; a circuit_breaker approval asks")
        return tripped(state, trip, reason=message.reason).failing(error)
    return regenerate(state, message.reason, message.by)


# ----------------------------------------------------------------- approvals


def _answer(state: DirectiveState, message: m.AnswerApproval) -> Decision:
    if message.status is not None:
        status = message.status
    else:
        status = ApprovalStatus.APPROVED if message.approved else ApprovalStatus.DENIED
    found = state.approval(message.approval_id)
    if found is None:  # the actor says what it is instead, from its row
        return refuse(InvalidTransition("not pending", status, "approval"))
    if state.directive.status.terminal:
        return refuse(InvalidTransition(state.directive.status, status, "approval of a directive"))
    answer = ApprovalAnswered(approval=found, status=status, by=message.by, note=message.note)
    resolved = Note(
        event_type="approval_resolved",
        data={
            "approval_id": found.id,
            "approval_type": str(found.approval_type),
            "status": str(status),
            "responded_by": message.by,
            "note": message.note,
        },
        step_id=found.step_id,
        by=message.by,
    )
    answered = Decision(changes=(answer, resolved))
    after = attrs.evolve(state, approvals=tuple(a for a in state.approvals if a.id != found.id))
    approved = status is ApprovalStatus.APPROVED
    kind = found.approval_type
    if kind is ApprovalType.STEP_REVIEW:
        return _answer_review(after, found, status, answered)
    if kind is ApprovalType.AGENT_UNAVAILABLE:
        if not approved:
            return answered + fail(after, f"{denied_reason(found.context)} (retry {status})")
        return answered + _retry(after, found, message.by)
    if not approved:
        return answered + fail(after, f"{kind} approval {status}")
    if kind is ApprovalType.CIRCUIT_BREAKER:
        return _raise_limit(after, found, message, answered)
    if kind is ApprovalType.CHAIN_BLOCKED:
        reason = str(found.context.get("reason") or "chain blocked")
        return answered + regenerate(after, reason, message.by)
    if state.directive.status is not DirectiveStatus.ACTIVE:  # a directive review
        return _refused(state, DirectiveStatus.COMPLETED)
    return answered + complete(after)


def _answer_review(
    state: DirectiveState, found: Approval, status: ApprovalStatus, answered: Decision
) -> Decision:
    step = state.step(found.step_id)
    if step is None or step.status is not StepStatus.EVALUATING:
        return refuse(InvalidTransition(found.status, status, "approval"))
    approved = status is ApprovalStatus.APPROVED
    if approved and state.directive.result_branch:
        # Passed once its branch is merged: the step does that, then says so.
        return answered + Decision(effects=(StepAnswered(step.id),))
    new = StepStatus.PASSED if approved else StepStatus.BLOCKED
    values = {} if approved else {"status_reason": f"review {status}"}
    decision = answered + Decision(
        changes=(StepMoved(step=step, new=new, values=values),),
        effects=(StepAnswered(step.id),),
    )
    steps = tuple(
        attrs.evolve(s, status=new, status_reason=values.get("status_reason"))
        if s.id == step.id
        else s
        for s in state.steps
    )
    return decision + advance(attrs.evolve(state, steps=steps))


def _retry(state: DirectiveState, found: Approval, by: str | None) -> Decision:
    """A human says the agent can reach its model again: plan again (the planning
    agent was the one that could not), or go active and grant the waiting steps
    their next attempt (their rework counts as they were)."""
    if state.chain is None and found.step_id is None:
        return plan(state, by=by).replying(DirectiveStatus.PLANNING)
    if state.directive.status is DirectiveStatus.PAUSED:
        return _resumed(state, by)
    return advance(state).replying(state.directive.status)


def _raise_limit(
    state: DirectiveState, found: Approval, message: m.AnswerApproval, answered: Decision
) -> Decision:
    context = found.context
    trip = Trip(limit=context["limit"], figure=context["figure"], threshold=context["threshold"])
    directive = state.directive
    unknown = unknown_limits(message.raise_limit)
    if unknown:  # a mistyped name would otherwise leave the default raise in silence
        return refuse(
            InvalidInput(
                f"raise_limit: no circuit breaker has {', '.join(unknown)} "
                f"(the limits are {', '.join(BREAKER_LIMITS)})"
            )
        )
    try:
        new_limit = raised_limit(
            trip, message.raise_limit, current_figure(trip, directive, state.now)
        )
    except InvalidInput as exc:
        return refuse(exc)
    raised = LimitRaised(limit=trip.limit, old=trip.threshold, new=new_limit, by=message.by)
    limits: dict[str, Any] = {trip.limit: new_limit}
    after = attrs.evolve(state, directive=attrs.evolve(directive, **limits))
    decision = answered + Decision(changes=(raised,))
    if trip.limit == "max_chain_regenerations":
        reason = str(context.get("reason") or "limit raised")
        return decision + regenerate(after, reason, message.by)
    if directive.status is DirectiveStatus.PAUSED:
        return decision + _resumed(after, message.by)
    return decision + advance(after)


# ----------------------------------------------------------------- time


def _tick(state: DirectiveState, message: m.Tick) -> Decision:
    expired = next(
        (a for a in state.approvals if a.expires_at is not None and a.expires_at <= state.now),
        None,
    )
    if expired is not None:  # one per tick: the next tick takes the next one
        answer = m.AnswerApproval(expired.id, False, None, "expired", status=ApprovalStatus.EXPIRED)
        decision = _answer(state, answer)
        return NOTHING if decision.error else decision
    return advance(state)


# ----------------------------------------------------------------- reports


def _step_changed(state: DirectiveState, message: m.StepChanged | m.Recover) -> Decision:
    return advance(state)


def _step_actor_failed(state: DirectiveState, message: m.StepActorFailed) -> Decision:
    failed = Note(
        event_type="actor_failed",
        data={"actor": "step", "error": message.error, "step_id": message.step_id},
        severity=Severity.ERROR,
        step_id=message.step_id,
    )
    if (
        not can_move(state, DirectiveStatus.PAUSED)
        or state.directive.status is DirectiveStatus.PAUSED
    ):
        return Decision(changes=(failed,))
    return Decision(
        changes=(
            failed,
            moved(state, DirectiveStatus.PAUSED),
            TasksCancelRequested(reason="paused after a failure"),
        ),
        effects=(CancelJobs("paused after a failure"),),
    )


def _planning_finished(state: DirectiveState, message: m.PlanningFinished) -> Decision:
    recorded = Decision(changes=(TaskRecorded(task_id=message.task_id, result=message.result),))
    after = attrs.evolve(state, directive=with_spent(state.directive, message.result))
    current = state.planning is not None and state.planning.id == message.task_id
    reason = unavailable_reason(message.result)  # the tool's own word only (planning is one go)
    if current and state.chain is None and reason is not None:
        return recorded + _planning_unavailable(after, message.task_id, reason)
    usable = message.result.status != "cancelled" and state.plan is not None
    if (
        current
        and state.chain is None
        and usable
        and state.directive.status is DirectiveStatus.PLANNING
    ):
        assert state.plan is not None
        return recorded + ingest(after, state.plan)
    # Stale, cancelled, or paused as it finished (resume ingests it): recorded only.
    return recorded + advance(after)


_PLANNING_OR_PAUSED = (DirectiveStatus.PLANNING, DirectiveStatus.PAUSED)


def _planning_unavailable(state: DirectiveState, task_id: uuid.UUID, reason: str) -> Decision:
    """The planning agent could not reach its model: no plan to use and none to
    reject (no default chain); pause and ask, once, to plan again."""
    status = state.directive.status
    if state.unavailable_pending or status not in _PLANNING_OR_PAUSED:
        return NOTHING
    paused = (moved(state, DirectiveStatus.PAUSED),) if status is DirectiveStatus.PLANNING else ()
    question = asked(
        reason,
        step=None,
        task_id=task_id,
        attempt=state.planning.attempt if state.planning else 1,
        now=state.now,
        timeout_s=state.settings.approval_timeout_s,
    )
    return Decision(changes=(*paused, *question))


def _directive_reviewed(state: DirectiveState, message: m.DirectiveReviewed) -> Decision:
    chain = state.chain
    verdict = message.judgement
    # Not stored in these three cases; what its judges spent counts all the same.
    spent = Decision(changes=late_judge_spending(verdict, None, None))
    if chain is None or chain.id != message.chain_id:
        return spent  # a review of a chain since superseded
    if state.directive.status is not DirectiveStatus.ACTIVE:
        return spent  # paused meanwhile: resume reviews again
    if state.pending(ApprovalType.DIRECTIVE_REVIEW):
        return spent
    level = verdict.confidence_level
    stored = Decision(changes=(EvaluationStored(judgement=verdict, chain_id=chain.id),))
    full_auto = state.directive.autonomy_level is AutonomyLevel.FULL_AUTO
    if level is ConfidenceLevel.GREEN or (level is ConfidenceLevel.YELLOW and full_auto):
        if level is ConfidenceLevel.YELLOW:
            stored += Decision(
                changes=(
                    Note(
                        event_type="directive_review_auto_approved",
                        data={"reason": "yellow confidence accepted under full_auto"},
                    ),
                )
            )
        return stored + complete(state)
    if level is ConfidenceLevel.RED and full_auto and regenerations_left(state.directive):
        return stored + regenerate(state, f"directive review was red: {verdict.summary}", None)
    ask = approval(
        state,
        ApprovalType.DIRECTIVE_REVIEW,
        f"Every step passed, but the directive review is {level} "
        f"({verdict.composite_score:.0%}): {verdict.summary}. Approve to complete, deny to fail.",
        {
            "evaluation_id": str(verdict.evaluation_id),
            "confidence_level": str(level),
            "rework_instructions": verdict.rework_instructions,
        },
    )
    return stored + Decision(changes=(ask, _asked(ask)))


_HANDLERS: dict[type, Callable[[DirectiveState, Any], Decision]] = {
    m.Start: _start,
    m.Recover: _recover,
    m.Pause: _pause,
    m.Resume: _resume,
    m.Stop: _stop,
    m.Regenerate: _regenerate,
    m.AnswerApproval: _answer,
    m.Tick: _tick,
    m.StepChanged: _step_changed,
    m.StepActorFailed: _step_actor_failed,
    m.PlanningFinished: _planning_finished,
    m.DirectiveReviewed: _directive_reviewed,
    m.StaleAgentStopped: _stale_agent_stopped,
}
