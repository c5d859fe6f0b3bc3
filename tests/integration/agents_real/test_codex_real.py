"""Codex CLI as shipped (``codex exec --json``), its model provider overridden to the
loopback server's Responses API.

Each case records the tool's output (LOOPBACK_RECORD) for the parsers' unit tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loopback import tools
from loopback.fixtures import record_run
from loopback.script import Script, Text, ToolCall, ToolCalls, unauthorized
from loopback.server import LoopbackServer

PATCH = (
    "*** Begin Patch\n*** Update File: app.py\n@@\n"
    '-VERSION = "1.0"\n+VERSION = "1.1"\n*** End Patch\n'
)


def _codex(
    codex_bin: Path,
    home: Path,
    server: LoopbackServer,
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str = "go",
) -> tools.Run:
    argv = [
        str(codex_bin), "exec", "--json", "--skip-git-repo-check", "--sandbox", "workspace-write",
        *tools.codex_provider_args(server.url), *args, "-",
    ]  # fmt: skip
    return tools.run(argv, env=env or tools.codex_env(home), cwd=cwd, stdin=stdin)


def _events(run: tools.Run) -> list[dict[str, Any]]:
    return [json.loads(line) for line in run.stdout.splitlines() if line.strip()]


def test_an_edit_with_apply_patch_then_an_answer(
    codex_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    loopback.use(Script([ToolCalls([ToolCall("apply_patch", PATCH)]), Text("Bumped the version.")]))
    run = _codex(codex_bin, agent_home, loopback, git_repo, stdin="Bump the version to 1.1")
    record_run("codex", "edit", run, "apply_patch (a custom tool call), then a text answer")
    assert run.returncode == 0, run.stderr
    events = _events(run)
    assert events[0]["type"] == "thread.started" and events[0]["thread_id"]
    assert events[-1]["type"] == "turn.completed"
    assert events[-1]["usage"]["input_tokens"] == 2 * loopback.script.usage.input_tokens
    assert "cost" not in json.dumps(events[-1])
    items = [e["item"] for e in events if e["type"] == "item.completed"]
    assert [i["type"] for i in items] == ["file_change", "agent_message"]
    assert items[-1]["text"] == "Bumped the version."
    assert (git_repo / "app.py").read_text() == 'VERSION = "1.1"\n'
    sessions = loopback.session_requests()
    assert [r.answer for r in sessions] == ["tools", "text"]
    assert "Success" in str(sessions[1].tool_results[0]["output"])
    assert sessions[0].headers.get("authorization") == "Bearer test"
    # The session is kept under CODEX_HOME, named by the thread id.
    rollouts = list((agent_home / ".codex" / "sessions").rglob("*.jsonl"))
    assert len(rollouts) == 1 and events[0]["thread_id"] in rollouts[0].name


def test_a_shell_command_with_exec_command(
    codex_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    call = ToolCall("exec_command", {"cmd": "echo made > made.txt && cat made.txt"})
    loopback.use(Script([ToolCalls([call]), Text("Made it.")]))
    run = _codex(codex_bin, agent_home, loopback, git_repo)
    record_run("codex", "shell", run, "exec_command (a function call), then a text answer")
    assert run.returncode == 0, run.stderr
    items = [e["item"] for e in _events(run) if e["type"] == "item.completed"]
    assert [i["type"] for i in items] == ["command_execution", "agent_message"]
    assert items[0]["exit_code"] == 0 and "made" in items[0]["aggregated_output"]
    assert (git_repo / "made.txt").read_text() == "made\n"


def test_the_sandbox_keeps_writes_inside_the_workspace(
    codex_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    call = ToolCall("exec_command", {"cmd": f"echo x > {outside}/escaped.txt"})
    loopback.use(Script([ToolCalls([call]), Text("Could not write there.")]))
    # workspace-write lets /tmp (and $TMPDIR) be written too, unless told not to.
    no_tmp = [
        "-c", "sandbox_workspace_write.exclude_slash_tmp=true",
        "-c", "sandbox_workspace_write.exclude_tmpdir_env_var=true",
    ]  # fmt: skip
    run = _codex(codex_bin, agent_home, loopback, git_repo, *no_tmp)
    record_run("codex", "sandbox-denied", run, "a shell write outside the workspace-write sandbox")
    assert run.returncode == 0, run.stderr
    items = [e["item"] for e in _events(run) if e["type"] == "item.completed"]
    # The refused command shows in no item of the JSON stream: only the model is told.
    assert [i["type"] for i in items] == ["agent_message"]
    assert "Read-only file system" in str(loopback.session_requests()[1].tool_results[0]["output"])
    assert not (outside / "escaped.txt").exists()


def test_a_refused_key_fails_the_turn(
    codex_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    loopback.use(Script([unauthorized()], repeat_last=True))
    run = _codex(codex_bin, agent_home, loopback, git_repo)
    record_run(
        "codex", "unauthorized", run, "HTTP 401; request_max_retries=0, stream_max_retries=0"
    )
    assert run.returncode == 1
    events = _events(run)
    assert events[-1]["type"] == "turn.failed"
    assert "401" in events[-1]["error"]["message"]
    assert run.seconds < 30


def test_without_a_key_it_fails_before_any_request(
    codex_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    env = tools.codex_env(agent_home)
    del env["OPENAI_API_KEY"]
    run = _codex(codex_bin, agent_home, loopback, git_repo, env=env)
    record_run("codex", "no-key", run, "OPENAI_API_KEY unset (the provider's env_key)")
    assert run.returncode != 0
    assert "OPENAI_API_KEY" in run.stdout + run.stderr
    assert loopback.session_requests() == []


def test_a_planning_session_adds_its_plan_with_apply_patch(
    codex_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    plan = '{"steps": [{"name": "add-test", "type": "code"}]}'
    patch = f"*** Begin Patch\n*** Add File: .directorate/plan.json\n+{plan}\n*** End Patch\n"
    loopback.use(Script([ToolCalls([ToolCall("apply_patch", patch)]), Text("Plan written.")]))
    run = _codex(codex_bin, agent_home, loopback, git_repo)
    record_run("codex", "plan", run, "apply_patch adding .directorate/plan.json")
    assert run.returncode == 0, run.stderr
    assert (
        json.loads((git_repo / ".directorate" / "plan.json").read_text())["steps"][0]["type"]
        == "code"
    )


def test_exec_resume_continues_the_thread(
    codex_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    loopback.use(Script([Text("first answer"), Text("second answer")]))
    first = _events(_codex(codex_bin, agent_home, loopback, git_repo, stdin="remember 42"))
    thread = first[0]["thread_id"]
    argv = [
        str(codex_bin), "exec", "--json", "--skip-git-repo-check", "--sandbox", "workspace-write",
        *tools.codex_provider_args(loopback.url), "resume", thread, "-",
    ]  # fmt: skip
    run = tools.run(argv, env=tools.codex_env(agent_home), cwd=git_repo, stdin="again")
    record_run("codex", "resume", run, "exec ... resume THREAD_ID - (same CODEX_HOME)")
    assert run.returncode == 0, run.stderr
    events = _events(run)
    assert events[0] == {"type": "thread.started", "thread_id": thread}
    assert [e["item"]["text"] for e in events if e["type"] == "item.completed"] == ["second answer"]
    assert "remember 42" in json.dumps(loopback.session_requests()[1].body["input"])
