"""No process outlives its task: descendants that left the agent's process group
(a ``setsid`` grandchild, a double-forked daemon) are gone once the task has ended,
however it ended: the agent exited, timed out or was cancelled (issue 11, point 2)."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from test_runners import make_task

from directorate.actors import CommandRunner
from directorate.persistence.models import TaskStatus
from directorate.verifiers.supervised import SupervisedProcess
from directorate.verifiers.supervisor import start_time

# The agent leaves two processes that a process-group kill cannot reach, writes
# their pids (with its own) to the file named by argv[1], then exits or works on.
ESCAPING_AGENT = """
import json, os, subprocess, sys, time

out, mode = sys.argv[1], sys.argv[2]
setsid = subprocess.Popen(["sleep", "600"], start_new_session=True)
read_end, write_end = os.pipe()
first = os.fork()
if first == 0:  # the classic daemon: fork, setsid, fork again, the middle one exits
    os.setsid()
    if os.fork() == 0:
        os.write(write_end, str(os.getpid()).encode())
        os.execvp("sleep", ["sleep", "600"])
    os._exit(0)
os.waitpid(first, 0)
daemon = int(os.read(read_end, 32))
pids = {"agent": os.getpid(), "setsid": setsid.pid, "double_forked": daemon}
with open(out + ".tmp", "w") as file:
    json.dump(pids, file)
os.rename(out + ".tmp", out)
if mode == "exit":  # once the test has seen them all
    deadline = time.monotonic() + 60
    while not os.path.exists(out + ".go") and time.monotonic() < deadline:
        time.sleep(0.01)
    sys.exit(0)
time.sleep(600)
"""


def escaping_agent(tmp_path: Path, mode: str, **kwargs: float) -> tuple[CommandRunner, Path]:
    script = tmp_path / "escaping_agent.py"
    script.write_text(ESCAPING_AGENT)
    pids = tmp_path / "pids.json"
    return CommandRunner([sys.executable, str(script), str(pids), mode], **kwargs), pids


def identities(pids_file: Path) -> dict[str, tuple[int, float]]:
    """Each process the agent wrote down, with its start time (read while it runs)."""
    pids = json.loads(pids_file.read_text())
    found = {}
    for name, pid in pids.items():
        started = start_time(pid)
        assert started is not None, f"{name} ({pid}) was not running when the agent said so"
        found[name] = (pid, started)
    return found


def still_running(found: dict[str, tuple[int, float]]) -> list[str]:
    """Those that still run: same pid, same start time (a reused pid is someone else)."""
    left = []
    for name, (pid, started) in found.items():
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == pytest.approx(started, abs=0.01) and (
                proc.status() != psutil.STATUS_ZOMBIE
            ):
                left.append(f"{name} ({pid})")
        except psutil.NoSuchProcess:
            continue
    return left


def wait_for_file(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.02)


def test_an_agent_that_exits_leaves_nothing_behind(tmp_path: Path) -> None:
    runner, pids = escaping_agent(tmp_path, "exit")
    found: dict[str, tuple[int, float]] = {}
    told: list[SupervisedProcess] = []

    def started(process: SupervisedProcess) -> None:
        told.append(process)
        wait_for_file(pids)
        found.update(identities(pids))
        Path(f"{pids}.go").touch()  # now the agent exits, leaving the other two

    result = runner.run_process(make_task(tmp_path), threading.Event(), started)
    assert result.status is TaskStatus.SUCCEEDED and result.exit_code == 0
    assert set(found) == {"agent", "setsid", "double_forked"}
    assert still_running(found) == []
    # The hook was told who the agent is, as the operating system knows it.
    [process] = told
    agent_pid, agent_started = found["agent"]
    assert (process.pid, process.pgid) == (agent_pid, agent_pid)
    assert process.started_at == pytest.approx(agent_started, abs=0.01)
    assert process.supervisor_pid not in (0, agent_pid)


def test_a_timed_out_agent_leaves_nothing_behind(tmp_path: Path) -> None:
    runner, pids = escaping_agent(tmp_path, "work", timeout_s=1.0, kill_grace_s=0.2)
    found: dict[str, tuple[int, float]] = {}

    def started(process: SupervisedProcess) -> None:
        # The timeout counts from now: wait here until the agent has made its escapees.
        wait_for_file(pids)
        found.update(identities(pids))

    result = runner.run_process(make_task(tmp_path), threading.Event(), started)
    assert result.status is TaskStatus.TIMED_OUT
    assert set(found) == {"agent", "setsid", "double_forked"}
    assert still_running(found) == []


def test_a_cancelled_agent_leaves_nothing_behind(tmp_path: Path) -> None:
    runner, pids = escaping_agent(tmp_path, "work", kill_grace_s=0.2)
    cancel = threading.Event()
    found: dict[str, tuple[int, float]] = {}

    def started(process: SupervisedProcess) -> None:
        wait_for_file(pids)
        found.update(identities(pids))
        cancel.set()

    started_at = time.monotonic()
    result = runner.run_process(make_task(tmp_path), cancel, started)
    assert result.status is TaskStatus.CANCELLED
    assert result.exit_code == -15, "the agent's own status: killed by SIGTERM"
    assert time.monotonic() - started_at < 30
    assert still_running(found) == []
