"""A real agent subprocess that exits 0 but reports a failure, as Claude Code does:
its attempt fails with the agent's own words, and is not taken for work done."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import AGENTS, wait_for

from directorate.actors import CommandRunner, DirectiveSpec, StepSpec


def usage_agent(tmp_path: Path, steps: dict[str, Any]) -> CommandRunner:
    (tmp_path / "records").mkdir()
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"record_dir": str(tmp_path / "records"), "steps": steps}))
    argv = [sys.executable, str(AGENTS / "usage_agent.py"), str(script)]
    return CommandRunner(argv, timeout_s=60, kill_grace_s=5)


@pytest.mark.timeout(60)
def test_an_error_reported_with_exit_0_fails_the_attempt(
    engine_factory: Any, tmp_path: Path
) -> None:
    runner = usage_agent(
        tmp_path,
        {
            "only": {
                "report": {
                    "subtype": "success",
                    "is_error": True,
                    "result": "Not logged in · Please run /login",
                    "permission_denials": [{"tool_name": "Write"}],
                    "total_cost_usd": 0.0,
                }
            }
        },
    )
    engine = engine_factory(runner=runner)
    directive_id = engine.submit(
        DirectiveSpec(
            title="Denied",
            goal="g",
            autonomy_level="full_auto",
            max_rework_cycles=0,
            steps=[StepSpec(name="only")],
        )
    )
    engine.start_directive(directive_id)
    [task] = wait_for(
        lambda: [
            t
            for t in engine.db.reads.tasks_of_directive(directive_id)
            if t.status not in ("queued", "running")
        ],
        timeout=30,
    )
    assert task.status == "failed" and task.exit_code == 0
    assert task.summary == "Not logged in · Please run /login"
    [finished] = [
        e
        for e in engine.db.reads.events_after(directive_id, 0)
        if e.event_type == "task_finished" and e.data["kind"] == "step"
    ]
    assert finished.data["error"] == "Not logged in · Please run /login"
    assert "1 tool use(s) refused by the agent's permissions" in (task.output_tail or "")
    evaluations = engine.db.reads.evaluations_of_directive(directive_id)
    assert not any(e.passed for e in evaluations)  # not taken for work done


@pytest.mark.timeout(60)
def test_the_plan_file_is_inside_the_planners_folder_and_out_of_git(
    engine_factory: Any, tmp_path: Path
) -> None:
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    git("init", "-q", "-b", "main")
    (repo / "README.md").write_text("a project\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    plan = {"steps": [{"name": "first"}, {"name": "second", "depends_on": ["first"]}]}
    (tmp_path / "records").mkdir()
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"record_dir": str(tmp_path / "records"), "plan": plan}))
    runner = CommandRunner(
        [sys.executable, str(AGENTS / "usage_agent.py"), str(script)], timeout_s=60
    )
    engine = engine_factory(runner=runner, worktree_dir=tmp_path / "worktrees")
    directive_id = engine.submit(
        DirectiveSpec(title="Planned", goal="g", autonomy_level="full_auto", local_path=str(repo))
    )
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, timeout=60) == "completed"
    [planning] = [
        t for t in engine.db.reads.tasks_of_directive(directive_id) if t.kind == "planning"
    ]
    assert planning.plan_file is not None
    assert Path(planning.plan_file).parent == repo / ".directorate"
    assert planning.plan_file in planning.instructions  # the agent is told where
    assert [s.name for s in engine.snapshot(directive_id).steps] == ["first", "second"]
    assert Path(planning.plan_file).exists()  # kept as the record of the plan ...
    assert git("status", "--porcelain", "--untracked-files=all") == ""  # ... out of git
    assert ".directorate/" in (repo / ".git" / "info" / "exclude").read_text().splitlines()
