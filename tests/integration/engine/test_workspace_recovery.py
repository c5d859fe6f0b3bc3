"""An engine killed mid-step: the next attempt starts from the step branch (issue 10)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import AGENTS, Scripted, wait_for
from test_workspaces import git, make_repo

from directorate.actors import DirectiveStatus
from directorate.actors.workspace import branch_name

pytestmark = pytest.mark.integration


def directive_file(tmp_path: Path, repo: Path, script: Path) -> Path:
    path = tmp_path / "directive.toml"
    command = [sys.executable, str(AGENTS / "scripted_agent.py"), str(script)]
    path.write_text(
        'title = "Killed mid-step"\n'
        'goal = "Survive a kill -9 with half-done edits"\n'
        'autonomy_level = "full_auto"\n'
        f"local_path = {json.dumps(str(repo))}\n"
        "[agent]\n"
        f"command = {json.dumps(command)}\n"
        "[[steps]]\n"
        'name = "only"\n'
    )
    return path


@pytest.mark.timeout(120)
def test_a_killed_attempts_edits_are_discarded_and_the_next_starts_from_the_step_branch(
    dsn: str, tmp_path: Path, scripted: Scripted, engine_factory: Any
) -> None:
    repo = make_repo(tmp_path / "repo")
    gate = tmp_path / "gate"  # attempt 1 never passes it: its engine is killed first
    scripted.write(
        {
            "steps": {
                "only": {
                    "write": {"half-done.txt": "attempt 1 was here\n"},
                    "gate": str(gate),
                    "attempts": {"2": {"write": {"done.txt": "attempt 2\n"}, "gate": ""}},
                }
            }
        }
    )
    child = subprocess.Popen(
        [
            sys.executable,
            str(AGENTS / "engine_child.py"),
            dsn,
            str(tmp_path / "logs"),
            str(directive_file(tmp_path, repo, scripted.path)),
        ],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        text=True,
    )
    try:
        assert child.stdout is not None
        directive_id = uuid.UUID(child.stdout.readline().strip())
        worktrees = Path(os.environ["DIRECTORATE_HOME"]) / "worktrees"
        half_done = wait_for(lambda: next(iter(worktrees.glob("*/only/half-done.txt")), None), 30)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout:
            child.stdout.close()

    engine = engine_factory()  # recovers it; the directive names its own agent
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED
    (second,) = [r for r in scripted.step_runs("only") if r["attempt"] == 2]
    assert "half-done.txt" not in second["listing"]  # attempt 1's leftovers are gone
    assert second["workdir"] == str(half_done.parent)  # the same worktree, taken up again
    branch = branch_name(directive_id)
    assert git(repo, "show", f"{branch}:done.txt") == "attempt 2"
    files = git(repo, "ls-tree", "-r", "--name-only", branch).splitlines()
    assert "half-done.txt" not in files
    # Once finished, its worktrees are removed (the branches stay).
    wait_for(lambda: not half_done.parent.exists(), 30)
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
