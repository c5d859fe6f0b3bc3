"""Pytest fixtures for tests that run the real agent CLIs against the loopback server.

Import them into a conftest: ``from loopback.fixtures import *  # noqa: F403``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopback import tools
from loopback.server import LoopbackServer

__all__ = [
    "agent_home",
    "aider_bin",
    "claude_bin",
    "codex_bin",
    "gemini_bin",
    "git_repo",
    "loopback",
    "record_run",
]

# Set (outside DIRECTORATE_*, which the tests' hermetic environment removes) to a
# folder to keep each run's stdout, stderr and argv/env there, as
# tests/agents/recorded/ was made: LOOPBACK_RECORD=tests/agents/recorded pytest ...
RECORD_DIR = os.environ.get("LOOPBACK_RECORD")


@pytest.fixture
def loopback() -> Iterator[LoopbackServer]:
    with LoopbackServer() as server:
        yield server


@pytest.fixture
def claude_bin() -> Path:
    found = tools.binary("claude")
    if found is None:
        pytest.skip(tools.missing_reason("claude"))
    return found


@pytest.fixture
def codex_bin() -> Path:
    found = tools.binary("codex")
    if found is None:
        pytest.skip(tools.missing_reason("codex"))
    return found


@pytest.fixture
def gemini_bin() -> Path:
    found = tools.binary("gemini")
    if found is None:
        pytest.skip(tools.missing_reason("gemini"))
    return found


@pytest.fixture
def aider_bin() -> Path:
    found = tools.binary("aider")
    if found is None:
        pytest.skip(tools.missing_reason("aider"))
    return found


@pytest.fixture
def agent_home(tmp_path: Path) -> Path:
    """HOME for one agent run: no real login, settings or transcripts."""
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A real git repository with one commit (README.md, app.py)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git[:3], "init", "-q", "-b", "main"], check=True)
    (repo / "README.md").write_text("# demo\n")
    (repo / "app.py").write_text('VERSION = "1.0"\n')
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "start"], check=True)
    return repo


def record_run(tool: str, case: str, run: tools.Run, note: str = "") -> None:
    """Keep a run's output under RECORD_DIR/<tool>/<case>.{stdout,stderr,json} (only
    when LOOPBACK_RECORD is set)."""
    if not RECORD_DIR:
        return
    folder = Path(RECORD_DIR) / tool
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{case}.stdout").write_text(run.stdout)
    (folder / f"{case}.stderr").write_text(run.stderr)
    meta = {
        "tool": tool,
        "version": tools.PINNED[tool],
        "case": case,
        "note": note,
        "argv": [Path(run.argv[0]).name, *run.argv[1:]],
        "env": {k: v for k, v in run.env.items() if k != "PATH"},
        "returncode": run.returncode,
        "seconds": round(run.seconds, 2),
    }
    (folder / f"{case}.json").write_text(json.dumps(meta, indent=2) + "\n")
    shared = os.environ.get("LOOPBACK_RECORD_COPY")  # a second place, e.g. /work/recorded
    if shared:
        target = Path(shared) / tool
        target.mkdir(parents=True, exist_ok=True)
        for suffix in ("stdout", "stderr", "json"):
            shutil.copy2(folder / f"{case}.{suffix}", target / f"{case}.{suffix}")
