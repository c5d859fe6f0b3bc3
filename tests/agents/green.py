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
    instant = True  # pure and in-process: the engine may judge inline (judged_inline)

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
