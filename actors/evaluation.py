"""Judging a step's work with the verifiers package (runs in the evaluation pool)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from directorate.persistence.errors import InvalidInput
from directorate.persistence.models import ConfidenceLevel, Directive, Step, StepType, TaskStatus
from directorate.persistence.validation import strip_nul

from .context import EngineConfig

TAIL_CHARS = 4000
NO_CHANGE_CHECK = "no-change"
"""The check a step fails when its agent changed nothing (named in a block reason)."""
ALLOWS_NO_CHANGE = frozenset({StepType.RESEARCH, StepType.REVIEW, StepType.TEST})
"""Step types whose work may leave the repository as it was: they read and report,
or run and verify (the default chain's last step, "Test and verify the
implementation", may rightly find nothing to add)."""


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
    cost_usd: float = 0.0
    """What the verifiers' sessions (the judge's) spent, as they reported it: the
    engine adds it to the directive's totals with the evaluation."""
    tokens: int | None = None
    """Tokens the judges reported (None: none reported any)."""
    turns: int | None = None

    @property
    def spent(self) -> bool:
        return self.cost_usd > 0 or bool(self.tokens) or bool(self.turns)


def changed_nothing(step_type: StepType | None, changed: list[str] | None) -> bool:
    """Whether a step's work is nothing where something was asked for: its diff since
    it started is known to be empty (``changed == []``; None is not known) and its
    type is not one that may change nothing (research, review). Such work is red, not
    judged: checks that passed before the agent started prove nothing of its work."""
    return step_type is not None and step_type not in ALLOWS_NO_CHANGE and changed == []


def _changed_nothing(step: Step, base_commit: str | None, output_tail: str) -> Judgement:
    """Red: the agent changed nothing, and the rework instructions say so."""
    tail = output_tail[-TAIL_CHARS:].strip() or "(no output)"
    since = f" ({base_commit[:12]})" if base_commit else ""
    summary = (
        f"the agent changed nothing: the step's work has no difference from where it "
        f"started{since}, and a {step.step_type} step must change the repository"
    )
    instructions = (
        f"The agent changed nothing: the working copy has no difference from where the "
        f"step started{since}, so there is no work to verify. Make the changes this "
        f"{step.step_type} step asks for by editing the files in your working copy (what "
        "you leave there is committed for you). If something stopped you from editing "
        "(a permission refused, a tool you may not use), say so plainly in your answer.\n\n"
        f"Your last output ends with:\n{tail}"
    )
    return red_judgement(NO_CHANGE_CHECK, tail, summary=summary, rework_instructions=instructions)


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
    denials: int = 0,
) -> Judgement:
    """Evaluate a step (or, with ``step=None``, the whole directive), in ``workdir``
    (a step's worktree) or else the directive's ``local_path``. ``denials``, the tool
    uses the agent's permissions refused, are named in the verdict's summary."""
    judgement = _judged(
        config,
        directive,
        step,
        task_id=task_id,
        task_status=task_status,
        exit_code=exit_code,
        output_tail=output_tail,
        base_commit=base_commit,
        workdir=workdir,
    )
    if denials <= 0:
        return judgement
    refused = f"{denials} tool use(s) were refused by the agent's permissions"
    summary = f"{judgement.summary}; {refused}" if judgement.summary else refused
    return attrs.evolve(judgement, summary=summary)


def _judged(
    config: EngineConfig,
    directive: Directive,
    step: Step | None,
    *,
    task_id: uuid.UUID | None,
    task_status: TaskStatus,
    exit_code: int | None,
    output_tail: str,
    base_commit: str | None,
    workdir: Path | None,
) -> Judgement:
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
        git_changes_since,
        result_to_json,
    )

    repo = workdir or (Path(directive.local_path) if directive.local_path else None)
    here = repo is not None and repo.is_dir()
    # Only a step's own diff tells (a directive review judges the whole result).
    changes = git_changes_since(repo, base_commit) if here and step is not None else None
    if step is not None and changed_nothing(step.step_type, changes):
        return _changed_nothing(step, base_commit, output_tail)
    verifiers: list[Verifier] = []
    if repo is not None and here:
        settings = dict(verifier_settings(config, directive))
        if step is not None and step.verifier_config:
            settings.update(step.verifier_config)
        verifiers.extend(build_verifiers(settings, repo))
    verifiers.extend(config.verifiers or [])
    context = VerificationContext(
        step_id=step.id if step else None,
        task_id=task_id,
        modified_files=changes
        if changes is not None
        else (git_changed_files(repo, base_commit) if repo and here else []),
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
        **_spent(result.verifier_results),
    )


def _spent(results: Sequence[Any]) -> dict[str, Any]:
    """What the verifiers reported spending (a judge's session), added up: cost in
    dollars, and tokens and turns where any reported them."""
    costs = [r.cost_usd for r in results if r.cost_usd is not None]
    tokens = [r.tokens for r in results if r.tokens is not None]
    turns = [r.turns for r in results if r.turns is not None]
    return {
        "cost_usd": max(0.0, float(sum(costs))),
        "tokens": sum(tokens) if tokens else None,
        "turns": sum(turns) if turns else None,
    }


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
