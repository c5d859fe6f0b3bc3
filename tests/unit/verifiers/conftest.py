"""Fixtures for the verifiers' unit tests: real subprocesses and git repositories, no database."""

from __future__ import annotations

from pathlib import Path

import pytest
from verifier_helpers import git

from directorate.verifiers import VerificationContext


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one commit holding a.txt, b.txt and c.txt."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    for name in ("a.txt", "b.txt", "c.txt"):
        (path / name).write_text(f"{name}\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def ctx() -> VerificationContext:
    return VerificationContext(step_description="do the thing", directive_goal="the goal")
