"""``directorate run`` with the real claude and codex CLIs (kinds ``claude-code`` and
``codex``), their model APIs answered by the loopback server (tests/loopback). They
skip, saying why, when .ci/agents could not install the tools."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from clihelp import Cli, env_table, make_repository, toml_string
from loopback import tools
from loopback.fixtures import *  # noqa: F403 - the real tools and the loopback server
from loopback.script import Script, Text, ToolCall, ToolCalls, bash, verdict
from loopback.server import LoopbackServer

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(180)]

HAS_HELLO = (
    f"{sys.executable} -c \"import pathlib, sys; sys.exit(not pathlib.Path('hello.txt').exists())\""
)


def directive_file(tmp_path: Path, agent: list[str], *, planned: bool = False) -> tuple[Path, Path]:
    work = tmp_path / "work"
    make_repository(work)
    lines = [
        'title = "Say hello"',
        'goal = "hello.txt says hi"',
        'autonomy_level = "full_auto"',
        f"local_path = {toml_string(work)}",
        "max_total_cost_usd = 5.0",
        "",
        "[agent]",
        *agent,
        "",
        "[verifiers]",
        "auto_detect = false",
        "[[verifiers.command]]",
        'name = "hello-exists"',
        f"run = {toml_string(HAS_HELLO)}",
    ]
    if not planned:
        lines += [
            "",
            "[[steps]]",
            'name = "hello"',
            'step_type = "implement"',
            'description = "Write hello.txt"',
            'task_plan = "Create hello.txt holding hi"',
        ]
    path = tmp_path / "directive.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, work


def outcome(cli: Cli) -> tuple[str, float, str]:
    [(status, cost, branch)] = cli.rows(
        "SELECT status, total_cost_usd, result_branch FROM directives"
    )
    return str(status), float(cost), str(branch)


def on_branch(work: Path, branch: str, name: str) -> str:
    shown = subprocess.run(
        ["git", "-C", str(work), "show", f"{branch}:{name}"], capture_output=True, text=True
    )
    return shown.stdout if shown.returncode == 0 else f"<{shown.stderr.strip()}>"


def test_claude_code_kind_completes_with_its_change_and_cost(
    cli: Cli, tmp_path: Path, claude_bin: Path, agent_home: Path, loopback: LoopbackServer
) -> None:
    loopback.use(Script([bash("echo hi > hello.txt"), Text("Wrote hello.txt.")]))
    path, work = directive_file(
        tmp_path,
        [
            'kind = "claude-code"',
            f"command = [{toml_string(claude_bin)}]",
            'extra_args = ["--allowedTools", "Bash"]',
            env_table(tools.claude_env(agent_home, loopback.url)),
        ],
    )
    ran = cli("run", str(path), "--in-place", timeout=150)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    status, cost, branch = outcome(cli)
    assert status == "completed"
    assert on_branch(work, branch, "hello.txt") == "hi\n"
    # Claude Code priced its two model calls itself: $0.0064 each at its default model.
    assert cost == pytest.approx(2 * 0.0064)
    # The key the directive's env set reached the model (two calls: a tool use, an answer).
    keys = [r.headers.get("x-api-key") for r in loopback.session_requests()]
    assert keys == ["test", "test"]
    # Its transcript went with the worktree.
    assert list((agent_home / ".claude" / "projects").glob("*worktrees*")) == []


PLAN = {
    "steps": [
        {
            "name": "say-hello",
            "step_type": "implement",
            "description": "Write hello.txt",
            "depends_on": [],
            "task_plan": "Create hello.txt holding hi",
        }
    ]
}


def test_claude_code_plans_the_chain_itself_then_does_it(
    cli: Cli, tmp_path: Path, claude_bin: Path, agent_home: Path, loopback: LoopbackServer
) -> None:
    # The planning session writes the file its instructions name (also in its env).
    write_plan = bash(f"printf '%s' '{json.dumps(PLAN)}' > \"$DIRECTORATE_PLAN_FILE\"")
    loopback.use(
        Script(
            [write_plan, Text("Planned."), bash("echo hi > hello.txt"), Text("Wrote hello.txt.")]
        )
    )
    path, work = directive_file(
        tmp_path,
        [
            'kind = "claude-code"',
            f"command = [{toml_string(claude_bin)}]",
            'extra_args = ["--allowedTools", "Bash"]',
            env_table(tools.claude_env(agent_home, loopback.url)),
        ],
        planned=True,
    )
    ran = cli("run", str(path), "--in-place", timeout=150)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    status, cost, branch = outcome(cli)
    assert status == "completed"
    assert [name for (name,) in cli.rows("SELECT name FROM chain_steps")] == ["say-hello"]
    assert cli.rows("SELECT 1 FROM directive_events WHERE event_type = 'plan_rejected'") == []
    assert on_branch(work, branch, "hello.txt") == "hi\n"
    assert cost == pytest.approx(4 * 0.0064)  # two sessions of two calls, as Claude priced them


PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hi\n*** End Patch\n"


def test_codex_kind_completes_with_its_change_and_priced_tokens(
    cli: Cli, tmp_path: Path, codex_bin: Path, agent_home: Path, loopback: LoopbackServer
) -> None:
    loopback.use(Script([ToolCalls([ToolCall("apply_patch", PATCH)]), Text("Added hello.txt.")]))
    extra = json.dumps(tools.codex_provider_args(loopback.url))
    path, work = directive_file(
        tmp_path,
        [
            'kind = "codex"',
            f"command = [{toml_string(codex_bin)}]",
            f'model = "{tools.CODEX_MODEL}"',
            f"extra_args = {extra}",
            env_table(tools.codex_env(agent_home)),
        ],
    )
    ran = cli("run", str(path), "--in-place", timeout=150)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    status, cost, branch = outcome(cli)
    assert status == "completed"
    assert on_branch(work, branch, "hello.txt") == "hi\n"
    # Codex reports tokens only (2 calls x 1200 in, 80 out): priced at gpt-5's list price.
    assert cost == pytest.approx((2400 * 1.25 + 160 * 10.0) / 1e6)
    # ... and its tokens feed the token breaker's total like any tool's.
    assert cli.rows("SELECT total_tokens FROM directives") == [(2400 + 160,)]
    assert list((agent_home / ".codex" / "sessions").rglob("rollout-*.jsonl")) == []


def with_judge(path: Path, claude_bin: Path, env: dict[str, str]) -> None:
    """Add the claude-code judge to a directive file (its own session, read-only)."""
    judge = [
        "",
        "[verifiers.llm]",
        'kind = "claude-code"',
        f"command = [{toml_string(claude_bin)}]",
        "timeout_s = 120",
    ]
    text = path.read_text().replace(
        "auto_detect = false\n", f"auto_detect = false\n{env_table(env)}\n", 1
    )
    path.write_text(text.replace("\n[[steps]]", "\n".join(judge) + "\n\n[[steps]]", 1))


def test_the_judges_session_counts_in_the_directives_cost(
    cli: Cli, tmp_path: Path, claude_bin: Path, agent_home: Path, loopback: LoopbackServer
) -> None:
    """Agent and judge are both real Claude sessions: the directive's cost is the sum
    of what each reported, so the cost breaker sees the judge too."""
    loopback.use(
        Script(
            [
                bash("echo hi > hello.txt"),
                Text("Wrote hello.txt."),
                verdict(0.9, "it is there"),
                verdict(0.9, "the directive is done"),
            ]
        )
    )
    env = tools.claude_env(agent_home, loopback.url)
    path, work = directive_file(
        tmp_path,
        [
            'kind = "claude-code"',
            f"command = [{toml_string(claude_bin)}]",
            'extra_args = ["--allowedTools", "Bash"]',
            env_table(env),
        ],
    )
    with_judge(path, claude_bin, env)
    ran = cli("run", str(path), "--in-place", timeout=150)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    status, cost, branch = outcome(cli)
    assert status == "completed"
    assert on_branch(work, branch, "hello.txt") == "hi\n"
    # Two agent calls, then the judge once for the step and once for the directive
    # at its end: every session's reported cost is in the total, as Claude priced it.
    calls = loopback.session_requests()
    assert len(calls) == 4, [r.answer for r in calls]
    assert cost == pytest.approx(4 * 0.0064)
    judged = cli.rows("SELECT data FROM directive_events WHERE event_type = 'judge_usage'")
    assert [float(d["cost_usd"]) for (d,) in judged] == pytest.approx([0.0064, 0.0064])


def test_denied_edits_do_not_pass(
    cli: Cli, tmp_path: Path, claude_bin: Path, agent_home: Path, loopback: LoopbackServer
) -> None:
    """Claude may run only `git diff` here: its edit through Bash is denied, it exits
    0 with the denial in its report, and the unchanged repository is not green work:
    the step is red, and with no rework left a person is asked (guardrails)."""
    edit = "python3 -c \"open('hello.txt', 'w').write('hello')\""
    loopback.use(Script([bash(edit), Text("I could not write it.")]))
    path, work = directive_file(
        tmp_path,
        [
            'kind = "claude-code"',
            f"command = [{toml_string(claude_bin)}]",
            'extra_args = ["--allowedTools", "Bash(git diff:*)"]',
            env_table(tools.claude_env(agent_home, loopback.url)),
        ],
    )
    # The check would pass without the agent (hello.txt is there from the start), so
    # only the empty diff tells that nothing was done.
    (work / "hello.txt").write_text("hi\n")
    subprocess.run(["git", "-C", str(work), "add", "hello.txt"], check=True)
    subprocess.run(["git", "-C", str(work), "commit", "-qm", "hello"], check=True)
    text = path.read_text().replace("max_total_cost_usd = 5.0", "max_rework_cycles = 0", 1)
    text = text.replace('"full_auto"', '"guardrails"', 1)
    path.write_text(text)
    ran = cli("run", str(path), "--in-place", timeout=150)
    status, _cost, _branch = outcome(cli)
    assert status != "completed" and ran.returncode != 0, ran.stdout + ran.stderr
    denials = cli.rows(
        "SELECT (data->>'denials')::int FROM directive_events"
        " WHERE event_type = 'task_finished' AND data->>'kind' = 'step'"
    )
    assert denials and all(n >= 1 for (n,) in denials), denials
    verdicts = cli.rows("SELECT confidence_level, summary FROM directive_evaluations")
    assert verdicts and all(level == "red" for level, _ in verdicts), verdicts
    assert "changed nothing" in verdicts[0][1] and "refused" in verdicts[0][1], verdicts
