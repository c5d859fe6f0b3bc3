"""Fixtures for the workspace tests: real git repositories in temporary folders, no
database (git is a real subprocess here, never a mock)."""

from __future__ import annotations

from pathlib import Path

import pytest
from workspace_helpers import DIRECTIVE, Steps, make_repository

from directorate.actors import workspace as ws


@pytest.fixture(autouse=True)
def no_user_git_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No global git configuration: the package must not need one (no identity, no
    defaultBranch), and the caller's must not change what the tests see."""
    home = tmp_path / "git-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def user_repo(tmp_path: Path) -> Path:
    """The user's repository: a few files on main, one commit, checked out and clean."""
    return make_repository(
        tmp_path / "user",
        {
            "README.md": "# project\n",
            "app.py": "def greet():\n    return 'hello'\n",
            "lib/util.py": "VALUE = 1\n",
            ".gitignore": ".env\n*.log\nnode_modules/\n",
        },
    )


@pytest.fixture
def repo(user_repo: Path) -> ws.Repository:
    found = ws.find_repository(user_repo)
    assert found is not None
    return found


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """Stands for $DIRECTORATE_HOME: the worktrees live under it, outside the repository."""
    return tmp_path / "directorate-home"


@pytest.fixture
def result(repo: ws.Repository) -> ws.Branch:
    """The directive's result branch, made from main's HEAD."""
    base = ws.resolve_base(repo)
    return ws.create_branch(repo, ws.branch_name(DIRECTIVE), base.sha)


@pytest.fixture
def steps(repo: ws.Repository, home: Path, result: ws.Branch) -> Steps:
    return Steps(repo, home, result)
