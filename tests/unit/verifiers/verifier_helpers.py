"""Helpers for the verifiers' unit tests (a module, as conftest files cannot be imported)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from process_helpers import process_gone as process_gone
from process_helpers import write_tool as write_tool

from directorate.verifiers import VerificationContext, VerifierResult, VerifierType

PY = sys.executable
VENV_BIN = str(Path(sys.executable).parent)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
            *args,
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


class Stub:
    """A verifier with a fixed outcome, counting its calls."""

    def __init__(
        self,
        name: str,
        *,
        passed: bool = True,
        score: float | None = 1.0,
        weight: float = 1.0,
        required: bool = False,
        output: str = "",
        verifier_type: VerifierType = VerifierType.CUSTOM,
        delay_s: float = 0.0,
    ) -> None:
        self.name = name
        self.passed = passed
        self.score = score
        self.weight = weight
        self.required = required
        self.output = output or f"{name} output"
        self.verifier_type = verifier_type
        self.delay_s = delay_s
        self.calls = 0

    def verify(self, repo_path: Path, ctx: VerificationContext) -> VerifierResult:
        self.calls += 1
        time.sleep(self.delay_s)
        return VerifierResult(
            name=self.name,
            verifier_type=self.verifier_type,
            passed=self.passed,
            score=self.score,
            output=self.output,
            duration_s=self.delay_s,
        )
