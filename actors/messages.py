"""Messages between the engine's actors: one frozen record per message.

Directive actor <- engine: Start, Recover, Pause, Resume, Stop, Regenerate,
AnswerApproval, Tick, Halt. Directive actor <- its step actors: StepChanged,
StepActorFailed. Directive actor <- worker pools: PlanningFinished,
DirectiveReviewed, StaleAgentStopped. Step actor <- directive actor: Begin, RunStep,
CancelTask, ReviewAnswered, Retire. Step actor <- step actor: DependencyPassed. Step
actor <- worker pools: TaskFinished, EvaluationFinished, StaleAgentStopped.

Every message is told, never asked between actors; the engine asks its directive
actors (with a timeout) so that a refused request reaches the caller.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from directorate.persistence.models import ApprovalStatus, Directive, Step
from directorate.verifiers.stale_agents import StaleAgentCheck

from .evaluation import Judgement
from .runners import TaskResult
from .workspace import Conflict, Merged

if TYPE_CHECKING:
    import pykka

# ----------------------------------------------------------------- engine -> directive


@attrs.frozen
class Start:
    """Begin a draft directive: plan it, or go straight to its explicit steps."""

    draft: Directive | None = attrs.field(default=None, eq=False, repr=False)
    """The draft as the engine has just read it (``start_many`` reads a thousand at
    once), so that the actor need not read it again; None: the actor reads it. Only
    the first decision uses it: the start's write is guarded on the draft status, so a
    draft that moved meanwhile conflicts, and the decision is made again from a read."""


@attrs.frozen
class Recover:
    """Take up a live directive from the database (start-up, or a fresh actor)."""


@attrs.frozen
class Pause:
    by: str | None = None
    """Who asked; None: the engine."""


@attrs.frozen
class Resume:
    by: str | None = None
    """Who asked; None: the engine."""


@attrs.frozen
class Stop:
    by: str | None = None
    """Who asked; None: the engine."""


@attrs.frozen
class Regenerate:
    reason: str
    """Why a new chain is planned (the planning agent is told)."""
    by: str | None = None
    """Who asked; None: the engine."""


@attrs.frozen
class AnswerApproval:
    approval_id: uuid.UUID
    """The approval answered."""
    approved: bool
    """Yes or no."""
    by: str | None
    """Who answered; None: the engine (an expiry)."""
    note: str | None = None
    """The answer's note."""
    raise_limit: Mapping[str, float] | None = None
    """For a circuit breaker: the new limit by field (e.g. ``max_total_cost_usd``)."""
    status: ApprovalStatus | None = None
    """The status recorded; None: approved or denied as ``approved`` says."""


@attrs.frozen
class Tick:
    """Periodic: expired approvals and the wall-time breaker."""


@attrs.frozen
class Halt:
    """Engine shutdown: cancel running agents, start nothing new; the database stays."""


@attrs.frozen
class LeaseGone:
    """Another engine holds the directive's lease now: stop driving it, at once."""

    reason: str


# ----------------------------------------------------------------- step -> directive


@attrs.frozen
class StepChanged:
    """A step's state changed (ready, passed, blocked, waiting, cost reported)."""

    step_id: uuid.UUID
    """The step that changed."""


@attrs.frozen
class StepActorFailed:
    """A step actor crashed (supervision)."""

    step_id: uuid.UUID
    """The crashed actor's step."""
    error: str
    """The exception, as one line."""


# ----------------------------------------------------------------- directive -> step


@attrs.frozen
class Begin:
    """Take up the step (start or restart): who its peers are."""

    peers: Mapping[uuid.UUID, pykka.ActorRef[pykka.Actor]]
    """Step actors of the same chain by step id (to tell dependents)."""
    waiting_on: frozenset[uuid.UUID] = frozenset()
    """Dependencies that had not passed when the directive read the chain: until each
    has told ``DependencyPassed`` the step has nothing to do, so nothing to read."""
    step: Step | None = attrs.field(default=None, eq=False, repr=False)
    """The step's row as the directive read or wrote it: one never run yet (attempt
    0) needs no read for its first decision, given a directive row (below, or the
    last ``DependencyPassed``'s). None: the step reads."""
    directive: Directive | None = attrs.field(default=None, eq=False, repr=False)
    """The directive's row as the write that made the chain left it (a start on
    explicit steps), for a step with nothing to wait for; None: not known whole."""


@attrs.frozen
class RunStep:
    """The step may run now (the directive is active and no breaker is open)."""


@attrs.frozen
class CancelTask:
    reason: str
    """Why the running agent is stopped."""


@attrs.frozen
class ReviewAnswered:
    """A human answered the step's review; the directive committed the answer."""


@attrs.frozen
class MergeFinished:
    """The step's branch merged into the result branch, or why it did not (a
    conflict, or git's one-line reason)."""

    task_id: uuid.UUID
    outcome: Merged | Conflict | str


@attrs.frozen
class Retire:
    """The step's chain no longer runs: stop once no job of ours is in flight."""


# ----------------------------------------------------------------- step -> step


@attrs.frozen
class DependencyPassed:
    step_id: uuid.UUID
    """The dependency that passed."""
    directive: Directive | None = attrs.field(default=None, eq=False, repr=False)
    """Its directive's row as the dependency's last write left it (its totals as that
    write returned them): the dependent decides its dispatch on it, which requires
    the totals and limits unchanged (``core.changes.Seen``), rather than reading."""


# ----------------------------------------------------------------- pools -> actors


@attrs.frozen
class TaskFinished:
    task_id: uuid.UUID
    """The task the agent ran."""
    result: TaskResult
    """Its outcome (a crashed job arrives as a failed result)."""


@attrs.frozen
class EvaluationFinished:
    task_id: uuid.UUID
    """The task judged."""
    judgement: Judgement
    """The verdict (crashed verifiers arrive as a red judgement)."""


@attrs.frozen
class PlanningFinished:
    task_id: uuid.UUID
    """The planning task."""
    result: TaskResult
    """Its outcome (a crashed job arrives as a failed result)."""


@attrs.frozen
class DirectiveReviewed:
    chain_id: uuid.UUID
    """The chain reviewed: a review of a chain since superseded is dropped."""
    judgement: Judgement
    """The verdict (a crashed review arrives as a red judgement)."""


@attrs.frozen
class StaleAgentStopped:
    task_id: uuid.UUID
    """The unfinished task of an engine now gone."""
    check: StaleAgentCheck
    """What was found of its agent on this host, and done (a failed check says why)."""


DirectiveMessage = (
    Start
    | Recover
    | Pause
    | Resume
    | Stop
    | Regenerate
    | AnswerApproval
    | Tick
    | StepChanged
    | StepActorFailed
    | PlanningFinished
    | DirectiveReviewed
    | StaleAgentStopped
)
"""What the directive decisions decide on (``Halt`` is handled by the actor alone)."""

StepMessage = (
    Begin
    | DependencyPassed
    | RunStep
    | TaskFinished
    | EvaluationFinished
    | ReviewAnswered
    | MergeFinished
    | StaleAgentStopped
)
"""What the step decisions decide on (``CancelTask``, ``Retire`` are the actor's)."""
