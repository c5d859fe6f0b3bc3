"""``directorate run`` with the real Gemini CLI and Aider (kinds ``gemini`` and
``aider``), their model APIs answered by the loopback server (tests/loopback). They
skip, saying why, when the tools are not installed (tests/loopback/tools.py)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from clihelp import Cli, toml_string
from loopback import tools
from loopback.fixtures import *  # noqa: F403 - the real tools and the loopback server
from loopback.script import Failure, FromRequest, Script, Text, ToolCall, ToolCalls
from loopback.server import LoopbackServer
from test_run_real_agents import PLAN, directive_file, env_table, on_branch, outcome

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(240)]

FLASH_CALL = (1200 * 0.30 + 80 * 2.5) / 1e6  # a loopback call at gemini-2.5-flash's list price
NEW_HELLO = "hello.txt\n```\n<<<<<<< SEARCH\n=======\nhi\n>>>>>>> REPLACE\n```\n"


def plan_file_named(body: Any) -> str:
    """The plan file the planning instructions (in the model request) name."""
    found = re.search(r"/[^\s\"\\]+/\.directorate/plan-[0-9a-f]{8}\.json", json.dumps(body))
    assert found, "the planning instructions name no plan file"
    return found.group(0)


def planned_chain(cli: Cli) -> list[str]:
    assert cli.rows("SELECT 1 FROM directive_events WHERE event_type = 'plan_rejected'") == []
    return [str(name) for (name,) in cli.rows("SELECT name FROM chain_steps")]


def tracked(work: Path, branch: str) -> list[str]:
    listed = subprocess.run(
        ["git", "-C", str(work), "ls-tree", "-r", "--name-only", branch],
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()


def test_gemini_kind_completes_with_its_change_and_priced_tokens(
    cli: Cli, tmp_path: Path, gemini_bin: Path, agent_home: Path, loopback: LoopbackServer
) -> None:
    # A relative path: Gemini resolves it in its working folder, the step's worktree.
    write = ToolCalls([ToolCall("write_file", {"file_path": "hello.txt", "content": "hi\n"})])
    loopback.use(Script([write, Text("Wrote hello.txt.")]))
    path, work = directive_file(
        tmp_path,
        [
            'kind = "gemini"',
            f"command = [{toml_string(gemini_bin)}]",
            f'model = "{tools.GEMINI_MODEL}"',
            env_table(tools.gemini_env(agent_home, loopback.url)),
        ],
    )
    ran = cli("run", str(path), "--in-place", timeout=200)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    status, cost, branch = outcome(cli)
    assert status == "completed"
    assert on_branch(work, branch, "hello.txt") == "hi\n"
    # Gemini reports tokens only: priced at gemini-2.5-flash's list price, per call.
    calls = loopback.session_requests()
    assert [r.answer for r in calls] == ["tools", "text"]
    assert cost == pytest.approx(len(calls) * FLASH_CALL)
    assert {r.headers.get("x-goog-api-key") for r in calls} == {"test"}
    # Its project folders (chats) for the step's worktree went with the worktree.
    registry = json.loads((agent_home / ".gemini" / "projects.json").read_text())["projects"]
    worktree_projects = [name for folder, name in registry.items() if "worktrees" in folder]
    assert worktree_projects
    for name in worktree_projects:
        assert not (agent_home / ".gemini" / "tmp" / name).exists()


def test_aider_kind_completes_with_its_change_and_reported_cost(
    cli: Cli, tmp_path: Path, aider_bin: Path, agent_home: Path, loopback: LoopbackServer
) -> None:
    loopback.use(Script([Text(NEW_HELLO)], repeat_last=True))
    path, work = directive_file(
        tmp_path,
        [
            'kind = "aider"',
            f"command = [{toml_string(aider_bin)}]",
            f'model = "{tools.AIDER_MODEL}"',
            f'extra_args = ["--openai-api-base", "{loopback.url}/v1"]',
            env_table(tools.aider_env(agent_home)),
        ],
    )
    ran = cli("run", str(path), "--in-place", timeout=200)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    status, cost, branch = outcome(cli)
    assert status == "completed"
    assert on_branch(work, branch, "hello.txt") == "hi\n"
    # Nothing of Aider's own on the result branch (history, tags cache, .gitignore).
    assert not [name for name in tracked(work, branch) if name.startswith(".aider")]
    assert ".gitignore" not in tracked(work, branch)
    # The cost is Aider's own "Cost: ... $Y session." ($0.0030 a call at gpt-4.1).
    calls = len(loopback.session_requests())
    assert cost == pytest.approx(0.0030 * calls, abs=0.0001 * calls)
    assert calls >= 1


def test_aider_refused_key_fails_its_attempt_though_it_exits_0(
    cli: Cli, tmp_path: Path, aider_bin: Path, agent_home: Path, loopback: LoopbackServer
) -> None:
    refused = Failure(401, "invalid_api_key", "Incorrect API key provided: test.")
    loopback.use(Script([refused], repeat_last=True))
    path, _work = directive_file(
        tmp_path,
        [
            'kind = "aider"',
            f"command = [{toml_string(aider_bin)}]",
            f'model = "{tools.AIDER_MODEL}"',
            f'extra_args = ["--openai-api-base", "{loopback.url}/v1"]',
            env_table(tools.aider_env(agent_home)),
        ],
    )
    text = path.read_text().replace(
        "max_total_cost_usd", "max_rework_cycles = 0\nmax_total_cost_usd"
    )
    path.write_text(text)
    cli("run", str(path), "--in-place", timeout=200)
    status, _cost, _branch = outcome(cli)
    assert status != "completed"
    tasks = cli.rows("SELECT status, exit_code, summary FROM tasks WHERE kind = 'step'")
    assert tasks, "no step task ran"
    task_status, exit_code, summary = tasks[0]
    # Aider exited 0; its text said the key was refused: the attempt failed, saying so.
    assert (str(task_status), exit_code) == ("failed", 0)
    assert "litellm.AuthenticationError" in str(summary)


def test_gemini_plans_the_chain_itself_then_does_it(
    cli: Cli, tmp_path: Path, gemini_bin: Path, agent_home: Path, loopback: LoopbackServer
) -> None:
    def write_plan(body: Any) -> ToolCalls:
        arguments = {"file_path": plan_file_named(body), "content": json.dumps(PLAN)}
        return ToolCalls([ToolCall("write_file", arguments)])

    write = ToolCalls([ToolCall("write_file", {"file_path": "hello.txt", "content": "hi\n"})])
    loopback.use(
        Script([FromRequest(write_plan), Text("Planned."), write, Text("Wrote hello.txt.")])
    )
    path, work = directive_file(
        tmp_path,
        [
            'kind = "gemini"',
            f"command = [{toml_string(gemini_bin)}]",
            f'model = "{tools.GEMINI_MODEL}"',
            env_table(tools.gemini_env(agent_home, loopback.url)),
        ],
        planned=True,
    )
    ran = cli("run", str(path), "--in-place", timeout=200)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    status, cost, branch = outcome(cli)
    assert status == "completed"
    assert planned_chain(cli) == ["say-hello"]
    assert on_branch(work, branch, "hello.txt") == "hi\n"
    assert ".directorate" not in {name.split("/")[0] for name in tracked(work, branch)}
    assert cost == pytest.approx(4 * FLASH_CALL)  # two sessions of two calls, priced


def test_aider_plans_the_chain_itself_without_git_then_does_it(
    cli: Cli, tmp_path: Path, aider_bin: Path, agent_home: Path, loopback: LoopbackServer
) -> None:
    def write_plan(body: Any) -> Text:
        name = ".directorate/" + plan_file_named(body).rsplit("/", 1)[1]
        block = f"{name}\n```\n<<<<<<< SEARCH\n=======\n{json.dumps(PLAN)}\n>>>>>>> REPLACE\n```\n"
        return Text(f"Here is the plan.\n\n{block}")

    loopback.use(Script([FromRequest(write_plan), Text(NEW_HELLO)], repeat_last=True))
    path, work = directive_file(
        tmp_path,
        [
            'kind = "aider"',
            f"command = [{toml_string(aider_bin)}]",
            f'model = "{tools.AIDER_MODEL}"',
            f'extra_args = ["--openai-api-base", "{loopback.url}/v1"]',
            env_table(tools.aider_env(agent_home)),
        ],
        planned=True,
    )
    ran = cli("run", str(path), "--in-place", timeout=200)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    status, _cost, branch = outcome(cli)
    assert status == "completed"
    assert planned_chain(cli) == ["say-hello"]
    assert on_branch(work, branch, "hello.txt") == "hi\n"
    assert not [
        name for name in tracked(work, branch) if name.startswith((".aider", ".directorate"))
    ]
