"""A command run under the task supervisor (``supervisor.py``), seen from the engine.

``Supervised.start`` starts the supervisor, which starts the command, and returns
once the command runs, with its identity (``SupervisedProcess``: pid, group, start
time, host), or raises ``OSError`` as ``subprocess.Popen`` would when the command
cannot be started. ``stop()`` asks the supervisor to end the command and
everything it started; when the supervisor has exited, nothing of the command is
left, and ``returncode`` is the command's own exit status.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import attrs

from .supervisor import SWEEP_DEADLINE_S, descendants, start_time

SUPERVISOR = Path(__file__).with_name("supervisor.py")
# Imported rather than run as a script: an import loads the compiled module from
# __pycache__ (the engine's own import of it wrote it), which saves the supervisor
# 7 ms of compiling at every start.
_LAUNCH = (
    f"import sys; sys.path.insert(0, {str(SUPERVISOR.parent)!r}); import supervisor; "
    "sys.exit(supervisor.main(sys.argv[1:]))"
)
START_TIMEOUT_S = 60.0
"""How long the supervisor may take to start the command (a loaded machine)."""
STOP_MARGIN_S = SWEEP_DEADLINE_S + 5.0
"""After a stop and its grace, how long the supervisor may take to finish its
sweep before the engine kills it and what it left (the backstop)."""

Stdio = int | IO[Any] | None


@attrs.frozen(kw_only=True)
class SupervisedProcess:
    """Which processes run a task: what a recovering engine needs to find them."""

    pid: int
    """The command's (the agent's) pid."""
    pgid: int
    """Its process group (its own: the pid)."""
    started_at: float | None
    """When it started, seconds since the epoch: with ``pid``, one process ever."""
    supervisor_pid: int
    supervisor_started_at: float | None
    host: str
    """Where they run (``socket.gethostname()``)."""


def this_host() -> str:
    return socket.gethostname()


class Supervised:
    """One command under its supervisor. Not thread-safe: one owner thread."""

    def __init__(
        self, proc: subprocess.Popen[bytes], status_fd: int, process: SupervisedProcess
    ) -> None:
        self.proc = proc
        """The supervisor (its ``stdin`` and ``stdout`` are the command's pipes, if any)."""
        self.process = process
        self._status_fd = status_fd
        self._status = b""
        self._ended = False
        """The supervisor said the command has ended (or its pipe closed)."""
        self._exit_code: int | None = None
        self._selector = selectors.DefaultSelector()
        self._selector.register(status_fd, selectors.EVENT_READ)

    @classmethod
    def start(
        cls,
        argv: Sequence[str],
        *,
        cwd: str | Path | None,
        env: Mapping[str, str] | None,
        grace_s: float,
        stdin: Stdio = None,
        stdout: Stdio = None,
        stderr: Stdio = None,
    ) -> Supervised:
        """Start ``argv`` (never through a shell) under a supervisor."""
        if not sys.executable:  # an embedding interpreter that cannot say where it is
            raise OSError("no Python interpreter to run the task supervisor with")
        read_fd, write_fd = os.pipe()
        try:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-I",  # neither the engine's PYTHON* variables nor its import path
                    "-S",  # nor site packages: the supervisor is standard library only
                    "-c",
                    _LAUNCH,
                    "--status-fd",
                    str(write_fd),
                    "--grace",
                    repr(max(0.0, grace_s)),
                    "--parent",
                    str(os.getpid()),
                    "--",
                    *argv,
                ],
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                pass_fds=(write_fd,),
                start_new_session=True,  # out of the engine's group and terminal
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        supervised = cls(proc, read_fd, _placeholder(proc.pid))
        try:
            supervised.process = supervised._started(argv)
        except BaseException:
            supervised.kill()
            supervised.close()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
            raise
        return supervised

    def _started(self, argv: Sequence[str]) -> SupervisedProcess:
        line = self._first_line(time.monotonic() + START_TIMEOUT_S)
        what, _, rest = line.partition(" ")
        if what == "started":
            pid, pgid, started = rest.split(" ")
            agent_started = None if started == "None" else float(started)
            return SupervisedProcess(
                pid=int(pid),
                pgid=int(pgid),
                started_at=agent_started if agent_started is not None else start_time(int(pid)),
                supervisor_pid=self.proc.pid,
                supervisor_started_at=start_time(self.proc.pid),
                host=this_host(),
            )
        self.proc.wait()
        if what == "failed":
            number, _, message = rest.partition(" ")
            raise OSError(int(number), message, argv[0]) if int(number) else OSError(message)
        raise OSError(
            f"the task supervisor ended ({self.proc.returncode}) before starting {argv[0]!r}"
        )

    def _first_line(self, deadline: float) -> str:
        while b"\n" not in self._status:
            left = deadline - time.monotonic()
            if left <= 0:
                raise OSError(f"the command did not start within {START_TIMEOUT_S:g} s")
            if self._selector.select(left) and not self._read():
                break  # end of file: the supervisor died
        line, _, self._status = self._status.partition(b"\n")
        return line.decode("utf-8", "replace")

    def _read(self) -> bool:
        chunk = os.read(self._status_fd, 4096)
        self._status += chunk
        if not chunk or b"exited " in self._status:
            self._ended = True
        return bool(chunk)

    # ----------------------------------------------------------------- while it runs

    def poll(self) -> int | None:
        """None while the supervisor runs; then its exit status."""
        return self.proc.poll()

    def wait_for_end(self, timeout: float) -> bool:
        """Up to ``timeout`` for the supervisor to exit (True), waking as soon as it
        says the command has ended, not at the next poll."""
        if self.proc.poll() is not None:
            return True
        if not self._ended and self._selector.select(max(0.0, timeout)):
            self._read()
        if self._ended:  # it exits right after saying so
            return self.wait(STOP_MARGIN_S)
        return self.proc.poll() is not None

    def wait(self, timeout: float | None) -> bool:
        """Until the supervisor has exited (True) or ``timeout`` ran out (False)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self) -> None:
        """Ask the supervisor to end the command (SIGTERM, its grace, then SIGKILL) and
        every process the command started."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop_and_wait(self, grace_s: float) -> None:
        """``stop``, and wait for the supervisor; if it has not finished at the end of
        the grace and its sweep, kill it and what it left."""
        self.stop()
        if not self.wait(grace_s + STOP_MARGIN_S):
            self.kill()
        self.proc.wait()

    def kill(self) -> None:
        """The backstop: SIGKILL the command's tree, its group and the supervisor."""
        if self.proc.poll() is not None:
            return  # reaped: its pid may be someone else's now
        for pid in [*descendants(self.proc.pid), self.proc.pid]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if self.process.pgid > 0:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pgid, signal.SIGKILL)
        self.proc.wait()

    # ----------------------------------------------------------------- once it has ended

    @property
    def returncode(self) -> int | None:
        """The command's exit status (``-N``: killed by signal N), once the supervisor
        has exited; the supervisor's own when it could not say (it was killed)."""
        if self.proc.returncode is None:
            return None
        if self._exit_code is None:
            self._drain()
            for line in reversed(self._status.decode("utf-8", "replace").splitlines()):
                what, _, rest = line.partition(" ")
                if what == "exited":
                    self._exit_code = int(rest)
                    break
            else:
                self._exit_code = self.proc.returncode
        return self._exit_code

    def _drain(self) -> None:
        if self._status_fd < 0:
            return
        os.set_blocking(self._status_fd, False)
        with contextlib.suppress(BlockingIOError, OSError):
            while self._read():
                pass

    def close(self) -> None:
        """Release the status pipe (the exit status is kept if the supervisor ended)."""
        if self._status_fd < 0:
            return
        if self.proc.returncode is not None:
            _ = self.returncode
        self._selector.close()
        with contextlib.suppress(OSError):
            os.close(self._status_fd)
        self._status_fd = -1


def _placeholder(supervisor_pid: int) -> SupervisedProcess:
    """Until the supervisor says which pid the command has."""
    return SupervisedProcess(
        pid=0,
        pgid=0,
        started_at=None,
        supervisor_pid=supervisor_pid,
        supervisor_started_at=None,
        host=this_host(),
    )
