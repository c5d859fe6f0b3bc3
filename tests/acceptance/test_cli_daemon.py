"""The daemon serving other processes: submit, approve, events --follow, restarts."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from clihelp import Cli, scripted_directive

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(120)]


def test_submit_then_approve_from_another_process(cli: Cli, tmp_path: Path) -> None:
    path = scripted_directive(
        tmp_path,
        autonomy="manual",
        steps=[{"name": "first"}, {"name": "second", "depends_on": ["first"]}],
        script={"steps": {"*": {"sleep": 0.1}}},
    )
    daemon = cli.daemon()
    submitted = cli("submit", str(path), "--wait")
    assert submitted.returncode == 0, submitted.stderr
    directive_id, outcome = submitted.stdout.split()[0], submitted.stdout.splitlines()[-1]
    assert outcome == "start: applied"
    answered, last_answered = 0, ""
    deadline = time.monotonic() + 60
    while cli.directive(directive_id)["status"] != "completed":
        assert time.monotonic() < deadline, cli("show", directive_id).stdout
        listed = cli("approvals", "--json")
        pending = [a for a in json.loads(listed.stdout) if a["directive_id"] == directive_id]
        if not pending:
            time.sleep(0.2)
            continue
        last_answered = pending[0]["id"]
        approved = cli("approve", last_answered[:8], "--by", "ana", "--note", "fine")
        assert approved.returncode == 0, approved.stdout + approved.stderr
        assert approved.stdout.strip() == "approve: applied"
        answered += 1
    assert answered >= 2  # manual autonomy: every step result needs a human
    assert cli.steps(directive_id) == {"first": ("passed", 1), "second": ("passed", 1)}
    again = cli("approve", last_answered)  # answered already
    assert again.returncode == 1
    assert again.stdout.startswith("approve: rejected: ")
    assert daemon.stop() == 0
    assert "directorate daemon stopped" in daemon.text()


def test_control_without_a_daemon_reports_that_nobody_answered(cli: Cli, tmp_path: Path) -> None:
    path = scripted_directive(tmp_path, steps=[{"name": "only"}], script={})
    directive_id = cli("submit", str(path)).stdout.strip()
    paused = cli("pause", directive_id[:6], "--timeout", "1")
    assert paused.returncode == 3
    assert "no engine answered" in paused.stderr


def test_events_follow_streams_while_the_directive_runs(cli: Cli, tmp_path: Path) -> None:
    path = scripted_directive(
        tmp_path,
        steps=[
            {"name": "one"},
            {"name": "two", "depends_on": ["one"]},
            {"name": "three", "depends_on": ["two"]},
        ],
        script={"steps": {"*": {"sleep": 1.5}}},  # room for `events` to start
    )
    cli.daemon()
    directive_id = cli("submit", str(path)).stdout.strip()
    follow = cli.spawn("events", directive_id, "--follow")
    first = follow.wait_for_line("one: attempt 1 started")
    assert cli.directive(directive_id)["status"] != "completed", first
    follow.wait_for_line("completed:")
    assert follow.popen.wait(30) == 0  # --follow ends with the directive
    times = [t for t, line in follow.lines]
    assert times[-1] - times[0] > 1.0  # streamed as they happened, not all at the end
    text = follow.text()
    for step in ("one", "two", "three"):
        assert f"{step}: running -> evaluating" in text


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_restarted_daemon_finishes_the_directive(
    cli: Cli, tmp_path: Path, how: signal.Signals
) -> None:
    path = scripted_directive(
        tmp_path,
        steps=[
            {"name": "one"},
            {"name": "two", "depends_on": ["one"]},
            {"name": "three", "depends_on": ["two"]},
        ],
        # The first attempt of "two" outlasts the daemon's shutdown by far (its SIGTERM
        # is noticed within 0.5 s, its command listener within another 0.5 s): with
        # 1 s it could finish first on a slow machine, and nothing would run again.
        script={
            "steps": {"*": {"sleep": 1.0}, "two": {"sleep": 1.0, "attempts": {"1": {"sleep": 10}}}}
        },
    )
    first = cli.daemon()
    directive_id = cli("submit", str(path)).stdout.strip()
    deadline = time.monotonic() + 30
    while cli.steps(directive_id).get("two", ("pending", 0))[0] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    code = first.stop(how)
    if how is signal.SIGTERM:
        assert code == 0
        assert "directorate daemon stopped" in first.text()
    assert cli.directive(directive_id)["status"] == "active"
    second = cli.daemon()
    if how is signal.SIGTERM:  # the first gave its lease up: taken up at once
        assert "1 live directive(s) recovered" in second.text()
    cli.wait_status(directive_id, {"completed", "failed", "cancelled"})
    taken = "lease_acquired" if how is signal.SIGTERM else "taken_over"
    assert taken in cli.event_types(directive_id)
    assert cli.directive(directive_id)["status"] == "completed"
    steps = cli.steps(directive_id)
    assert {name: status for name, (status, _) in steps.items()} == dict.fromkeys(
        ("one", "two", "three"), "passed"
    )
    assert steps["one"][1] == 1 and steps["two"][1] == 2  # two ran again after the restart
    shown = cli("show", directive_id[:8])
    assert "completed" in shown.stdout and "three" in shown.stdout


def test_submit_of_several_files_stores_all_or_none(cli: Cli, tmp_path: Path) -> None:
    first = scripted_directive(tmp_path, steps=[{"name": "only"}], script={}, name="a.toml")
    second = scripted_directive(tmp_path, steps=[{"name": "only"}], script={}, name="b.toml")
    plain = tmp_path / "plain"  # a folder, but no repository: refused by the engine's checks
    plain.mkdir()
    bad = tmp_path / "bad.toml"
    bad.write_text(
        "\n".join(
            f"local_path = {json.dumps(str(plain))}" if line.startswith("local_path") else line
            for line in first.read_text().splitlines()
        )
    )
    refused = cli("submit", str(first), str(bad), str(second))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "bad.toml: local_path" in refused.stderr
    assert cli.rows("SELECT count(*) FROM directives") == [(0,)]

    daemon = cli.daemon()
    submitted = cli("submit", str(first), str(second), "--wait")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    lines = submitted.stdout.splitlines()
    assert lines[2:] == ["start: applied", "start: applied"]
    for directive_id in lines[:2]:
        assert cli.directive(directive_id)["status"] in ("active", "completed")
    assert daemon.stop() == 0


def test_json_logs_carry_the_ids_they_are_about(cli: Cli, tmp_path: Path) -> None:
    path = scripted_directive(
        tmp_path, steps=[{"name": "slow"}], script={"steps": {"*": {"sleep": 60}}}
    )
    first = cli.daemon("--lease-ttl", "1", "--heartbeat", "0.2")
    directive_id = cli("submit", str(path)).stdout.strip()
    deadline = time.monotonic() + 30
    while cli.steps(directive_id).get("slow", ("pending", 0))[0] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.stop(signal.SIGKILL)  # its lease expires; the next daemon takes the directive
    second = cli.daemon("--log-format", "json")
    line = second.wait_for_line("taken over from engine")
    record = json.loads(line)
    assert record["directive_id"] == directive_id and record["level"] == "warning"
    assert record["logger"].startswith("directorate.") and record["time"].endswith("+00:00")
    assert second.stop() == 0
    logged = [json.loads(text) for text in second.text().splitlines() if text.startswith("{")]
    assert len(logged) >= 2 and all(
        {"time", "level", "logger", "message"} <= set(r) for r in logged
    )
