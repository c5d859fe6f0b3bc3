"""Judging a step's work with the verifiers package (runs in the evaluation pool)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import attrs

from directorate.persistence.errors import InvalidInput
from directorate.persistence.models import ConfidenceLevel, Directive, Step, TaskStatus
from directorate.persistence.validation import strip_nul

from .context import EngineConfig

TAIL_CHARS = 4000


@attrs.frozen(kw_only=True)
class Judgement:
    """One evaluation, ready to be stored (programmatic and LLM results split as in the seed)."""

    evaluation_id: uuid.UUID
    passed: bool
    composite_score: float
    confidence_level: ConfidenceLevel
    programmatic_results: list[dict[str, Any]] = attrs.field(factory=list)
    llm_results: list[dict[str, Any]] = attrs.field(factory=list)
    criteria_results: list[dict[str, Any]] = attrs.field(factory=list)
    summary: str = ""
    rework_instructions: str | None = None


def verifier_settings(config: EngineConfig, directive: Directive) -> dict[str, Any]:
    return directive.verifier_config or config.verifier_config or {"auto_detect": True}


def check_verifier_config(
    settings: dict[str, Any] | None, repo_path: str | None, *, where: str = ""
) -> None:
    """Reject bad ``[verifiers]`` configuration (of the directive, or of the step
    named by ``where``) before it is stored, as InvalidInput."""
    if not settings:
        return
    from directorate.verifiers import InvalidVerifierConfig, build_verifiers

    try:
        build_verifiers(settings, Path(repo_path or "."))
    except InvalidVerifierConfig as exc:
        raise InvalidInput(f"{where}.{exc}" if where else str(exc)) from exc


def judged_inline(config: EngineConfig, directive: Directive, workdir: Path | None) -> bool:
    """Whether judging a step runs nothing and waits for nothing: no repository to
    check (so no configured check and no diff), and only verifiers that say
    ``instant = True`` (pure, in-process). Then the step judges its agent's report on
    its own thread, and the verdict goes into the write that records the report: a
    step's "evaluating" need not be durable on its own when nothing runs meanwhile."""
    repo = workdir or (Path(directive.local_path) if directive.local_path else None)
    if repo is not None and repo.is_dir():
        return False
    return all(getattr(v, "instant", False) is True for v in config.verifiers or [])


def judge(
    config: EngineConfig,
    directive: Directive,
    step: Step | None,
    *,
    task_id: uuid.UUID | None,
    task_status: TaskStatus,
    exit_code: int | None,
    output_tail: str,
    base_commit: str | None = None,
    workdir: Path | None = None,
) -> Judgement:
    """Evaluate a step (or, with ``step=None``, the whole directive), in ``workdir``
    (a step's worktree) or else the directive's ``local_path``."""
    if task_status is not TaskStatus.SUCCEEDED:
        return _agent_failed(task_status, exit_code, output_tail)

    from directorate.verifiers import (
        AcceptanceCriterion,
        CompositeEvaluator,
        VerificationContext,
        Verifier,
        VerifierType,
        build_verifiers,
        git_changed_files,
        result_to_json,
    )

    repo = workdir or (Path(directive.local_path) if directive.local_path else None)
    verifiers: list[Verifier] = []
    if repo is not None and repo.is_dir():
        settings = dict(verifier_settings(config, directive))
        if step is not None and step.verifier_config:
            settings.update(step.verifier_config)
        verifiers.extend(build_verifiers(settings, repo))
    verifiers.extend(config.verifiers or [])
    context = VerificationContext(
        step_id=step.id if step else None,
        task_id=task_id,
        modified_files=git_changed_files(repo, base_commit) if repo and repo.is_dir() else [],
        step_description=(step.task_plan or step.description) if step else directive.goal,
        acceptance_criteria=[
            AcceptanceCriterion(id=c.id, criterion=c.criterion)
            for c in directive.acceptance_criteria
        ],
        directive_goal=directive.goal,
        base_commit=base_commit,
    )
    evaluator = CompositeEvaluator(
        verifiers,
        green=directive.confidence_threshold_green,
        yellow=directive.confidence_threshold_yellow,
    )
    result = evaluator.evaluate(repo or Path("."), context)
    as_json = result_to_json(result)
    results = as_json.get("verifier_results", [])
    # What verifiers and judges say is outside text: a judge's JSON may carry an
    # escaped NUL, which PostgreSQL refuses in text and jsonb.
    results = strip_nul(results)
    return Judgement(
        evaluation_id=uuid.uuid4(),
        passed=bool(result.passed),
        composite_score=float(result.composite_score),
        confidence_level=ConfidenceLevel(str(result.confidence_level)),
        programmatic_results=[r for r in results if r.get("verifier_type") != VerifierType.LLM],
        llm_results=[r for r in results if r.get("verifier_type") == VerifierType.LLM],
        criteria_results=strip_nul(list(as_json.get("criteria_results") or [])),
        summary=strip_nul(result.summary),
        rework_instructions=strip_nul(result.rework_instructions),
    )


def _agent_failed(status: TaskStatus, exit_code: int | None, output_tail: str) -> Judgement:
    """No point verifying work whose agent failed: red, with what the agent said."""
    how = "timed out" if status is TaskStatus.TIMED_OUT else f"ended {status}"
    code = f" (exit status {exit_code})" if exit_code is not None else ""
    tail = output_tail[-TAIL_CHARS:]
    return red_judgement(
        "agent",
        tail,
        summary=f"the agent's task {how}{code}",
        rework_instructions=f"The agent's task {how}{code}. Its output ends with:\n{tail}",
    )


def red_judgement(check: str, output: str, *, summary: str, rework_instructions: str) -> Judgement:
    """Red without running the verifiers: one failed ``check`` saying why."""
    return Judgement(
        evaluation_id=uuid.uuid4(),
        passed=False,
        composite_score=0.0,
        confidence_level=ConfidenceLevel.RED,
        programmatic_results=[
            {
                "name": check,
                "verifier_type": "custom",
                "passed": False,
                "score": 0.0,
                "output": output,
            }
        ],
        summary=summary,
        rework_instructions=rework_instructions,
    )
