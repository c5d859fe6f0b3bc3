"""Combining verifiers into one verdict: programmatic checks first, then the judges."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs

from .records import (
    ConfidenceLevel,
    EvaluationResult,
    VerificationContext,
    Verifier,
    VerifierResult,
    VerifierType,
)
from .rework import rework_instructions

#: composite scores are rounded to this many decimal places
SCORE_DIGITS = 9


class CompositeEvaluator:
    """Runs ``verifiers`` against a working copy and grades the outcome.

    - Programmatic verifiers run first, at most ``max_parallel`` at a time.
    - A failing *required* verifier makes the result red at once; the LLM tier is
      skipped (a judge cannot outvote a failing test).
    - Otherwise the judges (``verifier_type == llm``) run, seeing those results.
    - The score is the weighted mean of the available results, to 9 decimal places (a
      result with no score counts 1.0 if passed, else 0.0); an unavailable judge is
      left out of it.
    - Level: ``>= green`` green, ``>= yellow`` yellow, else red; passed unless red.
      A judge that was asked and gave no verdict (unavailable, timed out, no JSON)
      caps the level at yellow, with its reason (``capped_level``): work no one
      reviewed is never green on the checks alone.
    - No verifier, or none available: yellow with score 0.0 and "no evidence", so the
      work is neither failed for lack of checks nor waved through as proven.
    """

    def __init__(
        self,
        verifiers: Sequence[Verifier],
        green: float = 0.8,
        yellow: float = 0.5,
        *,
        max_parallel: int = 4,
    ) -> None:
        if not 0.0 <= yellow <= green <= 1.0:
            raise ValueError(
                f"thresholds must satisfy 0 <= yellow <= green <= 1: {yellow}, {green}"
            )
        if max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        self.verifiers = list(verifiers)
        self.green = green
        self.yellow = yellow
        self.max_parallel = max_parallel

    def evaluate(self, repo_path: Path, ctx: VerificationContext) -> EvaluationResult:
        checks = [v for v in self.verifiers if v.verifier_type != VerifierType.LLM]
        judges = [v for v in self.verifiers if v.verifier_type == VerifierType.LLM]
        results = self._run_all(checks, repo_path, ctx)
        failed = _required_failures(checks, results)
        if failed:
            notes = [f"required check failed: {', '.join(failed)}"]
            if judges:
                notes.append("LLM review skipped")
            partial = _weighted_mean(checks, results) or 0.0
            return self._result(ConfidenceLevel.RED, partial, results, notes, [])
        judge_ctx = attrs.evolve(ctx, prior_results=list(results))
        verdicts = self._run_all(judges, repo_path, judge_ctx)
        results += verdicts
        silent = [r for r in verdicts if r.unavailable]
        notes = [f"judge {r.name} unavailable: {r.unavailable}" for r in silent]
        criteria = [c for r in verdicts if not r.unavailable for c in r.details.get("criteria", [])]
        mean = _weighted_mean(checks + judges, results)
        if mean is None:
            notes.insert(0, "no evidence: no verifier gave a verdict")
            return self._result(ConfidenceLevel.YELLOW, 0.0, results, notes, criteria)
        score = mean
        failed = _required_failures(judges, verdicts)
        if failed:
            notes.insert(0, f"required judge failed: {', '.join(failed)}")
            return self._result(ConfidenceLevel.RED, score, results, notes, criteria)
        level = capped_level(self._level(score), unreviewed=bool(silent))
        passed = sum(1 for r in results if r.passed and not r.unavailable)
        counted = sum(1 for r in results if not r.unavailable)
        notes.insert(0, f"{passed} of {counted} verifiers passed, score {score:.2f}")
        if silent and level is ConfidenceLevel.YELLOW:
            notes.append("capped at yellow: the judge gave no verdict")
        return self._result(level, score, results, notes, criteria)

    def _level(self, score: float) -> ConfidenceLevel:
        if score >= self.green:
            return ConfidenceLevel.GREEN
        if score >= self.yellow:
            return ConfidenceLevel.YELLOW
        return ConfidenceLevel.RED

    def _result(
        self,
        level: ConfidenceLevel,
        score: float,
        results: list[VerifierResult],
        notes: list[str],
        criteria: list[dict[str, Any]],
    ) -> EvaluationResult:
        summary = "; ".join(notes)
        return EvaluationResult(
            passed=level is not ConfidenceLevel.RED,
            composite_score=score,
            confidence_level=level,
            verifier_results=results,
            summary=summary,
            rework_instructions=rework_instructions(level, score, results, summary),
            criteria_results=criteria,
        )

    def _run_all(
        self, verifiers: list[Verifier], repo_path: Path, ctx: VerificationContext
    ) -> list[VerifierResult]:
        if len(verifiers) <= 1:
            return [_run_one(v, repo_path, ctx) for v in verifiers]
        workers = min(self.max_parallel, len(verifiers))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verifier") as pool:
            return list(pool.map(lambda v: _run_one(v, repo_path, ctx), verifiers))


def capped_level(level: ConfidenceLevel, *, unreviewed: bool) -> ConfidenceLevel:
    """``level``, lowered to yellow when a configured judge gave no verdict
    (``unreviewed``): the checks alone do not make work green once a review was asked
    for. Red stays red."""
    if unreviewed and level is ConfidenceLevel.GREEN:
        return ConfidenceLevel.YELLOW
    return level


def _run_one(verifier: Verifier, repo_path: Path, ctx: VerificationContext) -> VerifierResult:
    """``verifier.verify``, with an exception turned into a failed result."""
    started = time.monotonic()
    try:
        return verifier.verify(repo_path, ctx)
    except Exception as exc:  # a broken verifier fails its check, not the evaluation
        return VerifierResult(
            name=str(getattr(verifier, "name", type(verifier).__name__)),
            verifier_type=getattr(verifier, "verifier_type", VerifierType.CUSTOM),
            passed=False,
            score=0.0,
            output=f"the verifier raised {type(exc).__name__}: {exc}",
            duration_s=time.monotonic() - started,
            details={"error": type(exc).__name__},
        )


def _required_failures(verifiers: list[Verifier], results: list[VerifierResult]) -> list[str]:
    return [
        r.name
        for v, r in zip(verifiers, results, strict=True)
        if getattr(v, "required", False) and not r.passed and not r.unavailable
    ]


def _weighted_mean(verifiers: list[Verifier], results: list[VerifierResult]) -> float | None:
    """The weighted mean of the available results' scores; None if none is available."""
    pairs = [
        (float(getattr(v, "weight", 1.0)), _score(r))
        for v, r in zip(verifiers, results, strict=True)
        if not r.unavailable
    ]
    if not pairs:
        return None
    total = sum(w for w, _ in pairs)
    if total <= 0:  # all weights zero: every result counts the same
        mean = sum(s for _, s in pairs) / len(pairs)
    else:
        mean = sum(w * s for w, s in pairs) / total
    # Float noise must not drop a score that is exactly at a threshold below it
    # ((1 + 1 + 0.4) / 3 is 0.7999999999999999, which would miss green at 0.8).
    return round(mean, SCORE_DIGITS)


def _score(r: VerifierResult) -> float:
    if r.score is not None:
        return r.score
    return 1.0 if r.passed else 0.0
