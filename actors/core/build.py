"""Building the records a decision creates: planning tasks, chains, approvals."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from directorate.persistence.models import (
    ApprovalType,
    Step,
    StepSpec,
    StepStatus,
    Task,
    TaskKind,
    TaskStatus,
    layered_layout,
)

from ..planning import planning_instructions
from .changes import ApprovalOpened, ChainCreated
from .escalation import remaining_budget
from .state import DirectiveState

PLAN_FOLDER = ".directorate"
"""Where in its working folder the planning agent writes its plan: a place an agent
confined to that folder may write (Claude Code's acceptEdits, Codex's workspace-write),
kept out of git (``planning.prepare_plan_file``)."""


def plan_file_for(local_path: str | None, log_dir: Path, task_id: uuid.UUID) -> str:
    """The plan file of a planning task: inside the folder it works in (``local_path``),
    else beside its log."""
    folder = Path(local_path) / PLAN_FOLDER if local_path else log_dir
    return str(folder / f"plan-{task_id.hex[:8]}.json")


def planning_task(state: DirectiveState, *, replan_context: str | None = None) -> Task:
    """The next planning task of the directive (numbered after the latest one)."""
    directive = state.directive
    attempt = (state.planning.attempt + 1) if state.planning else 1
    task_id = uuid.uuid4()
    log_dir = state.settings.log_dir / str(directive.id)
    plan_file = plan_file_for(directive.local_path, log_dir, task_id)
    return Task(
        id=task_id,
        directive_id=directive.id,
        kind=TaskKind.PLANNING,
        attempt=attempt,
        status=TaskStatus.RUNNING,
        instructions=planning_instructions(
            directive, replan_context=replan_context, plan_file=plan_file
        ),
        workdir=directive.local_path or str(log_dir),
        log_path=str(log_dir / f"planning-{attempt}-{task_id.hex[:8]}.log"),
        plan_file=plan_file,
        budget_usd=remaining_budget(directive),
        started_at=state.now,
    )


def replan_context(reason: str, kept: Sequence[str], blocked: Mapping[str, str]) -> str:
    """What the planning agent is told when it plans a chain again."""
    return (
        f"A previous chain was abandoned: {reason}.\n"
        f"Steps that passed and are kept (do not redo them; you may depend on them by "
        f"name): {', '.join(kept) or '(none)'}.\n"
        f"Steps that were blocked: "
        f"{'; '.join(f'{k}: {v}' for k, v in blocked.items()) or '(none)'}."
    )


def regeneration_context(state: DirectiveState) -> str | None:
    """The replan context of a directive planning after its chain was superseded."""
    if state.superseded_chain_id is None:
        return None
    return replan_context("regenerating the chain", sorted(state.carried), state.previously_blocked)


def new_chain(
    state: DirectiveState, specs: Sequence[StepSpec], *, rationale: str | None
) -> ChainCreated:
    """A chain from planned steps; passed steps of the superseded chain join it as
    passed, replacing planned steps of the same name."""
    directive = state.directive
    carried = state.carried
    kept = [
        StepSpec(
            name=s.name,
            step_type=s.step_type,
            description=s.description,
            task_plan=s.task_plan,
            verifiers=s.verifier_config,
        )
        for s in carried.values()
    ]
    everything = kept + [s for s in specs if s.name not in carried]
    chain_id = uuid.uuid4()
    ids = {s.name: uuid.uuid4() for s in everything}
    positions = layered_layout(everything)
    steps = []
    for spec in everything:
        x, y = positions[spec.name]
        old = carried.get(spec.name)
        extra: dict[str, Any] = {}
        if old is not None:
            extra = {
                "status": StepStatus.PASSED,
                "attempt": old.attempt,
                "rework_count": old.rework_count,
                "confidence_score": old.confidence_score,
                "confidence_level": old.confidence_level,
                "last_evaluation_id": old.last_evaluation_id,
            }
        steps.append(
            Step(
                id=ids[spec.name],
                chain_id=chain_id,
                directive_id=directive.id,
                name=spec.name,
                step_type=spec.step_type,
                description=spec.description,
                task_plan=spec.task_plan or spec.description or None,
                depends_on=[ids[d] for d in spec.depends_on if d in ids],
                requirement_ids=list(spec.requirement_ids),
                verifier_config=spec.verifiers,
                editor_x=x,
                editor_y=y,
                **extra,
            )
        )
    return ChainCreated(
        chain_id=chain_id,
        generation=directive.chain_generation_count + 1,
        name=f"{_slug(directive.title)}-chain",
        description=f"Execution plan for: {directive.goal}",
        rationale=rationale,
        steps=tuple(steps),
        carried=tuple(sorted(carried)),
    )


def approval(
    state: DirectiveState,
    kind: ApprovalType,
    description: str,
    context: Mapping[str, Any],
    *,
    step_id: uuid.UUID | None = None,
) -> ApprovalOpened:
    timeout = state.settings.approval_timeout_s
    return ApprovalOpened(
        approval_id=uuid.uuid4(),
        kind=kind,
        description=description,
        context=context,
        step_id=step_id,
        expires_at=state.now + timedelta(seconds=timeout) if timeout else None,
    )


def _slug(title: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in title.lower()).split()) or "chain"
