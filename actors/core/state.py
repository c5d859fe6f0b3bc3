"""What the decisions decide on: immutable snapshots of database rows.

A ``DirectiveState`` or ``StepState`` is read from the database for each message an
actor handles (one round trip each, see ``directive_state`` and ``step_state`` in
``persistence/sql/queries.sql``). Nothing in them is remembered by an actor between
messages, except the few facts about this process's own running jobs, which the
database cannot know (``reviewing``, ``live_tasks``, ``job``, ``halted``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from directorate.persistence.convert import row_converter
from directorate.persistence.models import (
    Approval,
    ApprovalType,
    Chain,
    Directive,
    Step,
    StepSpec,
    StepStatus,
    Task,
)


@attrs.frozen(kw_only=True)
class Settings:
    """The engine settings decisions depend on."""

    log_dir: Path
    """Where agent logs and plan files go."""
    approval_timeout_s: float | None = None
    """Approvals opened now expire after this long; None: never."""
    worktree_dir: Path | None = None
    """Where steps' worktrees go; None: beside ``log_dir`` (``$DIRECTORATE_HOME``)."""

    @property
    def worktrees(self) -> Path:
        return self.worktree_dir or self.log_dir.parent / "worktrees"


@attrs.frozen(kw_only=True)
class PlanOutcome:
    """A finished planning task's plan as read from its plan file."""

    steps: tuple[StepSpec, ...]
    """The validated steps; the default chain when the plan was unusable."""
    rejected: str | None = None
    """Why the agent's plan was not used (None: it was)."""


@attrs.frozen(kw_only=True)
class DirectiveState:
    """One directive as the database holds it, plus this engine's running jobs."""

    directive: Directive
    chain: Chain | None
    """The current (active) chain; None while planning."""
    steps: tuple[Step, ...]
    """The current chain's steps."""
    approvals: tuple[Approval, ...]
    """Pending approvals."""
    planning: Task | None
    """The latest planning task (without its instructions and output)."""
    superseded_steps: tuple[Step, ...]
    """Passed and blocked steps of the latest superseded chain."""
    now: datetime
    settings: Settings
    plan: PlanOutcome | None = None
    """The latest planning task's plan, read when it has finished and waits to be used."""
    reviewing: bool = False
    """A directive review of the current chain is running in this engine."""
    live_tasks: frozenset[uuid.UUID] = frozenset()
    """Tasks whose agents run in this engine now."""
    halted: bool = False
    """This engine is shutting down: nothing new starts."""

    @classmethod
    def from_row(
        cls, row: Mapping[str, Any], *, now: datetime, settings: Settings
    ) -> DirectiveState:
        def many(kind: type[Any], key: str) -> tuple[Any, ...]:
            return tuple(row_converter.structure(r, kind) for r in row[key] or [])

        planning = row["planning"]
        return cls(
            directive=row_converter.structure(row["directive"], Directive),
            chain=row_converter.structure(row["chain"], Chain) if row["chain"] else None,
            steps=many(Step, "steps"),
            approvals=many(Approval, "approvals"),
            # The query leaves out the instructions: decisions never need them.
            planning=row_converter.structure({**planning, "instructions": ""}, Task)
            if planning
            else None,
            superseded_steps=many(Step, "superseded_steps"),
            now=now,
            settings=settings,
        )

    @classmethod
    def of_draft(cls, directive: Directive, *, now: datetime, settings: Settings) -> DirectiveState:
        """A draft's state: nothing but its row exists before it starts."""
        return cls(
            directive=directive,
            chain=None,
            steps=(),
            approvals=(),
            planning=None,
            superseded_steps=(),
            now=now,
            settings=settings,
        )

    # ----------------------------------------------------------------- derived facts

    def step(self, step_id: uuid.UUID | None) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def pending(self, kind: ApprovalType) -> tuple[Approval, ...]:
        return tuple(a for a in self.approvals if a.approval_type is kind)

    def approval(self, approval_id: uuid.UUID) -> Approval | None:
        return next((a for a in self.approvals if a.id == approval_id), None)

    @property
    def breaker_open(self) -> bool:
        """A circuit breaker tripped and its approval waits for a human."""
        return bool(self.pending(ApprovalType.CIRCUIT_BREAKER))

    @property
    def unavailable_pending(self) -> bool:
        """An agent could not reach its model and a human is asked to retry."""
        return bool(self.pending(ApprovalType.AGENT_UNAVAILABLE))

    @property
    def waiting_on_human(self) -> frozenset[uuid.UUID]:
        """Steps whose review waits for a human."""
        return frozenset(
            a.step_id for a in self.pending(ApprovalType.STEP_REVIEW) if a.step_id is not None
        )

    @property
    def blocked(self) -> dict[str, str]:
        """Blocked steps of the current chain, by name, with why."""
        return _blocked(self.steps)

    @property
    def previously_blocked(self) -> dict[str, str]:
        """How the latest superseded chain failed: its blocked steps, with why."""
        return _blocked(self.superseded_steps)

    @property
    def carried(self) -> dict[str, Step]:
        """Passed steps of the superseded chain, which a new chain keeps as passed."""
        if self.chain is not None:
            return {}
        return {s.name: s for s in self.superseded_steps if s.status is StepStatus.PASSED}

    @property
    def superseded_chain_id(self) -> uuid.UUID | None:
        return self.superseded_steps[0].chain_id if self.superseded_steps else None

    @property
    def awaiting_plan(self) -> bool:
        """The latest planning task finished with a result that no chain holds yet."""
        task = self.planning
        return (
            self.chain is None
            and task is not None
            and task.status.finished
            and task.status != "cancelled"
        )


def _blocked(steps: tuple[Step, ...]) -> dict[str, str]:
    return {s.name: s.status_reason or "blocked" for s in steps if s.status is StepStatus.BLOCKED}


@attrs.frozen(kw_only=True)
class StepState:
    """One step as the database holds it, with what its decisions need around it."""

    step: Step
    directive: Directive
    chain_current: bool
    """The step's chain is its directive's current chain."""
    dependency_statuses: tuple[StepStatus, ...]
    rework_instructions: str | None
    """What the step's last evaluation asked to fix."""
    last_task: Task | None
    """The step's latest task (without its instructions)."""
    review_pending: bool
    """A step_review approval of this step waits for a human."""
    breaker_open: bool
    """A circuit breaker of the directive waits for a human."""
    now: datetime
    settings: Settings
    job: uuid.UUID | None = None
    """The task whose agent or evaluation runs for this step in this engine now."""
    live_tasks: frozenset[uuid.UUID] = frozenset()
    """Tasks whose agents run in this engine now (any actor's)."""
    halted: bool = False
    earlier_tasks: tuple[Task, ...] = ()
    """The step's tasks before ``last_task``, latest first (a few: see
    ``core.unavailable.EARLIER_TASKS``)."""
    unavailable_pending: bool = False
    """An agent of the directive could not reach its model and a human is asked."""
    borrowed: bool = False
    """``directive`` was handed over (by the directive actor's start, by the dependency
    that passed), not read: a dispatch then requires the row as seen (``Seen``)."""

    @classmethod
    def from_row(
        cls,
        row: Mapping[str, Any],
        *,
        now: datetime,
        settings: Settings,
        job: uuid.UUID | None = None,
        live_tasks: frozenset[uuid.UUID] = frozenset(),
        halted: bool = False,
    ) -> StepState:
        last = row["last_task"]
        return cls(
            step=row_converter.structure(row["step"], Step),
            directive=row_converter.structure(row["directive"], Directive),
            chain_current=bool(row["chain_current"]),
            dependency_statuses=tuple(StepStatus(s) for s in row["dependency_statuses"] or []),
            rework_instructions=row["rework_instructions"],
            last_task=row_converter.structure({**last, "instructions": ""}, Task) if last else None,
            review_pending=bool(row["review_pending"]),
            breaker_open=bool(row["breaker_open"]),
            earlier_tasks=tuple(
                row_converter.structure({**t, "instructions": ""}, Task)
                for t in row.get("earlier_tasks") or []
            ),
            unavailable_pending=bool(row.get("unavailable_pending")),
            now=now,
            settings=settings,
            job=job,
            live_tasks=live_tasks,
            halted=halted,
        )

    @property
    def dependencies_passed(self) -> bool:
        return all(s.finished for s in self.dependency_statuses)
