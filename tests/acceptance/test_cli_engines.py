"""``directorate engines``: which engines share the database, and what each drives.

The daemons run with a short lease (``--lease-ttl 2 --heartbeat 0.5``), so that a
killed one expires, and its directive is taken over, within seconds.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from clihelp import Cli, Proc, scripted_directive

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(120)]

TTL_S = 2.0
SHORT_LEASE = ("--lease-ttl", str(TTL_S), "--heartbeat", "0.5")
BANNER = re.compile(r"directorate daemon \(pid (\d+), engine ([0-9a-f-]{36})\)")


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    """The file the step's agent waits for: opened at the end in any case, so that no
    agent of a killed daemon is left waiting."""
    path = tmp_path / "gate"
    yield path
    path.touch()


def held_directive(tmp_path: Path, gate: Path) -> Path:
    """One step, whose agent runs until ``gate`` exists."""
    return scripted_directive(
        tmp_path, steps=[{"name": "held"}], script={"steps": {"*": {"gate": str(gate)}}}
    )


def start_daemon(cli: Cli) -> tuple[Proc, str]:
    """A daemon with a short lease, and its engine's id."""
    proc = cli.daemon(*SHORT_LEASE)
    found = BANNER.search(proc.wait_for_line("directorate daemon (pid"))
    assert found is not None
    assert int(found[1]) == proc.popen.pid
    return proc, found[2]


def engines(cli: Cli) -> dict[str, dict[str, Any]]:
    """``directorate engines --json``, by engine id."""
    listed = cli("engines", "--json")
    assert listed.returncode == 0, listed.stderr
    return {e["id"]: e for e in json.loads(listed.stdout)}


def engines_text(cli: Cli) -> dict[str, str]:
    """``directorate engines``, each line by the short id it starts with."""
    listed = cli("engines")
    assert listed.returncode == 0, listed.stderr
    return {line.split()[0]: line for line in listed.stdout.splitlines()}


def at(engine: dict[str, Any], key: str) -> datetime:
    return datetime.fromisoformat(engine[key])


def wait_engines(
    cli: Cli, condition: Callable[[dict[str, dict[str, Any]]], bool], timeout: float = 30.0
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        shown = engines(cli)
        if condition(shown):
            return shown
        assert time.monotonic() < deadline, json.dumps(shown, indent=2)
        time.sleep(0.1)


def submit(cli: Cli, path: Path) -> str:
    """Submit and wait until a daemon started it (and so holds its lease)."""
    submitted = cli("submit", str(path), "--wait")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert submitted.stdout.splitlines()[-1] == "start: applied"
    return submitted.stdout.split()[0]


def test_no_engines_on_a_new_database(cli: Cli) -> None:
    text = cli("engines")
    assert (text.returncode, text.stdout) == (0, "no engines\n")
    assert json.loads(cli("engines", "--json").stdout) == []


def test_a_running_daemon_is_alive_and_owns_the_directive_it_drives(
    cli: Cli, tmp_path: Path, gate: Path
) -> None:
    daemon, engine_id = start_daemon(cli)
    directive_id = submit(cli, held_directive(tmp_path, gate))
    shown = wait_engines(cli, lambda es: es[engine_id]["directives"] == [directive_id])
    mine = shown[engine_id]
    assert mine["state"] == "alive" and mine["alive"] is True
    assert mine["pid"] == daemon.popen.pid and mine["takes_over"] is True
    assert mine["stopped_at"] is None
    assert 0 <= mine["heartbeat_age_s"] < TTL_S
    started, beat, expires = (at(mine, k) for k in ("started_at", "heartbeat_at", "expires_at"))
    assert expires > beat >= started
    # `submit` stored the directive through an engine of its own, which does not take
    # directives over and stopped when it was done.
    others = [e for e in shown.values() if e["id"] != engine_id]
    assert [(e["state"], e["takes_over"], e["directives"]) for e in others] == [
        ("stopped", False, [])
    ]
    lines = engines_text(cli)
    line = lines[engine_id[:8]]
    assert f"pid {daemon.popen.pid}" in line
    assert " alive " in line and " daemon " in line
    assert line.endswith(f"owns 1: {directive_id[:8]}")
    other = lines[others[0]["id"][:8]]
    assert " stopped " in other and " run " in other and other.endswith("owns nothing")


def test_a_killed_daemon_expires_and_its_directive_is_listed_under_the_one_that_took_it(
    cli: Cli, tmp_path: Path, gate: Path
) -> None:
    first, first_id = start_daemon(cli)
    directive_id = submit(cli, held_directive(tmp_path, gate))  # the only daemon: the first
    wait_engines(cli, lambda es: es[first_id]["directives"] == [directive_id])
    second, second_id = start_daemon(cli)
    assert engines(cli)[second_id]["directives"] == []  # the first is alive: it keeps it
    first.stop(signal.SIGKILL)
    shown = wait_engines(cli, lambda es: es[second_id]["directives"] == [directive_id])
    dead = shown[first_id]
    assert (dead["state"], dead["alive"], dead["stopped_at"]) == ("expired", False, None)
    assert dead["heartbeat_age_s"] > TTL_S  # it was taken only once its lease had expired
    assert dead["directives"] == []
    assert shown[second_id]["state"] == "alive"
    assert "taken_over" in cli.event_types(directive_id)
    lines = engines_text(cli)
    assert " expired " in lines[first_id[:8]] and lines[first_id[:8]].endswith("owns nothing")
    assert lines[second_id[:8]].endswith(f"owns 1: {directive_id[:8]}")
    # Its heartbeat keeps ageing: nobody beats for a dead engine.
    later = wait_engines(cli, lambda es: es[first_id]["heartbeat_age_s"] > dead["heartbeat_age_s"])
    assert later[first_id]["heartbeat_at"] == dead["heartbeat_at"]
    # A finished directive is nobody's any more.
    gate.touch()
    assert cli.wait_status(directive_id, {"completed", "failed", "cancelled"}) == "completed"
    assert engines(cli)[second_id]["directives"] == []
    assert second.stop() == 0


def test_a_daemon_stopped_by_sigterm_shows_stopped_and_owns_nothing(
    cli: Cli, tmp_path: Path, gate: Path
) -> None:
    daemon, engine_id = start_daemon(cli)
    directive_id = submit(cli, held_directive(tmp_path, gate))
    wait_engines(cli, lambda es: es[engine_id]["directives"] == [directive_id])
    assert daemon.stop(signal.SIGTERM) == 0
    stopped = engines(cli)[engine_id]
    assert (stopped["state"], stopped["alive"], stopped["directives"]) == ("stopped", False, [])
    assert stopped["stopped_at"] is not None
    assert at(stopped, "stopped_at") >= at(stopped, "heartbeat_at")
    assert cli.directive(directive_id)["status"] == "active"  # left for the next daemon
    line = engines_text(cli)[engine_id[:8]]
    assert " stopped " in line and line.endswith("owns nothing")
