"""``directorate run --auto-approve`` with the real claude CLI when it cannot reach
its model: its key refused (the loopback server answers 401) or no key and no login.
The directive pauses after one attempt with ``agent_unavailable`` quoting the tool,
instead of rework x3, a blocked chain and regeneration (issue 15 point 4). Skips,
saying why, when .ci/agents could not install the tool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clihelp import Cli, env_table, make_repository, toml_string
from loopback import tools
from loopback.fixtures import *  # noqa: F403 - the real tools and the loopback server
from loopback.script import Script, unauthorized
from loopback.server import LoopbackServer

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(180)]


def directive_file(tmp_path: Path, agent: list[str]) -> Path:
    work = tmp_path / "work"
    make_repository(work)
    lines = [
        'title = "Say hello"',
        'goal = "hello.txt says hi"',
        'autonomy_level = "full_auto"',
        f"local_path = {toml_string(work)}",
        "",
        "[agent]",
        *agent,
        "",
        "[verifiers]",
        "auto_detect = false",
        "[[verifiers.command]]",
        'name = "ok"',
        f"run = {toml_string('true')}",
        "",
        "[[steps]]",
        'name = "hello"',
        'step_type = "implement"',
        'description = "Write hello.txt"',
    ]
    path = tmp_path / "directive.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        pytest.param("refused-key", "Invalid API key", id="401"),
        pytest.param("no-login", "Not logged in", id="not-logged-in"),
    ],
)
def test_claude_that_cannot_reach_its_model_pauses_after_one_attempt(
    cli: Cli,
    tmp_path: Path,
    claude_bin: Path,
    agent_home: Path,
    loopback: LoopbackServer,
    case: str,
    message: str,
) -> None:
    loopback.use(Script([unauthorized()], repeat_last=True))
    env = tools.claude_env(agent_home, loopback.url)
    if case == "no-login":
        del env["ANTHROPIC_API_KEY"]
    path = directive_file(
        tmp_path,
        ['kind = "claude-code"', f"command = [{toml_string(claude_bin)}]", env_table(env)],
    )
    ran = cli("run", str(path), "--in-place", "--auto-approve", timeout=150)
    out = ran.stdout
    assert ran.returncode == 3, out + ran.stderr
    assert f"The agent could not reach its model: {message}" in out
    assert "directorate approve " in out
    [(status,)] = cli.rows("SELECT status FROM directives")
    assert status == "paused"
    assert cli.rows("SELECT count(*) FROM tasks WHERE kind = 'step'") == [(1,)]
    assert cli.rows("SELECT approval_type, status FROM directive_approvals") == [
        ("agent_unavailable", "pending")
    ]
    events = [e for (e,) in cli.rows("SELECT event_type FROM directive_events")]
    assert events.count("agent_unavailable") == 1
    assert not {"step_rework", "step_blocked", "chain_superseded"} & set(events)


@pytest.mark.parametrize("case", ["refused-key", "no-key"])
def test_codex_that_cannot_reach_its_model_pauses_after_one_attempt(
    cli: Cli,
    tmp_path: Path,
    codex_bin: Path,
    agent_home: Path,
    loopback: LoopbackServer,
    case: str,
) -> None:
    loopback.use(Script([unauthorized()], repeat_last=True))
    env = tools.codex_env(agent_home)
    if case == "no-key":
        del env["OPENAI_API_KEY"]
    extra = json.dumps(tools.codex_provider_args(loopback.url))
    path = directive_file(
        tmp_path,
        [
            'kind = "codex"',
            f"command = [{toml_string(codex_bin)}]",
            f"extra_args = {extra}",
            env_table(env),
        ],
    )
    ran = cli("run", str(path), "--in-place", "--auto-approve", timeout=150)
    out = ran.stdout
    assert ran.returncode == 3, out + ran.stderr
    assert "The agent could not reach its model: " in out
    assert cli.rows("SELECT count(*) FROM tasks WHERE kind = 'step'") == [(1,)]
    [(message,)] = cli.rows(
        "SELECT data->>'message' FROM directive_events WHERE event_type = 'agent_unavailable'"
    )
    # Codex's own words: the refused key's status, or the variable it lacks.
    assert ("401" in message) if case == "refused-key" else ("OPENAI_API_KEY" in message), message
    assert cli.rows("SELECT approval_type, status FROM directive_approvals") == [
        ("agent_unavailable", "pending")
    ]
