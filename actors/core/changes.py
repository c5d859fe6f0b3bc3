"""What a decision returns: the changes to commit, then the effects to perform.

Changes are the vocabulary of durable writes (``actors/writes.py`` turns each into
guarded SQL, events and signals); effects are what an actor does once the changes
are committed (start an agent, tell another actor, stop). A decision that refuses
a request carries the error, and its changes (often none) are still committed
before the error reaches the caller: a circuit breaker that trips on a refused
regeneration is recorded, and the caller hears why.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from directorate.persistence.errors import DirectorateError
from directorate.persistence.models import (
    Approval,
    ApprovalStatus,
    ApprovalType,
    Directive,
    DirectiveStatus,
    Severity,
    Step,
    StepStatus,
    Task,
)
from directorate.verifiers.supervised import SupervisedProcess

from ..evaluation import Judgement
from ..runners import TaskResult
from ..workspaces import StepWorkspace

# ----------------------------------------------------------------- changes


@attrs.frozen(kw_only=True)
class DirectiveMoved:
    """The directive's status changes, guarded by its current one."""

    old: DirectiveStatus
    new: DirectiveStatus
    by: str | None = None
    """Who asked (a person), or None for the engine."""
    values: Mapping[str, Any] = attrs.field(factory=dict)
    """Other columns set with it (``started_at``, ``completed_at``)."""


@attrs.frozen(kw_only=True)
class StepMoved:
    """A step's status changes, guarded by its current one (``step.status``)."""

    step: Step
    new: StepStatus
    values: Mapping[str, Any] = attrs.field(factory=dict)
    """Other columns set with it (``attempt``, ``rework_count``, ``status_reason``)."""


@attrs.frozen(kw_only=True)
class StepHeld:
    """The step is still in ``step.status`` (guard), a review is opened on it, and
    ``values`` are set (the verdict's figures)."""

    step: Step
    values: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Seen:
    """What a decision took from a directive row it did not read itself (one handed
    over by a peer, ``StepState.borrowed``), and its dispatch therefore requires to
    hold still: the totals and limits its breakers and task budget were figured on,
    and no circuit breaker or unavailable agent waiting for a human."""

    total_cost_usd: float
    total_tokens: int
    total_agent_turns: int
    max_total_cost_usd: float | None
    max_total_tokens: int | None
    max_agent_turns: int | None

    @classmethod
    def of(cls, directive: Directive) -> Seen:
        """The directive's columns of the same names (``ops.SEEN_COLUMNS``)."""
        return cls(**{f.name: getattr(directive, f.name) for f in attrs.fields(cls)})


@attrs.frozen(kw_only=True)
class RequireLiveChain:
    """Guard only: the directive is active and ``chain_id`` is its current chain (and,
    with ``seen``, its directive row still as the decision saw it)."""

    chain_id: uuid.UUID
    seen: Seen | None = None


@attrs.frozen(kw_only=True)
class RequireNoPending:
    """Guard only: no approval of ``kind`` is pending for the directive (an approval
    there is at most one of, opened by whichever write comes first)."""

    kind: ApprovalType


@attrs.frozen(kw_only=True)
class ChainProgress:
    """Read in the same write: how many steps of the chain are still at work (ready,
    running, evaluating, sent back) or about to be (pending, dependencies passed)."""

    chain_id: uuid.UUID


@attrs.frozen(kw_only=True)
class ChainCreated:
    """A new current chain and its steps (carried-over steps arrive passed)."""

    chain_id: uuid.UUID
    generation: int
    name: str
    description: str
    rationale: str | None
    steps: tuple[Step, ...]
    carried: tuple[str, ...] = ()
    """Names of the steps that passed in the superseded chain and stay passed."""


@attrs.frozen(kw_only=True)
class ChainSuperseded:
    chain_id: uuid.UUID


@attrs.frozen(kw_only=True)
class ChainReplaced:
    """A regeneration finished: the new chain replaces ``old_chain_id`` (event, signal)."""

    old_chain_id: uuid.UUID
    new_chain_id: uuid.UUID
    generation: int
    carried: tuple[str, ...]


@attrs.frozen(kw_only=True)
class TaskCreated:
    task: Task


@attrs.frozen(kw_only=True)
class TaskRecorded:
    """A task's report: stored once by task id, its cost added to the directive."""

    task_id: uuid.UUID
    result: TaskResult
    step: Step | None = None
    """The step it was an attempt at; None for planning."""


@attrs.frozen(kw_only=True)
class TaskProcessStarted:
    """Which processes run a task's agent (recorded while the task is unfinished)."""

    task_id: uuid.UUID
    process: SupervisedProcess
    engine_id: uuid.UUID | None = None
    """The engine whose agent it is."""


@attrs.frozen(kw_only=True)
class TasksCancelRequested:
    """Ask every unfinished task of the directive to stop (a request, not an outcome)."""

    reason: str


@attrs.frozen(kw_only=True)
class TasksAbandoned:
    """Finish as cancelled the unfinished tasks no agent of this engine runs."""

    live: frozenset[uuid.UUID]
    step_id: uuid.UUID | None = None
    """Only this step's tasks; None: every task of the directive."""


@attrs.frozen(kw_only=True)
class ApprovalOpened:
    approval_id: uuid.UUID
    kind: ApprovalType
    description: str
    context: Mapping[str, Any]
    step_id: uuid.UUID | None = None
    expires_at: datetime | None = None


@attrs.frozen(kw_only=True)
class ApprovalAnswered:
    """An approval answered, guarded by its being pending."""

    approval: Approval
    status: ApprovalStatus
    by: str | None
    note: str | None


@attrs.frozen(kw_only=True)
class ApprovalsCancelled:
    """Every pending approval of the directive no longer applies."""


@attrs.frozen(kw_only=True)
class EvaluationStored:
    """A judgement of a step (``step``) or of the whole directive (``step=None``)."""

    judgement: Judgement
    chain_id: uuid.UUID | None
    step: Step | None = None
    task_id: uuid.UUID | None = None


@attrs.frozen
class JudgeSpent:
    """What the judges of an evaluation that is not stored spent (it came after the
    step or the directive moved on): added to the directive's totals all the same,
    for the sessions ran and cost what they cost."""

    judgement: Judgement
    step: Step | None = None
    task_id: uuid.UUID | None = None


def late_judge_spending(
    verdict: Judgement, step: Step | None, task_id: uuid.UUID | None
) -> tuple[JudgeSpent, ...]:
    """The change that counts a verdict's spending when the verdict itself is dropped
    (none when its judges spent nothing)."""
    return (JudgeSpent(judgement=verdict, step=step, task_id=task_id),) if verdict.spent else ()


@attrs.frozen(kw_only=True)
class LimitRaised:
    limit: str
    old: float
    new: float
    by: str | None


@attrs.frozen(kw_only=True)
class Note:
    """An event with no state change of its own."""

    event_type: str
    data: Mapping[str, Any] = attrs.field(factory=dict)
    severity: Severity = Severity.INFO
    step_id: uuid.UUID | None = None
    by: str | None = None


Change = (
    DirectiveMoved
    | StepMoved
    | StepHeld
    | RequireLiveChain
    | RequireNoPending
    | ChainProgress
    | ChainCreated
    | ChainSuperseded
    | ChainReplaced
    | TaskCreated
    | TaskRecorded
    | TaskProcessStarted
    | TasksCancelRequested
    | TasksAbandoned
    | ApprovalOpened
    | ApprovalAnswered
    | ApprovalsCancelled
    | EvaluationStored
    | JudgeSpent
    | LimitRaised
    | Note
)

# ----------------------------------------------------------------- effects


@attrs.frozen
class RunPlanning:
    """Start the planning agent."""

    task: Task


@attrs.frozen
class RunTask:
    """Start the step's agent (in its worktree, when the directive has one)."""

    task: Task
    workspace: StepWorkspace | None = None


@attrs.frozen
class MergeStep:
    """Merge the step's branch into the result branch (its verdict passed it)."""

    task_id: uuid.UUID
    workspace: StepWorkspace


@attrs.frozen
class StopStaleAgent:
    """Make sure the agent of ``task``, which an engine now gone ran, is gone too
    (off the actor's thread); the outcome comes back as ``StaleAgentStopped``."""

    task: Task


@attrs.frozen
class Evaluate:
    """Judge the step's finished task in the evaluation pool."""

    task_id: uuid.UUID
    result: TaskResult


@attrs.frozen
class ReviewDirective:
    """Judge the whole directive (every step of ``chain_id`` passed)."""

    chain_id: uuid.UUID


@attrs.frozen
class StartSteps:
    """Make sure every unfinished step of the current chain has a live step actor."""

    steps: tuple[Step, ...] | None = None
    """The chain's steps when the decision just created them; None: read them."""
    directive: Directive | None = attrs.field(default=None, eq=False, repr=False)
    """The directive's row as the decision's write leaves it, when the decision knows
    it whole (a start on explicit steps): its first steps decide on it without a read."""


@attrs.frozen
class Grant:
    """Tell these ready steps that they may run now."""

    step_ids: tuple[uuid.UUID, ...]


@attrs.frozen
class CancelJobs:
    """Cancel the agents this directive runs (their reports still arrive)."""

    reason: str


@attrs.frozen
class RetireSteps:
    """Step actors of a chain that no longer runs stop (once their jobs reported)."""


@attrs.frozen
class StepAnswered:
    """A human answered this step's review (the step actor tells its dependents)."""

    step_id: uuid.UUID


@attrs.frozen
class TellDirective:
    """A step tells its directive that it changed (the directive decides what follows)."""

    if_chain_idle: bool = False
    """Only when the write's ``ChainProgress`` found no step in progress: a step that
    passes while others still work leaves its directive nothing to decide (the last
    of them to finish tells it: the chain may be done, or blocked)."""


@attrs.frozen
class TellDependents:
    """A step passed: tell the steps that depend on it."""


@attrs.frozen
class StopSelf:
    """The actor has nothing left to do."""


Effect = (
    RunPlanning
    | RunTask
    | StopStaleAgent
    | Evaluate
    | MergeStep
    | ReviewDirective
    | StartSteps
    | Grant
    | CancelJobs
    | RetireSteps
    | StepAnswered
    | TellDirective
    | TellDependents
    | StopSelf
)


@attrs.frozen(kw_only=True)
class Decision:
    """Changes to commit together, then effects, then the reply (or the error)."""

    changes: tuple[Change, ...] = ()
    effects: tuple[Effect, ...] = ()
    reply: object = None
    """What an engine call returns once the changes are committed."""
    error: DirectorateError | None = None
    """Raised to the caller once the changes are committed."""

    def __add__(self, other: Decision) -> Decision:
        return Decision(
            changes=self.changes + other.changes,
            effects=self.effects + other.effects,
            reply=other.reply if other.reply is not None else self.reply,
            error=other.error or self.error,
        )

    def replying(self, reply: object) -> Decision:
        return attrs.evolve(self, reply=reply)

    def failing(self, error: DirectorateError) -> Decision:
        return attrs.evolve(self, error=error)


NOTHING = Decision()


def refuse(error: DirectorateError) -> Decision:
    """Change nothing and tell the caller why."""
    return Decision(error=error)
