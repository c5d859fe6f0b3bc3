"""Aider as shipped (``aider --message-file F --yes-always ...``, no stdin), its model
traffic sent to the loopback server's Chat Completions by ``--openai-api-base``.

Aider's edits are text (SEARCH/REPLACE blocks in the answer), not tool calls. Each
case records the tool's output (LOOPBACK_RECORD) for the parsers' unit tests.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from loopback import tools
from loopback.fixtures import record_run
from loopback.script import Failure, Script, Text, verdict
from loopback.server import LoopbackServer

# What the aider kind passes (verifiers/tools/aider.py): no commits, no .gitignore
# edit, no shell commands, nothing of aider's own written in the repository.
QUIET = [
    "--yes-always", "--no-auto-commits", "--no-dirty-commits", "--no-gitignore",
    "--no-check-update", "--no-show-release-notes", "--no-show-model-warnings",
    "--no-pretty", "--no-stream", "--no-analytics", "--no-suggest-shell-commands",
    "--no-detect-urls", "--chat-history-file", "/dev/null",
    "--input-history-file", "/dev/null", "--map-tokens", "0",
]  # fmt: skip

BUMP = (
    "I will bump it.\n\napp.py\n```\n<<<<<<< SEARCH\n"
    'VERSION = "1.0"\n=======\nVERSION = "1.1"\n>>>>>>> REPLACE\n```\n'
)


PLAN = '{"steps": [{"name": "add-test", "type": "code"}]}'
PLAN_ANSWER = (
    "Here is the plan.\n\n.directorate/plan.json\n```\n<<<<<<< SEARCH\n=======\n"
    f"{PLAN}\n>>>>>>> REPLACE\n```\n"
)


def _aider(
    aider_bin: Path,
    home: Path,
    server: LoopbackServer,
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    message: str = "Bump the version to 1.1",
    base_url: str | None = None,
    timeout: float = 120,
) -> tools.Run:
    instructions = home / "instructions.md"
    instructions.write_text(message)
    argv = [
        str(aider_bin), "--message-file", str(instructions), *QUIET,
        *tools.aider_provider_args(base_url or server.url), *args,
    ]  # fmt: skip
    return tools.run(argv, env=env or tools.aider_env(home), cwd=cwd, stdin=None, timeout=timeout)


def _status(repo: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "status", "--short", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_an_edit_block_is_applied_and_nothing_else_is_written(
    aider_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    # The first answer names app.py, not in the chat: aider adds it and asks again
    # (its content now in the request) instead of applying; the second is applied.
    loopback.use(Script([Text(BUMP), Text(BUMP)]))
    run = _aider(aider_bin, agent_home, loopback, git_repo)
    record_run("aider", "edit", run, "a SEARCH/REPLACE block for app.py, asked again once added")
    assert run.returncode == 0, run.stderr
    assert "Applied edit to app.py" in run.stdout
    assert "Tokens: 1.2k sent, 80 received. Cost: $0.0030 message, $0.0061 session." in run.stdout
    assert (git_repo / "app.py").read_text() == 'VERSION = "1.1"\n'
    # No commit, no .gitignore, no chat history or tags cache in the repository.
    assert _status(git_repo) == " M app.py\n"
    first, second = loopback.session_requests()
    assert first.headers.get("authorization") == "Bearer test"
    assert first.body["model"] == tools.AIDER_MODEL
    assert 'VERSION = \\"1.0\\"' in json.dumps(second.body["messages"])


def test_in_git_it_will_not_write_a_git_excluded_file(
    aider_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    (git_repo / ".git" / "info").mkdir(exist_ok=True)
    with (git_repo / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write(".directorate/\n")
    loopback.use(Script([Text(PLAN_ANSWER)]))
    run = _aider(aider_bin, agent_home, loopback, git_repo, message="Write the plan")
    record_run("aider", "plan-in-git", run, "a new-file block for .directorate/plan.json in git")
    assert run.returncode == 0, run.stderr
    assert "Skipping edits to .directorate/plan.json that matches gitignore spec." in run.stdout
    assert not (git_repo / ".directorate" / "plan.json").exists()


def test_a_planning_session_without_git_creates_the_excluded_plan_file(
    aider_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    (git_repo / ".git" / "info").mkdir(exist_ok=True)
    with (git_repo / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write(".directorate/\n")
    loopback.use(Script([Text(PLAN_ANSWER)]))
    run = _aider(aider_bin, agent_home, loopback, git_repo, "--no-git", message="Write the plan")
    record_run("aider", "plan", run, "--no-git: a new-file block for .directorate/plan.json")
    assert run.returncode == 0, run.stderr
    written = git_repo / ".directorate" / "plan.json"
    assert written.exists() and written.read_text().strip() == PLAN
    assert _status(git_repo) == ""


def test_a_judge_in_ask_mode_answers_and_edits_nothing(
    aider_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    loopback.use(Script([verdict(0.9, "the test of --version is there")]))
    run = _aider(aider_bin, agent_home, loopback, git_repo, "--chat-mode", "ask", message="Judge.")
    record_run("aider", "judge", run, "--chat-mode ask: a JSON verdict in the answer")
    assert run.returncode == 0, run.stderr
    assert '"score": 0.9' in run.stdout
    assert _status(git_repo) == ""


def test_a_refused_key_exits_0_with_an_authentication_error(
    aider_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    refused = Failure(401, "invalid_api_key", "Incorrect API key provided: test.")
    loopback.use(Script([refused], repeat_last=True))
    run = _aider(aider_bin, agent_home, loopback, git_repo)
    record_run("aider", "unauthorized", run, "HTTP 401: exit 0, the error in the text")
    assert run.returncode == 0  # as shipped: only the text says it failed
    assert "litellm.AuthenticationError" in run.stdout
    assert len(loopback.session_requests()) == 1  # not retried
    assert _status(git_repo) == ""


def test_without_a_key_it_exits_0_with_an_authentication_error(
    aider_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    env = tools.aider_env(agent_home, api_key=None)
    run = _aider(aider_bin, agent_home, loopback, git_repo, env=env)
    record_run("aider", "no-key", run, "OPENAI_API_KEY unset")
    assert run.returncode == 0
    assert "litellm.AuthenticationError" in run.stdout and "OPENAI_API_KEY" in run.stdout
    assert loopback.session_requests() == []


def test_a_refusal_it_retries_then_an_answer(
    aider_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    refused = Failure(403, "permission_denied", "Project does not have access to model gpt-4.1")
    loopback.use(Script([refused, Text(BUMP), Text(BUMP)]))
    run = _aider(aider_bin, agent_home, loopback, git_repo)
    record_run("aider", "retried", run, "HTTP 403 (retried by aider as an APIError), then an edit")
    assert run.returncode == 0, run.stderr
    assert "litellm.APIError" in run.stdout and "Retrying in" in run.stdout
    assert (git_repo / "app.py").read_text() == 'VERSION = "1.1"\n'


def test_a_model_server_that_is_down_is_retried_then_given_up_with_exit_0(
    aider_bin: Path, agent_home: Path, loopback: LoopbackServer, git_repo: Path
) -> None:
    with socket.socket() as probe:  # a port no one listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    run = _aider(aider_bin, agent_home, loopback, git_repo, base_url=closed, timeout=200)
    record_run("aider", "connection-refused", run, "nothing listening: retried for ~90 s")
    assert run.returncode == 0
    assert run.stdout.count("litellm.InternalServerError") >= 5
    assert "Connection error." in [line for line in run.stdout.splitlines() if line][-2]
    assert _status(git_repo) == ""
