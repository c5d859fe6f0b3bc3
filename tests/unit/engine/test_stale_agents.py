"""A dead engine's agent, found by the task's record, with real processes: killed
when its pid and start time match or its environment names the task; a pid whose
start time differs, or a record from another host, is never touched."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from directorate.verifiers.stale_agents import (
    TASK_MARKER,
    RecordedProcess,
    StaleOutcome,
    stop_stale_agent,
)
from directorate.verifiers.supervised import Supervised, this_host
from directorate.verifiers.supervisor import running, start_time

# Ignores SIGTERM (as an agent busy saving its work might), says when it is ready.
STUBBORN = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(600)\n"
)


Spawn = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    started: list[subprocess.Popen[str]] = []

    def make(env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", STUBBORN],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # as an agent whose supervisor is gone: on its own
        )
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        return proc

    yield make
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def recorded(proc: subprocess.Popen[str], **values: object) -> RecordedProcess:
    fields: dict[str, object] = {
        "task_id": str(uuid.uuid4()),
        "host": this_host(),
        "pid": proc.pid,
        "pgid": proc.pid,
        "started_at": start_time(proc.pid),
    }
    fields.update(values)
    return RecordedProcess(**fields)  # type: ignore[arg-type]


def test_a_recorded_agent_still_running_is_killed_and_gone(spawn: Spawn) -> None:
    proc = spawn()
    check = stop_stale_agent(recorded(proc), grace_s=0.2)
    assert check.outcome is StaleOutcome.KILLED
    assert check.killed == (proc.pid,) and check.left == ()
    assert not running(proc.pid), "it ignored SIGTERM: SIGKILL after the grace"
    assert proc.wait(timeout=5) == -9


def test_a_recorded_pid_whose_start_time_differs_is_never_killed(spawn: Spawn) -> None:
    proc = spawn()
    started = start_time(proc.pid)
    assert started is not None
    # As if the agent had died and its pid now belonged to this later process.
    check = stop_stale_agent(recorded(proc, started_at=started - 2.0), grace_s=0.2)
    assert check.outcome is StaleOutcome.GONE
    assert check.spared == (proc.pid,) and check.killed == ()
    assert "belongs to a later process" in check.detail
    assert running(proc.pid) and proc.poll() is None


def test_a_record_from_another_host_touches_nothing(spawn: Spawn) -> None:
    proc = spawn(env={**os.environ, TASK_MARKER: "t-1"})
    check = stop_stale_agent(recorded(proc, task_id="t-1", host="another-host"), grace_s=0.2)
    assert check.outcome is StaleOutcome.ELSEWHERE
    assert "another-host" in check.detail
    assert running(proc.pid) and proc.poll() is None


def test_a_process_of_the_task_is_found_by_its_environment_without_a_pid(
    spawn: Spawn,
) -> None:
    task_id = str(uuid.uuid4())
    mine = spawn(env={**os.environ, TASK_MARKER: task_id})
    other = spawn(env={**os.environ, TASK_MARKER: str(uuid.uuid4())})
    check = stop_stale_agent(RecordedProcess(task_id=task_id), grace_s=0.2)
    assert check.outcome is StaleOutcome.KILLED and check.killed == (mine.pid,)
    assert not running(mine.pid)
    assert running(other.pid), "another task's agent is not this task's"


def test_a_live_supervisor_stops_its_agent_and_the_agents_escapees(tmp_path: Path) -> None:
    task_id = str(uuid.uuid4())
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    out = tmp_path / "out"
    with out.open("wb") as stdout:
        supervised = Supervised.start(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env={**os.environ, TASK_MARKER: task_id},
            grace_s=0.2,
            stdout=stdout,
        )
    try:
        process = supervised.process
        deadline = time.monotonic() + 30
        while not out.read_text().strip():  # the agent prints its escapee's pid
            assert supervised.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        escaped = int(out.read_text())
        check = stop_stale_agent(
            RecordedProcess(
                task_id=task_id,
                host=process.host,
                pid=process.pid,
                pgid=process.pgid,
                started_at=process.started_at,
                supervisor_pid=process.supervisor_pid,
                supervisor_started_at=process.supervisor_started_at,
            ),
            grace_s=0.2,
        )
        assert check.outcome is StaleOutcome.KILLED
        assert {process.supervisor_pid, process.pid, escaped} <= set(check.killed)
        assert not any(running(p) for p in (process.pid, escaped))
        assert supervised.wait(10) and supervised.returncode == -15
    finally:
        supervised.kill()
        supervised.close()
