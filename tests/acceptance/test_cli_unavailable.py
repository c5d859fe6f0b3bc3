"""``directorate run --auto-approve`` with an agent that could not reach its model:
it is not answered for the user (as a circuit breaker is not); run leaves the
directive paused (exit 3) with the tool's own message and how to retry. The agent
replays what the real Claude Code printed when not logged in, through the
``claude-code`` kind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clihelp import REPO, Cli, scripted_directive

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(90)]
RECORDED = REPO / "tests" / "agents" / "recorded" / "claude"
LOGIN = "Not logged in · Please run /login"


def not_logged_in_directive(tmp_path: Path) -> Path:
    replay = {
        "replay": str(RECORDED / "not-logged-in.stdout"),
        "replay_stderr": str(RECORDED / "not-logged-in.stderr"),
        "replay_exit": 1,
    }
    path = scripted_directive(
        tmp_path,
        autonomy="manual",  # every other question would be auto-approved
        steps=[{"name": "only"}],
        script={"steps": {"only": replay}},
    )
    path.write_text(path.read_text().replace("[agent]\n", '[agent]\nkind = "claude-code"\n'))
    return path


def test_auto_approve_leaves_an_unavailable_agent_to_the_user(cli: Cli, tmp_path: Path) -> None:
    result = cli("run", str(not_logged_in_directive(tmp_path)), "--auto-approve")
    out = result.stdout
    assert result.returncode == 3, out + result.stderr
    assert f"the agent could not reach its model (attempt 1): {LOGIN}" in out  # the event
    assert f"The agent could not reach its model: {LOGIN}" in out  # the parting words
    assert "directorate approve " in out
    first = next(line for line in out.splitlines() if line.startswith("directive "))
    directive_id = first.split()[1].rstrip(":")
    assert cli.directive(directive_id)["status"] == "paused"
    assert cli.steps(directive_id)["only"][0] == "ready"
    assert len(list((tmp_path / "records").glob("step-*.json"))) == 1  # one attempt
    assert cli.rows(
        "SELECT approval_type, status FROM directive_approvals WHERE directive_id = %s",
        (directive_id,),
    ) == [("agent_unavailable", "pending")]
    assert "sent back for rework" not in out and "Traceback" not in result.stderr
    # Why it is paused, where a person looks.
    shown = cli("show", directive_id)
    assert f"paused: agent unavailable: {LOGIN}" in shown.stdout, shown.stdout + shown.stderr
    listed = cli("list")
    assert f"(agent unavailable: {LOGIN})" in listed.stdout, listed.stdout + listed.stderr


def test_json_names_the_tools_message(cli: Cli, tmp_path: Path) -> None:
    result = cli("run", str(not_logged_in_directive(tmp_path)), "--auto-approve", "--json")
    assert result.returncode == 3, result.stdout + result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "paused"
    assert outcome["agent_unavailable"] == LOGIN
    assert len(outcome["pending_approvals"]) == 1
