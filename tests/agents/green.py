"""An always-green verifier, for tests about the engine rather than about checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from directorate.verifiers import VerifierResult, VerifierType


class GreenVerifier:
    name = "always-green"
    verifier_type = VerifierType.CUSTOM
    weight = 1.0
    required = True

    def __init__(self, score: float = 1.0) -> None:
        self.score = score

    def verify(self, repo_path: Path, ctx: Any) -> VerifierResult:
        return VerifierResult(
            name=self.name,
            verifier_type=self.verifier_type,
            passed=True,
            score=self.score,
            output="ok",
            duration_s=0.0,
        )


class ScoredVerifier:
    """Scores steps and the directive review differently (``ctx.step_id`` is None
    for the directive review), to steer the engine down a chosen path."""

    name = "scored"
    verifier_type = VerifierType.CUSTOM
    weight = 1.0
    required = True

    def __init__(self, step_score: float = 1.0, review_score: float = 1.0) -> None:
        self.step_score = step_score
        self.review_score = review_score

    def verify(self, repo_path: Path, ctx: Any) -> VerifierResult:
        score = self.review_score if ctx.step_id is None else self.step_score
        return VerifierResult(
            name=self.name,
            verifier_type=self.verifier_type,
            passed=score >= 0.5,
            score=score,
            output=f"score {score}",
            duration_s=0.0,
        )
