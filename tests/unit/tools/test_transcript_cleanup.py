"""What a tool persisted for a directive's sessions goes with its worktrees (issue 15
point 6): Claude Code's project folder per worktree, Codex's rollout files by thread,
Gemini CLI's project folders per worktree; Aider writes none."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from directorate.actors.workspaces import remove_transcripts
from directorate.persistence.models import AgentSpec, Task, TaskKind


def task(workdir: Path, session: str | None) -> Task:
    return Task(
        id=uuid.uuid4(),
        directive_id=uuid.uuid4(),
        kind=TaskKind.STEP,
        instructions="x",
        workdir=str(workdir),
        session_id=session,
    )


def test_claude_code_project_folders_of_the_worktrees_are_removed(tmp_path: Path) -> None:
    config, worktrees = tmp_path / "claude", tmp_path / "worktrees" / "d1"
    mine = worktrees / "step-a"
    other = tmp_path / "elsewhere"  # a project of the user's: never touched
    for folder in (mine, other):
        escaped = "".join(c if c.isalnum() else "-" for c in str(folder))
        (config / "projects" / escaped).mkdir(parents=True)
        (config / "projects" / escaped / "s.jsonl").write_text("{}")
    agent = AgentSpec(kind="claude-code", env={"CLAUDE_CONFIG_DIR": str(config)})
    event = remove_transcripts(agent, [task(mine, "s"), task(other, "t")], worktrees)
    assert event == ("transcripts_removed", {"kind": "claude-code", "count": 1})
    left = sorted(p.name for p in (config / "projects").iterdir())
    assert left == ["".join(c if c.isalnum() else "-" for c in str(other))]


def test_codex_rollouts_of_the_directive_sessions_are_removed(tmp_path: Path) -> None:
    home, worktrees = tmp_path / "codex", tmp_path / "worktrees" / "d1"
    day = home / "sessions" / "2026" / "12" / "03"
    day.mkdir(parents=True)
    ours = day / "rollout-2026-12-03T10-00-00-01a2-ours.jsonl"
    theirs = day / "rollout-2026-12-03T10-00-00-01a2-theirs.jsonl"
    for path in (ours, theirs):
        path.write_text("{}")
    agent = AgentSpec(kind="codex", env={"CODEX_HOME": str(home)})
    event = remove_transcripts(agent, [task(worktrees / "step-a", "01a2-ours")], worktrees)
    assert event == ("transcripts_removed", {"kind": "codex", "count": 1})
    assert not ours.exists() and theirs.exists()


def test_gemini_project_folders_of_the_worktrees_are_removed(tmp_path: Path) -> None:
    home, worktrees = tmp_path / "gemini", tmp_path / "worktrees" / "d1"
    mine, other = worktrees / "step-a", tmp_path / "elsewhere"
    runtime = home / ".gemini"
    for name in ("step-a", "elsewhere"):
        (runtime / "tmp" / name / "chats").mkdir(parents=True)
        (runtime / "tmp" / name / "chats" / "session-x.jsonl").write_text("{}")
    (runtime / "history" / "step-a").mkdir(parents=True)
    registry = {"projects": {str(mine): "step-a", str(other): "elsewhere"}}
    (runtime / "projects.json").write_text(json.dumps(registry))
    agent = AgentSpec(kind="gemini", env={"GEMINI_CLI_HOME": str(home)})
    event = remove_transcripts(agent, [task(mine, "s"), task(other, "t")], worktrees)
    assert event == ("transcripts_removed", {"kind": "gemini", "count": 2})
    assert sorted(p.name for p in (runtime / "tmp").iterdir()) == ["elsewhere"]
    assert list((runtime / "history").iterdir()) == []


def test_aider_removes_nothing_it_was_told_not_to_write(tmp_path: Path) -> None:
    worktrees = tmp_path / "w"
    (worktrees / "a").mkdir(parents=True)
    agent = AgentSpec(kind="aider", env={"HOME": str(tmp_path)})
    assert remove_transcripts(agent, [task(worktrees / "a", None)], worktrees) is None


def test_a_command_agent_or_none_removes_nothing(tmp_path: Path) -> None:
    tasks = [task(tmp_path / "w" / "a", "s")]
    assert remove_transcripts(None, tasks, tmp_path / "w") is None
    assert remove_transcripts(AgentSpec(command=["x"]), tasks, tmp_path / "w") is None
