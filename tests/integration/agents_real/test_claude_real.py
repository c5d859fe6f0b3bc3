"""Claude Code as shipped, pointed at the loopback server by ANTHROPIC_BASE_URL.

Each case records the tool's output (LOOPBACK_RECORD) for the parsers' unit tests.
"""

from __future__ import annotations

import json
from pathlib import Path

from loopback import tools
from loopback.fixtures import record_run
from loopback.script import Script, Text, bash, unauthorized, verdict, write_file
from loopback.server import LoopbackServer


def _claude(
    claude_bin: Path, home: Path, server: LoopbackServer, cwd: Path, *args: str, stdin: str = "go"
) -> tools.Run:
    argv = [str(claude_bin), "-p", "--output-format", "json", *args]
    return tools.run(argv, env=tools.claude_env(home, server.url), cwd=cwd, stdin=stdin)


def _result(run: tools.Run) -> dict[str, object]:
    result = json.loads(run.stdout)
    assert result["type"] == "result", run.stdout
    return dict(result)


def test_a_session_writes_a_file_with_a_tool_call_and_answers(
    claude_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    target = git_repo / "hello.py"
    loopback.use(Script([write_file(str(target), "print('hello')\n"), Text("Wrote hello.py.")]))
    run = _claude(
        claude_bin, agent_home, loopback, git_repo,
        "--permission-mode", "acceptEdits", "--max-turns", "5", stdin="Write hello.py",
    )  # fmt: skip
    record_run("claude", "edit", run, "Write tool call in a git repo, then a text answer")
    assert run.returncode == 0, run.stderr
    result = _result(run)
    assert result["is_error"] is False and result["subtype"] == "success"
    assert result["result"] == "Wrote hello.py."
    assert result["num_turns"] == 2 and result["permission_denials"] == []
    assert isinstance(result["total_cost_usd"], float) and result["total_cost_usd"] > 0
    assert target.read_text() == "print('hello')\n"
    sessions = loopback.session_requests()
    assert [r.answer for r in sessions] == ["tools", "text"]
    assert sessions[1].tool_results and not sessions[1].tool_results[0].get("is_error")
    assert sessions[0].headers.get("x-api-key") == "test"
    # The transcript is written under our HOME, not the real one.
    transcripts = list((agent_home / ".claude" / "projects").glob("*/*.jsonl"))
    assert [t.stem for t in transcripts] == [result["session_id"]]


def test_stream_json_needs_verbose_and_ends_with_the_result(
    claude_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    loopback.use(Script([write_file(str(git_repo / "a.txt"), "a\n"), Text("Done.")]))
    argv = [
        str(claude_bin), "-p", "--output-format", "stream-json", "--verbose",
        "--permission-mode", "acceptEdits",
    ]  # fmt: skip
    run = tools.run(argv, env=tools.claude_env(agent_home, loopback.url), cwd=git_repo, stdin="go")
    record_run("claude", "edit-stream-json", run, "the edit case as stream-json (--verbose)")
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    assert events[0]["type"] == "system" and events[0]["subtype"] == "init"
    assert events[-1]["type"] == "result" and events[-1]["result"] == "Done."
    assert (git_repo / "a.txt").read_text() == "a\n"


def test_a_judge_session_answers_a_json_verdict(
    claude_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    loopback.use(Script([verdict(0.9, "the test of --version is there")]))
    run = _claude(claude_bin, agent_home, loopback, git_repo, stdin="Judge this step.")
    record_run("claude", "judge", run, "a judge session: one text answer holding a JSON verdict")
    assert run.returncode == 0, run.stderr
    result = _result(run)
    assert result["is_error"] is False and result["num_turns"] == 1
    answer = str(result["result"])
    body = json.loads(answer[answer.index("{") : answer.rindex("}") + 1])
    assert body["passed"] is True and body["score"] == 0.9
    assert float(str(result["total_cost_usd"])) > 0


def test_a_refused_key_exits_non_zero_at_once(
    claude_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    loopback.use(Script([unauthorized()], repeat_last=True))
    run = _claude(claude_bin, agent_home, loopback, git_repo)
    record_run(
        "claude", "unauthorized", run, "HTTP 401 authentication_error; CLAUDE_CODE_MAX_RETRIES=0"
    )
    assert run.returncode == 1
    result = _result(run)
    # is_error, although subtype says "success"; the status and type are given.
    assert result["is_error"] is True and result["subtype"] == "success"
    assert result["api_error_status"] == 401 and result["api_error_type"] == "authentication_error"
    assert result["total_cost_usd"] == 0
    assert run.seconds < 30
    assert [r.answer for r in loopback.requests if r.path.endswith("/v1/messages")] == ["failure"]


def test_without_a_key_it_is_not_logged_in(
    claude_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    env = tools.claude_env(agent_home, loopback.url)
    del env["ANTHROPIC_API_KEY"]
    run = tools.run(
        [str(claude_bin), "-p", "--output-format", "json"], env=env, cwd=git_repo, stdin="go"
    )
    record_run("claude", "not-logged-in", run, "no ANTHROPIC_API_KEY and no login under HOME")
    assert run.returncode == 1
    result = _result(run)
    assert result["is_error"] is True
    assert "log" in str(result["result"]).lower()
    assert loopback.session_requests() == []


def test_max_turns_ends_with_error_max_turns_and_no_result(
    claude_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    loopback.use(Script([write_file(str(git_repo / "loop.txt"), "again\n")], repeat_last=True))
    run = _claude(
        claude_bin, agent_home, loopback, git_repo,
        "--permission-mode", "acceptEdits", "--max-turns", "1",
    )  # fmt: skip
    record_run("claude", "max-turns", run, "--max-turns 1, the model keeps calling tools")
    result = _result(run)
    assert result["subtype"] == "error_max_turns" and result["is_error"] is True
    assert "result" not in result
    assert run.returncode == 1
    assert len(loopback.session_requests()) == 1


def test_max_budget_ends_with_error_max_budget_usd(
    claude_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    loopback.use(Script([write_file(str(git_repo / "spend.txt"), "more\n")], repeat_last=True))
    run = _claude(
        claude_bin, agent_home, loopback, git_repo,
        "--permission-mode", "acceptEdits", "--max-turns", "20", "--max-budget-usd", "0.01",
    )  # fmt: skip
    record_run("claude", "max-budget", run, "--max-budget-usd 0.01, the model keeps calling tools")
    result = _result(run)
    assert result["subtype"] == "error_max_budget_usd" and result["is_error"] is True
    assert float(str(result["total_cost_usd"])) >= 0.01
    assert run.returncode == 1
    assert 1 < len(loopback.session_requests()) < 20


def test_a_denied_tool_call_is_reported_in_permission_denials(
    claude_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    # Not `touch`: acceptEdits lets plain file commands in the working directory run.
    command = "python3 -c \"open('denied.txt', 'w').write('x')\""
    loopback.use(Script([bash(command), Text("I could not run it.")]))
    run = _claude(
        claude_bin, agent_home, loopback, git_repo,
        "--permission-mode", "acceptEdits", "--allowedTools", "Bash(git diff:*)",
    )  # fmt: skip
    record_run("claude", "permission-denied", run, "a Bash call outside --allowedTools")
    assert run.returncode == 0, run.stderr
    result = _result(run)
    # Exit 0 and no error: only permission_denials tells.
    assert result["is_error"] is False
    denials = result["permission_denials"]
    assert isinstance(denials, list) and [d["tool_name"] for d in denials] == ["Bash"]
    assert denials[0]["tool_input"]["command"] == command
    assert not (git_repo / "denied.txt").exists()
    assert loopback.session_requests()[1].tool_results[0].get("is_error") is True


def test_a_denied_edit_outside_the_working_directory(
    claude_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside" / "plan.json"
    outside.parent.mkdir()
    loopback.use(Script([write_file(str(outside), "{}"), Text("Could not write the plan.")]))
    run = _claude(claude_bin, agent_home, loopback, git_repo, "--permission-mode", "acceptEdits")
    record_run("claude", "edit-outside-denied", run, "a Write outside the working directory")
    assert run.returncode == 0, run.stderr
    result = _result(run)
    assert [d["tool_name"] for d in result["permission_denials"]] == ["Write"]  # type: ignore[union-attr]
    assert not outside.exists()


def test_a_planning_session_writes_its_plan_inside_its_worktree(
    claude_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    plan = git_repo / ".directorate" / "plan.json"
    steps = {"steps": [{"name": "add-test", "type": "code", "instructions": "add a test"}]}
    loopback.use(Script([write_file(str(plan), json.dumps(steps)), Text("Plan written.")]))
    run = _claude(claude_bin, agent_home, loopback, git_repo, "--permission-mode", "acceptEdits")
    record_run("claude", "plan", run, "writes .directorate/plan.json in its working directory")
    assert run.returncode == 0, run.stderr
    assert _result(run)["permission_denials"] == []
    assert json.loads(plan.read_text()) == steps


def test_resume_continues_the_stored_session(
    claude_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    loopback.use(Script([Text("first answer"), Text("second answer")]))
    first = _result(_claude(claude_bin, agent_home, loopback, git_repo, stdin="remember 42"))
    session = str(first["session_id"])
    run = _claude(claude_bin, agent_home, loopback, git_repo, "--resume", session, stdin="again")
    record_run("claude", "resume", run, "--resume SESSION_ID of an earlier run in the same HOME")
    assert run.returncode == 0, run.stderr
    result = _result(run)
    assert result["result"] == "second answer" and result["session_id"] == session
    # The resumed request carries the earlier conversation.
    messages = loopback.session_requests()[1].body["messages"]
    assert "remember 42" in json.dumps(messages) and "first answer" in json.dumps(messages)


def test_no_session_persistence_leaves_no_transcript(
    claude_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    loopback.use(Script([Text("ok")]))
    run = _claude(claude_bin, agent_home, loopback, git_repo, "--no-session-persistence")
    record_run("claude", "no-session-persistence", run, "--no-session-persistence")
    assert run.returncode == 0, run.stderr
    assert _result(run)["result"] == "ok"
    assert list((agent_home / ".claude").rglob("*.jsonl")) == []


def test_a_judge_in_text_format_prints_only_the_answer(
    claude_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    loopback.use(Script([verdict(0.4, "no test of --version")]))
    argv = [str(claude_bin), "-p", "--output-format", "text"]
    run = tools.run(argv, env=tools.claude_env(agent_home, loopback.url), cwd=git_repo, stdin="x")
    record_run("claude", "judge-text", run, "[verifiers.llm] as shipped: --output-format text")
    assert run.returncode == 0, run.stderr
    # The verdict alone: no cost, tokens or session id reach the caller.
    assert run.stdout.strip() == str(verdict(0.4, "no test of --version").text)
