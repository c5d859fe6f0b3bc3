"""The step's decision table (DESIGN §2, §8, §9): ``judge_step`` and ``decide_step``.

Pure: every state is built by hand, every decision also goes through
``actors.writes.write`` (which refuses a transition not in ``STEP_TRANSITIONS``).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs
import pytest
from decision_helpers import (
    NOW,
    SETTINGS,
    changes_of,
    directive,
    effects_of,
    every,
    judgement,
    notes,
    one,
    record_writes,
    result,
    run_step,
    sstate,
    stale_check,
    step,
    step_moves,
    task,
)

from directorate.actors import messages as m
from directorate.actors import writes
from directorate.actors.core import changes as c
from directorate.actors.core.state import Settings, StepState
from directorate.actors.core.step import Verdict, judge_step
from directorate.actors.evaluation import Judgement
from directorate.actors.runners import TaskResult
from directorate.persistence.errors import InvalidTransition
from directorate.persistence.models import (
    STEP_TRANSITIONS,
    ApprovalType,
    AutonomyLevel,
    ConfidenceLevel,
    DirectiveStatus,
    StepStatus,
    Task,
    TaskKind,
    TaskStatus,
)
from directorate.verifiers.stale_agents import StaleOutcome

G, Y, R = ConfidenceLevel.GREEN, ConfidenceLevel.YELLOW, ConfidenceLevel.RED
FULL, GUARD, MANUAL = AutonomyLevel.FULL_AUTO, AutonomyLevel.GUARDRAILS, AutonomyLevel.MANUAL
S = StepStatus
D = DirectiveStatus

DISPATCH = ["StepMoved", "RequireLiveChain", "TaskCreated", "Note"]
"""The changes of one dispatched attempt."""

# ================================================================= judge_step

NOT_RED: dict[tuple[ConfidenceLevel, AutonomyLevel], Verdict] = {
    (G, FULL): Verdict.PASS,
    (G, GUARD): Verdict.PASS,
    (G, MANUAL): Verdict.ASK,
    (Y, FULL): Verdict.PASS,
    (Y, GUARD): Verdict.ASK,
    (Y, MANUAL): Verdict.ASK,
}
"""Green and yellow: the rework count does not matter and does not change."""

RED_ROWS: list[tuple[int, int, Verdict, int]] = [
    # rework_count, max_rework_cycles -> verdict, new count
    (0, 0, Verdict.BLOCK, 1),  # no rework allowed at all
    (0, 1, Verdict.BLOCK, 1),  # below, and at the limit - 1
    (1, 1, Verdict.BLOCK, 2),  # at the limit (already spent)
    (0, 3, Verdict.REWORK, 1),
    (1, 3, Verdict.REWORK, 2),
    (2, 3, Verdict.BLOCK, 3),  # at the limit - 1: this rework is the last one
    (3, 3, Verdict.BLOCK, 4),
]
"""Red: rework, blocked once the count reaches the limit, whatever the autonomy."""

REWORK_COUNTS = sorted({(r, mx) for r, mx, _, _ in RED_ROWS})


def _judge_rows() -> list[Any]:
    rows = []
    for (rework, limit), autonomy in itertools.product(REWORK_COUNTS, AutonomyLevel):
        for level in (G, Y):
            verdict = NOT_RED[(level, autonomy)]
            rows.append(
                pytest.param(
                    level,
                    autonomy,
                    rework,
                    limit,
                    (verdict, rework),
                    id=f"{level}-{autonomy}-rework{rework}-of{limit}",
                )
            )
        red = next((v, n) for r, mx, v, n in RED_ROWS if (r, mx) == (rework, limit))
        rows.append(
            pytest.param(
                R, autonomy, rework, limit, red, id=f"red-{autonomy}-rework{rework}-of{limit}"
            )
        )
    return rows


@pytest.mark.parametrize(("level", "autonomy", "rework", "limit", "expected"), _judge_rows())
def test_judge_step(
    level: ConfidenceLevel,
    autonomy: AutonomyLevel,
    rework: int,
    limit: int,
    expected: tuple[Verdict, int],
) -> None:
    assert judge_step(level, autonomy, rework, limit) == expected


def test_judge_step_table_is_complete() -> None:
    rows = _judge_rows()
    assert len(rows) == len(ConfidenceLevel) * len(AutonomyLevel) * len(REWORK_COUNTS)
    assert {mx for _, mx in REWORK_COUNTS} == {0, 1, 3}


# ================================================================= states

Tweak = Callable[[StepState], StepState]


def make(
    status: StepStatus = S.PENDING,
    *,
    directive_status: DirectiveStatus = D.ACTIVE,
    autonomy: AutonomyLevel = AutonomyLevel.GUARDRAILS,
    attempt: int = 0,
    rework_count: int = 0,
    max_rework_cycles: int = 3,
    running_task: bool | None = None,
    **state: Any,
) -> StepState:
    """A step of the current chain of an active directive; with its latest task when
    it has run (``running_task`` says whether that task is still unfinished)."""
    d = directive(
        status=directive_status, autonomy_level=autonomy, max_rework_cycles=max_rework_cycles
    )
    s = step(d, None, "build", status, attempt=attempt, rework_count=rework_count)
    if running_task is None:
        running_task = status in (S.RUNNING, S.EVALUATING) and attempt > 0
    last = None
    if attempt > 0:
        last = task(
            d,
            step_id=s.id,
            attempt=attempt,
            status=TaskStatus.RUNNING if running_task else TaskStatus.SUCCEEDED,
            exit_code=None if running_task else 0,
            output_tail="" if running_task else "all good",
        )
    return sstate(s, d, last_task=last, **state)


def superseded(st: StepState) -> StepState:
    return attrs.evolve(st, chain_current=False)


def directive_is(status: DirectiveStatus) -> Tweak:
    return lambda st: attrs.evolve(st, directive=attrs.evolve(st.directive, status=status))


def breaker(st: StepState) -> StepState:
    return attrs.evolve(st, breaker_open=True)


def halted(st: StepState) -> StepState:
    return attrs.evolve(st, halted=True)


def cost_spent(st: StepState) -> StepState:
    d = attrs.evolve(st.directive, max_total_cost_usd=5.0, total_cost_usd=5.0)
    return attrs.evolve(st, directive=d)


def tokens_spent(st: StepState) -> StepState:
    d = attrs.evolve(st.directive, max_total_tokens=1000, total_tokens=1000)
    return attrs.evolve(st, directive=d)


def turns_spent(st: StepState) -> StepState:
    d = attrs.evolve(st.directive, max_agent_turns=30, total_agent_turns=31)
    return attrs.evolve(st, directive=d)


def wall_time_spent(st: StepState) -> StepState:
    d = attrs.evolve(
        st.directive, max_wall_time_minutes=10.0, started_at=NOW - timedelta(minutes=11)
    )
    return attrs.evolve(st, directive=d)


def job_in_flight(st: StepState) -> StepState:
    return attrs.evolve(st, job=uuid.uuid4())


def unchanged(st: StepState) -> StepState:
    return st


def begin() -> m.Begin:
    return m.Begin({})


def dependency_passed() -> m.DependencyPassed:
    return m.DependencyPassed(uuid.uuid4())


TAKING_UP = [pytest.param(begin, id="Begin"), pytest.param(dependency_passed, id="DepPassed")]

HOLD_BACKS = [
    pytest.param(directive_is(D.PAUSED), id="paused"),
    pytest.param(breaker, id="breaker-open"),
    pytest.param(halted, id="halted"),
    pytest.param(cost_spent, id="cost-breaker-tripped"),
    pytest.param(tokens_spent, id="token-breaker-tripped"),
    pytest.param(turns_spent, id="turn-breaker-tripped"),
    pytest.param(wall_time_spent, id="wall-breaker-tripped"),
]
"""Situations in which a step that may run asks its directive instead."""


def assert_dispatched(decision: c.Decision, st: StepState) -> Task:
    """The attempt ``st.step.attempt + 1`` is started, guarded by the live chain."""
    s = st.step
    dispatch = decision.changes[-4:]
    assert [type(x).__name__ for x in dispatch] == DISPATCH
    moved, guard, created, started = dispatch
    assert isinstance(moved, c.StepMoved) and isinstance(guard, c.RequireLiveChain)
    assert isinstance(created, c.TaskCreated) and isinstance(started, c.Note)
    assert moved.new is S.RUNNING and moved.values == {"attempt": s.attempt + 1}
    assert guard.chain_id == s.chain_id
    new = created.task
    assert (new.kind, new.status, new.step_id, new.attempt) == (
        TaskKind.STEP,
        TaskStatus.RUNNING,
        s.id,
        s.attempt + 1,
    )
    assert new.directive_id == st.directive.id and new.started_at == NOW
    assert new.workdir == str(SETTINGS.log_dir / str(st.directive.id))
    assert started.event_type == "step_started" and started.data["attempt"] == s.attempt + 1
    assert effects_of(decision) == ["RunTask"]
    assert one(decision, c.RunTask).task is new
    return new


# ================================================================= Begin / DependencyPassed


@pytest.mark.parametrize("message", TAKING_UP)
@pytest.mark.parametrize(
    ("status", "tweak"),
    [
        pytest.param(S.PENDING, superseded, id="chain-superseded"),
        pytest.param(S.READY, superseded, id="ready-chain-superseded"),
        pytest.param(S.RUNNING, superseded, id="running-chain-superseded"),
        pytest.param(S.PENDING, directive_is(D.COMPLETED), id="directive-completed"),
        pytest.param(S.READY, directive_is(D.FAILED), id="directive-failed"),
        pytest.param(S.RUNNING, directive_is(D.CANCELLED), id="directive-cancelled"),
        pytest.param(S.PASSED, unchanged, id="step-passed"),
        pytest.param(S.SKIPPED, unchanged, id="step-skipped"),
    ],
)
def test_taking_up_a_step_with_nothing_left_to_do_stops_it(
    message: Callable[[], m.StepMessage], status: StepStatus, tweak: Tweak
) -> None:
    decision = run_step(tweak(make(status, attempt=1)), message())
    assert decision.changes == ()
    assert effects_of(decision) == ["StopSelf"]


@pytest.mark.parametrize("message", TAKING_UP)
@pytest.mark.parametrize(
    "deps",
    [
        pytest.param((S.PENDING,), id="dep-pending"),
        pytest.param((S.PASSED, S.RUNNING), id="one-dep-running"),
        pytest.param((S.PASSED, S.EVALUATING), id="one-dep-evaluating"),
        pytest.param((S.REWORK,), id="dep-rework"),
        pytest.param((S.BLOCKED,), id="dep-blocked"),
        pytest.param((S.FAILED,), id="dep-failed"),
    ],
)
def test_pending_step_waits_for_its_dependencies(
    message: Callable[[], m.StepMessage], deps: tuple[StepStatus, ...]
) -> None:
    decision = run_step(make(S.PENDING, deps=deps), message())
    assert decision == c.NOTHING


@pytest.mark.parametrize("message", TAKING_UP)
@pytest.mark.parametrize(
    "deps",
    [
        pytest.param((), id="no-deps"),
        pytest.param((S.PASSED,), id="dep-passed"),
        pytest.param((S.PASSED, S.SKIPPED), id="deps-passed-and-skipped"),
    ],
)
def test_pending_step_whose_dependencies_passed_goes_ready_and_runs(
    message: Callable[[], m.StepMessage], deps: tuple[StepStatus, ...]
) -> None:
    st = make(S.PENDING, deps=deps)
    decision = run_step(st, message())
    assert changes_of(decision) == ["StepMoved", *DISPATCH]
    assert step_moves(decision) == [(S.PENDING, S.READY), (S.READY, S.RUNNING)]
    assert decision.changes[0] == c.StepMoved(step=st.step, new=S.READY)
    new = assert_dispatched(decision, attrs.evolve(st, step=attrs.evolve(st.step, status=S.READY)))
    assert new.attempt == 1


@pytest.mark.parametrize("message", TAKING_UP)
@pytest.mark.parametrize("hold_back", HOLD_BACKS)
def test_pending_step_that_may_not_run_goes_ready_and_tells_its_directive(
    message: Callable[[], m.StepMessage], hold_back: Tweak
) -> None:
    decision = run_step(hold_back(make(S.PENDING, deps=(S.PASSED,))), message())
    assert changes_of(decision) == ["StepMoved"]
    assert step_moves(decision) == [(S.PENDING, S.READY)]
    assert effects_of(decision) == ["TellDirective"]


# ================================================================= waiting to run

WAITING = [pytest.param(S.READY, id="ready"), pytest.param(S.REWORK, id="rework")]
RUN_MESSAGES = [*TAKING_UP, pytest.param(m.RunStep, id="RunStep")]


@pytest.mark.parametrize("message", RUN_MESSAGES)
@pytest.mark.parametrize("status", WAITING)
def test_step_waiting_to_run_is_dispatched(
    message: Callable[[], m.StepMessage], status: StepStatus
) -> None:
    rework = 1 if status is S.REWORK else 0
    st = make(status, attempt=rework, rework_count=rework, running_task=False)
    decision = run_step(st, message())
    assert changes_of(decision) == DISPATCH
    assert step_moves(decision) == [(status, S.RUNNING)]
    assert assert_dispatched(decision, st).attempt == st.step.attempt + 1


@pytest.mark.parametrize("message", RUN_MESSAGES)
@pytest.mark.parametrize("status", WAITING)
@pytest.mark.parametrize("hold_back", HOLD_BACKS)
def test_step_waiting_to_run_that_may_not_run_tells_its_directive(
    message: Callable[[], m.StepMessage], status: StepStatus, hold_back: Tweak
) -> None:
    decision = run_step(hold_back(make(status)), message())
    assert decision.changes == ()
    assert effects_of(decision) == ["TellDirective"]


@pytest.mark.parametrize("message", RUN_MESSAGES)
@pytest.mark.parametrize("status", WAITING)
def test_step_with_a_job_in_flight_starts_nothing(
    message: Callable[[], m.StepMessage], status: StepStatus
) -> None:
    assert run_step(job_in_flight(make(status)), message()) == c.NOTHING


def test_run_step_on_a_superseded_chain_only_tells_the_directive() -> None:
    decision = run_step(superseded(make(S.READY)), m.RunStep())
    assert decision.changes == ()
    assert effects_of(decision) == ["TellDirective"]


@pytest.mark.parametrize(
    ("rework_count", "expected_in_task"),
    [pytest.param(0, False, id="first-attempt"), pytest.param(2, True, id="after-rework")],
)
def test_rework_instructions_reach_the_task_only_after_a_rework(
    rework_count: int, expected_in_task: bool
) -> None:
    status = S.REWORK if rework_count else S.READY
    st = make(status, attempt=rework_count, rework_count=rework_count, running_task=False)
    st = attrs.evolve(st, rework_instructions="make pytest pass")
    created = one(run_step(st, m.RunStep()), c.TaskCreated).task
    assert ("make pytest pass" in created.instructions) is expected_in_task
    assert created.log_path is not None
    assert created.log_path.startswith(str(SETTINGS.log_dir / str(st.directive.id) / "build-"))


@pytest.mark.parametrize(
    ("values", "budget"),
    [
        pytest.param({}, None, id="no-dollar-limit"),
        pytest.param({"max_total_cost_usd": 5.0, "total_cost_usd": 1.25}, 3.75, id="dollars-left"),
        pytest.param({"max_total_cost_usd": 5.0}, 5.0, id="nothing-spent"),
    ],
)
def test_a_dispatched_task_is_given_the_dollars_left(
    values: dict[str, float], budget: float | None
) -> None:
    st = make(S.READY)
    st = attrs.evolve(st, directive=attrs.evolve(st.directive, **values))
    assert one(run_step(st, m.RunStep()), c.TaskCreated).task.budget_usd == budget


def test_dispatch_runs_in_the_directives_local_path() -> None:
    st = make(S.READY)
    st = attrs.evolve(st, directive=attrs.evolve(st.directive, local_path="/repo"))
    assert one(run_step(st, m.RunStep()), c.TaskCreated).task.workdir == "/repo"


@pytest.mark.parametrize(
    "status",
    [pytest.param(s, id=str(s)) for s in StepStatus if s not in (S.READY, S.REWORK)],
)
def test_run_step_on_a_step_not_waiting_to_run_does_nothing(status: StepStatus) -> None:
    assert run_step(make(status, attempt=1), m.RunStep()) == c.NOTHING


# ================================================================= recovery (Begin)


def test_running_step_of_a_dead_engine_first_makes_sure_its_agent_is_gone() -> None:
    """Nothing is written and nothing starts until the old agent is known to be gone:
    two agents must never work on one step at once."""
    st = with_process(make(S.RUNNING, attempt=2))
    assert st.last_task is not None
    decision = run_step(st, begin())
    assert decision.changes == ()
    assert decision.effects == (c.StopStaleAgent(st.last_task),)


@pytest.mark.parametrize(
    ("st", "why"),
    [
        pytest.param(make(S.RUNNING, attempt=2, running_task=False), "finished", id="finished"),
        pytest.param(make(S.RUNNING, attempt=0), "no task", id="no-task"),
    ],
)
def test_running_step_without_an_unfinished_task_runs_again_at_once(
    st: StepState, why: str
) -> None:
    decision = run_step(st, begin())
    assert changes_of(decision) == ["TasksAbandoned", "StepMoved", "Note", *DISPATCH], why
    assert notes(decision)[0] == "step_recovered"


def test_running_step_whose_agent_runs_in_this_engine_is_never_killed() -> None:
    st = make(S.RUNNING, attempt=2)
    assert st.last_task is not None
    ours = attrs.evolve(st, live_tasks=frozenset({st.last_task.id}))
    assert every(run_step(ours, begin()), c.StopStaleAgent) == []


@pytest.mark.parametrize(
    ("outcome", "pid", "stale_notes"),
    [
        pytest.param(StaleOutcome.KILLED, 4242, ["stale_agent_killed"], id="killed"),
        pytest.param(StaleOutcome.GONE, 4242, ["stale_agent_gone"], id="gone"),
        pytest.param(StaleOutcome.GONE, None, [], id="no-process-recorded"),
        pytest.param(StaleOutcome.ELSEWHERE, 4242, ["stale_agent_elsewhere"], id="elsewhere"),
        pytest.param(StaleOutcome.FAILED, 4242, ["stale_agent_check_failed"], id="check-failed"),
    ],
)
def test_once_its_old_agent_is_gone_the_step_runs_again_as_the_next_attempt(
    outcome: StaleOutcome, pid: int | None, stale_notes: list[str]
) -> None:
    live = frozenset({uuid.uuid4()})
    st = with_process(make(S.RUNNING, attempt=2, live_tasks=live), pid=pid)
    assert st.last_task is not None
    check = stale_check(st.last_task, outcome)
    decision = run_step(st, m.StaleAgentStopped(st.last_task.id, check))
    # What was done is written with the next attempt, before that attempt starts.
    recovery = ["TasksAbandoned", "StepMoved", "Note"]
    assert changes_of(decision) == ["Note"] * len(stale_notes) + recovery + DISPATCH
    assert notes(decision) == [*stale_notes, "step_recovered", "step_started"]
    if stale_notes:
        noted = every(decision, c.Note)[0]
        assert noted.step_id == st.step.id
        assert noted.data["task_id"] == st.last_task.id and noted.data["pid"] == pid
    assert one(decision, c.TasksAbandoned) == c.TasksAbandoned(live=live, step_id=st.step.id)
    assert step_moves(decision) == [(S.RUNNING, S.READY), (S.READY, S.RUNNING)]
    assert every(decision, c.Note)[len(stale_notes)].data["next_attempt"] == 3
    ready = attrs.evolve(st, step=attrs.evolve(st.step, status=S.READY))
    assert assert_dispatched(decision, ready).attempt == 3


@pytest.mark.parametrize("hold_back", HOLD_BACKS)
def test_running_step_recovered_while_it_may_not_run_waits_ready(hold_back: Tweak) -> None:
    st = hold_back(with_process(make(S.RUNNING, attempt=1)))
    assert st.last_task is not None
    decision = run_step(st, m.StaleAgentStopped(st.last_task.id, stale_check(st.last_task)))
    assert changes_of(decision) == ["Note", "TasksAbandoned", "StepMoved", "Note"]
    assert step_moves(decision) == [(S.RUNNING, S.READY)]
    assert effects_of(decision) == ["TellDirective"]


@pytest.mark.parametrize(
    ("tweak", "effects"),
    [
        pytest.param(lambda st: attrs.evolve(st, chain_current=False), ["StopSelf"], id="retired"),
        pytest.param(directive_is(D.CANCELLED), ["StopSelf"], id="directive-stopped"),
        pytest.param(
            lambda st: attrs.evolve(st, step=attrs.evolve(st.step, status=S.READY)),
            [],
            id="step-moved-on",
        ),
    ],
)
def test_an_old_agents_end_is_recorded_even_when_the_step_has_moved_on(
    tweak: Tweak, effects: list[str]
) -> None:
    st = tweak(with_process(make(S.RUNNING, attempt=1)))
    assert st.last_task is not None
    check = stale_check(st.last_task, StaleOutcome.KILLED, killed=(4242,))
    decision = run_step(st, m.StaleAgentStopped(st.last_task.id, check))
    assert notes(decision) == ["stale_agent_killed"]
    assert one(decision, c.Note).data["killed"] == [4242]
    assert effects_of(decision) == effects


def with_process(st: StepState, pid: int | None = 4242) -> StepState:
    """``st`` whose latest task recorded its agent's process (a dead engine's)."""
    assert st.last_task is not None
    recorded = attrs.evolve(
        st.last_task, pid=pid, pgid=pid, host="here", process_started_at=NOW if pid else None
    )
    return attrs.evolve(st, last_task=recorded)


@pytest.mark.parametrize(
    ("status", "tweak", "message"),
    [
        pytest.param(S.RUNNING, job_in_flight, begin, id="running-job-in-flight"),
        pytest.param(S.RUNNING, unchanged, dependency_passed, id="running-dep-passed"),
        pytest.param(S.EVALUATING, job_in_flight, begin, id="evaluating-job-in-flight"),
        pytest.param(S.EVALUATING, unchanged, dependency_passed, id="evaluating-dep-passed"),
        pytest.param(
            S.EVALUATING,
            lambda st: attrs.evolve(st, review_pending=True),
            begin,
            id="evaluating-review-pending",
        ),
        pytest.param(S.BLOCKED, unchanged, begin, id="blocked"),
        pytest.param(S.FAILED, unchanged, begin, id="failed"),
        pytest.param(S.BLOCKED, unchanged, dependency_passed, id="blocked-dep-passed"),
    ],
)
def test_step_taken_up_where_nothing_is_to_be_done(
    status: StepStatus, tweak: Tweak, message: Callable[[], m.StepMessage]
) -> None:
    assert run_step(tweak(make(status, attempt=1)), message()) == c.NOTHING


@pytest.mark.parametrize(
    "task_status",
    [pytest.param(s, id=str(s)) for s in TaskStatus if s.finished],
)
def test_evaluating_step_recovered_with_its_task_finished_is_evaluated_again(
    task_status: TaskStatus,
) -> None:
    st = make(S.EVALUATING, attempt=1, running_task=False)
    assert st.last_task is not None
    last = attrs.evolve(st.last_task, status=task_status)
    decision = run_step(attrs.evolve(st, last_task=last), begin())
    assert decision.changes == ()
    assert decision.effects == (
        c.Evaluate(
            last.id,
            TaskResult(status=task_status, exit_code=0, output_tail="all good"),
        ),
    )


@pytest.mark.parametrize(
    "running_task",
    [pytest.param(True, id="task-unfinished"), pytest.param(None, id="no-task")],
)
def test_evaluating_step_recovered_without_a_finished_task_runs_again(
    running_task: bool | None,
) -> None:
    st = make(S.EVALUATING, attempt=1 if running_task else 0, running_task=running_task)
    decision = run_step(st, begin())
    assert changes_of(decision) == ["StepMoved", *DISPATCH]
    assert step_moves(decision) == [(S.EVALUATING, S.READY), (S.READY, S.RUNNING)]


# ================================================================= TaskFinished


def finished(st: StepState, res: TaskResult, *, stale: bool = False) -> m.TaskFinished:
    assert st.last_task is not None
    return m.TaskFinished(uuid.uuid4() if stale else st.last_task.id, res)


def running(**values: Any) -> StepState:
    return make(S.RUNNING, attempt=1, **values)


SUCCEEDED, FAILED, TIMED_OUT, CANCELLED = (
    TaskStatus.SUCCEEDED,
    TaskStatus.FAILED,
    TaskStatus.TIMED_OUT,
    TaskStatus.CANCELLED,
)


@pytest.mark.parametrize(
    ("st", "res", "stale", "moves", "effects"),
    [
        pytest.param(
            running(),
            result(SUCCEEDED),
            False,
            [(S.RUNNING, S.EVALUATING)],
            ["Evaluate"],
            id="succeeded-no-cost",
        ),
        pytest.param(
            running(),
            result(SUCCEEDED, 0.0),
            False,
            [(S.RUNNING, S.EVALUATING)],
            ["Evaluate"],
            id="succeeded-zero-cost",
        ),
        pytest.param(
            running(),
            result(SUCCEEDED, 0.5),
            False,
            [(S.RUNNING, S.EVALUATING)],
            ["TellDirective", "Evaluate"],
            id="succeeded-cost-reported",
        ),
        pytest.param(
            running(),
            result(SUCCEEDED, tokens=1200),
            False,
            [(S.RUNNING, S.EVALUATING)],
            ["TellDirective", "Evaluate"],
            id="succeeded-tokens-reported",
        ),
        pytest.param(
            running(),
            result(SUCCEEDED, turns=3),
            False,
            [(S.RUNNING, S.EVALUATING)],
            ["TellDirective", "Evaluate"],
            id="succeeded-turns-reported",
        ),
        pytest.param(
            running(),
            result(SUCCEEDED, tokens=0, turns=0),
            False,
            [(S.RUNNING, S.EVALUATING)],
            ["Evaluate"],
            id="succeeded-zero-tokens-and-turns",
        ),
        pytest.param(
            running(), result(SUCCEEDED, tokens=5), True, [], ["TellDirective"], id="stale-tokens"
        ),
        pytest.param(
            running(),
            result(FAILED),
            False,
            [(S.RUNNING, S.EVALUATING)],
            ["Evaluate"],
            id="failed-is-evaluated",
        ),
        pytest.param(
            running(),
            result(TIMED_OUT, 1.0),
            False,
            [(S.RUNNING, S.EVALUATING)],
            ["TellDirective", "Evaluate"],
            id="timed-out-is-evaluated",
        ),
        pytest.param(
            running(),
            result(CANCELLED),
            False,
            [(S.RUNNING, S.READY)],
            ["TellDirective"],
            id="cancelled-goes-ready",
        ),
        pytest.param(
            running(),
            result(CANCELLED, 0.3),
            False,
            [(S.RUNNING, S.READY)],
            ["TellDirective"],
            id="cancelled-with-cost",
        ),
        pytest.param(
            directive_is(D.PAUSED)(running()),
            result(SUCCEEDED),
            False,
            [(S.RUNNING, S.EVALUATING)],
            ["Evaluate"],
            id="paused-work-is-evaluated",
        ),
        pytest.param(running(), result(SUCCEEDED), True, [], [], id="stale-task-id"),
        pytest.param(
            running(), result(SUCCEEDED, 0.2), True, [], ["TellDirective"], id="stale-task-id-cost"
        ),
        pytest.param(
            make(S.READY, attempt=1, running_task=False),
            result(SUCCEEDED),
            False,
            [],
            [],
            id="step-no-longer-running",
        ),
        pytest.param(
            make(S.EVALUATING, attempt=1),
            result(SUCCEEDED),
            False,
            [],
            [],
            id="second-report-while-evaluating",
        ),
        pytest.param(
            superseded(running()), result(SUCCEEDED), False, [], ["StopSelf"], id="chain-superseded"
        ),
        pytest.param(
            superseded(running()),
            result(CANCELLED, 0.4),
            False,
            [],
            ["TellDirective", "StopSelf"],
            id="chain-superseded-cost",
        ),
        pytest.param(
            directive_is(D.CANCELLED)(running()),
            result(SUCCEEDED),
            True,
            [],
            ["StopSelf"],
            id="directive-cancelled-stale",
        ),
    ],
)
def test_task_finished(
    st: StepState,
    res: TaskResult,
    stale: bool,
    moves: list[tuple[StepStatus, StepStatus]],
    effects: list[str],
) -> None:
    message = finished(st, res, stale=stale)
    decision = run_step(st, message)
    # The report is stored whatever became of the step.
    assert decision.changes[0] == c.TaskRecorded(task_id=message.task_id, result=res, step=st.step)
    assert changes_of(decision) == ["TaskRecorded"] + ["StepMoved"] * len(moves)
    assert step_moves(decision) == moves
    assert effects_of(decision) == effects
    if "Evaluate" in effects:
        assert one(decision, c.Evaluate) == c.Evaluate(message.task_id, res)


def test_task_finished_with_no_task_on_record_is_still_recorded() -> None:
    st = make(S.RUNNING)  # attempt 0: no task
    message = m.TaskFinished(uuid.uuid4(), result(SUCCEEDED))
    decision = run_step(st, message)
    assert changes_of(decision) == ["TaskRecorded"]
    assert decision.effects == ()


@pytest.mark.parametrize(
    "res",
    [
        pytest.param(result(SUCCEEDED), id="succeeded"),
        pytest.param(result(CANCELLED), id="cancelled"),
    ],
)
@pytest.mark.parametrize("status", [D.CANCELLED, D.FAILED], ids=str)
def test_task_finished_for_a_terminal_directive_is_only_recorded(
    status: DirectiveStatus, res: TaskResult
) -> None:
    st = directive_is(status)(running())
    decision = run_step(st, finished(st, res))
    assert changes_of(decision) == ["TaskRecorded"]
    assert "Evaluate" not in effects_of(decision)
    assert "StopSelf" in effects_of(decision)


# ================================================================= EvaluationFinished


def evaluating(**values: Any) -> StepState:
    return make(S.EVALUATING, attempt=1, running_task=False, **values)


def evaluated(st: StepState, level: ConfidenceLevel, **values: Any) -> m.EvaluationFinished:
    assert st.last_task is not None
    return m.EvaluationFinished(st.last_task.id, judgement(level, **values))


@pytest.mark.parametrize(
    ("st", "message"),
    [
        pytest.param(superseded(evaluating()), lambda st: evaluated(st, G), id="chain-superseded"),
        pytest.param(
            directive_is(D.CANCELLED)(evaluating()),
            lambda st: evaluated(st, G),
            id="directive-cancelled",
        ),
        pytest.param(
            directive_is(D.COMPLETED)(evaluating()),
            lambda st: evaluated(st, R),
            id="directive-completed",
        ),
    ],
)
def test_evaluation_for_a_step_that_no_longer_runs_stops_it(
    st: StepState, message: Callable[[StepState], m.EvaluationFinished]
) -> None:
    decision = run_step(st, message(st))
    assert decision.changes == ()
    assert effects_of(decision) == ["StopSelf"]


@pytest.mark.parametrize(
    ("st", "stale"),
    [
        pytest.param(evaluating(), True, id="stale-task-id"),
        pytest.param(make(S.READY, attempt=1, running_task=False), False, id="step-ready"),
        pytest.param(make(S.RUNNING, attempt=1), False, id="step-running"),
        pytest.param(make(S.PASSED, attempt=1, running_task=False), False, id="step-passed"),
    ],
)
def test_evaluation_of_another_attempt_is_ignored(st: StepState, stale: bool) -> None:
    message = evaluated(st, G)
    if stale:
        message = attrs.evolve(message, task_id=uuid.uuid4())
    assert run_step(st, message) == c.NOTHING


def _verdict_rows() -> list[Any]:
    rows = []
    for level, autonomy in itertools.product(ConfidenceLevel, AutonomyLevel):
        verdict, _ = judge_step(level, autonomy, 0, 3)
        rows.append(pytest.param(level, autonomy, verdict, id=f"{level}-{autonomy}-{verdict}"))
    return rows


@pytest.mark.parametrize(("level", "autonomy", "verdict"), _verdict_rows())
def test_evaluation_applies_the_verdict(
    level: ConfidenceLevel, autonomy: AutonomyLevel, verdict: Verdict
) -> None:
    st = evaluating(autonomy=autonomy)
    message = evaluated(st, level)
    decision = run_step(st, message)
    stored = one(decision, c.EvaluationStored)
    assert stored == c.EvaluationStored(
        judgement=message.judgement,
        chain_id=st.step.chain_id,
        step=st.step,
        task_id=message.task_id,
    )
    if verdict is Verdict.PASS:
        # ChainProgress reads, in the same write, whether the chain is finished now.
        assert changes_of(decision) == ["EvaluationStored", "StepMoved", "ChainProgress"]
        assert step_moves(decision) == [(S.EVALUATING, S.PASSED)]
        assert one(decision, c.StepMoved).values == scored(message.judgement)
        assert one(decision, c.ChainProgress).chain_id == st.step.chain_id
        assert effects_of(decision) == ["TellDependents", "TellDirective", "StopSelf"]
    elif verdict is Verdict.ASK:
        # The step stays evaluating (held by its guard) until a human answers.
        assert changes_of(decision) == ["StepHeld", "EvaluationStored", "ApprovalOpened", "Note"]
        assert one(decision, c.StepHeld).step == st.step
        assert one(decision, c.StepHeld).values == scored(message.judgement)
        opened = one(decision, c.ApprovalOpened)
        assert (opened.kind, opened.step_id, opened.expires_at) == (
            ApprovalType.STEP_REVIEW,
            st.step.id,
            None,
        )
        assert notes(decision) == ["approval_requested"]
        assert decision.effects == ()
    else:
        assert verdict is Verdict.REWORK
        assert changes_of(decision) == ["EvaluationStored", "StepMoved", "Note", *DISPATCH]
        assert step_moves(decision) == [(S.EVALUATING, S.REWORK), (S.REWORK, S.RUNNING)]
        assert every(decision, c.StepMoved)[0].values == {
            "rework_count": 1,
            **scored(message.judgement),
        }
        assert notes(decision)[0] == "step_rework"
        again = attrs.evolve(st, step=attrs.evolve(st.step, status=S.REWORK, rework_count=1))
        created = assert_dispatched(decision, again)
        assert created.attempt == 2
        assert "fix the failing checks" in created.instructions


def scored(verdict: Judgement) -> dict[str, object]:
    """The verdict's figures, which ride on the step's move (or hold)."""
    return {
        "confidence_score": verdict.composite_score,
        "confidence_level": verdict.confidence_level,
        "last_evaluation_id": verdict.evaluation_id,
    }


def test_step_review_expires_after_the_approval_timeout() -> None:
    st = evaluating(settings=Settings(log_dir=SETTINGS.log_dir, approval_timeout_s=60))
    opened = one(run_step(st, evaluated(st, Y)), c.ApprovalOpened)
    assert opened.expires_at == NOW + timedelta(seconds=60)


@pytest.mark.parametrize("hold_back", HOLD_BACKS)
def test_rework_while_the_step_may_not_run_tells_the_directive(hold_back: Tweak) -> None:
    st = hold_back(evaluating())
    decision = run_step(st, evaluated(st, R))
    assert changes_of(decision) == ["EvaluationStored", "StepMoved", "Note"]
    assert step_moves(decision) == [(S.EVALUATING, S.REWORK)]
    assert effects_of(decision) == ["TellDirective"]


@pytest.mark.parametrize(
    ("rework_count", "limit", "failing", "reason"),
    [
        pytest.param(
            2,
            3,
            ("pytest", "lint", "pytest"),
            "failing: lint, pytest",
            id="limit-minus-one-names-checks",
        ),
        pytest.param(0, 1, (), "failing: the judge", id="one-cycle-no-checks"),
        pytest.param(0, 0, ("mypy",), "failing: mypy", id="no-rework-allowed"),
    ],
)
def test_red_at_the_rework_limit_blocks_the_step(
    rework_count: int, limit: int, failing: tuple[str, ...], reason: str
) -> None:
    st = evaluating(rework_count=rework_count, max_rework_cycles=limit, autonomy=FULL)
    message = evaluated(st, R, failing=failing)
    decision = run_step(st, message)
    assert changes_of(decision) == ["EvaluationStored", "StepMoved", "Note"]
    assert step_moves(decision) == [(S.EVALUATING, S.BLOCKED)]
    assert every(decision, c.StepMoved)[0].values == {
        "rework_count": rework_count + 1,
        "status_reason": f"max rework cycles reached ({limit}); {reason}",
        **scored(message.judgement),
    }
    assert notes(decision) == ["step_blocked"]
    assert effects_of(decision) == ["TellDirective"]


def test_green_evaluation_passes_even_while_paused() -> None:
    st = directive_is(D.PAUSED)(evaluating())
    decision = run_step(st, evaluated(st, G))
    assert step_moves(decision) == [(S.EVALUATING, S.PASSED)]
    assert effects_of(decision) == ["TellDependents", "TellDirective", "StopSelf"]


# ================================================================= ReviewAnswered


@pytest.mark.parametrize(
    ("status", "effects"),
    [
        pytest.param(S.PASSED, ["TellDependents", "StopSelf"], id="approved-passed"),
        pytest.param(S.SKIPPED, ["StopSelf"], id="skipped"),
        pytest.param(S.BLOCKED, [], id="denied-blocked"),
        pytest.param(S.EVALUATING, [], id="not-yet-applied"),
    ],
)
def test_review_answered(status: StepStatus, effects: list[str]) -> None:
    decision = run_step(make(status, attempt=1, running_task=False), m.ReviewAnswered())
    assert decision.changes == ()
    assert effects_of(decision) == effects


# ================================================================= every step transition


@pytest.mark.parametrize(
    ("old", "new"),
    [pytest.param(o, n, id=f"{o}->{n}") for o, n in itertools.product(StepStatus, StepStatus)],
)
def test_every_step_transition_through_write(
    old: StepStatus, new: StepStatus, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = directive()
    s = step(d, None, "build", old)
    change = c.StepMoved(step=s, new=new, values={"attempt": 2})
    made = record_writes(monkeypatch)
    if new in STEP_TRANSITIONS[old]:
        written = writes.write(d.id, [change])
        op = written.tx.ops[0]
        assert op.guard
        assert op.sql.startswith("UPDATE chain_steps SET ")
        assert "WHERE id = %(_id)s AND status = %(_expected)s" in op.sql
        assert "c.status = 'active'" in op.sql  # and only in a current chain
        assert isinstance(op.params, dict)
        params = op.params
        assert (params["_id"], params["_expected"]) == (s.id, str(old))
        assert (params["status"], params["attempt"]) == (str(new), 2)
        assert written.sources[0] is change
        assert written.describe(0).startswith(f"step build is no longer {old}")
    else:
        with pytest.raises(InvalidTransition) as raised:
            writes.write(d.id, [change])
        assert (raised.value.from_status, raised.value.to_status) == (str(old), str(new))
        assert [tx.ops for tx in made] == [[]]  # refused before any statement


# ================================================================= handed-over rows


@pytest.mark.parametrize("borrowed", [False, True], ids=["read", "borrowed"])
@pytest.mark.parametrize(
    "message", [m.Begin({}), m.DependencyPassed(uuid.uuid4())], ids=["begin", "dependency"]
)
def test_a_dispatch_on_a_borrowed_directive_requires_it_as_seen(
    borrowed: bool, message: m.StepMessage
) -> None:
    d = directive(max_total_cost_usd=9.0, total_cost_usd=2.5, total_tokens=7, max_agent_turns=40)
    st = sstate(step(d), d, borrowed=borrowed)
    decision = run_step(st, message)
    assert_dispatched(decision, st)
    seen = one(decision, c.RequireLiveChain).seen
    if not borrowed:
        assert seen is None  # read in full: nothing to hold still beyond the usual guards
    else:
        assert seen == c.Seen(
            total_cost_usd=2.5,
            total_tokens=7,
            total_agent_turns=0,
            max_total_cost_usd=9.0,
            max_total_tokens=None,
            max_agent_turns=40,
        )
        assert one(decision, c.TaskCreated).task.budget_usd == 6.5  # figured on what is seen


def test_a_borrowed_state_that_may_not_dispatch_writes_no_seen_guard() -> None:
    """Paused in the row handed over: the step becomes ready and tells its directive,
    which decides on a read (nothing is started on the borrowed view)."""
    d = directive(status=D.PAUSED)
    decision = run_step(sstate(step(d), d, borrowed=True), m.Begin({}))
    assert step_moves(decision) == [(S.PENDING, S.READY)]
    assert every(decision, c.RequireLiveChain) == []
    assert effects_of(decision) == ["TellDirective"]
