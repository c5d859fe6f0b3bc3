"""examples/claude-code/directive.toml as shipped, with only ``local_path`` changed,
run by ``directorate run`` with the real claude CLI against the loopback server.

The engine gives the agent and the judge only the environment the file allows:
PATH, HOME and ``ANTHROPIC_API_KEY`` (its ``pass_env``). So the loopback's address
reaches Claude Code the way a user's own settings would: ``~/.claude/settings.json``
in that HOME."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from clihelp import Cli, make_repository, toml_string
from loopback import tools
from loopback.fixtures import *  # noqa: F403 - the real tools and the loopback server
from loopback.script import FromRequest, Script, Text, ToolCalls, verdict, write_file
from loopback.server import LoopbackServer

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(240)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "claude-code" / "directive.toml"

PLAN = {
    "steps": [
        {
            "name": "add-version-flag",
            "step_type": "implement",
            "description": "Print the version with --version",
            "depends_on": [],
            "task_plan": "Add the flag and its test",
        }
    ]
}


def write_plan(request: Any) -> ToolCalls:
    """The planning session writes the plan where its instructions say."""
    [path] = set(re.findall(r"the file (/\S+?\.json)", json.dumps(request)))
    return write_file(path, json.dumps(PLAN))


def edit_in_worktree(request: Any) -> ToolCalls:
    """The step session writes a file in the folder Claude Code says it works in."""
    [folder] = set(re.findall(r"Primary working directory: (/[^\s\\]+)", json.dumps(request)))
    return write_file(f"{folder}/VERSION", "1.0.0\n")


def test_the_claude_code_example_runs_as_shipped(
    cli: Cli, tmp_path: Path, claude_bin: Path, agent_home: Path, loopback: LoopbackServer
) -> None:
    work = tmp_path / "my-project"
    make_repository(work)
    shipped = EXAMPLE.read_text()
    changed = re.sub(r"(?m)^local_path = .*$", f"local_path = {toml_string(work)}", shipped)
    assert changed != shipped
    path = tmp_path / "directive.toml"
    path.write_text(changed)

    settings = {k: v for k, v in tools.claude_env(agent_home, loopback.url).items()
                if k not in ("PATH", "HOME", "CLAUDE_CONFIG_DIR", "ANTHROPIC_API_KEY")}  # fmt: skip
    (agent_home / ".claude").mkdir()
    (agent_home / ".claude" / "settings.json").write_text(json.dumps({"env": settings}))
    cli.env |= {
        "HOME": str(agent_home),
        "PATH": f"{claude_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANTHROPIC_API_KEY": "test",
    }
    loopback.use(
        Script(
            [
                FromRequest(write_plan),
                Text("Planned."),
                FromRequest(edit_in_worktree),
                Text("Added VERSION."),
                verdict(0.9, "the step does what it says"),
                verdict(0.9, "the directive is done"),
            ]
        )
    )
    ran = cli("run", str(path), "--in-place", timeout=200)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    [(status, cost, branch)] = cli.rows(
        "SELECT status, total_cost_usd, result_branch FROM directives"
    )
    assert status == "completed", ran.stdout
    assert [name for (name,) in cli.rows("SELECT name FROM chain_steps")] == ["add-version-flag"]
    shown = subprocess.run(
        ["git", "-C", str(work), "show", f"{branch}:VERSION"], capture_output=True, text=True
    )
    assert shown.stdout == "1.0.0\n", shown.stderr
    # Six model calls (planning 2, step 2, judge of the step, review of the directive),
    # each priced by Claude Code at $0.0064: all of it in the directive's cost.
    assert len(loopback.session_requests()) == 6
    assert float(cost) == pytest.approx(6 * 0.0064)
    keys = {r.headers.get("x-api-key") for r in loopback.session_requests()}
    assert keys == {"test"}  # the key came through pass_env, nothing else did
