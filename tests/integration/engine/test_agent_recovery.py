"""The processes of a task, across an engine's death (issue 11, point 2).

A task's row records its agent's pid, group, start time, supervisor and host while
it runs. An engine killed with SIGKILL mid-step leaves an agent behind; the engine
that takes the step up makes sure that agent (found by pid and start time, or by
the task id in its environment) is dead before attempt 2 starts, and records what
it did. A recorded pid that now belongs to another process, or a record made on
another host, is never acted on.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from engine_helpers import AGENTS, wait_for

from directorate.actors import AgentSpec, DirectiveSpec, DirectiveStatus, StepSpec

LINGERING = AGENTS / "lingering_agent.py"


def directive_file(root: Path, folder: Path, *agent_args: str) -> Path:
    """A directive of one step whose agent is ``lingering_agent.py FOLDER``."""
    command = [sys.executable, str(LINGERING), str(folder), *agent_args]
    path = root / "directive.toml"
    path.write_text(
        'title = "Outlive me"\n'
        'goal = "An agent that outlives its engine"\n'
        'autonomy_level = "full_auto"\n'
        "[agent]\n"
        f"command = {json.dumps(command)}\n"
        "[[steps]]\n"
        'name = "only"\n'
    )
    return path


@pytest.fixture
def engine_child(dsn: str, tmp_path: Path) -> Iterator[Any]:
    """Start an engine in a child process on a directive file; it prints the id."""
    children: list[subprocess.Popen[str]] = []

    def start(directive: Path) -> tuple[subprocess.Popen[str], uuid.UUID]:
        child = subprocess.Popen(
            [
                sys.executable,
                str(AGENTS / "engine_child.py"),
                dsn,
                str(tmp_path / "logs"),
                str(directive),
            ],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            text=True,
        )
        children.append(child)
        assert child.stdout is not None
        return child, uuid.UUID(child.stdout.readline().strip())

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait()
        if child.stdout:
            child.stdout.close()


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Pids a failing test may have left running: killed at the end (each by pid,
    and only while it is the same process)."""
    procs: list[int] = []
    yield procs
    for pid in procs:
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            continue


def read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def task_row(dsn: str, directive_id: uuid.UUID, attempt: int = 1) -> dict[str, Any] | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(
            "SELECT id, pid, pgid, host, extract(epoch FROM process_started_at) AS started,"
            " supervisor_pid, extract(epoch FROM supervisor_started_at) AS supervisor_started"
            " FROM tasks WHERE directive_id = %s AND attempt = %s",
            (directive_id, attempt),
        )
        row = cur.fetchone()
        if row is None:
            return None
        names = [c.name for c in cur.description or []]
        return dict(zip(names, row, strict=True))


def running(who: dict[str, float]) -> bool:
    """``who`` (pid and start time) still runs: the same process, not a reused pid."""
    try:
        proc = psutil.Process(int(who["pid"]))
        same = abs(proc.create_time() - who["started"]) < 0.01
        return same and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def events_of(engine: Any, directive_id: uuid.UUID) -> list[Any]:
    return engine.db.reads.events_after(directive_id, limit=100_000)


# ----------------------------------------------------------------- the row


@pytest.mark.timeout(60)
def test_the_task_row_records_the_running_agents_processes(
    engine_factory: Any, tmp_path: Path
) -> None:
    ready, release = tmp_path / "ready.json", tmp_path / "release"
    code = (
        "import json, os, pathlib, time\n"
        f"pathlib.Path({str(ready)!r}).write_text(json.dumps([os.getpid(), os.getppid()]))\n"
        f"while not os.path.exists({str(release)!r}): time.sleep(0.01)\n"
    )
    engine = engine_factory()
    directive_id = engine.submit(
        DirectiveSpec(
            title="Who runs me",
            goal="record the agent's processes",
            autonomy_level="full_auto",
            agent=AgentSpec(command=[sys.executable, "-c", code]),
            steps=[StepSpec(name="only")],
        )
    )
    engine.start_directive(directive_id)
    pid, supervisor = wait_for(lambda: read_json(ready), timeout=30)
    row = wait_for(lambda: (r := task_row(engine.config.dsn, directive_id)) and r["pid"] and r)
    assert (row["pid"], row["pgid"], row["supervisor_pid"]) == (pid, pid, supervisor)
    assert row["host"] == socket.gethostname()
    assert float(row["started"]) == pytest.approx(psutil.Process(pid).create_time(), abs=0.01)
    assert float(row["supervisor_started"]) == pytest.approx(
        psutil.Process(supervisor).create_time(), abs=0.01
    )
    release.touch()
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED


# ----------------------------------------------------------------- an engine killed mid-step


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "supervisor_killed_too",
    [
        pytest.param(False, id="engine-killed"),
        # As if the kernel's OOM killer had taken the supervisor as well: the agent
        # and its grandchild are orphans nobody stops but the recovering engine.
        pytest.param(True, id="engine-and-supervisor-killed"),
    ],
)
def test_an_agent_left_by_an_engine_killed_mid_step_is_dead_before_attempt_two_starts(
    engine_factory: Any,
    engine_child: Any,
    dsn: str,
    tmp_path: Path,
    leftovers: list[int],
    supervisor_killed_too: bool,
) -> None:
    folder = tmp_path / "agent"
    folder.mkdir()
    child, directive_id = engine_child(directive_file(tmp_path, folder))
    first = wait_for(lambda: read_json(folder / "attempt-1.json"), timeout=30)
    leftovers.extend(int(who["pid"]) for who in first.values())
    row = wait_for(lambda: (r := task_row(dsn, directive_id)) and r["pid"] and r, timeout=30)
    assert row["pid"] == first["agent"]["pid"]
    assert float(row["started"]) == pytest.approx(first["agent"]["started"], abs=0.01)
    if supervisor_killed_too:
        os.kill(row["supervisor_pid"], signal.SIGKILL)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert all(running(who) for who in first.values()), "they ignore SIGTERM: still running"

    engine = engine_factory()  # recovers on start; the directive names its own agent
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED
    second = read_json(folder / "attempt-2.json")
    assert second == {"first_still_running": []}, "attempt 2 started beside attempt 1"
    assert not any(running(who) for who in first.values())

    events = events_of(engine, directive_id)
    # The directive is taken over once the dead engine's lease expires; by then a
    # supervisor that outlived its engine may have stopped the agent itself.
    found = {"stale_agent_killed"} | (set() if supervisor_killed_too else {"stale_agent_gone"})
    [killed] = [e for e in events if e.event_type in found]
    assert killed.data["task_id"] == str(row["id"]) and killed.data["pid"] == row["pid"]
    assert killed.data["host"] == socket.gethostname()
    if killed.event_type == "stale_agent_killed":
        assert first["agent"]["pid"] in killed.data["killed"]
    if supervisor_killed_too:  # found by the task id its environment carries
        assert first["escapee"]["pid"] in killed.data["killed"]
    [started] = [e for e in events if e.event_type == "step_started" and e.data["attempt"] == 2]
    assert killed.seq < started.seq, "recorded before attempt 2 started"


# ----------------------------------------------------------------- never the wrong process


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("record", "event_type"),
    [
        # The agent died; its pid now belongs to a later process (the bystander).
        pytest.param({"start_shift": -3.0}, "stale_agent_gone", id="pid-reused"),
        # The bystander matches pid and start time, but the agent ran on another host.
        pytest.param({"host": "another-host"}, "stale_agent_elsewhere", id="other-host"),
    ],
)
def test_a_recorded_pid_that_is_not_the_agent_is_never_killed(
    engine_factory: Any,
    engine_child: Any,
    dsn: str,
    tmp_path: Path,
    leftovers: list[int],
    record: dict[str, Any],
    event_type: str,
) -> None:
    folder = tmp_path / "agent"
    folder.mkdir()
    child, directive_id = engine_child(directive_file(tmp_path, folder, "--cooperative"))
    first = wait_for(lambda: read_json(folder / "attempt-1.json"), timeout=30)
    leftovers.extend(int(who["pid"]) for who in first.values())
    row = wait_for(lambda: (r := task_row(dsn, directive_id)) and r["pid"] and r, timeout=30)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    # Its supervisor learns of the engine's death and stops the cooperative agent.
    wait_for(lambda: not any(running(who) for who in first.values()), timeout=20)

    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        started = psutil.Process(bystander.pid).create_time()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "UPDATE tasks SET pid = %s, pgid = %s, host = %s,"
                " process_started_at = to_timestamp(%s),"
                " supervisor_pid = NULL, supervisor_started_at = NULL WHERE id = %s",
                (
                    bystander.pid,
                    bystander.pid,
                    record.get("host", socket.gethostname()),
                    started + record.get("start_shift", 0.0),
                    row["id"],
                ),
            )
        engine = engine_factory()
        assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED
        assert bystander.poll() is None, "a process that was not the agent was killed"
        [noted] = [e for e in events_of(engine, directive_id) if e.event_type.startswith("stale_")]
        assert noted.event_type == event_type
        assert noted.data["pid"] == bystander.pid
        if event_type == "stale_agent_gone":
            assert noted.data["spared"] == [bystander.pid]
    finally:
        bystander.kill()
        bystander.wait()


# ----------------------------------------------------------------- a killed planning agent


@pytest.mark.timeout(120)
def test_a_planning_agent_left_by_a_killed_engine_is_dead_before_planning_again(
    engine_factory: Any,
    engine_child: Any,
    dsn: str,
    tmp_path: Path,
    leftovers: list[int],
) -> None:
    folder = tmp_path / "agent"
    folder.mkdir()
    path = directive_file(tmp_path, folder, "--linger-in", "planning")
    # No explicit steps: the lingering agent plans (it writes no plan: planning again
    # falls back to the default chain, whose steps it does at once).
    path.write_text(path.read_text().split("[[steps]]")[0])
    child, directive_id = engine_child(path)
    first = wait_for(lambda: read_json(folder / "attempt-1.json"), timeout=30)
    leftovers.extend(int(who["pid"]) for who in first.values())
    wait_for(lambda: (r := task_row(dsn, directive_id)) and r["pid"], timeout=30)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)

    engine = engine_factory()
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED
    assert read_json(folder / "attempt-2.json") == {"first_still_running": []}
    kinds = [e.event_type for e in events_of(engine, directive_id)]
    assert "stale_agent_killed" in kinds
    assert kinds.index("stale_agent_killed") < kinds.index("planning_recovered")
