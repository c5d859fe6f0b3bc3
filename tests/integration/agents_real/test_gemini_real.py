"""Gemini CLI as shipped (``gemini --output-format json``, the prompt on stdin), its
model API pointed at the loopback server by ``GOOGLE_GEMINI_BASE_URL``.

Each case records the tool's output (LOOPBACK_RECORD) for the parsers' unit tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loopback import tools
from loopback.fixtures import record_run
from loopback.script import Failure, Script, Text, ToolCall, ToolCalls, unauthorized, verdict
from loopback.server import LoopbackServer


def _gemini(
    gemini_bin: Path,
    home: Path,
    server: LoopbackServer,
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str = "go",
    trust: bool = True,
    mode: str = "auto_edit",
) -> tools.Run:
    argv = [str(gemini_bin), "--output-format", "json"]
    if trust:
        argv.append("--skip-trust")
    argv += ["--approval-mode", mode, "--model", tools.GEMINI_MODEL, *args]
    return tools.run(
        argv, env=env or tools.gemini_env(home, server.url), cwd=cwd, stdin=stdin, timeout=90
    )


def _report(text: str) -> dict[str, Any]:
    """The one JSON document Gemini prints (pretty-printed over many lines), on stdout
    when it answered, at the end of stderr when it failed."""
    start = text.find("\n{\n") + 1 if not text.startswith("{") else 0
    report = json.loads(text[start:])
    assert isinstance(report, dict)
    return report


def _write(path: Path, content: str) -> ToolCalls:
    return ToolCalls([ToolCall("write_file", {"file_path": str(path), "content": content})])


def test_an_edit_with_write_file_then_an_answer(
    gemini_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    target = git_repo / "hello.py"
    loopback.use(Script([_write(target, "print('hello')\n"), Text("Wrote hello.py.")]))
    run = _gemini(gemini_bin, agent_home, loopback, git_repo, stdin="Write hello.py")
    record_run(
        "gemini", "edit", run, "write_file under --approval-mode auto_edit, then a text answer"
    )
    assert run.returncode == 0, run.stderr
    report = _report(run.stdout)
    assert report["response"] == "Wrote hello.py."
    tokens = report["stats"]["models"][tools.GEMINI_MODEL]["tokens"]
    assert (tokens["prompt"], tokens["candidates"]) == (2400, 160)
    assert "cost" not in run.stdout.lower()
    assert target.read_text() == "print('hello')\n"
    sessions = loopback.session_requests()
    assert [r.answer for r in sessions] == ["tools", "text"]
    assert "Successfully" in json.dumps(sessions[1].tool_results)
    assert sessions[0].headers.get("x-goog-api-key") == "test"
    # The chat is kept under GEMINI_CLI_HOME, in the project's folder, by session id.
    chats = list((agent_home / ".gemini" / "tmp").glob("*/chats/session-*.jsonl"))
    assert len(chats) == 1 and report["session_id"][:8] in chats[0].name


def test_a_planning_session_writes_the_plan_file_git_does_not_see(
    gemini_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    # As directorate prepares it: .directorate/ kept out of git by info/exclude.
    (git_repo / ".git" / "info").mkdir(exist_ok=True)
    with (git_repo / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write(".directorate/\n")
    plan = '{"steps": [{"name": "add-test", "type": "code"}]}'
    loopback.use(
        Script([_write(git_repo / ".directorate" / "plan.json", plan), Text("Plan written.")])
    )
    run = _gemini(gemini_bin, agent_home, loopback, git_repo)
    record_run("gemini", "plan", run, "write_file of .directorate/plan.json (git-excluded)")
    assert run.returncode == 0, run.stderr
    assert json.loads((git_repo / ".directorate" / "plan.json").read_text()) == json.loads(plan)


def test_a_judge_answers_with_the_read_only_tools(
    gemini_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    loopback.use(Script([verdict(0.9, "the test of --version is there")]))
    run = _gemini(gemini_bin, agent_home, loopback, git_repo, mode="default", stdin="Judge.")
    record_run("gemini", "judge", run, "--approval-mode default: a JSON verdict in the answer")
    assert run.returncode == 0, run.stderr
    assert '"score": 0.9' in _report(run.stdout)["response"]
    offered = {
        f["name"]
        for tool in loopback.session_requests()[0].body["tools"]
        for f in tool.get("functionDeclarations", [])
    }
    # Headless, what needs a confirmation is not even offered: no edits, no shell.
    assert "read_file" in offered and not offered & {"write_file", "replace", "run_shell_command"}


def test_auto_edit_offers_no_shell(
    gemini_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    call = ToolCall("run_shell_command", {"command": "echo hi > hi.txt", "description": "x"})
    loopback.use(Script([ToolCalls([call]), Text("I could not run it.")]))
    run = _gemini(gemini_bin, agent_home, loopback, git_repo)
    record_run("gemini", "shell-refused", run, "run_shell_command under auto_edit")
    assert run.returncode == 0, run.stderr
    assert _report(run.stdout)["stats"]["tools"]["totalFail"] == 1
    assert 'Tool "run_shell_command" not found' in run.stderr
    assert not (git_repo / "hi.txt").exists()


def test_a_write_outside_the_workspace_is_refused(
    gemini_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    loopback.use(Script([_write(outside / "x.txt", "x\n"), Text("Could not write there.")]))
    run = _gemini(gemini_bin, agent_home, loopback, git_repo)
    record_run("gemini", "outside-denied", run, "write_file outside the working directory")
    assert run.returncode == 0, run.stderr
    assert "Path not in workspace" in run.stderr
    assert not (outside / "x.txt").exists()


def test_resume_continues_the_session(
    gemini_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    loopback.use(Script([Text("first answer"), Text("second answer")]))
    first = _report(_gemini(gemini_bin, agent_home, loopback, git_repo, stdin="remember 42").stdout)
    session = first["session_id"]
    run = _gemini(gemini_bin, agent_home, loopback, git_repo, "--resume", session, stdin="again")
    record_run(
        "gemini", "resume", run, "--resume SESSION_ID of an earlier run, same home and folder"
    )
    assert run.returncode == 0, run.stderr
    report = _report(run.stdout)
    assert (report["session_id"], report["response"]) == (session, "second answer")
    assert "remember 42" in json.dumps(loopback.session_requests()[-1].body["contents"])


def test_an_unknown_session_is_an_input_error(
    gemini_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    run = _gemini(gemini_bin, agent_home, loopback, git_repo, "--resume", "0000-gone")
    record_run("gemini", "resume-unknown", run, "--resume of a session that is not there")
    assert run.returncode == 42
    assert "Error resuming session" in run.stderr  # none kept for this folder yet
    assert loopback.session_requests() == []


def test_a_refused_key_fails_with_an_error_object(
    gemini_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    loopback.use(Script([unauthorized()], repeat_last=True))
    run = _gemini(gemini_bin, agent_home, loopback, git_repo)
    record_run("gemini", "unauthorized", run, "HTTP 401 UNAUTHENTICATED")
    # The exit status is the HTTP status modulo 256 (401 -> 145); nothing on stdout.
    assert (run.returncode, run.stdout) == (401 % 256, "")
    assert _report(run.stderr)["error"]["code"] == 401
    assert run.seconds < 30


def test_a_forbidden_project_fails_with_an_error_object(
    gemini_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    refused = Failure(403, "permission_error", "The caller does not have permission")
    loopback.use(Script([refused], repeat_last=True))
    run = _gemini(gemini_bin, agent_home, loopback, git_repo)
    record_run("gemini", "forbidden", run, "HTTP 403 PERMISSION_DENIED")
    assert run.returncode == 403 % 256
    assert _report(run.stderr)["error"]["code"] == 403


def test_without_a_key_it_exits_41_before_any_request(
    gemini_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    env = tools.gemini_env(agent_home, loopback.url, api_key=None)
    run = _gemini(gemini_bin, agent_home, loopback, git_repo, env=env)
    record_run("gemini", "no-key", run, "GEMINI_API_KEY unset")
    assert run.returncode == 41
    assert "GEMINI_API_KEY" in _report(run.stderr)["error"]["message"]
    assert loopback.session_requests() == []


def test_without_an_auth_method_it_exits_41(
    gemini_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    env = tools.gemini_env(agent_home, loopback.url)
    tools.write_gemini_settings(agent_home, auth=None)
    run = _gemini(gemini_bin, agent_home, loopback, git_repo, env=env)
    record_run("gemini", "invalid-auth", run, "settings.json without security.auth.selectedType")
    assert run.returncode == 41
    assert _report(run.stderr)["error"]["message"] == "Invalid auth method selected."


def test_an_untrusted_folder_exits_55(
    gemini_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    run = _gemini(gemini_bin, agent_home, loopback, git_repo, trust=False)
    record_run("gemini", "untrusted", run, "no --skip-trust")
    assert run.returncode == 55
    assert "not running in a trusted directory" in run.stderr and run.stdout == ""


def test_a_google_login_it_does_not_have_exits_41(
    gemini_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    env = tools.gemini_env(agent_home, loopback.url, api_key=None)
    del env["GOOGLE_GEMINI_BASE_URL"]  # as a user of a Google login runs it
    tools.write_gemini_settings(agent_home, auth="oauth-personal")
    run = _gemini(gemini_bin, agent_home, loopback, git_repo, env=env)
    record_run("gemini", "not-logged-in", run, "oauth-personal selected, no credentials")
    # Plain text (red), no JSON document: the login needs a terminal.
    assert (run.returncode, run.stdout) == (41, "")
    assert "Manual authorization is required" in run.stderr and '"error"' not in run.stderr


def test_no_auth_method_and_no_key_exits_41(
    gemini_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    env = tools.gemini_env(agent_home, loopback.url, api_key=None)
    del env["GOOGLE_GEMINI_BASE_URL"]
    tools.write_gemini_settings(agent_home, auth=None)
    run = _gemini(gemini_bin, agent_home, loopback, git_repo, env=env)
    record_run("gemini", "no-auth", run, "no auth method in settings.json, no key in env")
    assert run.returncode == 41
    assert "Please set an Auth method" in _report(run.stderr)["error"]["message"]
