"""Many engines on one database (issue 12, DESIGN §17): separate ``directorate daemon``
processes (and ``directorate run``) on one real PostgreSQL, started, killed, frozen
and restarted as an operator would; what they did is read back from the database and
from the scripted agents' run log (``"log"`` in the agent's script: a line when each
agent run starts and when it ends, with its pid, directive and step)."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import signal
import statistics
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
from clihelp import Cli, Proc, engine_of, scripted_directive

pytestmark = [pytest.mark.acceptance]

T = TypeVar("T")
LIVE = ("draft", "planning", "active", "paused")
STALE_AGENT = ("stale_agent_killed", "stale_agent_gone", "stale_agent_elsewhere")
"""What an engine taking a task over found of the previous engine's agent."""
TWO_STEPS: list[dict[str, Any]] = [{"name": "one"}, {"name": "two", "depends_on": ["one"]}]


# ----------------------------------------------------------------- helpers


def wait_until(condition: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    """Poll ``condition`` until it is truthy (its value is returned) or fail after
    ``timeout`` seconds, saying ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.1)


def directive_files(
    tmp_path: Path, count: int, *, steps: list[dict[str, Any]], script: dict[str, Any]
) -> list[Path]:
    """``count`` directive files, each on a project (git repository) of its own, all
    logging their agents' runs to ``tmp_path / "runs.jsonl"``."""
    log = tmp_path / "runs.jsonl"
    paths = []
    for index in range(count):
        folder = tmp_path / f"d{index:02d}"
        folder.mkdir()
        paths.append(scripted_directive(folder, steps=steps, script={"log": str(log), **script}))
    return paths


def submit_all(cli: Cli, paths: list[Path], *, wait: bool = False) -> list[str]:
    """Submit every file (a few ``directorate submit`` processes at once); their ids.
    With ``wait``, each returns once a daemon has applied its start."""
    extra = ["--wait"] if wait else []

    def submit(path: Path) -> str:
        done = cli("submit", str(path), *extra)
        assert done.returncode == 0, done.stdout + done.stderr
        if wait:
            assert done.stdout.splitlines()[-1] == "start: applied", done.stdout
        return done.stdout.split()[0]

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(submit, paths))


def statuses(cli: Cli, ids: list[str]) -> dict[str, str]:
    rows = cli.rows("SELECT id::text, status FROM directives WHERE id = ANY(%s::uuid[])", (ids,))
    return dict(rows)


def owners(cli: Cli, ids: list[str]) -> dict[str, str | None]:
    """Directive -> the engine named in its lease; for a finished directive, whose
    lease its engine gave up, the last engine that took it."""
    rows = cli.rows(
        "SELECT d.id::text, coalesce(d.lease_owner::text, CASE WHEN d.status IN"
        " ('completed', 'failed', 'cancelled') THEN (SELECT e.data->>'engine'"
        " FROM directive_events e WHERE e.directive_id = d.id"
        " AND e.event_type IN ('lease_acquired', 'taken_over') ORDER BY e.seq DESC LIMIT 1)"
        " END) FROM directives d WHERE d.id = ANY(%s::uuid[])",
        (ids,),
    )
    return dict(rows)


def all_finished(cli: Cli, ids: list[str]) -> bool:
    return not any(status in LIVE for status in statuses(cli, ids).values())


def engine_row(cli: Cli, engine_id: str) -> dict[str, Any]:
    rows = cli.rows(
        "SELECT pid, takes_over, expires_at > now() AND stopped_at IS NULL,"
        " extract(epoch FROM heartbeat_at - started_at)::float8"
        " FROM engines WHERE id = %s",
        (engine_id,),
    )
    assert rows, f"no engines row for {engine_id}"
    pid, takes_over, alive, beating_s = rows[0]
    return {"pid": pid, "takes_over": takes_over, "alive": alive, "beating_s": beating_s}


def events(cli: Cli, ids: list[str], *types: str) -> list[dict[str, Any]]:
    rows = cli.rows(
        "SELECT directive_id::text, seq, event_type, data, created_at FROM directive_events"
        " WHERE directive_id = ANY(%s::uuid[]) AND event_type = ANY(%s) ORDER BY created_at, seq",
        (ids, list(types)),
    )
    return [
        {"directive": d, "seq": seq, "type": kind, "data": data, "at": at}
        for d, seq, kind, data, at in rows
    ]


def tasks(cli: Cli, ids: list[str]) -> list[dict[str, Any]]:
    rows = cli.rows(
        "SELECT directive_id::text, step_id::text, kind, attempt, status, pid,"
        " engine_id::text, created_at FROM tasks WHERE directive_id = ANY(%s::uuid[])"
        " ORDER BY created_at",
        (ids,),
    )
    keys = ("directive", "step", "kind", "attempt", "status", "pid", "engine", "created_at")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def agent_runs(log: Path) -> dict[tuple[str, str], list[tuple[float, float, int, int]]]:
    """(directive, step) -> the agent runs of it in the log: (start, end, pid, attempt),
    ``end`` infinite for a run that never said it ended (it may be running still)."""
    starts: dict[tuple[int, str], dict[str, Any]] = {}
    ends: dict[tuple[int, str], float] = {}
    for line in log.read_text().splitlines():
        record = json.loads(line)
        key = (record["pid"], record["task_id"])
        if record["what"] == "start":
            starts[key] = record
        else:
            ends[key] = record["time"]
    runs: dict[tuple[str, str], list[tuple[float, float, int, int]]] = defaultdict(list)
    for key, start in starts.items():
        runs[(start["directive_id"], start["step_id"])].append(
            (start["time"], ends.get(key, math.inf), start["pid"], start["attempt"])
        )
    return runs


def assert_never_twice_at_once(log: Path, ids: list[str], steps_each: int) -> None:
    """No step's agent (nor a directive's planning agent) ran twice at the same time."""
    runs = agent_runs(log)
    stepped = {key for key in runs if key[0] in ids and key[1]}
    assert len(stepped) == len(ids) * steps_each, f"steps that ran: {len(stepped)}"
    overlaps = []
    for key, intervals in runs.items():
        intervals.sort()
        for before, after in itertools.pairwise(intervals):
            if after[0] < before[1]:
                overlaps.append((key, before, after))
    assert not overlaps, f"one step's agent ran twice at once: {overlaps}"


def assert_each_step_passed_once(cli: Cli, ids: list[str], steps_each: int) -> None:
    """Every step of every directive passed, and exactly one event says it passed."""
    steps = cli.rows(
        "SELECT s.id::text, s.status FROM chain_steps s JOIN directive_chains c"
        " ON c.id = s.chain_id WHERE c.directive_id = ANY(%s::uuid[]) AND c.status = 'active'",
        (ids,),
    )
    assert len(steps) == len(ids) * steps_each
    assert {status for _, status in steps} == {"passed"}, steps
    passed = cli.rows(
        "SELECT step_id::text, count(*) FROM directive_events"
        " WHERE directive_id = ANY(%s::uuid[]) AND event_type = 'step_status_changed'"
        " AND data->>'new_status' = 'passed' GROUP BY step_id",
        (ids,),
    )
    assert dict(passed) == {step_id: 1 for step_id, _ in steps}


def assert_seqs_gap_free(cli: Cli, ids: list[str]) -> None:
    rows = cli.rows(
        "SELECT directive_id::text, array_agg(seq ORDER BY seq) FROM directive_events"
        " WHERE directive_id = ANY(%s::uuid[]) GROUP BY directive_id",
        (ids,),
    )
    assert len(rows) == len(ids)
    for directive_id, seqs in rows:
        assert seqs == list(range(1, len(seqs) + 1)), (directive_id, seqs)


def one_each(cli: Cli, ids: list[str], *types: str) -> list[dict[str, Any]] | None:
    """The events of ``types`` once each directive has one (else None)."""
    found = events(cli, ids, *types)
    return found if {e["directive"] for e in found} == set(ids) else None


def running_steps(cli: Cli, ids: list[str], engine_id: str) -> dict[str, list[int]]:
    """Directive -> the pids of its running step agents recorded by ``engine_id``."""
    rows = cli.rows(
        "SELECT directive_id::text, pid FROM tasks WHERE directive_id = ANY(%s::uuid[])"
        " AND kind = 'step' AND status = 'running' AND pid IS NOT NULL AND engine_id = %s",
        (ids, engine_id),
    )
    found: dict[str, list[int]] = defaultdict(list)
    for directive_id, pid in rows:
        found[directive_id].append(pid)
    return found


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def db_now(cli: Cli) -> float:
    """The database's clock, as seconds since the epoch (event times are in it)."""
    return float(cli.rows("SELECT extract(epoch FROM clock_timestamp())::float8")[0][0])


def figures(values: list[float]) -> str:
    return (
        f"min {min(values):.2f} s, median {statistics.median(values):.2f} s, "
        f"max {max(values):.2f} s"
    )


# ----------------------------------------------------------------- the tests


@pytest.mark.timeout(240)
def test_two_daemons_share_twenty_directives_and_run_each_step_once(
    cli: Cli, tmp_path: Path
) -> None:
    paths = directive_files(
        tmp_path, 20, steps=[{"name": "only"}], script={"steps": {"*": {"sleep": 0.2}}}
    )
    # Half are waiting when the two start (their start commands race at startup),
    # half arrive while both serve.
    ids = submit_all(cli, paths[:10])
    daemons = [cli.spawn("daemon"), cli.spawn("daemon")]
    for daemon in daemons:
        daemon.wait_for_line("waiting for commands")
    engines = {engine_of(daemon) for daemon in daemons}
    ids += submit_all(cli, paths[10:])
    wait_until(lambda: all_finished(cli, ids), "all 20 directives finished", timeout=180)

    assert set(statuses(cli, ids).values()) == {"completed"}
    assert_never_twice_at_once(tmp_path / "runs.jsonl", ids, steps_each=1)
    assert_each_step_passed_once(cli, ids, steps_each=1)
    assert_seqs_gap_free(cli, ids)
    # Nobody died: each directive was taken once, by one of the two, which ran all its
    # agents, each step once.
    acquired = events(cli, ids, "lease_acquired")
    assert sorted(e["directive"] for e in acquired) == sorted(ids)
    assert {e["data"]["engine"] for e in acquired} <= engines
    assert not events(cli, ids, "taken_over", "lease_lost", "stale_attempt")
    # Finished, each is given up (on a tick) by the engine that drove it.
    released = wait_until(
        lambda: (found := events(cli, ids, "lease_released")) and len(found) == 20 and found,
        "every finished directive's lease is given up",
    )
    assert sorted((e["directive"], e["data"]["engine"]) for e in released) == sorted(
        (e["directive"], e["data"]["engine"]) for e in acquired
    )
    lease = owners(cli, ids)
    ran = tasks(cli, ids)
    assert len(ran) == 20
    assert all(t["engine"] == lease[t["directive"]] and t["attempt"] == 1 for t in ran), ran
    split = sorted(list(lease.values()).count(engine) for engine in engines)
    print(f"\n20 directives on two daemons: {split[0]} and {split[1]}")
    for daemon in daemons:
        assert daemon.stop() == 0, daemon.text()


@pytest.mark.timeout(180)
def test_a_second_daemon_leaves_the_first_ones_directives_alone(cli: Cli, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    # "two" is held until the second daemon has served (beaten, scanned for
    # takeovers every second) a while: only then can the first's directives end.
    script = {"steps": {"*": {"sleep": 0.2}, "two": {"gate": str(gate)}}}
    paths = directive_files(tmp_path, 6, steps=TWO_STEPS, script=script)
    first = cli.daemon()
    first_id = engine_of(first)
    ids = submit_all(cli, paths, wait=True)
    second = cli.daemon()
    second_id = engine_of(second)
    assert second_id != first_id

    def the_first_holds_them() -> None:
        assert owners(cli, ids) == dict.fromkeys(ids, first_id)
        assert first.popen.poll() is None and second.popen.poll() is None

    def second_served_a_while() -> bool:
        the_first_holds_them()
        return bool(engine_row(cli, second_id)["beating_s"] >= 3.0)

    wait_until(second_served_a_while, "the second daemon served for a few seconds")
    assert not any(status == "completed" for status in statuses(cli, ids).values())
    gate.touch()

    def finished() -> bool:
        the_first_holds_them()  # the lease stays the first's until each completes
        return all_finished(cli, ids)

    wait_until(finished, "the first daemon finished its directives", timeout=120)
    assert set(statuses(cli, ids).values()) == {"completed"}
    assert engine_row(cli, second_id)["alive"]
    ran = tasks(cli, ids)
    assert len(ran) == 12 and {t["engine"] for t in ran} == {first_id}
    taken = events(cli, ids, "lease_acquired", "taken_over")
    assert [(e["type"], e["data"]["engine"]) for e in taken] == [("lease_acquired", first_id)] * 6
    assert not events(cli, ids, "lease_lost", "stale_attempt")
    assert_each_step_passed_once(cli, ids, steps_each=2)
    assert second.stop() == 0 and first.stop() == 0


@pytest.mark.timeout(180)
def test_after_kill_9_the_survivor_takes_every_directive_over(cli: Cli, tmp_path: Path) -> None:
    # The first attempt of "one" outlasts the survivor's start and the submissions: the
    # victim's directives are all at it when it is killed.
    script = {
        "steps": {"*": {"sleep": 0.3}, "one": {"sleep": 0.3, "attempts": {"1": {"sleep": 10}}}}
    }
    paths = directive_files(tmp_path, 8, steps=TWO_STEPS, script=script)
    victim = cli.daemon("--max-tasks", "8")
    victim_id = engine_of(victim)
    ids = submit_all(cli, paths[:5], wait=True)  # the victim's, surely
    survivor = cli.daemon("--max-tasks", "8")
    survivor_id = engine_of(survivor)
    ids += submit_all(cli, paths[5:], wait=True)  # either's
    lease = owners(cli, ids)
    victims = [d for d in ids if lease[d] == victim_id]
    assert len(victims) >= 5
    # Mid-run: every directive of the victim has its first step's agent running.
    wait_until(
        lambda: set(running_steps(cli, victims, victim_id)) == set(victims),
        "the victim runs a step of each of its directives",
    )
    killed_at = db_now(cli)
    victim.popen.kill()
    assert victim.popen.wait(10) == -signal.SIGKILL

    takeovers = wait_until(
        lambda: one_each(cli, victims, "taken_over"),
        "the survivor took every directive of the victim over",
        timeout=30,
    )
    assert len(takeovers) == len(victims)
    for event in takeovers:
        data = event["data"]
        assert data["engine"] == survivor_id and data["from_engine"] == victim_id, data
        assert data["from_pid"] == victim.popen.pid, data
    since_kill = [e["at"].timestamp() - killed_at for e in takeovers]
    after_s = [float(e["data"]["after_s"]) for e in takeovers]
    print(
        f"\ntakeover of {len(takeovers)} directive(s) after kill -9 (lease ttl 5 s, heartbeat"
        f" 1 s): since the kill {figures(since_kill)}; after_s (since the victim's last"
        f" heartbeat) {figures(after_s)}"
    )
    assert all(0 < s < 10 for s in since_kill), since_kill
    assert all(0 < s < 10 for s in after_s), after_s

    wait_until(lambda: all_finished(cli, ids), "all directives finished", timeout=90)
    assert set(statuses(cli, ids).values()) == {"completed"}
    assert owners(cli, victims) == dict.fromkeys(victims, survivor_id)
    assert_each_step_passed_once(cli, ids, steps_each=2)
    assert_seqs_gap_free(cli, ids)
    assert_never_twice_at_once(tmp_path / "runs.jsonl", ids, steps_each=2)
    assert survivor.stop() == 0, survivor.text()


ELSEWHERE = (
    "unshare",
    "--uts",
    "sh",
    "-c",
    'hostname directorate-elsewhere && exec "$@"',
    "sh",
)
"""Runs a command as if on another host: a hostname of its own (a UTS namespace; the
processes, files and database are the same)."""


def can_be_elsewhere() -> bool:
    try:
        return subprocess.run([*ELSEWHERE, "true"], capture_output=True).returncode == 0
    except OSError:
        return False


@pytest.mark.timeout(180)
@pytest.mark.parametrize("host", ["same host", "another host"])
def test_a_frozen_engine_loses_its_directives_and_stops_driving_them(
    cli: Cli, tmp_path: Path, host: str
) -> None:
    """On the same host, the engine that takes over stops the frozen one's agents (as a
    dead engine's); from another host it cannot, so they run on until the frozen
    engine wakes, finds its leases gone and stops them itself."""
    elsewhere = host == "another host"
    if elsewhere and not can_be_elsewhere():
        pytest.skip("unshare --uts is not allowed here (it needs CAP_SYS_ADMIN)")
    quick = ["--lease-ttl", "2", "--heartbeat", "0.5"]
    # The first attempt of "one" outlasts the freeze by far: it is running when the
    # engine is frozen, and when the other takes over.
    script = {
        "steps": {"*": {"sleep": 0.3}, "one": {"sleep": 0.3, "attempts": {"1": {"sleep": 60}}}}
    }
    paths = directive_files(tmp_path, 2, steps=TWO_STEPS, script=script)
    frozen = cli.daemon(*quick, wrapper=ELSEWHERE if elsewhere else ())
    frozen_id = engine_of(frozen)
    ids = submit_all(cli, paths, wait=True)
    assert owners(cli, ids) == dict.fromkeys(ids, frozen_id)
    other = cli.daemon(*quick)
    other_id = engine_of(other)
    wait_until(
        lambda: len(running_steps(cli, ids, frozen_id)) == 2, "both directives' first step runs"
    )
    pids = [pid for found in running_steps(cli, ids, frozen_id).values() for pid in found]
    assert not any(gone(pid) for pid in pids)

    os.kill(frozen.popen.pid, signal.SIGSTOP)
    try:
        takeovers = wait_until(
            lambda: one_each(cli, ids, "taken_over"),
            "the other engine took both directives over",
            timeout=30,
        )
        assert len(takeovers) == 2 and {e["data"]["engine"] for e in takeovers} == {other_id}
        assert {e["data"]["from_engine"] for e in takeovers} == {frozen_id}
        assert not engine_row(cli, frozen_id)["alive"]
        checked = wait_until(
            lambda: one_each(cli, ids, *STALE_AGENT),
            "the other engine checked the frozen one's agents",
        )
        expected = "stale_agent_elsewhere" if elsewhere else "stale_agent_killed"
        assert len(checked) == 2 and {e["type"] for e in checked} == {expected}, checked
        if elsewhere:  # out of the other's reach: the frozen engine's to stop
            assert not any(gone(pid) for pid in pids)
    finally:
        os.kill(frozen.popen.pid, signal.SIGCONT)
    woke_at = time.monotonic()
    woke_wall = time.time()

    wait_until(lambda: all(gone(pid) for pid in pids), "the frozen engine's agents are gone", 10)
    print(
        f"\n{host}: the frozen engine's agents were gone {time.monotonic() - woke_at:.2f} s"
        " after SIGCONT"
    )
    lost = wait_until(
        lambda: one_each(cli, ids, "lease_lost"),
        "the woken engine said it lost both leases",
        timeout=20,
    )
    assert len(lost) == 2 and {e["data"]["engine"] for e in lost} == {frozen_id}
    frozen.wait_for_line("this engine lost its lease", timeout=10)

    wait_until(lambda: all_finished(cli, ids), "both directives finished", timeout=60)
    assert set(statuses(cli, ids).values()) == {"completed"}
    assert owners(cli, ids) == dict.fromkeys(ids, other_id)
    taken_at = {e["directive"]: e["at"] for e in takeovers}
    for task in tasks(cli, ids):
        if task["created_at"] >= taken_at[task["directive"]]:
            assert task["engine"] in (other_id, None), task
        else:
            assert task["engine"] == frozen_id, task
    assert_each_step_passed_once(cli, ids, steps_each=2)
    assert_seqs_gap_free(cli, ids)
    runs = agent_runs(tmp_path / "runs.jsonl")
    frozen_runs = [run for found in runs.values() for run in found if run[2] in pids]
    assert len(frozen_runs) == 2
    if elsewhere:
        # Each ran on beside the other engine's new attempt (nothing here could stop
        # it) until the frozen engine woke and stopped it.
        assert all(woke_wall <= end < woke_wall + 10 for _, end, _, _ in frozen_runs), runs
        stale = events(cli, ids, "stale_attempt")
        assert {e["data"]["engine"] for e in stale} == {frozen_id} and len(stale) == 2
    else:
        assert_never_twice_at_once(tmp_path / "runs.jsonl", ids, steps_each=2)
    # The woken engine goes on serving (driving nothing) and stops cleanly.
    assert frozen.popen.poll() is None
    assert frozen.stop() == 0, frozen.text()
    assert other.stop() == 0, other.text()


@pytest.mark.timeout(180)
def test_a_daemon_beside_run_leaves_its_directive_alone_across_a_restart(
    cli: Cli, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    path = scripted_directive(
        tmp_path,
        steps=[
            {"name": "one"},
            {"name": "two", "depends_on": ["one"]},
            {"name": "three", "depends_on": ["two"]},
        ],
        # "two" is held until the restarted daemon has scanned for takeovers a while.
        script={
            "log": str(tmp_path / "runs.jsonl"),
            "steps": {"*": {"sleep": 0.2}, "two": {"gate": str(gate)}},
        },
    )
    run = cli.spawn("run", str(path))
    found = re.search(r"directive ([0-9a-f-]{36}):", run.wait_for_line("directive "))
    assert found is not None, run.text()
    directive_id = found.group(1)
    run_engine = owners(cli, [directive_id])[directive_id]
    assert run_engine is not None
    row = engine_row(cli, run_engine)
    assert row["pid"] == run.popen.pid and not row["takes_over"]
    ids = [directive_id]

    def still_the_runs(proc: Proc | None = None) -> None:
        assert owners(cli, ids) == {directive_id: run_engine}
        assert run.popen.poll() is None, run.text()
        if proc is not None:
            assert proc.popen.poll() is None, proc.text()

    wait_until(lambda: cli.steps(directive_id).get("two", ("", 0))[0] == "running", "two runs")
    daemons: list[str] = []
    for restarted in (False, True):  # started, then SIGTERM and started again
        daemon = cli.daemon()
        daemon_id = engine_of(daemon)
        daemons.append(daemon_id)
        assert "0 live directive(s) recovered" in daemon.text()

        def beat_a_while(daemon: Proc = daemon, daemon_id: str = daemon_id) -> bool:
            still_the_runs(daemon)
            return bool(engine_row(cli, daemon_id)["beating_s"] >= 2.5)

        wait_until(beat_a_while, "the daemon served for a few ticks")
        if not restarted:
            assert daemon.stop() == 0, daemon.text()
            still_the_runs()
    assert len(set(daemons)) == 2 and run_engine not in daemons
    gate.touch()
    assert run.popen.wait(60) == 0, run.text()
    run.close()
    assert "completed: Acceptance" in run.text()
    assert cli.directive(directive_id)["status"] == "completed"
    ran = tasks(cli, ids)
    assert len(ran) == 3 and {t["engine"] for t in ran} == {run_engine}
    leased = events(cli, ids, "lease_acquired", "taken_over", "lease_lost", "lease_released")
    assert [(e["type"], e["data"]["engine"]) for e in leased] == [
        ("lease_acquired", run_engine),
        ("lease_released", run_engine),
    ]
    assert daemon.stop() == 0, daemon.text()
