"""The records verifiers exchange: frozen, keyword-only, validated where they enter."""

from __future__ import annotations

import enum
import uuid
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs


class VerifierType(enum.StrEnum):
    TEST = "test"
    LINT = "lint"
    BUILD = "build"
    TYPECHECK = "typecheck"
    CUSTOM = "custom"
    LLM = "llm"


class ConfidenceLevel(enum.StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


def _unit_interval_or_none(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be between 0 and 1, got {value!r}")


@attrs.frozen(kw_only=True)
class VerifierResult:
    """What one verifier found."""

    name: str  #: the verifier's name, unique within one evaluation
    verifier_type: VerifierType = attrs.field(converter=VerifierType)
    passed: bool
    score: float | None = attrs.field(validator=_unit_interval_or_none)  #: None: pass/fail only
    output: str  #: the tail of what the check printed (or the judge's feedback)
    duration_s: float
    #: JSON-safe extras: exit_code, timed_out, junit counts, judge criteria, "unavailable"
    details: dict[str, Any] = attrs.field(factory=dict)
    #: what a judge's session spent, as its tool reported (None: not reported); the
    #: engine adds it to the directive's totals like a task's
    cost_usd: float | None = None
    tokens: int | None = None
    turns: int | None = None

    @property
    def unavailable(self) -> str | None:
        """Why the verifier could not give a verdict (a judge that did not answer), if so."""
        reason = self.details.get("unavailable")
        return str(reason) if reason else None


@attrs.frozen
class AcceptanceCriterion:
    """One of the directive's acceptance criteria, as the judge sees it."""

    id: str
    criterion: str


@attrs.frozen(kw_only=True)
class VerificationContext:
    """What is being judged; ``step_id`` is None for the directive's final review."""

    step_id: uuid.UUID | None = None
    task_id: uuid.UUID | None = None
    modified_files: list[str] = attrs.field(factory=list)  #: relative to the repository
    step_description: str = ""
    acceptance_criteria: list[AcceptanceCriterion] = attrs.field(factory=list)
    directive_goal: str = ""
    base_commit: str | None = None  #: the commit the work started from, for diffs
    #: results of the programmatic tier, filled in by CompositeEvaluator for the judges
    prior_results: list[VerifierResult] = attrs.field(factory=list)


@runtime_checkable
class Verifier(Protocol):
    """Anything with these attributes and ``verify`` is a verifier.

    ``verify`` should not raise (CompositeEvaluator turns an exception into a failed
    result anyway). A ``required`` verifier that fails makes the evaluation red.
    One may also say ``instant = True``: its ``verify`` is pure and quick (no process,
    no I/O), so the engine may judge on the step's own thread, in the write that
    records the agent's report.
    """

    name: str
    verifier_type: VerifierType
    weight: float
    required: bool

    def verify(self, repo_path: Path, ctx: VerificationContext) -> VerifierResult: ...


@attrs.frozen(kw_only=True)
class EvaluationResult:
    """The verdict on one step (or on the whole directive)."""

    id: uuid.UUID = attrs.field(factory=uuid.uuid4)
    passed: bool
    composite_score: float
    confidence_level: ConfidenceLevel
    verifier_results: list[VerifierResult] = attrs.field(factory=list)
    summary: str = ""
    rework_instructions: str | None = None  #: None when green
    criteria_results: list[dict[str, Any]] = attrs.field(factory=list)  #: {id, met, note}


def result_to_json(result: EvaluationResult) -> dict[str, Any]:
    """``result`` as JSON-safe values (uuid and enums as strings)."""
    return {
        "id": str(result.id),
        "passed": result.passed,
        "composite_score": result.composite_score,
        "confidence_level": str(result.confidence_level),
        "summary": result.summary,
        "rework_instructions": result.rework_instructions,
        "criteria_results": [dict(c) for c in result.criteria_results],
        "verifier_results": [
            {
                "name": r.name,
                "verifier_type": str(r.verifier_type),
                "passed": r.passed,
                "score": r.score,
                "output": r.output,
                "duration_s": r.duration_s,
                "details": dict(r.details),
                **_usage(r),
            }
            for r in result.verifier_results
        ],
    }


def _usage(r: VerifierResult) -> dict[str, Any]:
    """A result's spending, when it reported any (a check's result has none)."""
    figures = {"cost_usd": r.cost_usd, "tokens": r.tokens, "turns": r.turns}
    return {k: v for k, v in figures.items() if v is not None}
