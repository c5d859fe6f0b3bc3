"""The directive's lifecycle moves that several decisions share (DESIGN §2, §7, §8).

``advance`` says what follows from a directive at rest: grant ready steps, trip a
circuit breaker, review the finished chain, escalate a blocked one. The others
build one move each: plan, ingest a plan, regenerate, trip, complete, fail.
"""

from __future__ import annotations

import attrs

from directorate.persistence.models import (
    DIRECTIVE_TRANSITIONS,
    ApprovalType,
    AutonomyLevel,
    Chain,
    DirectiveStatus,
    Severity,
    StepStatus,
    Task,
)

from .build import approval, new_chain, planning_task, regeneration_context, replan_context
from .changes import (
    NOTHING,
    ApprovalOpened,
    ApprovalsCancelled,
    CancelJobs,
    ChainCreated,
    ChainReplaced,
    ChainSuperseded,
    Change,
    Decision,
    DirectiveMoved,
    Grant,
    Note,
    RetireSteps,
    ReviewDirective,
    RunPlanning,
    StartSteps,
    StopSelf,
    TaskCreated,
    TasksAbandoned,
    TasksCancelRequested,
)
from .escalation import Trip, can_progress, check_breakers, regeneration_trip, regenerations_left
from .state import DirectiveState, PlanOutcome

_WORKING = (DirectiveStatus.ACTIVE, DirectiveStatus.PLANNING)
"""Where work is under way, so a circuit breaker can trip."""


def moved(
    state: DirectiveState, new: DirectiveStatus, by: str | None = None, **values: object
) -> DirectiveMoved:
    """The directive's move to ``new``; ``InvalidTransition`` is the caller's to check."""
    return DirectiveMoved(old=state.directive.status, new=new, by=by, values=values)


def can_move(state: DirectiveState, new: DirectiveStatus) -> bool:
    return new in DIRECTIVE_TRANSITIONS[state.directive.status]


def with_status(state: DirectiveState, status: DirectiveStatus) -> DirectiveState:
    return attrs.evolve(state, directive=attrs.evolve(state.directive, status=status))


# ----------------------------------------------------------------- at rest


def advance(state: DirectiveState) -> Decision:
    """What follows from the directive as it stands (nothing, when nothing does)."""
    directive = state.directive
    if state.halted or directive.status not in _WORKING or state.breaker_open:
        return NOTHING
    if state.unavailable_pending:  # nothing runs until a human says the agent works
        return NOTHING
    trip = check_breakers(directive, now=state.now)  # before every dispatch (DESIGN §8)
    if trip is not None:
        return tripped(state, trip)
    if directive.status is not DirectiveStatus.ACTIVE or state.chain is None:
        return NOTHING
    if all(s.status.finished for s in state.steps):
        if state.reviewing or state.pending(ApprovalType.DIRECTIVE_REVIEW):
            return NOTHING
        return Decision(effects=(ReviewDirective(state.chain.id),))
    ready = tuple(s.id for s in state.steps if s.status in (StepStatus.READY, StepStatus.REWORK))
    decision = Decision(effects=(Grant(ready),)) if ready else NOTHING
    if state.blocked and not can_progress(state.steps, set(state.waiting_on_human)):
        decision += blocked_chain(state)
    return decision


def blocked_chain(state: DirectiveState) -> Decision:
    """Nothing can progress: regenerate (full_auto, regenerations left, and the chain
    did not fail as the last one did), else ask a human (approve = regenerate)."""
    if state.pending(ApprovalType.CHAIN_BLOCKED):
        return NOTHING
    blocked = state.blocked
    reason = (
        "chain blocked (" + "; ".join(f"{n}: {why}" for n, why in sorted(blocked.items())) + ")"
    )
    repeated = blocked == state.previously_blocked
    full_auto = state.directive.autonomy_level is AutonomyLevel.FULL_AUTO
    if full_auto and regenerations_left(state.directive) and not repeated:
        return regenerate(state, reason, None)
    if not full_auto:
        why = "autonomy is not full_auto"
    elif repeated:
        why = "the regenerated chain failed exactly as the one before"
    else:
        why = "its chain regenerations are spent"
    ask = approval(
        state,
        ApprovalType.CHAIN_BLOCKED,
        f"The chain is {reason[6:]}; asking because {why}. Approve to regenerate it, deny to fail.",
        {"reason": reason, "blocked": blocked, "why": why},
    )
    return Decision(changes=(ask, _asked(ask)))


def tripped(state: DirectiveState, trip: Trip, *, reason: str | None = None) -> Decision:
    """A circuit breaker trips: pause, cancel the agents, warn and ask (DESIGN §8)."""
    if state.breaker_open:
        return NOTHING  # one question at a time: its approval is already pending
    changes: list[Change] = []
    if state.directive.status in _WORKING:
        changes.append(moved(state, DirectiveStatus.PAUSED))
    ask = approval(
        state,
        ApprovalType.CIRCUIT_BREAKER,
        f"{trip.describe()}. Approve with a raised limit to resume, deny to fail.",
        {"limit": trip.limit, "figure": trip.figure, "threshold": trip.threshold, "reason": reason},
    )
    return Decision(
        changes=(
            *changes,
            Note(
                event_type="circuit_breaker_tripped",
                data={
                    "limit": trip.limit,
                    "figure": trip.figure,
                    "threshold": trip.threshold,
                    "message": trip.describe(),
                },
                severity=Severity.WARNING,
            ),
            TasksCancelRequested(reason="a circuit breaker tripped"),
            ask,
            _asked(ask),
        ),
        effects=(CancelJobs("a circuit breaker tripped"),),
    )


# ----------------------------------------------------------------- planning


def plan(state: DirectiveState, *, by: str | None = None, context: str | None = None) -> Decision:
    """Move to planning (when not there already) and start a planning agent."""
    task = planning_task(state, replan_context=context or regeneration_context(state))
    changes: list[Change] = []
    if state.directive.status is not DirectiveStatus.PLANNING:
        values = {} if state.directive.started_at else {"started_at": state.now}
        changes.append(moved(state, DirectiveStatus.PLANNING, by, **values))
    if state.planning is not None and not state.planning.status.finished:
        changes.append(TasksAbandoned(live=state.live_tasks))
    changes += [
        TaskCreated(task=task),
        _planning_started(task),
    ]
    return Decision(changes=tuple(changes), effects=(RunPlanning(task),))


def ingest(state: DirectiveState, outcome: PlanOutcome, *, by: str | None = None) -> Decision:
    """A finished plan becomes the current chain and the directive goes active."""
    chain = new_chain(state, outcome.steps, rationale=outcome.rejected)
    changes: list[Change] = [moved(state, DirectiveStatus.ACTIVE, by), chain]
    if outcome.rejected:
        changes.append(
            Note(
                event_type="plan_rejected",
                data={
                    "reason": outcome.rejected,
                    "fallback": "default chain research -> implement -> test",
                },
                severity=Severity.WARNING,
            )
        )
    changes.append(
        Note(
            event_type="planning_completed",
            data={
                "success": outcome.rejected is None,
                "chain_id": chain.chain_id,
                "steps": [s.name for s in chain.steps],
            },
        )
    )
    old = state.superseded_chain_id
    if old is not None:
        changes.append(
            ChainReplaced(
                old_chain_id=old,
                new_chain_id=chain.chain_id,
                generation=chain.generation,
                carried=chain.carried,
            )
        )
    after = attrs.evolve(
        with_status(state, DirectiveStatus.ACTIVE),
        chain=_chain_of(state, chain),
        steps=chain.steps,
        planning=None,
    )
    # The new chain may hold nothing but carried-over steps: then it is finished.
    follow = advance(after)
    return Decision(changes=tuple(changes), effects=(StartSteps(chain.steps),)) + follow


def regenerate(state: DirectiveState, reason: str, by: str | None) -> Decision:
    """Supersede the chain and plan a new generation; passed steps carry over."""
    trip = regeneration_trip(state.directive)
    if trip is not None:
        return tripped(state, trip, reason=reason)
    chain = state.chain
    if chain is None:
        return NOTHING
    passed = [s.name for s in state.steps if s.status is StepStatus.PASSED]
    blocked = state.blocked
    task = planning_task(state, replan_context=replan_context(reason, passed, blocked))
    changes: list[Change] = []
    if state.directive.status is not DirectiveStatus.PLANNING:
        changes.append(moved(state, DirectiveStatus.PLANNING, by))
    changes += [
        ChainSuperseded(chain_id=chain.id),
        TasksCancelRequested(reason="the chain was regenerated"),
        # Questions about the old chain (step reviews, its review) no longer apply.
        ApprovalsCancelled(),
        Note(
            event_type="chain_superseded",
            data={"chain_id": chain.id, "reason": reason, "passed": passed, "blocked": blocked},
            by=by,
        ),
        TaskCreated(task=task),
        _planning_started(task),
    ]
    return Decision(
        changes=tuple(changes),
        effects=(CancelJobs("the chain was regenerated"), RetireSteps(), RunPlanning(task)),
        reply=chain.id,
    )


# ----------------------------------------------------------------- endings


def complete(state: DirectiveState) -> Decision:
    return Decision(
        changes=(
            moved(state, DirectiveStatus.COMPLETED, completed_at=state.now),
            ApprovalsCancelled(),
            Note(
                event_type="directive_completed",
                data={
                    "steps": len(state.steps),
                    "total_cost_usd": state.directive.total_cost_usd,
                    "total_tokens": state.directive.total_tokens,
                    "total_agent_turns": state.directive.total_agent_turns,
                },
            ),
        ),
        effects=(RetireSteps(), StopSelf()),
    )


def fail(state: DirectiveState, reason: str) -> Decision:
    return Decision(
        changes=(
            moved(state, DirectiveStatus.FAILED, completed_at=state.now),
            Note(event_type="directive_failed", data={"reason": reason}, severity=Severity.ERROR),
            TasksCancelRequested(reason="the directive failed"),
            ApprovalsCancelled(),
        ),
        effects=(CancelJobs("the directive failed"), RetireSteps(), StopSelf()),
    )


def _planning_started(task: Task) -> Note:
    return Note(
        event_type="planning_started",
        data={"task_id": task.id, "message": "Planning task spawned, waiting for chain generation"},
    )


def _asked(opened: ApprovalOpened) -> Note:
    return Note(
        event_type="approval_requested",
        data={
            "approval_id": opened.approval_id,
            "approval_type": str(opened.kind),
            "description": opened.description,
        },
        step_id=opened.step_id,
    )


def _chain_of(state: DirectiveState, created: ChainCreated) -> Chain:
    return Chain(
        id=created.chain_id,
        directive_id=state.directive.id,
        generation=created.generation,
        name=created.name,
        description=created.description,
        rationale=created.rationale,
    )
