"""The directive's decision table (DESIGN §2, §7, §8, §9): ``decide(state, message)``.

Pure: every state is built by hand, every decision also goes through
``actors.writes.write`` (which refuses a transition not in ``DIRECTIVE_TRANSITIONS``
or ``STEP_TRANSITIONS``). The last section feeds decisions forward through a tiny
in-memory world to show that autonomy stays bounded.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import attrs
import pytest
from decision_helpers import (
    NOW,
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
    plan_of,
    record_writes,
    result,
    run_directive,
    stale_check,
    step,
    step_moves,
    task,
)

from directorate.actors import messages as m
from directorate.actors import writes
from directorate.actors.core import changes as c
from directorate.actors.core.escalation import DEFAULT_MAX_CHAIN_REGENERATIONS
from directorate.actors.core.state import DirectiveState, PlanOutcome
from directorate.persistence.errors import (
    CircuitBreakerTripped,
    InvalidInput,
    InvalidTransition,
)
from directorate.persistence.models import (
    DIRECTIVE_TRANSITIONS,
    Approval,
    ApprovalStatus,
    ApprovalType,
    AutonomyLevel,
    ChainStatus,
    ConfidenceLevel,
    DirectiveStatus,
    Severity,
    Step,
    StepSpec,
    StepStatus,
    TaskKind,
    TaskStatus,
)
from directorate.verifiers.stale_agents import StaleOutcome

D, S = DirectiveStatus, StepStatus
A = ApprovalType
G, Y, R = ConfidenceLevel.GREEN, ConfidenceLevel.YELLOW, ConfidenceLevel.RED
FULL, GUARD, MANUAL = AutonomyLevel.FULL_AUTO, AutonomyLevel.GUARDRAILS, AutonomyLevel.MANUAL

PLAN = ["DirectiveMoved", "TaskCreated", "Note"]
"""Moving to planning and starting a planning agent."""
REGENERATE = [
    "DirectiveMoved",
    "ChainSuperseded",
    "TasksCancelRequested",
    "ApprovalsCancelled",
    "Note",
    "TaskCreated",
    "Note",
]
REGENERATE_EFFECTS = ["CancelJobs", "RetireSteps", "RunPlanning"]
TRIP = ["DirectiveMoved", "Note", "TasksCancelRequested", "ApprovalOpened", "Note"]
ASK = ["ApprovalOpened", "Note"]
ANSWER = ["ApprovalAnswered", "Note"]
FAIL = ["DirectiveMoved", "Note", "TasksCancelRequested", "ApprovalsCancelled"]
ENDING_EFFECTS = ["CancelJobs", "RetireSteps", "StopSelf"]
COMPLETE = ["DirectiveMoved", "ApprovalsCancelled", "Note"]
INGEST = ["DirectiveMoved", "ChainCreated", "Note"]

Asked = Callable[[], tuple[DirectiveState, Approval]]
"""A state with a pending approval, and that approval."""
StepRow = tuple[str, StepStatus] | tuple[str, StepStatus, Sequence[str]]


def chained(
    *rows: StepRow,
    status: DirectiveStatus = D.ACTIVE,
    autonomy: AutonomyLevel = GUARD,
    directive_values: dict[str, Any] | None = None,
    **state: Any,
) -> DirectiveState:
    """A directive with a current chain of ``rows``: (name, status[, dependencies])."""
    d = directive(status=status, autonomy_level=autonomy, **(directive_values or {}))
    ch = chain(d)
    steps: dict[str, Step] = {}
    for row in rows:
        name, step_status = row[0], row[1]
        deps = [steps[n] for n in (row[2] if len(row) > 2 else ())]
        steps[name] = step(d, ch, name, step_status, deps=deps)
    return dstate(d, ch, list(steps.values()), **state)


def unchained(
    status: DirectiveStatus = D.PLANNING,
    *,
    planning: TaskStatus | None = TaskStatus.RUNNING,
    plan: PlanOutcome | None = None,
    directive_values: dict[str, Any] | None = None,
    **state: Any,
) -> DirectiveState:
    """A directive with no chain yet, and its latest planning task (if any)."""
    d = directive(status=status, chain_generation_count=0, **(directive_values or {}))
    latest = task(d, kind=TaskKind.PLANNING, status=planning, attempt=1) if planning else None
    return dstate(d, None, planning=latest, plan=plan, **state)


def asking(
    state: DirectiveState, kind: ApprovalType, step_name: str | None = None, **values: Any
) -> tuple[DirectiveState, Approval]:
    """``state`` with a pending approval of ``kind`` (on the step named ``step_name``)."""
    target = next((s for s in state.steps if s.name == step_name), None)
    found = approval(state.directive, kind, step_id=target.id if target else None, **values)
    return attrs.evolve(state, approvals=(*state.approvals, found)), found


def with_directive(state: DirectiveState, **values: Any) -> DirectiveState:
    return attrs.evolve(state, directive=attrs.evolve(state.directive, **values))


def assert_refused(decision: c.Decision, error: type[Exception]) -> None:
    assert isinstance(decision.error, error), decision.error
    assert decision.changes == ()
    assert decision.effects == ()


def assert_invalid(decision: c.Decision, old: DirectiveStatus | str, new: str) -> None:
    assert_refused(decision, InvalidTransition)
    assert isinstance(decision.error, InvalidTransition)
    assert (decision.error.from_status, decision.error.to_status) == (str(old), str(new))


def statuses(*chosen: DirectiveStatus) -> list[Any]:
    return [pytest.param(s, id=str(s)) for s in chosen]


def other_statuses(*allowed: DirectiveStatus) -> list[Any]:
    return statuses(*(s for s in DirectiveStatus if s not in allowed))


# ================================================================= Start


def test_start_without_steps_plans() -> None:
    state = dstate(directive(status=D.DRAFT, started_at=None, chain_generation_count=0))
    decision = run_directive(state, m.Start())
    assert changes_of(decision) == PLAN
    assert every(decision, c.DirectiveMoved) == [
        c.DirectiveMoved(old=D.DRAFT, new=D.PLANNING, values={"started_at": NOW})
    ]
    planning = one(decision, c.TaskCreated).task
    assert (planning.kind, planning.attempt, planning.status) == (
        TaskKind.PLANNING,
        1,
        TaskStatus.RUNNING,
    )
    assert planning.plan_file is not None
    assert effects_of(decision) == ["RunPlanning"]
    assert one(decision, c.RunPlanning).task is planning
    assert notes(decision) == ["planning_started"]
    assert (decision.reply, decision.error) == (D.PLANNING, None)


@pytest.mark.parametrize(
    ("values", "budget"),
    [
        pytest.param({}, None, id="no-dollar-limit"),
        pytest.param({"max_total_cost_usd": 2.0}, 2.0, id="a-fresh-directive"),
        pytest.param({"max_total_cost_usd": 2.0, "total_cost_usd": 0.755}, 1.24, id="spent-some"),
    ],
)
def test_the_planning_task_is_given_the_dollars_left(
    values: dict[str, float], budget: float | None
) -> None:
    d = directive(status=D.DRAFT, started_at=None, chain_generation_count=0, **values)
    assert one(run_directive(dstate(d), m.Start()), c.TaskCreated).task.budget_usd == budget


def test_start_with_explicit_steps_goes_straight_to_active() -> None:
    explicit = [StepSpec(name="a"), StepSpec(name="b", depends_on=["a"])]
    d = directive(
        status=D.DRAFT, started_at=None, chain_generation_count=0, explicit_steps=explicit
    )
    decision = run_directive(dstate(d), m.Start())
    assert changes_of(decision) == INGEST
    assert every(decision, c.DirectiveMoved) == [
        c.DirectiveMoved(old=D.DRAFT, new=D.ACTIVE, values={"started_at": NOW})
    ]
    created = one(decision, c.ChainCreated)
    a, b = created.steps
    assert (created.generation, [a.name, b.name], b.depends_on) == (1, ["a", "b"], [a.id])
    assert {a.status, b.status} == {S.PENDING}
    assert notes(decision) == ["planning_completed"]
    assert effects_of(decision) == ["StartSteps"]
    assert decision.reply == D.ACTIVE


def test_a_start_hands_its_steps_the_directive_as_its_write_leaves_it() -> None:
    """What the first steps decide on without reading: the draft with the start's
    status, start time and chain generation, every other column as read."""
    explicit = [StepSpec(name="a")]
    d = directive(
        status=D.DRAFT,
        started_at=None,
        chain_generation_count=0,
        explicit_steps=explicit,
        max_total_cost_usd=5.0,
        result_branch="directorate/x",
    )
    decision = run_directive(dstate(d), m.Start())
    handed = one(decision, c.StartSteps).directive
    assert handed == attrs.evolve(d, status=D.ACTIVE, started_at=NOW, chain_generation_count=1)
    assert one(decision, c.StartSteps).steps == one(decision, c.ChainCreated).steps


@pytest.mark.parametrize("status", other_statuses(D.DRAFT))
def test_start_from_anything_but_draft_is_refused(status: DirectiveStatus) -> None:
    assert_invalid(
        run_directive(chained(("a", S.PENDING), status=status), m.Start()), status, "planning"
    )


# ================================================================= Recover


def test_recover_planning_with_a_finished_plan_ingests_it() -> None:
    state = unchained(planning=TaskStatus.SUCCEEDED, plan=plan_of("research", "build"))
    decision = run_directive(state, m.Recover())
    assert changes_of(decision) == INGEST
    assert directive_moves(decision) == [(D.PLANNING, D.ACTIVE)]
    assert [s.name for s in one(decision, c.ChainCreated).steps] == ["research", "build"]
    assert effects_of(decision) == ["StartSteps"]


@pytest.mark.parametrize(
    ("planning", "plan", "expected"),
    [
        pytest.param(
            TaskStatus.SUCCEEDED,
            None,
            ["TaskCreated", "Note", "Note"],
            id="finished-but-no-plan-read",
        ),
        pytest.param(
            TaskStatus.CANCELLED,
            plan_of("build"),
            ["TaskCreated", "Note", "Note"],
            id="cancelled-plan-not-used",
        ),
        pytest.param(None, None, ["TaskCreated", "Note", "Note"], id="no-planning-task"),
    ],
)
def test_recover_planning_without_a_usable_plan_plans_again(
    planning: TaskStatus | None, plan: PlanOutcome | None, expected: list[str]
) -> None:
    state = unchained(planning=planning, plan=plan)
    decision = run_directive(state, m.Recover())
    assert changes_of(decision) == expected
    assert directive_moves(decision) == []  # already planning
    assert notes(decision) == ["planning_started", "planning_recovered"]
    assert one(decision, c.TaskCreated).task.attempt == (2 if planning else 1)
    assert effects_of(decision) == ["RunPlanning"]


@pytest.mark.parametrize("status", [D.PLANNING, D.PAUSED])
def test_recover_with_a_dead_engines_planning_agent_first_makes_sure_it_is_gone(
    status: DirectiveStatus,
) -> None:
    state = unchained(status, planning=TaskStatus.RUNNING)
    assert state.planning is not None
    decision = run_directive(state, m.Recover())
    assert decision.changes == ()
    assert decision.effects == (c.StopStaleAgent(state.planning),)


def test_a_planning_agent_that_runs_in_this_engine_is_never_killed() -> None:
    state = unchained(planning=TaskStatus.RUNNING)
    assert state.planning is not None
    ours = attrs.evolve(state, live_tasks=frozenset({state.planning.id}))
    assert every(run_directive(ours, m.Recover()), c.StopStaleAgent) == []


@pytest.mark.parametrize(
    ("status", "expected", "effects"),
    [
        pytest.param(
            D.PLANNING,
            ["Note", "TasksAbandoned", "TaskCreated", "Note", "Note"],
            ["RunPlanning"],
            id="planning-plans-again",
        ),
        pytest.param(D.PAUSED, ["Note", "TasksAbandoned"], [], id="paused-waits-for-resume"),
    ],
)
def test_once_the_old_planning_agent_is_gone_the_directive_is_recovered(
    status: DirectiveStatus, expected: list[str], effects: list[str]
) -> None:
    live = frozenset({uuid.uuid4()})
    state = unchained(status, planning=TaskStatus.RUNNING, live_tasks=live)
    assert state.planning is not None
    old = attrs.evolve(state.planning, pid=4242, host="here")
    state = attrs.evolve(state, planning=old)
    check = stale_check(old, StaleOutcome.KILLED, killed=(4242,))
    decision = run_directive(state, m.StaleAgentStopped(old.id, check))
    assert changes_of(decision) == expected
    assert notes(decision)[0] == "stale_agent_killed"
    assert every(decision, c.Note)[0].data["task_id"] == old.id
    assert one(decision, c.TasksAbandoned) == c.TasksAbandoned(live=live)
    assert effects_of(decision) == effects
    if effects:
        assert notes(decision)[1:] == ["planning_started", "planning_recovered"]
        assert one(decision, c.TaskCreated).task.attempt == 2


def test_an_old_planning_agents_end_is_only_recorded_once_the_directive_moved_on() -> None:
    state = unchained(planning=TaskStatus.CANCELLED)  # stopped or replanned meanwhile
    assert state.planning is not None
    check = stale_check(state.planning, StaleOutcome.GONE, spared=(4242,))
    decision = run_directive(state, m.StaleAgentStopped(state.planning.id, check))
    assert changes_of(decision) == ["Note"] and notes(decision) == ["stale_agent_gone"]
    assert one(decision, c.Note).data["spared"] == [4242]
    assert decision.effects == ()


@pytest.mark.parametrize(
    ("state", "effects"),
    [
        pytest.param(
            chained(("a", S.PASSED), ("b", S.READY, ["a"])),
            ["StartSteps", "Grant"],
            id="active-with-ready-steps",
        ),
        pytest.param(
            chained(("a", S.RUNNING), ("b", S.PENDING, ["a"])), ["StartSteps"], id="active-running"
        ),
        pytest.param(chained(("a", S.READY), status=D.PAUSED), ["StartSteps"], id="paused"),
        pytest.param(
            unchained(D.PAUSED, planning=TaskStatus.CANCELLED), [], id="paused-while-planning"
        ),
        pytest.param(chained(("a", S.PENDING), status=D.DRAFT), [], id="draft"),
        pytest.param(chained(("a", S.PASSED), status=D.COMPLETED), [], id="completed"),
        pytest.param(chained(("a", S.BLOCKED), status=D.FAILED), [], id="failed"),
    ],
)
def test_recover_with_a_chain(state: DirectiveState, effects: list[str]) -> None:
    decision = run_directive(state, m.Recover())
    assert decision.changes == ()
    assert effects_of(decision) == effects


# ================================================================= Pause / Resume / Stop


@pytest.mark.parametrize("status", statuses(D.ACTIVE, D.PLANNING))
def test_pause(status: DirectiveStatus) -> None:
    decision = run_directive(chained(("a", S.RUNNING), status=status), m.Pause(by="ann"))
    assert changes_of(decision) == ["DirectiveMoved", "TasksCancelRequested"]
    assert every(decision, c.DirectiveMoved) == [
        c.DirectiveMoved(old=status, new=D.PAUSED, by="ann")
    ]
    assert effects_of(decision) == ["CancelJobs"]
    assert (decision.reply, decision.error) == (D.PAUSED, None)


@pytest.mark.parametrize("status", other_statuses(D.ACTIVE, D.PLANNING))
def test_pause_is_refused(status: DirectiveStatus) -> None:
    assert_invalid(
        run_directive(chained(("a", S.READY), status=status), m.Pause()), status, "paused"
    )


@pytest.mark.parametrize("status", other_statuses(D.PAUSED))
def test_resume_is_refused(status: DirectiveStatus) -> None:
    assert_invalid(
        run_directive(chained(("a", S.READY), status=status), m.Resume()), status, "active"
    )


def test_resume_takes_up_the_chain_where_it_stands() -> None:
    state = chained(
        ("a", S.PASSED), ("b", S.READY, ["a"]), ("c", S.PENDING, ["b"]), status=D.PAUSED
    )
    decision = run_directive(state, m.Resume(by="ann"))
    assert every(decision, c.DirectiveMoved) == [
        c.DirectiveMoved(old=D.PAUSED, new=D.ACTIVE, by="ann")
    ]
    assert changes_of(decision) == ["DirectiveMoved"]
    assert effects_of(decision) == ["StartSteps", "Grant"]
    assert one(decision, c.Grant).step_ids == (state.steps[1].id,)
    assert (decision.reply, decision.error) == (D.ACTIVE, None)


def test_resume_over_the_cost_limit_trips_again() -> None:
    state = chained(
        ("a", S.READY),
        status=D.PAUSED,
        directive_values={"max_total_cost_usd": 5.0, "total_cost_usd": 6.0},
    )
    decision = run_directive(state, m.Resume())
    assert changes_of(decision) == ["DirectiveMoved", *TRIP]
    assert directive_moves(decision) == [(D.PAUSED, D.ACTIVE), (D.ACTIVE, D.PAUSED)]
    assert one(decision, c.ApprovalOpened).kind is A.CIRCUIT_BREAKER
    assert effects_of(decision) == ["StartSteps", "CancelJobs"]


def test_resume_while_a_breaker_waits_goes_active_but_runs_nothing() -> None:
    state, _ = asking(chained(("a", S.READY), status=D.PAUSED), A.CIRCUIT_BREAKER)
    decision = run_directive(state, m.Resume())
    assert directive_moves(decision) == [(D.PAUSED, D.ACTIVE)]
    assert effects_of(decision) == ["StartSteps"]


@pytest.mark.parametrize(
    ("planning", "expected"),
    [
        pytest.param(TaskStatus.CANCELLED, PLAN, id="planning-cancelled-by-the-pause"),
        pytest.param(
            TaskStatus.RUNNING,
            ["DirectiveMoved", "TasksAbandoned", "TaskCreated", "Note"],
            id="planning-agent-not-reported-yet",
        ),
    ],
)
def test_resume_while_planning_plans_again(planning: TaskStatus, expected: list[str]) -> None:
    decision = run_directive(unchained(D.PAUSED, planning=planning), m.Resume(by="ann"))
    assert changes_of(decision) == expected
    assert every(decision, c.DirectiveMoved) == [
        c.DirectiveMoved(old=D.PAUSED, new=D.PLANNING, by="ann")
    ]
    assert effects_of(decision) == ["RunPlanning"]
    assert decision.reply == D.PLANNING


def test_resume_with_a_plan_that_finished_meanwhile_ingests_it() -> None:
    state = unchained(D.PAUSED, planning=TaskStatus.SUCCEEDED, plan=plan_of("build"))
    decision = run_directive(state, m.Resume(by="ann"))
    assert changes_of(decision) == INGEST
    assert directive_moves(decision) == [(D.PAUSED, D.ACTIVE)]
    assert effects_of(decision) == ["StartSteps"]
    assert decision.reply == D.ACTIVE


@pytest.mark.parametrize("status", statuses(D.DRAFT, D.PLANNING, D.ACTIVE, D.PAUSED))
def test_stop(status: DirectiveStatus) -> None:
    decision = run_directive(chained(("a", S.RUNNING), status=status), m.Stop(by="ann"))
    assert changes_of(decision) == ["DirectiveMoved", "TasksCancelRequested", "ApprovalsCancelled"]
    assert every(decision, c.DirectiveMoved) == [
        c.DirectiveMoved(old=status, new=D.CANCELLED, by="ann", values={"completed_at": NOW})
    ]
    assert effects_of(decision) == ["CancelJobs", "RetireSteps", "StopSelf"]
    assert (decision.reply, decision.error) == (D.CANCELLED, None)


@pytest.mark.parametrize("status", statuses(D.COMPLETED, D.FAILED, D.CANCELLED))
def test_stop_a_finished_directive_is_refused(status: DirectiveStatus) -> None:
    assert_invalid(
        run_directive(chained(("a", S.PASSED), status=status), m.Stop()), status, "cancelled"
    )


# ================================================================= Regenerate


@pytest.mark.parametrize("status", statuses(D.ACTIVE, D.PAUSED))
def test_regenerate(status: DirectiveStatus) -> None:
    state = chained(("a", S.PASSED), ("b", S.BLOCKED, ["a"]), status=status)
    decision = run_directive(state, m.Regenerate("try another way", by="ann"))
    assert changes_of(decision) == REGENERATE
    assert every(decision, c.DirectiveMoved) == [
        c.DirectiveMoved(old=status, new=D.PLANNING, by="ann")
    ]
    assert state.chain is not None
    assert one(decision, c.ChainSuperseded).chain_id == state.chain.id
    assert notes(decision) == ["chain_superseded", "planning_started"]
    instructions = one(decision, c.TaskCreated).task.instructions
    assert "try another way" in instructions and "kept" in instructions
    assert effects_of(decision) == REGENERATE_EFFECTS
    assert (decision.reply, decision.error) == (state.chain.id, None)


@pytest.mark.parametrize("status", other_statuses(D.ACTIVE, D.PAUSED))
def test_regenerate_is_refused(status: DirectiveStatus) -> None:
    state = chained(("a", S.BLOCKED), status=status)
    assert_invalid(run_directive(state, m.Regenerate("why")), status, "planning")


def test_regenerate_while_paused_in_planning_is_refused() -> None:
    assert_invalid(run_directive(unchained(D.PAUSED), m.Regenerate("why")), D.PAUSED, "planning")


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(m.Regenerate("bad\x00reason"), id="nul-in-reason"),
        pytest.param(m.Regenerate("ok", by="an\x00n"), id="nul-in-by"),
    ],
)
def test_regenerate_with_a_nul_byte_is_refused(message: m.Regenerate) -> None:
    assert_refused(run_directive(chained(("a", S.BLOCKED)), message), InvalidInput)


def test_regenerate_while_a_breaker_waits_is_refused() -> None:
    state, _ = asking(chained(("a", S.BLOCKED), status=D.PAUSED), A.CIRCUIT_BREAKER)
    assert_refused(run_directive(state, m.Regenerate("why")), CircuitBreakerTripped)


@pytest.mark.parametrize(
    ("status", "limit", "generation", "moves"),
    [
        pytest.param(D.ACTIVE, 1, 2, [(D.ACTIVE, D.PAUSED)], id="limit-1-spent"),
        pytest.param(D.ACTIVE, 0, 1, [(D.ACTIVE, D.PAUSED)], id="limit-0"),
        pytest.param(
            D.ACTIVE,
            None,
            DEFAULT_MAX_CHAIN_REGENERATIONS + 1,
            [(D.ACTIVE, D.PAUSED)],
            id="default-limit-spent",
        ),
        pytest.param(D.PAUSED, 1, 2, [], id="paused-limit-spent"),
    ],
)
def test_regenerate_with_the_limit_spent_trips_the_breaker(
    status: DirectiveStatus,
    limit: int | None,
    generation: int,
    moves: list[tuple[DirectiveStatus, DirectiveStatus]],
) -> None:
    state = chained(
        ("a", S.BLOCKED),
        status=status,
        directive_values={"max_chain_regenerations": limit, "chain_generation_count": generation},
    )
    decision = run_directive(state, m.Regenerate("once more"))
    assert isinstance(decision.error, CircuitBreakerTripped)
    assert changes_of(decision) == TRIP[len(TRIP) - 4 - len(moves) :]
    assert directive_moves(decision) == moves
    opened = one(decision, c.ApprovalOpened)
    expected_limit = DEFAULT_MAX_CHAIN_REGENERATIONS if limit is None else limit
    assert opened.kind is A.CIRCUIT_BREAKER
    assert dict(opened.context) == {
        "limit": "max_chain_regenerations",
        "figure": generation - 1,
        "threshold": expected_limit,
        "reason": "once more",
    }
    assert notes(decision) == ["circuit_breaker_tripped", "approval_requested"]
    assert effects_of(decision) == ["CancelJobs"]


# ================================================================= AnswerApproval


def answer(found: Approval, verdict: str, **values: Any) -> m.AnswerApproval:
    """approve / deny / expire, as the engine sends each."""
    if verdict == "expire":
        return m.AnswerApproval(found.id, False, None, "expired", status=ApprovalStatus.EXPIRED)
    return m.AnswerApproval(found.id, verdict == "approve", "ann", "a note", **values)


VERDICTS = ["approve", "deny", "expire"]
ANSWERED_AS = {
    "approve": ApprovalStatus.APPROVED,
    "deny": ApprovalStatus.DENIED,
    "expire": ApprovalStatus.EXPIRED,
}


def assert_answered(decision: c.Decision, found: Approval, verdict: str) -> None:
    answered = decision.changes[0]
    assert isinstance(answered, c.ApprovalAnswered)
    assert (answered.approval, answered.status) == (found, ANSWERED_AS[verdict])
    assert answered.by == (None if verdict == "expire" else "ann")
    resolved = decision.changes[1]
    assert isinstance(resolved, c.Note) and resolved.event_type == "approval_resolved"
    assert resolved.step_id == found.step_id


def cost_breaker(status: DirectiveStatus = D.PAUSED) -> tuple[DirectiveState, Approval]:
    state = chained(
        ("a", S.PASSED),
        ("b", S.READY, ["a"]),
        status=status,
        directive_values={"max_total_cost_usd": 10.0, "total_cost_usd": 10.0},
    )
    return asking(
        state,
        A.CIRCUIT_BREAKER,
        context={"limit": "max_total_cost_usd", "figure": 10.0, "threshold": 10.0},
    )


def token_breaker(
    status: DirectiveStatus = D.PAUSED, spent: int = 1000
) -> tuple[DirectiveState, Approval]:
    """Tripped at 1000 tokens; ``spent`` is where the total stands now (a cancelled
    agent's report may have added to it since)."""
    state = chained(
        ("a", S.PASSED),
        ("b", S.READY, ["a"]),
        status=status,
        directive_values={"max_total_tokens": 1000, "total_tokens": spent},
    )
    return asking(
        state,
        A.CIRCUIT_BREAKER,
        context={"limit": "max_total_tokens", "figure": 1000, "threshold": 1000},
    )


def turn_breaker() -> tuple[DirectiveState, Approval]:
    state = chained(
        ("a", S.READY),
        status=D.PAUSED,
        directive_values={"max_agent_turns": 20, "total_agent_turns": 23},
    )
    return asking(
        state,
        A.CIRCUIT_BREAKER,
        context={"limit": "max_agent_turns", "figure": 23, "threshold": 20},
    )


def wall_breaker() -> tuple[DirectiveState, Approval]:
    state = chained(
        ("a", S.READY),
        status=D.PAUSED,
        directive_values={"max_wall_time_minutes": 10.0, "started_at": NOW - timedelta(minutes=11)},
    )
    return asking(
        state,
        A.CIRCUIT_BREAKER,
        context={"limit": "max_wall_time_minutes", "figure": 10.0, "threshold": 10.0},
    )


def regeneration_breaker() -> tuple[DirectiveState, Approval]:
    state = chained(
        ("a", S.BLOCKED), status=D.PAUSED, directive_values={"chain_generation_count": 4}
    )
    return asking(
        state,
        A.CIRCUIT_BREAKER,
        context={
            "limit": "max_chain_regenerations",
            "figure": 3,
            "threshold": 3,
            "reason": "chain blocked (a: stuck)",
        },
    )


def step_review() -> tuple[DirectiveState, Approval]:
    state = chained(("a", S.EVALUATING), ("b", S.PENDING, ["a"]))
    return asking(state, A.STEP_REVIEW, "a")


def chain_blocked(**directive_values: Any) -> tuple[DirectiveState, Approval]:
    state = chained(("a", S.BLOCKED), directive_values=directive_values)
    return asking(state, A.CHAIN_BLOCKED, context={"reason": "chain blocked (a: stuck)"})


def directive_review(status: DirectiveStatus = D.ACTIVE) -> tuple[DirectiveState, Approval]:
    return asking(chained(("a", S.PASSED), status=status), A.DIRECTIVE_REVIEW)


@pytest.mark.parametrize("verdict", VERDICTS)
def test_answer_step_review(verdict: str) -> None:
    state, found = step_review()
    decision = run_directive(state, answer(found, verdict))
    assert_answered(decision, found, verdict)
    a = state.steps[0]
    if verdict == "approve":
        assert changes_of(decision) == [*ANSWER, "StepMoved"]
        assert every(decision, c.StepMoved) == [c.StepMoved(step=a, new=S.PASSED)]
        assert effects_of(decision) == ["StepAnswered"]
    else:
        # Blocked, and b depends on it: nothing can progress, so a human is asked.
        assert changes_of(decision) == [*ANSWER, "StepMoved", *ASK]
        reason = f"review {ANSWERED_AS[verdict]}"
        assert every(decision, c.StepMoved) == [
            c.StepMoved(step=a, new=S.BLOCKED, values={"status_reason": reason})
        ]
        assert one(decision, c.ApprovalOpened).kind is A.CHAIN_BLOCKED
        assert effects_of(decision) == ["StepAnswered"]
    assert one(decision, c.StepAnswered).step_id == a.id


@pytest.mark.parametrize("step_status", [S.PASSED, S.BLOCKED, S.READY], ids=str)
def test_answer_step_review_of_a_step_no_longer_evaluating_is_refused(
    step_status: StepStatus,
) -> None:
    state, found = step_review()
    moved = attrs.evolve(state.steps[0], status=step_status)
    state = attrs.evolve(state, steps=(moved, *state.steps[1:]))
    assert_refused(run_directive(state, answer(found, "approve")), InvalidTransition)


def test_answer_chain_blocked_approve_regenerates() -> None:
    state, found = chain_blocked()
    decision = run_directive(state, answer(found, "approve"))
    assert_answered(decision, found, "approve")
    assert changes_of(decision) == [*ANSWER, *REGENERATE]
    assert directive_moves(decision) == [(D.ACTIVE, D.PLANNING)]
    assert "chain blocked (a: stuck)" in one(decision, c.TaskCreated).task.instructions
    assert effects_of(decision) == REGENERATE_EFFECTS


def test_answer_chain_blocked_approve_with_regenerations_spent_trips_the_breaker() -> None:
    state, found = chain_blocked(chain_generation_count=DEFAULT_MAX_CHAIN_REGENERATIONS + 1)
    decision = run_directive(state, answer(found, "approve"))
    assert changes_of(decision) == [*ANSWER, *TRIP]
    assert directive_moves(decision) == [(D.ACTIVE, D.PAUSED)]
    assert one(decision, c.ApprovalOpened).kind is A.CIRCUIT_BREAKER
    assert effects_of(decision) == ["CancelJobs"]


@pytest.mark.parametrize("verdict", ["deny", "expire"])
@pytest.mark.parametrize(
    ("make", "status"),
    [
        pytest.param(chain_blocked, D.ACTIVE, id="chain_blocked"),
        pytest.param(cost_breaker, D.PAUSED, id="circuit_breaker"),
        pytest.param(token_breaker, D.PAUSED, id="token-breaker"),
        pytest.param(turn_breaker, D.PAUSED, id="turn-breaker"),
        pytest.param(directive_review, D.ACTIVE, id="directive_review"),
        pytest.param(lambda: directive_review(D.PAUSED), D.PAUSED, id="directive_review-paused"),
    ],
)
def test_answer_no_to_a_directive_question_fails_it(
    make: Asked, status: DirectiveStatus, verdict: str
) -> None:
    state, found = make()
    decision = run_directive(state, answer(found, verdict))
    assert_answered(decision, found, verdict)
    assert changes_of(decision) == [*ANSWER, *FAIL]
    assert every(decision, c.DirectiveMoved) == [
        c.DirectiveMoved(old=status, new=D.FAILED, values={"completed_at": NOW})
    ]
    assert notes(decision)[-1] == "directive_failed"
    assert effects_of(decision) == ENDING_EFFECTS


@pytest.mark.parametrize(
    ("make", "raise_limit", "limit", "old", "new"),
    [
        pytest.param(cost_breaker, None, "max_total_cost_usd", 10.0, 20.0, id="cost-doubled"),
        pytest.param(
            cost_breaker,
            {"max_total_cost_usd": 25.0},
            "max_total_cost_usd",
            10.0,
            25.0,
            id="cost-as-asked",
        ),
        pytest.param(
            cost_breaker,
            {"max_wall_time_minutes": 99.0},
            "max_total_cost_usd",
            10.0,
            20.0,
            id="cost-other-limit-ignored",
        ),
        pytest.param(wall_breaker, None, "max_wall_time_minutes", 10.0, 20.0, id="wall-doubled"),
        pytest.param(token_breaker, None, "max_total_tokens", 1000, 2000, id="tokens-doubled"),
        pytest.param(
            token_breaker,
            {"max_total_tokens": 5000.0},  # the command line's figures are floats
            "max_total_tokens",
            1000,
            5000,
            id="tokens-as-asked",
        ),
        pytest.param(
            lambda: token_breaker(spent=1800),
            None,
            "max_total_tokens",
            1000,
            2700,
            id="tokens-above-what-was-added-since",
        ),
        pytest.param(
            token_breaker,
            {"max_agent_turns": 99},
            "max_total_tokens",
            1000,
            2000,
            id="tokens-other-limit-ignored",
        ),
        pytest.param(turn_breaker, None, "max_agent_turns", 20, 40, id="turns-doubled"),
        pytest.param(
            turn_breaker, {"max_agent_turns": 30}, "max_agent_turns", 20, 30, id="turns-as-asked"
        ),
        pytest.param(
            wall_breaker,
            {"max_wall_time_minutes": 30.0},
            "max_wall_time_minutes",
            10.0,
            30.0,
            id="wall-as-asked",
        ),
    ],
)
def test_answer_circuit_breaker_approve_raises_the_limit_and_resumes(
    make: Asked, raise_limit: dict[str, float] | None, limit: str, old: float, new: float
) -> None:
    state, found = make()
    decision = run_directive(state, answer(found, "approve", raise_limit=raise_limit))
    assert_answered(decision, found, "approve")
    assert changes_of(decision) == [*ANSWER, "LimitRaised", "DirectiveMoved"]
    assert one(decision, c.LimitRaised) == c.LimitRaised(limit=limit, old=old, new=new, by="ann")
    assert every(decision, c.DirectiveMoved) == [
        c.DirectiveMoved(old=D.PAUSED, new=D.ACTIVE, by="ann")
    ]
    assert effects_of(decision) == ["StartSteps", "Grant"]
    assert decision.error is None


def test_answer_circuit_breaker_approve_while_active_just_goes_on() -> None:
    state, found = cost_breaker(D.ACTIVE)
    decision = run_directive(state, answer(found, "approve"))
    assert changes_of(decision) == [*ANSWER, "LimitRaised"]
    assert effects_of(decision) == ["Grant"]


def test_answer_regeneration_breaker_approve_raises_the_limit_and_regenerates() -> None:
    state, found = regeneration_breaker()
    decision = run_directive(state, answer(found, "approve"))
    assert changes_of(decision) == [*ANSWER, "LimitRaised", *REGENERATE]
    assert one(decision, c.LimitRaised) == c.LimitRaised(
        limit="max_chain_regenerations", old=3, new=4, by="ann"
    )
    assert directive_moves(decision) == [(D.PAUSED, D.PLANNING)]
    assert effects_of(decision) == REGENERATE_EFFECTS


@pytest.mark.parametrize(
    ("make", "raise_limit"),
    [
        pytest.param(cost_breaker, {"max_total_cost_usd": 5.0}, id="cost-below-spent"),
        pytest.param(cost_breaker, {"max_total_cost_usd": 10.0}, id="cost-equal-to-spent"),
        pytest.param(wall_breaker, {"max_wall_time_minutes": 11.0}, id="wall-below-elapsed"),
        pytest.param(regeneration_breaker, {"max_chain_regenerations": 3}, id="regen-spent"),
        pytest.param(token_breaker, {"max_total_tokens": 1000}, id="tokens-equal-to-used"),
        pytest.param(
            lambda: token_breaker(spent=1800), {"max_total_tokens": 1500}, id="tokens-below-used"
        ),
        pytest.param(token_breaker, {"max_total_tokens": 2500.5}, id="tokens-fractional"),
        pytest.param(token_breaker, {"max_total_tokens": 10**13}, id="tokens-above-maximum"),
        pytest.param(turn_breaker, {"max_agent_turns": 22}, id="turns-below-taken"),
        pytest.param(token_breaker, {"max_total_token": 5000}, id="a-mistyped-limit"),
    ],
)
def test_answer_circuit_breaker_with_a_bad_raised_limit_is_refused(
    make: Asked, raise_limit: dict[str, float]
) -> None:
    state, found = make()
    assert_refused(
        run_directive(state, answer(found, "approve", raise_limit=raise_limit)), InvalidInput
    )


def test_answer_directive_review_approve_completes() -> None:
    state, found = directive_review()
    decision = run_directive(state, answer(found, "approve"))
    assert_answered(decision, found, "approve")
    assert changes_of(decision) == [*ANSWER, *COMPLETE]
    assert every(decision, c.DirectiveMoved) == [
        c.DirectiveMoved(old=D.ACTIVE, new=D.COMPLETED, values={"completed_at": NOW})
    ]
    assert effects_of(decision) == ["RetireSteps", "StopSelf"]


def test_answer_directive_review_approve_while_paused_is_refused() -> None:
    state, found = directive_review(D.PAUSED)
    assert_invalid(run_directive(state, answer(found, "approve")), D.PAUSED, "completed")


def test_answer_an_approval_that_is_not_pending_is_refused() -> None:
    state, _ = chain_blocked()
    gone = approval(state.directive, A.CHAIN_BLOCKED)
    assert_refused(run_directive(state, answer(gone, "approve")), InvalidTransition)


@pytest.mark.parametrize("status", statuses(D.COMPLETED, D.FAILED, D.CANCELLED))
@pytest.mark.parametrize("kind", list(ApprovalType), ids=str)
def test_answer_for_a_finished_directive_is_refused(
    status: DirectiveStatus, kind: ApprovalType
) -> None:
    state, found = asking(chained(("a", S.EVALUATING), status=status), kind, "a")
    assert_refused(run_directive(state, answer(found, "approve")), InvalidTransition)


# ================================================================= Tick


def test_tick_expires_a_due_approval() -> None:
    state, found = chain_blocked()
    state = attrs.evolve(state, approvals=(attrs.evolve(found, expires_at=NOW),))
    decision = run_directive(state, m.Tick())
    assert changes_of(decision) == [*ANSWER, *FAIL]
    assert one(decision, c.ApprovalAnswered).status is ApprovalStatus.EXPIRED
    assert directive_moves(decision) == [(D.ACTIVE, D.FAILED)]


def test_tick_expires_a_step_review_by_blocking_the_step() -> None:
    state, found = step_review()
    due = attrs.evolve(found, expires_at=NOW - timedelta(seconds=1))
    decision = run_directive(attrs.evolve(state, approvals=(due,)), m.Tick())
    assert step_moves(decision) == [(S.EVALUATING, S.BLOCKED)]
    assert every(decision, c.StepMoved)[0].values == {"status_reason": "review expired"}


def test_tick_leaves_an_approval_that_is_not_due() -> None:
    state, found = chain_blocked()
    later = attrs.evolve(found, expires_at=NOW + timedelta(seconds=1))
    assert run_directive(attrs.evolve(state, approvals=(later,)), m.Tick()) == c.NOTHING


def test_tick_drops_an_expiry_it_cannot_apply() -> None:
    state, found = step_review()
    gone = attrs.evolve(state.steps[0], status=S.PASSED)
    due = attrs.evolve(found, expires_at=NOW)
    state = attrs.evolve(state, steps=(gone, *state.steps[1:]), approvals=(due,))
    assert run_directive(state, m.Tick()) == c.NOTHING


WALL_SPENT = {"max_wall_time_minutes": 10.0, "started_at": NOW - timedelta(minutes=10)}


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(chained(("a", S.RUNNING), directive_values=WALL_SPENT), id="active"),
        pytest.param(unchained(D.PLANNING, directive_values=WALL_SPENT), id="planning"),
    ],
)
def test_tick_trips_the_wall_time_breaker(state: DirectiveState) -> None:
    decision = run_directive(state, m.Tick())
    assert changes_of(decision) == TRIP
    assert directive_moves(decision) == [(state.directive.status, D.PAUSED)]
    opened = one(decision, c.ApprovalOpened)
    assert (opened.kind, opened.context["limit"]) == (A.CIRCUIT_BREAKER, "max_wall_time_minutes")
    assert effects_of(decision) == ["CancelJobs"]


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(chained(("a", S.RUNNING)), id="within-limits"),
        pytest.param(
            chained(
                ("a", S.RUNNING), directive_values=WALL_SPENT | {"max_wall_time_minutes": 10.5}
            ),
            id="wall-time-not-yet",
        ),
        pytest.param(
            chained(("a", S.READY), status=D.PAUSED, directive_values=WALL_SPENT), id="paused"
        ),
        pytest.param(
            asking(chained(("a", S.READY), directive_values=WALL_SPENT), A.CIRCUIT_BREAKER)[0],
            id="breaker-already-open",
        ),
        pytest.param(
            chained(("a", S.READY), directive_values=WALL_SPENT, halted=True), id="halted"
        ),
    ],
)
def test_tick_with_nothing_due(state: DirectiveState) -> None:
    assert run_directive(state, m.Tick()) == c.NOTHING


# ================================================================= StepChanged


def changed(state: DirectiveState) -> c.Decision:
    return run_directive(state, m.StepChanged(state.steps[0].id))


def test_step_changed_grants_the_steps_waiting_to_run() -> None:
    state = chained(
        ("a", S.PASSED),
        ("b", S.READY, ["a"]),
        ("c", S.REWORK, ["a"]),
        ("d", S.PENDING, ["b"]),
        ("e", S.RUNNING),
    )
    decision = changed(state)
    assert decision.changes == ()
    assert decision.effects == (c.Grant((state.steps[1].id, state.steps[2].id)),)


def test_step_changed_with_every_step_finished_reviews_the_directive() -> None:
    state = chained(("a", S.PASSED), ("b", S.SKIPPED))
    assert state.chain is not None
    assert changed(state).effects == (c.ReviewDirective(state.chain.id),)


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(chained(("a", S.PASSED), reviewing=True), id="review-running"),
        pytest.param(
            asking(chained(("a", S.PASSED)), A.DIRECTIVE_REVIEW)[0], id="review-waits-for-a-human"
        ),
        pytest.param(chained(("a", S.PASSED), status=D.PAUSED), id="paused"),
        pytest.param(chained(("a", S.RUNNING), ("b", S.PENDING, ["a"])), id="work-under-way"),
        pytest.param(chained(("a", S.BLOCKED), ("b", S.RUNNING)), id="blocked-but-b-runs"),
        pytest.param(
            asking(chained(("a", S.BLOCKED), ("b", S.EVALUATING)), A.STEP_REVIEW, "b")[0],
            id="blocked-but-b-waits-for-a-human",
        ),
        pytest.param(
            asking(chained(("a", S.BLOCKED), autonomy=FULL), A.CHAIN_BLOCKED)[0],
            id="blocked-already-asked",
        ),
        pytest.param(chained(("a", S.BLOCKED), autonomy=FULL, halted=True), id="halted"),
        pytest.param(chained(("a", S.BLOCKED), status=D.COMPLETED), id="completed"),
    ],
)
def test_step_changed_with_nothing_to_do(state: DirectiveState) -> None:
    assert changed(state) == c.NOTHING


def blocked_state(
    autonomy: AutonomyLevel = FULL,
    *,
    generation: int = 1,
    limit: int | None = None,
    before: dict[str, str] | None = None,
    reason: str = "max rework cycles reached (3); failing: pytest",
) -> DirectiveState:
    """``build`` blocked with ``reason``, ``test`` waiting on it: nothing can progress.
    ``before`` names the steps blocked (with why) in the superseded chain."""
    state = chained(
        ("research", S.PASSED),
        ("build", S.BLOCKED, ["research"]),
        ("test", S.PENDING, ["build"]),
        autonomy=autonomy,
        directive_values={"chain_generation_count": generation, "max_chain_regenerations": limit},
    )
    steps = list(state.steps)
    steps[1] = attrs.evolve(steps[1], status_reason=reason)
    old_chain = chain(state.directive, status=ChainStatus.SUPERSEDED)
    old = [step(state.directive, old_chain, "research", S.PASSED)]
    old += [
        step(state.directive, old_chain, n, S.BLOCKED, status_reason=why)
        for n, why in (before or {}).items()
    ]
    return attrs.evolve(state, steps=tuple(steps), superseded_steps=tuple(old))


SAME = "max rework cycles reached (3); failing: pytest"


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(blocked_state(), id="first-chain"),
        pytest.param(
            blocked_state(generation=DEFAULT_MAX_CHAIN_REGENERATIONS), id="last-regeneration-left"
        ),
        pytest.param(
            blocked_state(generation=2, before={"build": "review denied"}),
            id="blocked-otherwise-than-before",
        ),
        pytest.param(
            blocked_state(generation=2, before={"test": SAME}), id="another-step-blocked-before"
        ),
        pytest.param(
            blocked_state(generation=2, before={"build": SAME, "lint": SAME}),
            id="more-was-blocked-before",
        ),
    ],
)
def test_step_changed_blocked_chain_under_full_auto_regenerates(state: DirectiveState) -> None:
    decision = changed(state)
    assert changes_of(decision) == REGENERATE
    assert directive_moves(decision) == [(D.ACTIVE, D.PLANNING)]
    superseded = every(decision, c.Note)[0]
    assert superseded.data["reason"] == f"chain blocked (build: {SAME})"
    assert superseded.data["passed"] == ["research"]
    assert effects_of(decision) == REGENERATE_EFFECTS


@pytest.mark.parametrize(
    ("state", "why"),
    [
        pytest.param(blocked_state(GUARD), "autonomy is not full_auto", id="guardrails"),
        pytest.param(blocked_state(MANUAL), "autonomy is not full_auto", id="manual"),
        pytest.param(
            blocked_state(generation=DEFAULT_MAX_CHAIN_REGENERATIONS + 1),
            "its chain regenerations are spent",
            id="default-limit-spent",
        ),
        pytest.param(blocked_state(limit=0), "its chain regenerations are spent", id="limit-0"),
        pytest.param(
            blocked_state(generation=3, limit=2),
            "its chain regenerations are spent",
            id="limit-2-spent",
        ),
        pytest.param(
            blocked_state(generation=2, before={"build": SAME}),
            "the regenerated chain failed exactly as the one before",
            id="failed-exactly-as-before",
        ),
    ],
)
def test_step_changed_blocked_chain_asks_a_human(state: DirectiveState, why: str) -> None:
    decision = changed(state)
    assert changes_of(decision) == ASK
    opened = one(decision, c.ApprovalOpened)
    assert opened.kind is A.CHAIN_BLOCKED
    assert dict(opened.context) == {
        "reason": f"chain blocked (build: {SAME})",
        "blocked": {"build": SAME},
        "why": why,
    }
    assert notes(decision) == ["approval_requested"]
    assert decision.effects == ()


@pytest.mark.parametrize(
    ("values", "limit", "figure", "threshold", "message"),
    [
        pytest.param(
            {"max_total_tokens": 50_000, "total_tokens": 61_234},
            "max_total_tokens",
            61_234,
            50_000,
            "Token limit exceeded: 61,234 tokens >= 50,000",
            id="tokens",
        ),
        pytest.param(
            {"max_agent_turns": 40, "total_agent_turns": 40},
            "max_agent_turns",
            40,
            40,
            "Agent turn limit exceeded: 40 turns >= 40",
            id="turns",
        ),
    ],
)
def test_step_changed_token_and_turn_breakers_trip_once_and_say_which(
    values: dict[str, int], limit: str, figure: int, threshold: int, message: str
) -> None:
    state = chained(("a", S.PASSED), ("b", S.RUNNING, ["a"]), directive_values=values)
    decision = changed(state)
    assert changes_of(decision) == TRIP
    assert directive_moves(decision) == [(D.ACTIVE, D.PAUSED)]
    [tripped] = [n for n in every(decision, c.Note) if n.event_type == "circuit_breaker_tripped"]
    assert tripped.severity is Severity.WARNING
    assert dict(tripped.data) == {
        "limit": limit,
        "figure": figure,
        "threshold": threshold,
        "message": message,
    }
    opened = one(decision, c.ApprovalOpened)
    assert opened.kind is A.CIRCUIT_BREAKER
    assert dict(opened.context) == {
        "limit": limit,
        "figure": figure,
        "threshold": threshold,
        "reason": None,
    }
    assert opened.description.startswith(message)
    assert one(decision, c.TasksCancelRequested).reason == "a circuit breaker tripped"
    assert effects_of(decision) == ["CancelJobs"]  # the running agent is killed
    asked, _ = asking(state, A.CIRCUIT_BREAKER)
    assert changed(asked) == c.NOTHING  # one question at a time


def test_approving_a_token_breaker_without_a_raise_does_not_trip_it_again() -> None:
    """The default raise clears where the total stands now: a report that came in after
    the trip (a cancelled agent's) does not make the same breaker ask again at once."""
    state, found = token_breaker(spent=1999)
    decision = run_directive(state, answer(found, "approve"))
    assert one(decision, c.LimitRaised).new == 2999  # 1.5 x 1999, rounded up; not 2000
    assert changes_of(decision) == [*ANSWER, "LimitRaised", "DirectiveMoved"]
    assert effects_of(decision) == ["StartSteps", "Grant"]


def test_approving_one_breaker_trips_the_next_limit_still_exceeded() -> None:
    """Not a loop: each approval raises its own limit, then the next one asks."""
    state, found = token_breaker()
    state = with_directive(state, max_agent_turns=5, total_agent_turns=9)
    raised = {"max_total_tokens": 9000}
    decision = run_directive(state, answer(found, "approve", raise_limit=raised))
    assert changes_of(decision) == [*ANSWER, "LimitRaised", "DirectiveMoved", *TRIP]
    assert directive_moves(decision) == [(D.PAUSED, D.ACTIVE), (D.ACTIVE, D.PAUSED)]
    assert one(decision, c.LimitRaised).new == 9000
    assert one(decision, c.ApprovalOpened).context["limit"] == "max_agent_turns"


def test_step_changed_cost_breaker_trips_once() -> None:
    state = chained(
        ("a", S.PASSED),
        ("b", S.READY, ["a"]),
        directive_values={"max_total_cost_usd": 2.0, "total_cost_usd": 2.5},
    )
    decision = changed(state)
    assert changes_of(decision) == TRIP
    assert directive_moves(decision) == [(D.ACTIVE, D.PAUSED)]
    opened = one(decision, c.ApprovalOpened)
    assert opened.kind is A.CIRCUIT_BREAKER
    assert dict(opened.context) == {
        "limit": "max_total_cost_usd",
        "figure": 2.5,
        "threshold": 2.0,
        "reason": None,
    }
    assert effects_of(decision) == ["CancelJobs"]
    # While its approval waits, the breaker does not trip again (even if resumed).
    asked, _ = asking(state, A.CIRCUIT_BREAKER)
    assert changed(asked) == c.NOTHING


# ================================================================= StepActorFailed


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param(D.ACTIVE, ["Note", "DirectiveMoved", "TasksCancelRequested"], id="active"),
        pytest.param(D.PAUSED, ["Note"], id="paused"),
        pytest.param(D.CANCELLED, ["Note"], id="cancelled"),
    ],
)
def test_step_actor_failed_pauses_the_directive(
    status: DirectiveStatus, expected: list[str]
) -> None:
    state = chained(("a", S.RUNNING), status=status)
    decision = run_directive(state, m.StepActorFailed(state.steps[0].id, "boom"))
    assert changes_of(decision) == expected
    assert notes(decision) == ["actor_failed"]


# ================================================================= PlanningFinished


def planned(
    state: DirectiveState, status: TaskStatus = TaskStatus.SUCCEEDED, cost: float | None = None
) -> m.PlanningFinished:
    assert state.planning is not None
    return m.PlanningFinished(state.planning.id, result(status, cost))


def test_planning_finished_ingests_the_plan() -> None:
    state = unchained(planning=TaskStatus.SUCCEEDED, plan=plan_of("research", "build"))
    message = planned(state, cost=0.25)
    decision = run_directive(state, message)
    assert changes_of(decision) == ["TaskRecorded", *INGEST]
    assert decision.changes[0] == c.TaskRecorded(task_id=message.task_id, result=message.result)
    assert directive_moves(decision) == [(D.PLANNING, D.ACTIVE)]
    created = one(decision, c.ChainCreated)
    assert (created.generation, created.carried) == (1, ())
    assert [(s.name, s.status) for s in created.steps] == [
        ("research", S.PENDING),
        ("build", S.PENDING),
    ]
    assert notes(decision) == ["planning_completed"]
    assert effects_of(decision) == ["StartSteps"]


def test_planning_finished_with_a_rejected_plan_uses_the_fallback_and_says_why() -> None:
    fallback = attrs.evolve(plan_of("research", "implement", "test"), rejected="no plan file")
    state = unchained(planning=TaskStatus.FAILED, plan=fallback)
    decision = run_directive(state, planned(state, TaskStatus.FAILED))
    assert changes_of(decision) == ["TaskRecorded", *INGEST, "Note"]
    assert notes(decision) == ["plan_rejected", "planning_completed"]
    assert one(decision, c.ChainCreated).rationale == "no plan file"


@pytest.mark.parametrize(
    ("state", "stale", "status"),
    [
        pytest.param(
            unchained(planning=TaskStatus.SUCCEEDED, plan=plan_of("a")),
            True,
            TaskStatus.SUCCEEDED,
            id="stale-task",
        ),
        pytest.param(
            unchained(D.PAUSED, planning=TaskStatus.SUCCEEDED, plan=plan_of("a")),
            False,
            TaskStatus.SUCCEEDED,
            id="paused",
        ),
        pytest.param(
            unchained(planning=TaskStatus.CANCELLED, plan=None),
            False,
            TaskStatus.CANCELLED,
            id="cancelled",
        ),
        pytest.param(
            unchained(planning=TaskStatus.CANCELLED, plan=plan_of("a")),
            False,
            TaskStatus.CANCELLED,
            id="cancelled-with-a-plan",
        ),
        pytest.param(
            chained(
                ("a", S.RUNNING),
                planning=task(directive(), kind=TaskKind.PLANNING, status=TaskStatus.SUCCEEDED),
            ),
            True,
            TaskStatus.CANCELLED,
            id="superseded-planning-of-an-active-directive",
        ),
    ],
)
def test_planning_finished_that_cannot_be_used_is_only_recorded(
    state: DirectiveState, stale: bool, status: TaskStatus
) -> None:
    message = planned(state, status)
    if stale:
        message = attrs.evolve(message, task_id=uuid.uuid4())
    decision = run_directive(state, message)
    assert decision.changes == (c.TaskRecorded(task_id=message.task_id, result=message.result),)
    assert decision.effects == ()


def test_planning_finished_over_the_cost_limit_ingests_then_trips() -> None:
    state = unchained(
        planning=TaskStatus.SUCCEEDED,
        plan=plan_of("a"),
        directive_values={"max_total_cost_usd": 1.0, "total_cost_usd": 0.5},
    )
    decision = run_directive(state, planned(state, cost=0.75))
    assert changes_of(decision) == ["TaskRecorded", *INGEST, *TRIP]
    assert directive_moves(decision) == [(D.PLANNING, D.ACTIVE), (D.ACTIVE, D.PAUSED)]
    assert one(decision, c.ApprovalOpened).context["figure"] == 1.25
    assert effects_of(decision) == ["StartSteps", "CancelJobs"]


def _regenerated(plan: PlanOutcome) -> tuple[DirectiveState, Step]:
    """Planning after a regeneration: research passed and build blocked in chain 1."""
    d = directive(status=D.PLANNING, chain_generation_count=1)
    old_chain = chain(d, status=ChainStatus.SUPERSEDED)
    research = step(
        d,
        old_chain,
        "research",
        S.PASSED,
        attempt=2,
        rework_count=1,
        confidence_score=0.9,
        confidence_level=G,
        last_evaluation_id=uuid.uuid4(),
    )
    build = step(d, old_chain, "build", S.BLOCKED, deps=[research], status_reason="stuck")
    planning = task(d, kind=TaskKind.PLANNING, status=TaskStatus.SUCCEEDED, attempt=2)
    return dstate(d, None, planning=planning, plan=plan, superseded=[research, build]), research


def test_planning_finished_after_a_regeneration_keeps_passed_steps_passed() -> None:
    state, research = _regenerated(plan_of("research", "build", "test"))
    decision = run_directive(state, planned(state))
    assert changes_of(decision) == ["TaskRecorded", *INGEST, "ChainReplaced"]
    created = one(decision, c.ChainCreated)
    assert (created.generation, created.carried) == (2, ("research",))
    kept, build, test = created.steps
    assert (kept.name, kept.status, kept.attempt, kept.rework_count) == (
        "research",
        S.PASSED,
        2,
        1,
    )
    assert (kept.confidence_level, kept.last_evaluation_id) == (G, research.last_evaluation_id)
    assert kept.id != research.id and kept.chain_id == created.chain_id
    assert [(s.name, s.status) for s in (build, test)] == [
        ("build", S.PENDING),
        ("test", S.PENDING),
    ]
    assert build.depends_on == [kept.id]
    assert state.superseded_chain_id is not None
    assert one(decision, c.ChainReplaced) == c.ChainReplaced(
        old_chain_id=state.superseded_chain_id,
        new_chain_id=created.chain_id,
        generation=2,
        carried=("research",),
    )


def test_planning_finished_with_nothing_but_carried_steps_goes_to_review() -> None:
    state, _ = _regenerated(plan_of("research"))
    decision = run_directive(state, planned(state))
    created = one(decision, c.ChainCreated)
    assert [(s.name, s.status) for s in created.steps] == [("research", S.PASSED)]
    assert effects_of(decision) == ["StartSteps", "ReviewDirective"]
    assert one(decision, c.ReviewDirective).chain_id == created.chain_id


# ================================================================= DirectiveReviewed


def reviewed(state: DirectiveState, level: ConfidenceLevel) -> c.Decision:
    assert state.chain is not None
    return run_directive(state, m.DirectiveReviewed(state.chain.id, judgement(level)))


def finished_chain(autonomy: AutonomyLevel, **directive_values: Any) -> DirectiveState:
    return chained(
        ("a", S.PASSED),
        ("b", S.PASSED, ["a"]),
        autonomy=autonomy,
        directive_values=directive_values,
    )


@pytest.mark.parametrize("autonomy", list(AutonomyLevel), ids=str)
def test_directive_review_green_completes(autonomy: AutonomyLevel) -> None:
    state = finished_chain(autonomy)
    decision = reviewed(state, G)
    assert changes_of(decision) == ["EvaluationStored", *COMPLETE]
    stored = one(decision, c.EvaluationStored)
    assert state.chain is not None
    assert (stored.step, stored.chain_id, stored.task_id) == (None, state.chain.id, None)
    assert directive_moves(decision) == [(D.ACTIVE, D.COMPLETED)]
    assert effects_of(decision) == ["RetireSteps", "StopSelf"]


def test_directive_review_yellow_under_full_auto_completes() -> None:
    decision = reviewed(finished_chain(FULL), Y)
    assert changes_of(decision) == ["EvaluationStored", "Note", *COMPLETE]
    assert notes(decision) == ["directive_review_auto_approved", "directive_completed"]
    assert directive_moves(decision) == [(D.ACTIVE, D.COMPLETED)]


@pytest.mark.parametrize(
    ("state", "level"),
    [
        pytest.param(finished_chain(GUARD), Y, id="yellow-guardrails"),
        pytest.param(finished_chain(MANUAL), Y, id="yellow-manual"),
        pytest.param(finished_chain(GUARD), R, id="red-guardrails"),
        pytest.param(
            finished_chain(FULL, chain_generation_count=4),
            R,
            id="red-full_auto-regenerations-spent",
        ),
        pytest.param(
            finished_chain(FULL, max_chain_regenerations=0), R, id="red-full_auto-no-regenerations"
        ),
    ],
)
def test_directive_review_asks_a_human(state: DirectiveState, level: ConfidenceLevel) -> None:
    decision = reviewed(state, level)
    assert changes_of(decision) == ["EvaluationStored", *ASK]
    opened = one(decision, c.ApprovalOpened)
    assert opened.kind is A.DIRECTIVE_REVIEW and opened.step_id is None
    assert opened.context["confidence_level"] == str(level)
    assert decision.effects == ()


def test_directive_review_red_under_full_auto_with_regenerations_left_regenerates() -> None:
    decision = reviewed(finished_chain(FULL), R)
    assert changes_of(decision) == ["EvaluationStored", *REGENERATE]
    assert directive_moves(decision) == [(D.ACTIVE, D.PLANNING)]
    assert every(decision, c.Note)[0].data["reason"].startswith("directive review was red")
    assert effects_of(decision) == REGENERATE_EFFECTS


@pytest.mark.parametrize(
    ("state", "chain_id"),
    [
        pytest.param(finished_chain(FULL), uuid.uuid4(), id="stale-chain-id"),
        pytest.param(with_directive(finished_chain(FULL), status=D.PAUSED), None, id="paused"),
        pytest.param(
            asking(finished_chain(GUARD), A.DIRECTIVE_REVIEW)[0], None, id="already-asked"
        ),
    ],
)
def test_directive_review_that_no_longer_applies_is_dropped(
    state: DirectiveState, chain_id: uuid.UUID | None
) -> None:
    assert state.chain is not None
    message = m.DirectiveReviewed(chain_id or state.chain.id, judgement(G))
    assert run_directive(state, message) == c.NOTHING


# ================================================================= every directive transition


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(o, n, id=f"{o}->{n}")
        for o, n in itertools.product(DirectiveStatus, DirectiveStatus)
    ],
)
def test_every_directive_transition_through_write(
    old: DirectiveStatus, new: DirectiveStatus, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = directive(status=old)
    change = c.DirectiveMoved(old=old, new=new, by="ann", values={"completed_at": NOW})
    made = record_writes(monkeypatch)
    if new in DIRECTIVE_TRANSITIONS[old]:
        written = writes.write(d.id, [change])
        op = written.tx.ops[0]
        assert op.guard
        assert op.sql.startswith("UPDATE directives SET ")
        assert op.sql.endswith("WHERE id = %(_id)s AND status = %(_expected)s")
        assert isinstance(op.params, dict)
        params = op.params
        assert (params["_id"], params["_expected"]) == (d.id, str(old))
        assert (params["status"], params["completed_at"]) == (str(new), NOW)
        assert written.sources[0] is change
        assert written.describe(0) == f"the directive is no longer {old} (wanted {new})"
    else:
        with pytest.raises(InvalidTransition) as raised:
            writes.write(d.id, [change])
        assert (raised.value.from_status, raised.value.to_status) == (str(old), str(new))
        assert [tx.ops for tx in made] == [[]]  # refused before any statement


# ================================================================= bounded autonomy


def _always_red(vary: bool) -> Any:
    def judge(world: World, s: Step) -> Any:
        failing = [f"check-{world.directive.chain_generation_count}" if vary else "pytest"]
        return judgement(R, failing=failing)

    return judge


def _start(**directive_values: Any) -> Simulation:
    """A draft full_auto directive with default limits, in a world of its own."""
    draft = {"status": D.DRAFT, "started_at": None, "chain_generation_count": 0}
    d = directive(**(draft | {"autonomy_level": FULL} | directive_values))
    return Simulation(
        world=World(directive=d), judge=_always_red(False), planner=lambda w: plan_of("build")
    )


def _step_tasks(world: World) -> list[Any]:
    return [t for t in world.tasks.values() if t.kind is TaskKind.STEP]


@pytest.mark.parametrize(
    ("vary", "regenerations", "why"),
    [
        pytest.param(
            False,
            1,
            "the regenerated chain failed exactly as the one before",
            id="fails-the-same-way",
        ),
        pytest.param(
            True,
            DEFAULT_MAX_CHAIN_REGENERATIONS,
            "its chain regenerations are spent",
            id="fails-differently-each-time",
        ),
    ],
)
def test_an_always_red_step_under_full_auto_ends_at_a_human(
    vary: bool, regenerations: int, why: str
) -> None:
    sim = _start()  # DEFAULT settings: max_chain_regenerations None, max_rework_cycles 3
    assert sim.world.directive.max_chain_regenerations is None
    sim.judge = _always_red(vary)
    sim.send(None, m.Start())
    sim.run()
    w = sim.world
    assert w.directive.status is D.ACTIVE
    assert [a.approval_type for a in w.pending()] == [A.CHAIN_BLOCKED]
    assert w.pending()[0].context["why"] == why
    assert w.directive.chain_generation_count - 1 == regenerations
    assert regenerations <= DEFAULT_MAX_CHAIN_REGENERATIONS
    # Each chain ran its step max_rework_cycles times, then blocked it.
    assert len(_step_tasks(w)) == (regenerations + 1) * 3
    assert w.events.count("chain_superseded") == regenerations
    assert w.events.count("step_blocked") == regenerations + 1


def test_approving_a_blocked_chain_past_the_limit_asks_again_instead_of_running() -> None:
    sim = _start()
    sim.judge = _always_red(True)
    sim.send(None, m.Start())
    sim.run()
    asked = sim.world.pending()[0]
    sim.send(None, m.AnswerApproval(asked.id, True, "ann"))
    sim.run()
    w = sim.world
    assert w.directive.status is D.PAUSED
    assert [a.approval_type for a in w.pending()] == [A.CIRCUIT_BREAKER]
    assert w.pending()[0].context["limit"] == "max_chain_regenerations"
    assert w.directive.chain_generation_count == DEFAULT_MAX_CHAIN_REGENERATIONS + 1


def test_an_always_red_directive_review_under_full_auto_ends_at_a_human() -> None:
    sim = _start()
    sim.judge = lambda w, s: judgement(G)
    sim.review = lambda w: judgement(R)
    sim.planner = lambda w: plan_of("research", "build")
    sim.send(None, m.Start())
    sim.run()
    w = sim.world
    assert [a.approval_type for a in w.pending()] == [A.DIRECTIVE_REVIEW]
    assert w.directive.chain_generation_count - 1 == DEFAULT_MAX_CHAIN_REGENERATIONS
    # Passed steps were carried over: each ran once, in the first chain only.
    assert len(_step_tasks(w)) == 2


def test_a_green_directive_completes_in_the_simulation() -> None:
    sim = _start(max_rework_cycles=3)
    sim.judge = lambda w, s: judgement(G)
    sim.planner = lambda w: plan_of("research", "build", "test")
    sim.send(None, m.Start())
    sim.run()
    w = sim.world
    assert w.directive.status is D.COMPLETED
    assert w.pending() == ()
    assert {s.status for s in w.steps.values()} == {S.PASSED}
    assert [t.attempt for t in _step_tasks(w)] == [1, 1, 1]


def test_a_paused_directive_resumes_where_it_stood_in_the_simulation() -> None:
    sim = _start()
    sim.judge = lambda w, s: judgement(G)
    sim.planner = lambda w: plan_of("research", "build")
    sim.send(None, m.Start())
    sim.send(None, m.Pause(by="ann"))  # lands while planning: its agent is cancelled
    sim.run()
    assert (sim.world.directive.status, sim.world.current_chain()) == (D.PAUSED, None)
    sim.send(None, m.Resume(by="ann"))
    sim.run()
    assert sim.world.directive.status is D.COMPLETED
    planning = [t for t in sim.world.tasks.values() if t.kind is TaskKind.PLANNING]
    assert [(t.attempt, t.status) for t in planning] == [
        (1, TaskStatus.CANCELLED),
        (2, TaskStatus.SUCCEEDED),
    ]


def _blocked_beside_a_late_pass() -> World:
    """``stuck`` is blocked (always red) while ``first -> second`` still progresses;
    ``second`` passes last, on its third attempt, after ``stuck`` was blocked."""
    sim = _start(autonomy_level=GUARD)
    sim.planner = lambda w: PlanOutcome(
        steps=(
            StepSpec(name="stuck"),
            StepSpec(name="first"),
            StepSpec(name="second", depends_on=["first"]),
        )
    )

    def judge(w: World, s: Step) -> Any:
        late = s.name == "second" and s.rework_count >= 2
        return judgement(G if s.name == "first" or late else R, failing=["pytest"])

    sim.judge = judge
    sim.send(None, m.Start())
    sim.run()
    return sim.world


def test_a_step_blocked_while_others_still_progress_is_left_for_later() -> None:
    w = _blocked_beside_a_late_pass()
    assert {s.name: s.status for s in w.steps.values()} == {
        "stuck": S.BLOCKED,
        "first": S.PASSED,
        "second": S.PASSED,
    }
    assert w.directive.status is D.ACTIVE


def test_the_last_progressing_step_passing_beside_a_blocked_one_escalates() -> None:
    w = _blocked_beside_a_late_pass()
    assert [a.approval_type for a in w.pending()] == [A.CHAIN_BLOCKED]


def test_a_turn_limit_bounds_a_full_auto_directive_and_an_approval_resumes_it() -> None:
    """Agents that each report 4 turns, under a limit of 10: planning and two steps
    take 12, the breaker asks before the third step runs; approving (by default the
    limit doubles) lets the directive finish, and nothing asks twice."""
    sim = _start(max_agent_turns=10)
    sim.judge = lambda w, s: judgement(G)
    sim.planner = lambda w: plan_of("research", "build", "test")
    sim.report = lambda: result(turns=4, tokens=100)
    sim.send(None, m.Start())
    sim.run()
    w = sim.world
    assert w.directive.status is D.PAUSED
    [asked] = w.pending()
    assert asked.approval_type is A.CIRCUIT_BREAKER
    assert asked.context == {"limit": "max_agent_turns", "figure": 12, "threshold": 10,
                             "reason": None}  # fmt: skip
    assert [t.attempt for t in _step_tasks(w)] == [1, 1]  # "test" has not run
    assert w.events.count("circuit_breaker_tripped") == 1
    sim.send(None, m.AnswerApproval(asked.id, True, "ann"))
    sim.run()
    assert w.directive.status is D.COMPLETED
    assert (w.directive.max_agent_turns, w.directive.total_agent_turns) == (20, 16)
    assert w.directive.total_tokens == 400
    assert w.events.count("circuit_breaker_tripped") == 1


def test_a_mistyped_limit_in_an_approval_is_refused_naming_the_limits() -> None:
    state, found = token_breaker()
    decision = run_directive(state, answer(found, "approve", raise_limit={"max_tokens": 9000}))
    assert_refused(decision, InvalidInput)
    assert "no circuit breaker has max_tokens" in str(decision.error)
    assert "max_total_tokens" in str(decision.error)
