"""Messages between the engine's actors: one frozen record per message.

Directive actor <- engine: Start, Recover, Pause, Resume, Stop, Regenerate,
AnswerApproval, Tick. Directive actor <- step actors: StepReady, StepPassed,
StepBlocked, StepIdle, CostReported, StepFailed. Step actor <- directive actor:
Begin, RunStep, CancelTask, AnswerReview. Step actor <- step actor:
DependencyPassed. Step actor <- worker pool: TaskFinished, EvaluationFinished.
Directive actor <- worker pool: PlanningFinished, DirectiveReviewed.
"""

from __future__ import annotations

import uuid
from typing import Any

import attrs

# ----------------------------------------------------------------- engine -> directive


@attrs.frozen
class Start:
    """Begin a draft directive: plan it, or go straight to its explicit steps."""


@attrs.frozen
class Recover:
    """Rebuild a live directive from the database after a restart (DESIGN §9)."""


@attrs.frozen
class Pause:
    actor_id: str | None = None


@attrs.frozen
class Resume:
    actor_id: str | None = None


@attrs.frozen
class Stop:
    actor_id: str | None = None
    reason: str = "stopped"


@attrs.frozen
class Regenerate:
    reason: str
    actor_id: str | None = None


@attrs.frozen
class AnswerApproval:
    approval_id: uuid.UUID
    approved: bool
    responded_by: str
    note: str | None = None
    raise_limit: dict[str, float] | None = None
    """For a circuit breaker: the limit the approver raises (e.g. max_total_cost_usd)."""


@attrs.frozen
class Tick:
    """Periodic: wall-time breaker and approval expiry."""


@attrs.frozen
class Halt:
    """Engine shutdown: cancel running tasks, leave the database as it is."""


# ----------------------------------------------------------------- step -> directive


@attrs.frozen
class StepReady:
    """The step may run (its dependencies passed); the directive grants it when allowed."""

    step_id: uuid.UUID


@attrs.frozen
class StepPassed:
    step_id: uuid.UUID


@attrs.frozen
class StepBlocked:
    step_id: uuid.UUID
    reason: str


@attrs.frozen
class StepIdle:
    """The step's task ended without a result to judge (cancelled); it is not running."""

    step_id: uuid.UUID


@attrs.frozen
class StepWaiting:
    """The step waits on a human (an approval); it is not running."""

    step_id: uuid.UUID


@attrs.frozen
class CostReported:
    total_cost_usd: float


@attrs.frozen
class StepFailed:
    """A step actor crashed (supervision)."""

    step_id: uuid.UUID
    error: str


# ----------------------------------------------------------------- directive -> step


@attrs.frozen
class Begin:
    """Sent once every step actor exists: who to tell when this step passes."""

    step_refs: dict[uuid.UUID, Any]


@attrs.frozen
class RunStep:
    pass


@attrs.frozen
class CancelTask:
    reason: str


@attrs.frozen
class AnswerReview:
    approval_id: uuid.UUID
    approved: bool
    responded_by: str
    note: str | None = None
    status: str = "approved"


# ----------------------------------------------------------------- step -> step


@attrs.frozen
class DependencyPassed:
    step_id: uuid.UUID


# ----------------------------------------------------------------- pool -> actors


@attrs.frozen
class TaskFinished:
    task_id: uuid.UUID
    result: Any
    """A runners.TaskResult."""


@attrs.frozen
class EvaluationFinished:
    task_id: uuid.UUID
    outcome: Any
    """An evaluation.Judgement."""


@attrs.frozen
class PlanningFinished:
    task_id: uuid.UUID
    result: Any


@attrs.frozen
class DirectiveReviewed:
    outcome: Any
    """An evaluation.Judgement, or the exception the review raised."""
    chain_id: uuid.UUID | None = None
    """The chain reviewed: a review of a chain since superseded is dropped."""
