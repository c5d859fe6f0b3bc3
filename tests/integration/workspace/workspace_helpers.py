"""Helpers for the workspace tests (a module, as conftest files cannot be imported)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

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


def write_tool(folder: Path, name: str, body: str) -> Path:
    """An executable shell script ``folder/name`` (a stand-in for gh or ssh)."""
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


def wait_for_file(path: Path, within_s: float = 5.0) -> str:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")
