"""Factories and a tiny in-memory world for the pure decision tables.

No database, no actors, no threads: states are built by hand from records, and
``World`` folds a decision's changes into the next state the way the database
would (each guard is asserted, so a change whose guard would miss fails loudly).
Every decision run through ``run_directive``/``run_step`` also goes through
``actors.writes.write``, which refuses a transition that is not in the tables.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import attrs

from directorate.actors import messages as m
from directorate.actors import writes
from directorate.actors.core import changes as c
from directorate.actors.core.directive import decide
from directorate.actors.core.state import DirectiveState, PlanOutcome, Settings, StepState
from directorate.actors.core.step import decide_step
from directorate.actors.evaluation import Judgement
from directorate.actors.runners import TaskResult
from directorate.actors.tx import Tx
from directorate.actors.writes import write
from directorate.persistence.models import (
    Approval,
    ApprovalStatus,
    ApprovalType,
    Chain,
    ChainStatus,
    ConfidenceLevel,
    Directive,
    DirectiveStatus,
    Step,
    StepSpec,
    StepStatus,
    StepType,
    Task,
    TaskKind,
    TaskStatus,
)
from directorate.verifiers.stale_agents import (
    RecordedProcess,
    StaleAgentCheck,
    StaleOutcome,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SETTINGS = Settings(log_dir=Path("/tmp/x"))

T = TypeVar("T")

# ----------------------------------------------------------------- records


def directive(**values: Any) -> Directive:
    defaults: dict[str, Any] = {
        "id": uuid.uuid4(),
        "title": "Fix the parser",
        "goal": "parse everything",
        "status": DirectiveStatus.ACTIVE,
        "started_at": NOW,
        "chain_generation_count": 1,
    }
    return Directive(**(defaults | values))


def chain(of: Directive, *, generation: int = 1, **values: Any) -> Chain:
    return Chain(id=uuid.uuid4(), directive_id=of.id, generation=generation, name="c", **values)


def step(
    of: Directive,
    in_chain: Chain | None = None,
    name: str = "build",
    status: StepStatus = StepStatus.PENDING,
    *,
    deps: Sequence[Step] = (),
    **values: Any,
) -> Step:
    return Step(
        id=uuid.uuid4(),
        chain_id=in_chain.id if in_chain else uuid.uuid4(),
        directive_id=of.id,
        name=name,
        step_type=StepType.IMPLEMENT,
        status=status,
        depends_on=[d.id for d in deps],
        **values,
    )


def approval(
    of: Directive, kind: ApprovalType, *, step_id: uuid.UUID | None = None, **values: Any
) -> Approval:
    return Approval(
        id=uuid.uuid4(),
        directive_id=of.id,
        approval_type=kind,
        description=f"{kind} question",
        step_id=step_id,
        **values,
    )


def task(
    of: Directive,
    *,
    kind: TaskKind = TaskKind.STEP,
    status: TaskStatus = TaskStatus.RUNNING,
    step_id: uuid.UUID | None = None,
    **values: Any,
) -> Task:
    return Task(
        id=uuid.uuid4(),
        directive_id=of.id,
        kind=kind,
        instructions="",
        status=status,
        step_id=step_id,
        **values,
    )


def judgement(level: ConfidenceLevel, *, failing: Iterable[str] = (), **values: Any) -> Judgement:
    scores = {ConfidenceLevel.GREEN: 0.9, ConfidenceLevel.YELLOW: 0.6, ConfidenceLevel.RED: 0.2}
    defaults: dict[str, Any] = {
        "evaluation_id": uuid.uuid4(),
        "passed": level is ConfidenceLevel.GREEN,
        "composite_score": scores[level],
        "confidence_level": level,
        "programmatic_results": [{"name": n, "passed": False} for n in failing],
        "summary": f"{level} work",
        "rework_instructions": "fix the failing checks" if level is ConfidenceLevel.RED else None,
    }
    return Judgement(**(defaults | values))


def result(
    status: TaskStatus = TaskStatus.SUCCEEDED,
    cost: float | None = None,
    *,
    tokens: int | None = None,
    turns: int | None = None,
) -> TaskResult:
    return TaskResult(
        status=status,
        exit_code=0 if status is TaskStatus.SUCCEEDED else 1,
        cost_usd=cost,
        tokens=tokens,
        turns=turns,
        output_tail="done",
    )


def stale_check(
    of: Task, outcome: StaleOutcome = StaleOutcome.GONE, **values: Any
) -> StaleAgentCheck:
    """What checking for a dead engine's agent of task ``of`` found (by default:
    nothing left of it)."""
    recorded = RecordedProcess(
        task_id=str(of.id),
        host=of.host,
        pid=of.pid,
        pgid=of.pgid,
        started_at=of.process_started_at.timestamp() if of.process_started_at else None,
    )
    defaults: dict[str, Any] = {"recorded": recorded, "host": "here", "detail": str(outcome)}
    return StaleAgentCheck(outcome=outcome, **(defaults | values))


def plan_of(*names: str) -> PlanOutcome:
    specs = []
    for i, name in enumerate(names):
        specs.append(StepSpec(name=name, depends_on=[names[i - 1]] if i else []))
    return PlanOutcome(steps=tuple(specs))


# ----------------------------------------------------------------- states


def dstate(
    d: Directive,
    ch: Chain | None = None,
    steps: Sequence[Step] = (),
    approvals: Sequence[Approval] = (),
    *,
    planning: Task | None = None,
    superseded: Sequence[Step] = (),
    now: datetime = NOW,
    settings: Settings = SETTINGS,
    **values: Any,
) -> DirectiveState:
    return DirectiveState(
        directive=d,
        chain=ch,
        steps=tuple(steps),
        approvals=tuple(approvals),
        planning=planning,
        superseded_steps=tuple(superseded),
        now=now,
        settings=settings,
        **values,
    )


def sstate(
    s: Step,
    d: Directive,
    *,
    deps: Sequence[StepStatus] = (),
    chain_current: bool = True,
    last_task: Task | None = None,
    rework_instructions: str | None = None,
    review_pending: bool = False,
    breaker_open: bool = False,
    now: datetime = NOW,
    settings: Settings = SETTINGS,
    **values: Any,
) -> StepState:
    return StepState(
        step=s,
        directive=d,
        chain_current=chain_current,
        dependency_statuses=tuple(deps),
        rework_instructions=rework_instructions,
        last_task=last_task,
        review_pending=review_pending,
        breaker_open=breaker_open,
        now=now,
        settings=settings,
        **values,
    )


# ----------------------------------------------------------------- looking at decisions


def run_directive(state: DirectiveState, message: m.DirectiveMessage) -> c.Decision:
    """``decide``, and the proof that its changes make a legal write."""
    decision = decide(state, message)
    write(state.directive.id, decision.changes)
    return decision


def run_step(state: StepState, message: m.StepMessage) -> c.Decision:
    """``decide_step``, and the proof that its changes make a legal write."""
    decision = decide_step(state, message)
    write(state.directive.id, decision.changes)
    return decision


def kinds(items: Iterable[object]) -> list[str]:
    return [type(i).__name__ for i in items]


def changes_of(decision: c.Decision) -> list[str]:
    return kinds(decision.changes)


def effects_of(decision: c.Decision) -> list[str]:
    return kinds(decision.effects)


def every(decision: c.Decision, kind: type[T]) -> list[T]:
    return [x for x in (*decision.changes, *decision.effects) if isinstance(x, kind)]


def one(decision: c.Decision, kind: type[T]) -> T:
    found = every(decision, kind)
    assert len(found) == 1, f"expected one {kind.__name__}, got {found}"
    return found[0]


def directive_moves(decision: c.Decision) -> list[tuple[DirectiveStatus, DirectiveStatus]]:
    return [(x.old, x.new) for x in every(decision, c.DirectiveMoved)]


def step_moves(decision: c.Decision) -> list[tuple[StepStatus, StepStatus]]:
    return [(x.step.status, x.new) for x in every(decision, c.StepMoved)]


def notes(decision: c.Decision) -> list[str]:
    return [n.event_type for n in every(decision, c.Note)]


class RecordingTx(Tx):
    """A ``Tx`` that remembers every instance made (to see what a refused write built)."""

    made: ClassVar[list[Tx]] = []

    def __init__(self, directive_id: uuid.UUID) -> None:
        super().__init__(directive_id)
        RecordingTx.made.append(self)


def record_writes(monkeypatch: Any) -> list[Tx]:
    """From now on in this test, every ``Tx`` that ``write`` makes is kept in the list."""
    RecordingTx.made = []
    monkeypatch.setattr(writes, "Tx", RecordingTx)
    return RecordingTx.made


# ----------------------------------------------------------------- a tiny world


@attrs.define
class World:
    """What the database would hold, with the changes folded in one by one."""

    directive: Directive
    chains: list[Chain] = attrs.field(factory=list)
    steps: dict[uuid.UUID, Step] = attrs.field(factory=dict)
    tasks: dict[uuid.UUID, Task] = attrs.field(factory=dict)
    approvals: dict[uuid.UUID, Approval] = attrs.field(factory=dict)
    plans: dict[uuid.UUID, PlanOutcome] = attrs.field(factory=dict)
    """The plan each planning task's agent wrote."""
    rework: dict[uuid.UUID, str | None] = attrs.field(factory=dict)
    events: list[str] = attrs.field(factory=list)
    jobs: dict[uuid.UUID, uuid.UUID] = attrs.field(factory=dict)
    """Step id -> the task its actor has in flight (agent or evaluation)."""
    live: set[uuid.UUID] = attrs.field(factory=set)
    reviewing: uuid.UUID | None = None
    now: datetime = NOW

    # ------------------------------------------------------------- reading

    def current_chain(self) -> Chain | None:
        return next((ch for ch in reversed(self.chains) if ch.status is ChainStatus.ACTIVE), None)

    def chain_steps(self, chain_id: uuid.UUID | None) -> tuple[Step, ...]:
        return tuple(s for s in self.steps.values() if s.chain_id == chain_id)

    def pending(self) -> tuple[Approval, ...]:
        return tuple(a for a in self.approvals.values() if a.status is ApprovalStatus.PENDING)

    def directive_state(self, message: object = None) -> DirectiveState:
        """As the directive actor loads it: the plan is read for the report of the
        latest planning task, or when that task finished and no chain holds it."""
        ch = self.current_chain()
        planning = [t for t in self.tasks.values() if t.kind is TaskKind.PLANNING]
        latest = planning[-1] if planning else None
        old = [x for x in self.chains if x.status is ChainStatus.SUPERSEDED]
        superseded = (
            tuple(
                s
                for s in self.chain_steps(old[-1].id)
                if s.status in (StepStatus.PASSED, StepStatus.BLOCKED)
            )
            if old
            else ()
        )
        plan = None
        if ch is None and latest is not None:
            reported = isinstance(message, m.PlanningFinished) and message.task_id == latest.id
            if reported or latest.status.finished:
                plan = self.plans.get(latest.id)
        return dstate(
            self.directive,
            ch,
            self.chain_steps(ch.id if ch else None),
            self.pending(),
            planning=latest,
            superseded=superseded,
            now=self.now,
            plan=plan,
            reviewing=ch is not None and self.reviewing == ch.id,
            live_tasks=frozenset(self.live),
        )

    def step_state(self, step_id: uuid.UUID) -> StepState:
        s = self.steps[step_id]
        ch = self.current_chain()
        tasks = [t for t in self.tasks.values() if t.step_id == step_id]
        pending = self.pending()
        return sstate(
            s,
            self.directive,
            deps=tuple(self.steps[d].status for d in s.depends_on),
            chain_current=ch is not None and ch.id == s.chain_id,
            last_task=tasks[-1] if tasks else None,
            rework_instructions=self.rework.get(step_id),
            review_pending=any(
                a.approval_type is ApprovalType.STEP_REVIEW and a.step_id == step_id
                for a in pending
            ),
            breaker_open=any(a.approval_type is ApprovalType.CIRCUIT_BREAKER for a in pending),
            unavailable_pending=any(
                a.approval_type is ApprovalType.AGENT_UNAVAILABLE for a in pending
            ),
            earlier_tasks=tuple(reversed(tasks[:-1])),
            now=self.now,
            job=self.jobs.get(step_id),
            live_tasks=frozenset(self.live),
        )

    # ------------------------------------------------------------- writing

    def apply(self, changes: Iterable[c.Change]) -> None:
        for change in changes:
            self._apply(change)

    def _apply(self, change: c.Change) -> None:
        d = self.directive
        if isinstance(change, c.DirectiveMoved):
            assert d.status is change.old, f"directive is {d.status}, not {change.old}"
            self.directive = attrs.evolve(d, status=change.new, **dict(change.values))
        elif isinstance(change, c.StepMoved):
            now = self.steps[change.step.id]
            assert now.status is change.step.status, f"{now.name} is {now.status}"
            self.steps[now.id] = attrs.evolve(now, status=change.new, **dict(change.values))
        elif isinstance(change, c.StepHeld):
            assert self.steps[change.step.id].status is change.step.status
        elif isinstance(change, c.RequireLiveChain):
            ch = self.current_chain()
            assert d.status is DirectiveStatus.ACTIVE and ch is not None
            assert ch.id == change.chain_id
        elif isinstance(change, c.RequireNoPending):
            assert not any(a.approval_type is change.kind for a in self.pending())
        elif isinstance(change, c.ChainCreated):
            self.chains.append(
                Chain(
                    id=change.chain_id,
                    directive_id=d.id,
                    generation=change.generation,
                    name=change.name,
                )
            )
            self.steps.update({s.id: s for s in change.steps})
            self.directive = attrs.evolve(d, chain_generation_count=change.generation)
        elif isinstance(change, c.ChainSuperseded):
            index = next(i for i, ch in enumerate(self.chains) if ch.id == change.chain_id)
            assert self.chains[index].status is ChainStatus.ACTIVE
            self.chains[index] = attrs.evolve(self.chains[index], status=ChainStatus.SUPERSEDED)
        elif isinstance(change, c.TaskCreated):
            self.tasks[change.task.id] = change.task
        elif isinstance(change, c.TaskRecorded):
            old = self.tasks[change.task_id]
            if not old.status.finished:  # stored once by task id
                res = change.result
                cost = max(0.0, res.cost_usd or 0.0)
                self.tasks[old.id] = attrs.evolve(
                    old,
                    status=res.status,
                    cost_usd=cost,
                    tokens=res.tokens,
                    turns=res.turns,
                    summary=res.summary,
                    output_tail=res.output_tail,
                )
                self.directive = attrs.evolve(
                    d,
                    total_cost_usd=d.total_cost_usd + cost,
                    total_tokens=d.total_tokens + (res.tokens or 0),
                    total_agent_turns=d.total_agent_turns + (res.turns or 0),
                )
        elif isinstance(change, c.TasksAbandoned):
            for t in list(self.tasks.values()):
                mine = change.step_id is None or t.step_id == change.step_id
                if mine and not t.status.finished and t.id not in change.live:
                    self.tasks[t.id] = attrs.evolve(t, status=TaskStatus.CANCELLED)
        elif isinstance(change, c.ApprovalOpened):
            self.approvals[change.approval_id] = Approval(
                id=change.approval_id,
                directive_id=d.id,
                approval_type=change.kind,
                description=change.description,
                step_id=change.step_id,
                context=dict(change.context),
                expires_at=change.expires_at,
            )
        elif isinstance(change, c.ApprovalAnswered):
            old_approval = self.approvals[change.approval.id]
            assert old_approval.status is ApprovalStatus.PENDING
            self.approvals[old_approval.id] = attrs.evolve(old_approval, status=change.status)
        elif isinstance(change, c.ApprovalsCancelled):
            for a in self.pending():
                self.approvals[a.id] = attrs.evolve(a, status=ApprovalStatus.CANCELLED)
        elif isinstance(change, c.EvaluationStored):
            if change.step is not None:
                s = self.steps[change.step.id]
                self.steps[s.id] = attrs.evolve(
                    s,
                    confidence_level=change.judgement.confidence_level,
                    confidence_score=change.judgement.composite_score,
                    last_evaluation_id=change.judgement.evaluation_id,
                )
                self.rework[s.id] = change.judgement.rework_instructions
        elif isinstance(change, c.LimitRaised):
            limits: dict[str, Any] = {change.limit: change.new}
            self.directive = attrs.evolve(d, **limits)
        elif isinstance(change, c.Note):
            self.events.append(change.event_type)
        elif isinstance(change, c.ChainReplaced):
            self.events.append("chain_regenerated")
        # TasksCancelRequested: a request only; CancelJobs makes the agents report cancelled.
        # ChainProgress: a read, done by Simulation when it acts on TellDirective.


Target = uuid.UUID | None
"""A step actor (its step id), or None: the directive actor."""


@attrs.define
class Simulation:
    """Messages delivered one at a time, each decided on fresh state and applied.

    ``judge`` says how each step attempt is evaluated, ``review`` how the whole
    directive is; planning agents write ``planner(world)``; agents always succeed.
    """

    world: World
    judge: Callable[[World, Step], Judgement]
    planner: Callable[[World], PlanOutcome]
    review: Callable[[World], Judgement] = lambda w: judgement(ConfidenceLevel.GREEN)
    report: Callable[[], TaskResult] = result
    """What each agent (planning and step) reports when it is not cancelled."""
    queue: deque[tuple[Target, Any]] = attrs.field(factory=deque)
    delivered: int = 0

    def send(self, target: Target, message: Any) -> None:
        self.queue.append((target, message))

    def run(self, limit: int = 2000) -> None:
        while self.queue:
            self.delivered += 1
            assert self.delivered <= limit, "the directive never came to rest"
            target, message = self.queue.popleft()
            if target is None:
                self._directive(message)
            else:
                self._step(target, message)

    def _directive(self, message: Any) -> None:
        w = self.world
        if isinstance(message, m.DirectiveReviewed):
            w.reviewing = None
        decision = run_directive(w.directive_state(message), message)
        w.apply(decision.changes)
        for effect in decision.effects:
            if isinstance(effect, c.RunPlanning):
                w.plans[effect.task.id] = self.planner(w)
                self.send(None, m.PlanningFinished(effect.task.id, self.report()))
            elif isinstance(effect, c.StartSteps):
                for s in w.chain_steps(effect_chain(w)):
                    if not s.status.finished:
                        self.send(s.id, m.Begin({}))
            elif isinstance(effect, c.Grant):
                for step_id in effect.step_ids:
                    self.send(step_id, m.RunStep())
            elif isinstance(effect, c.ReviewDirective):
                w.reviewing = effect.chain_id
                self.send(None, m.DirectiveReviewed(effect.chain_id, self.review(w)))
            elif isinstance(effect, c.CancelJobs):
                self._cancel_agents()
            elif isinstance(effect, c.StopStaleAgent):
                self.send(None, m.StaleAgentStopped(effect.task.id, stale_check(effect.task)))
            elif isinstance(effect, c.StepAnswered):
                self.send(effect.step_id, m.ReviewAnswered())

    def _step(self, step_id: uuid.UUID, message: Any) -> None:
        w = self.world
        if isinstance(message, m.TaskFinished | m.EvaluationFinished | m.StaleAgentStopped):
            if w.jobs.get(step_id) == message.task_id:
                del w.jobs[step_id]
            if isinstance(message, m.TaskFinished):
                w.live.discard(message.task_id)
        state = w.step_state(step_id)
        decision = run_step(state, message)
        w.apply(decision.changes)
        for effect in decision.effects:
            if isinstance(effect, c.RunTask):
                w.jobs[step_id] = effect.task.id
                w.live.add(effect.task.id)
                self.send(step_id, m.TaskFinished(effect.task.id, self.report()))
            elif isinstance(effect, c.StopStaleAgent):
                w.jobs[step_id] = effect.task.id
                self.send(step_id, m.StaleAgentStopped(effect.task.id, stale_check(effect.task)))
            elif isinstance(effect, c.Evaluate):
                w.jobs[step_id] = effect.task_id
                verdict = self.judge(w, w.steps[step_id])
                self.send(step_id, m.EvaluationFinished(effect.task_id, verdict))
            elif isinstance(effect, c.TellDirective):
                if not effect.if_chain_idle or self._chain_idle(state.step.chain_id):
                    self.send(None, m.StepChanged(step_id))
            elif isinstance(effect, c.CancelJobs):
                self._cancel_agents()
            elif isinstance(effect, c.TellDependents):
                for s in w.chain_steps(state.step.chain_id):
                    if step_id in s.depends_on:
                        self.send(s.id, m.DependencyPassed(step_id))

    def _chain_idle(self, chain_id: uuid.UUID) -> bool:
        """What the write's ``ChainProgress`` reads: no step at work any more."""
        at_work = {StepStatus.READY, StepStatus.RUNNING, StepStatus.EVALUATING, StepStatus.REWORK}
        return not any(s.status in at_work for s in self.world.chain_steps(chain_id))

    def _cancel_agents(self) -> None:
        """Agents asked to stop report cancelled (their reports are still queued)."""
        for i, (target, message) in enumerate(self.queue):
            if isinstance(message, m.TaskFinished | m.PlanningFinished):
                cancelled = result(TaskStatus.CANCELLED)
                self.queue[i] = (target, attrs.evolve(message, result=cancelled))


def effect_chain(w: World) -> uuid.UUID | None:
    ch = w.current_chain()
    return ch.id if ch else None
