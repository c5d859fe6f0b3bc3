"""Helpers for the verifiers' unit tests (a module, as conftest files cannot be imported)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from directorate.verifiers import VerificationContext, VerifierResult, VerifierType

PY = sys.executable
VENV_BIN = str(Path(sys.executable).parent)


def write_tool(folder: Path, name: str, body: str = 'echo "$0 $*"') -> Path:
    """An executable shell script ``folder/name`` (a stand-in for npm, cargo, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    tool = folder / name
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(0o755)
    return tool


def process_gone(pid: int, within_s: float = 3.0) -> bool:
    """Whether ``pid`` is dead (a zombie counts: a container's init may not reap it)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (ProcessLookupError, FileNotFoundError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


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
