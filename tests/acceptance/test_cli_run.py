"""``directorate run``: the live table on a terminal, questions at the terminal, exit
statuses, and Ctrl-C, each through the real command (on a pseudo-terminal where a
person would sit at one)."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest
from clihelp import Cli, scripted_directive

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(90)]
FAILING_CHECK = f"{sys.executable} -c 'import sys; print(\"still broken\"); sys.exit(1)'"


def test_on_a_terminal_the_step_table_is_redrawn_in_place(cli: Cli, tmp_path: Path) -> None:
    path = scripted_directive(
        tmp_path,
        steps=[{"name": "first"}, {"name": "second", "depends_on": ["first"]}],
        script={"steps": {"*": {"sleep": 0.5}}},
    )
    terminal = cli.on_terminal("run", str(path))
    assert terminal.wait() == 0, terminal.text()
    screen = terminal.text()
    # rich redraws the table in place: up a line and erase it, again and again.
    assert screen.count("\x1b[1A\x1b[2K") >= 3
    assert "\x1b[32mpassed" in screen  # statuses in colour on a terminal
    assert screen.count("first") >= 3 and "second" in screen
    assert "completed: Acceptance" in screen


def test_an_approval_is_asked_at_the_terminal(cli: Cli, tmp_path: Path) -> None:
    path = scripted_directive(tmp_path, autonomy="manual", steps=[{"name": "only"}], script={})
    terminal = cli.on_terminal("run", str(path))
    terminal.read_until("approve? [y]es")
    assert "step_review" in terminal.text()
    terminal.type("y\n")
    assert terminal.wait() == 0, terminal.text()
    assert "completed: Acceptance" in terminal.text()


def test_a_denied_blocked_chain_fails_with_exit_1(cli: Cli, tmp_path: Path) -> None:
    path = scripted_directive(
        tmp_path,
        steps=[{"name": "only"}],
        script={},
        check=FAILING_CHECK,
        settings="max_rework_cycles = 1\nmax_chain_regenerations = 0",
    )
    terminal = cli.on_terminal("run", str(path))
    terminal.read_until("approve? [y]es")
    assert "chain_blocked" in terminal.text()
    terminal.type("n\n")
    assert terminal.wait() == 1, terminal.text()
    assert "failed: Acceptance" in terminal.text()


def test_without_a_terminal_a_question_leaves_it_waiting_with_exit_3(
    cli: Cli, tmp_path: Path
) -> None:
    path = scripted_directive(tmp_path, autonomy="manual", steps=[{"name": "only"}], script={})
    result = cli("run", str(path))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "only: running -> evaluating" in result.stdout  # one line per event
    assert "\x1b[" not in result.stdout
    assert "directorate approve " in result.stdout


def test_auto_approve_answers_yes(cli: Cli, tmp_path: Path) -> None:
    path = scripted_directive(
        tmp_path,
        autonomy="manual",
        steps=[{"name": "one"}, {"name": "two", "depends_on": ["one"]}],
        script={},
    )
    result = cli("run", str(path), "--auto-approve")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "steps        2 of 2 passed" in result.stdout
    assert "evaluations  3" in result.stdout  # two steps and the directive review


def test_ctrl_c_pauses_the_directive_and_says_how_to_resume(cli: Cli, tmp_path: Path) -> None:
    path = scripted_directive(
        tmp_path, steps=[{"name": "slow"}], script={"steps": {"*": {"sleep": 60}}}
    )
    run = cli.spawn("run", str(path))
    line = run.wait_for_line("slow: attempt 1 started")
    assert line
    time.sleep(0.3)
    started = time.monotonic()
    code = run.stop(signal.SIGINT)
    assert code == 3, run.text()
    assert time.monotonic() - started < 15  # the 60 s agent was not waited for
    text = run.text()
    assert "interrupted: paused" in text and "directorate resume " in text
    assert "Traceback" not in text
    directive_id = next(w for w in text.split() if w.count("-") == 4 and len(w) == 36)
    assert cli.directive(directive_id)["status"] == "paused"
    assert cli.steps(directive_id)["slow"][0] == "ready"  # runs again on resume


def test_sigterm_pauses_like_ctrl_c_and_leaves_no_agent_or_running_step(
    cli: Cli, tmp_path: Path
) -> None:
    path = scripted_directive(
        tmp_path, steps=[{"name": "slow"}], script={"steps": {"*": {"sleep": 60}}}
    )
    run = cli.spawn("run", str(path))
    run.wait_for_line("slow: attempt 1 started")
    directive_id = run.wait_for_line("directive ").split()[1].rstrip(":")
    deadline = time.monotonic() + 30
    while not (
        pids := cli.rows(
            "SELECT pid FROM tasks WHERE directive_id = %s AND status = 'running'"
            " AND pid IS NOT NULL",
            (directive_id,),
        )
    ):
        assert time.monotonic() < deadline, "the agent's pid was never recorded"
        time.sleep(0.05)
    [(pid,)] = pids
    code = run.stop(signal.SIGTERM)  # as `timeout`, CI or systemd stop it
    assert code == 3, run.text()
    text = run.text()
    assert "terminated (SIGTERM): paused" in text and f"directorate resume {directive_id}" in text
    assert "Traceback" not in text
    assert cli.directive(directive_id)["status"] == "paused"
    # The lease was given up, not left to expire.
    assert cli.rows("SELECT lease_owner FROM directives WHERE id = %s", (directive_id,)) == [
        (None,)
    ]
    assert cli.steps(directive_id)["slow"][0] == "ready"  # runs again on resume
    assert cli.rows("SELECT count(*) FROM tasks WHERE status = 'running'") == [(0,)]
    assert (
        not Path(f"/proc/{pid}").exists()
        or "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    )


def test_json_output_is_event_lines_then_the_outcome(cli: Cli, tmp_path: Path) -> None:
    path = scripted_directive(
        tmp_path, steps=[{"name": "one"}, {"name": "two", "depends_on": ["one"]}], script={}
    )
    result = cli("run", str(path), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    *events, outcome = records
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    # The run's engine may give its lease up (on a tick) before the run ends.
    kinds = [e["event_type"] for e in events]
    while kinds[-1] == "lease_released":
        kinds.pop()
    assert kinds[-1] == "directive_completed"
    assert outcome["status"] == "completed"
    assert outcome["steps"] == {"one": "passed", "two": "passed"}
