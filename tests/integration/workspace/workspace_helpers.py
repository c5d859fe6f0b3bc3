"""Helpers for the workspace tests (a module, as conftest files cannot be imported)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from process_helpers import process_gone as process_gone
from process_helpers import write_tool as write_tool

from directorate.actors import workspace as ws

#: the tests' own commits, on a machine that may have no git identity configured
USER_ENV = {
    "GIT_AUTHOR_NAME": "A User",
    "GIT_AUTHOR_EMAIL": "user@example.com",
    "GIT_COMMITTER_NAME": "A User",
    "GIT_COMMITTER_EMAIL": "user@example.com",
}


def git(path: Path, *args: str, check: bool = True) -> str:
    """Run git in ``path`` as the user would; its stdout, stripped."""
    done = subprocess.run(
        ["git", "-C", str(path), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **USER_ENV},
        check=False,
        timeout=60,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_repository(path: Path, files: dict[str, str]) -> Path:
    """A repository at ``path`` on ``main`` with one commit of ``files``."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "--initial-branch=main")
    for name, text in files.items():
        write(path / name, text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def show(path: Path, rev: str, name: str) -> str | None:
    """The content of ``name`` at ``rev``, None if it is not there."""
    done = subprocess.run(
        ["git", "-C", str(path), "show", f"{rev}:{name}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout if done.returncode == 0 else None


def files_at(path: Path, rev: str) -> list[str]:
    return sorted(git(path, "ls-tree", "-r", "--name-only", rev).splitlines())


def wait_for_file(path: Path, within_s: float = 5.0) -> str:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


DIRECTIVE = "1a2b3c4d"
"""The short id of the directive the workspace tests work for."""


class Steps:
    """Makes a step's worktree from the result branch as it stands."""

    def __init__(self, repo: ws.Repository, home: Path, result: ws.Branch) -> None:
        self.repo, self.home, self.result = repo, home, result

    def worktree(self, step: str) -> ws.Worktree:
        start = git(self.repo.toplevel, "rev-parse", f"refs/heads/{self.result.name}")
        return ws.ensure_worktree(
            self.repo,
            ws.worktree_path(self.home, DIRECTIVE, step),
            ws.branch_name(DIRECTIVE, step),
            start,
        )
