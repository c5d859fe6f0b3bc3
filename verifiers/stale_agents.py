"""Making sure a dead engine's agent is gone before its task runs again (DESIGN §18).

An engine that takes a step up after a crash (its own or another engine's) has the
task's row: the agent's pid, group and start time, its supervisor's, and the host.
``stop_stale_agent`` ends what of it still runs on this host and waits until it is
gone. A process counts as the task's when

- its pid and start time are those recorded (a pid alone could have been reused by
  any later process: one whose start time differs is never touched), or
- its environment carries the task's id (``DIRECTORATE_TASK_ID``, which every
  process of the agent inherits unless it wipes its environment): this finds what
  escaped a supervisor that was itself killed, and an agent whose pid was never
  recorded (its engine died within milliseconds of starting it).

On another host nothing is touched (its pids mean nothing here); the outcome says so.
"""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import time
from collections.abc import Iterable

import attrs
import psutil

from .supervised import STOP_MARGIN_S, this_host
from .supervisor import start_time

TASK_MARKER = "DIRECTORATE_TASK_ID"
"""The environment variable that names the task a process works for."""
START_TIME_TOLERANCE_S = 0.01
"""Start times are counted in clock ticks (10 ms): two that differ by more are two
processes. (Were the clock stepped between the record and the check, the recorded
pid would not match and the task id would still find the agent.)"""
KILL_DEADLINE_S = 10.0
"""After SIGKILL, how long stale processes may take to die before they are reported."""
_POLL_S = 0.02


class StaleOutcome(enum.StrEnum):
    KILLED = "killed"
    """Processes of the task were running here; they are gone now (see ``left``)."""
    GONE = "gone"
    """Nothing of the task runs here."""
    ELSEWHERE = "elsewhere"
    """The task ran on another host: nothing was checked or touched."""
    FAILED = "failed"
    """The check itself failed (``detail`` says why)."""


@attrs.frozen(kw_only=True)
class RecordedProcess:
    """A task's processes as its row has them (any of them may be unknown)."""

    task_id: str
    host: str | None = None
    pid: int | None = None
    pgid: int | None = None
    started_at: float | None = None
    supervisor_pid: int | None = None
    supervisor_started_at: float | None = None


@attrs.frozen(kw_only=True)
class StaleAgentCheck:
    """What making sure a task's agent is gone found and did."""

    outcome: StaleOutcome
    recorded: RecordedProcess
    """What the task's row said."""
    host: str
    """This engine's host (the one checked)."""
    killed: tuple[int, ...] = ()
    """Pids of the task's processes that were running and were stopped."""
    spared: tuple[int, ...] = ()
    """Recorded pids now held by other processes (a later start time): not touched."""
    left: tuple[int, ...] = ()
    """Pids still running at the deadline (a process stuck in the kernel)."""
    detail: str = ""
    """One line for the event."""


def stop_stale_agent(
    recorded: RecordedProcess, *, grace_s: float = 5.0, host: str | None = None
) -> StaleAgentCheck:
    """End whatever of ``recorded``'s task still runs on this host and wait until it
    is gone: SIGTERM (to the supervisor, which stops its tree in order, when it still
    runs), up to ``grace_s``, then SIGKILL to every process of the task."""
    here = host or this_host()
    if recorded.host is not None and recorded.host != here:
        return StaleAgentCheck(
            outcome=StaleOutcome.ELSEWHERE,
            recorded=recorded,
            host=here,
            detail=f"the agent ran on {recorded.host}, not on {here}: not checked here",
        )
    found, spared = _task_processes(recorded)
    if not found:
        why = "no process of the task runs here"
        if spared:
            why += "; pid " + ", ".join(map(str, spared)) + " belongs to a later process"
        return StaleAgentCheck(
            outcome=StaleOutcome.GONE, recorded=recorded, host=here, spared=spared, detail=why
        )
    killed = tuple(sorted(p.pid for p in found))
    supervisor = next((p for p in found if p.pid == recorded.supervisor_pid), None)
    # Gently first: the supervisor gives the agent its grace and then kills its tree.
    for proc in [supervisor] if supervisor is not None else found:
        _send(proc, signal.SIGTERM)
    _wait_gone(found, grace_s + (STOP_MARGIN_S if supervisor is not None else 0.0))
    deadline = time.monotonic() + KILL_DEADLINE_S
    while True:  # what is left, and what it may have started meanwhile
        running, _ = _task_processes(recorded)
        running = [p for p in running if _alive(p)]
        for proc in running:
            _send(proc, signal.SIGKILL)
        if not running or time.monotonic() > deadline:
            break
        _wait_gone(running, 0.5)
    left = tuple(sorted(p.pid for p in running if _alive(p)))
    detail = f"stopped pid {', '.join(map(str, killed))}"
    if left:
        detail += f"; still running after SIGKILL: {', '.join(map(str, left))}"
    return StaleAgentCheck(
        outcome=StaleOutcome.KILLED,
        recorded=recorded,
        host=here,
        killed=killed,
        spared=spared,
        left=left,
        detail=detail,
    )


def _task_processes(recorded: RecordedProcess) -> tuple[list[psutil.Process], tuple[int, ...]]:
    """The task's running processes here, and the recorded pids that are someone else's."""
    found: dict[int, psutil.Process] = {}
    spared: list[int] = []
    for pid, started in (
        (recorded.supervisor_pid, recorded.supervisor_started_at),
        (recorded.pid, recorded.started_at),
    ):
        if pid is None or pid <= 0 or started is None:
            continue
        proc = _process(pid)
        now_started = start_time(pid)  # as the record was made: the same clock arithmetic
        if proc is None or now_started is None:
            continue
        if abs(now_started - started) <= START_TIME_TOLERANCE_S:
            found[pid] = proc
        else:
            spared.append(pid)
    for proc in _marked(recorded.task_id):
        found.setdefault(proc.pid, proc)
    found.pop(os.getpid(), None)  # never this engine, whatever its environment says
    return [p for p in found.values() if _alive(p)], tuple(spared)


def _marked(task_id: str) -> Iterable[psutil.Process]:
    """Processes whose environment names the task (only ours can be read, which is
    also all we could signal)."""
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(TASK_MARKER) == task_id:
                yield proc
        except (psutil.Error, OSError):
            continue  # gone, a zombie, or another user's


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _alive(proc: psutil.Process) -> bool:
    """Running, and still the process we found (psutil compares start times)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _send(proc: psutil.Process, sig: signal.Signals) -> None:
    # psutil refuses (NoSuchProcess) when the pid names another process by now.
    with contextlib.suppress(psutil.Error):
        proc.send_signal(sig)


def _wait_gone(procs: Iterable[psutil.Process], timeout: float) -> None:
    """Until none of ``procs`` runs (a zombie is dead: init may never reap it)."""
    deadline = time.monotonic() + timeout
    procs = list(procs)
    while any(_alive(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
