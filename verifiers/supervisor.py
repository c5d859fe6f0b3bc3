"""The task supervisor: runs one command, and when it ends, ends everything it started.

Usage (the engine's side is ``supervised.py``)::

    python -I -S supervisor.py --status-fd FD --grace SECONDS --parent PID -- ARGV...

A process group misses what leaves it: a grandchild that calls ``setsid()``, a
daemon that double-forks. So the supervisor, not the engine, is the command's
parent, and on Linux it is a *child subreaper* (``PR_SET_CHILD_SUBREAPER``): every
orphan among the command's descendants is reparented to it instead of to init, so
"no child left" (``ECHILD``) means "no descendant left". The engine itself is not
made a subreaper: an application embedding it would inherit every orphan of its
own, and a ``waitpid(-1)`` would steal its other threads' child statuses.

- The command runs in its own process group, with the supervisor's stdin, stdout,
  stderr, working directory and environment (the engine gives it the agent's).
- ``SIGTERM`` (or ``SIGINT``, ``SIGHUP``; or the death of the engine, through
  ``PR_SET_PDEATHSIG``) asks it to stop: the command's group and every other
  descendant get ``SIGTERM``, the command gets ``--grace`` seconds to exit, then
  every descendant is killed.
- When the command exits, by itself or so, every descendant left is killed
  (``SIGKILL``, until none is left) and reaped; then the supervisor exits.
- On the status pipe it writes ``started PID PGID START_TIME``, or
  ``failed ERRNO MESSAGE`` when the command cannot be started, then ``exited CODE``
  (``-N`` for a command killed by signal N); it exits with the command's status.

Standard library only and no site packages (``-I -S``): it starts in a few
milliseconds and works whatever the engine's import path is. Elsewhere than on
Linux there is no subreaper and no parent-death signal: it kills the command's
group, polls for its parent, and the engine's sweep by task id is the net.
"""

from __future__ import annotations

import os
import signal
import sys
import time

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""What asks the supervisor to stop its command (SIGTERM is also its parent-death signal)."""
SWEEP_DEADLINE_S = 10.0
"""How long killed descendants may take to die (one in uninterruptible I/O) before
the supervisor gives up on them and says so."""
PARENT_POLL_S = 1.0
"""Without a parent-death signal: how often the supervisor checks its parent is alive."""

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_LINUX = sys.platform.startswith("linux")


# ----------------------------------------------------------------- processes (the engine's too)


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` from the state on (the name before may hold anything)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2 :].decode("ascii", "replace").split()


def _boot_time() -> float:
    with open("/proc/stat", "rb") as file:
        for line in file:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def start_time(pid: int) -> float | None:
    """When process ``pid`` started, in seconds since the epoch (what ``psutil``'s
    ``create_time`` says); None when it does not exist. With the pid it names one
    process: a pid reused by a later process has a later start time."""
    if _LINUX:
        fields = _stat_fields(pid)
        if fields is None:
            return None
        try:
            return int(fields[19]) / os.sysconf("SC_CLK_TCK") + _boot_time()
        except (IndexError, ValueError, OSError):
            return None
    try:  # elsewhere psutil, when the interpreter has it (the engine does)
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:
        return None


def running(pid: int) -> bool:
    """The process exists and is not a zombie (dead, waiting to be reaped)."""
    if _LINUX:
        fields = _stat_fields(pid)
        return fields is not None and fields[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def descendants(root: int) -> list[int]:
    """Every living process below ``root`` (children first found, then theirs)."""
    if not _LINUX:
        return []
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is not None and fields[0] not in ("Z", "X"):
            children.setdefault(int(fields[1]), []).append(int(name))
    found: list[int] = []
    frontier = [root]
    while frontier:
        below = [c for p in frontier for c in children.get(p, ())]
        found += below
        frontier = below
    return found


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _signal(pid: int, sig: int, *, group: bool = False) -> None:
    # try/except, not contextlib.suppress: importing contextlib (and collections)
    # would cost the supervisor's start-up 9 ms, a third of it.
    try:  # noqa: SIM105
        (os.killpg if group else os.kill)(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # gone already


# ----------------------------------------------------------------- the supervisor


class _Supervisor:
    def __init__(self, argv: list[str], *, status_fd: int, grace_s: float, parent: int) -> None:
        self.argv = argv
        self.status_fd = status_fd
        self.grace_s = grace_s
        self.parent = parent
        self.agent = 0
        self.agent_status: int | None = None
        self.no_children = False
        self.subreaper = False
        """Orphans come to us: no child of ours left means no descendant left."""
        # Blocked, so that each arrives through sigwait, in order, never between two
        # statements of ours; SIGCHLD needs a handler to be queued at all elsewhere.
        self.signals = {signal.SIGCHLD, signal.SIGALRM, *STOP_SIGNALS}

    def report(self, line: str) -> None:
        try:  # noqa: SIM105 (see _signal)
            os.write(self.status_fd, f"{line}\n".encode())
        except OSError:
            pass  # the engine is gone: what matters then is the killing

    def run(self) -> int:
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.pthread_sigmask(signal.SIG_BLOCK, self.signals)
        watches_parent = self._arm()
        if os.getppid() != self.parent:  # the engine died before we could know
            self.report("failed 0 the engine that started the task is gone")
            return 1
        try:
            self.agent = os.posix_spawnp(
                self.argv[0],
                self.argv,
                os.environ,
                setpgroup=0,  # its own group: a signal to it does not reach us
                setsigmask=(),
                # What Python set to ignored, the command gets as the default
                # (as subprocess does).
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
            )
        except OSError as exc:
            self.report(f"failed {exc.errno or 0} {exc.strerror or exc}")
            return 127
        self.report(f"started {self.agent} {self.agent} {start_time(self.agent)!r}")
        # The command's stdin is the command's: a writer feeding a pipe to a command
        # that stopped reading gets EPIPE, not a reader that never reads (us).
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        if not self._wait_for_agent(watches_parent):
            self._stop_agent()
        self._sweep()
        code = os.waitstatus_to_exitcode(self.agent_status) if self.agent_status is not None else 1
        self.report(f"exited {code}")
        return code if code >= 0 else 128 - code

    def _arm(self) -> bool:
        """Become a subreaper and ask for SIGTERM when the engine dies; False when
        there is no parent-death signal here (the supervisor then polls its parent)."""
        if not _LINUX:
            return False
        import ctypes  # only here: a few milliseconds of start-up, needed only here

        libc = ctypes.CDLL(None, use_errno=True)
        # Without a subreaper (Linux before 3.4) the sweep still kills the tree as it
        # stands; only orphans reparented to init would be missed.
        self.subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        return bool(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0)

    def _reap(self) -> None:
        """Collect every child that has exited (the command's status among them)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.no_children = True
                return
            if pid == 0:
                return
            if pid == self.agent:
                self.agent_status = status

    def _wait_for_agent(self, watches_parent: bool) -> bool:
        """Until the command exits (True) or we are asked to stop it (False)."""
        if not watches_parent:
            signal.setitimer(signal.ITIMER_REAL, PARENT_POLL_S, PARENT_POLL_S)
        try:
            while True:
                self._reap()  # reparented orphans too, so they do not pile up as zombies
                if self.agent_status is not None:
                    return True
                sig = signal.sigwait(self.signals)
                if sig in STOP_SIGNALS:
                    return False
                if sig == signal.SIGALRM and os.getppid() != self.parent:
                    return False
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _stop_agent(self) -> None:
        """SIGTERM to the command's group and to every other descendant, then up to
        ``grace_s`` for the command to exit."""
        _signal(self.agent, signal.SIGTERM, group=True)
        for pid in descendants(os.getpid()):
            if _group_of(pid) != self.agent:  # the group's members have had theirs
                _signal(pid, signal.SIGTERM)
        if self.grace_s <= 0:
            return
        signal.setitimer(signal.ITIMER_REAL, self.grace_s)
        try:
            while True:
                self._reap()
                if self.agent_status is not None or signal.sigwait(self.signals) == signal.SIGALRM:
                    return
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _sweep(self) -> None:
        """SIGKILL every descendant until none is left. As a subreaper we inherit the
        orphans of those we kill, so each round finds what the last one left."""
        self._reap()
        if self.no_children and self.subreaper:
            return  # the usual end: the command left nothing (no scan of /proc needed)
        deadline = time.monotonic() + SWEEP_DEADLINE_S
        first = True
        while True:
            # The group id is the command's pid: safe to signal while that pid is
            # unreaped, and just after (the pid cannot have been reused yet).
            if first or self.agent_status is None:
                _signal(self.agent, signal.SIGKILL, group=True)
            first = False
            for pid in descendants(os.getpid()):
                _signal(pid, signal.SIGKILL)
            self._reap()
            if self.no_children or (not _LINUX and self.agent_status is not None):
                return
            if time.monotonic() > deadline:
                left = " ".join(str(p) for p in descendants(os.getpid()))
                self.report(f"leftover {left}")
                return
            time.sleep(0.002)


def main(args: list[str]) -> int:
    try:
        split = args.index("--")
        options = dict(zip(args[:split:2], args[1:split:2], strict=True))
        command = args[split + 1 :]
        supervisor = _Supervisor(
            command,
            status_fd=int(options["--status-fd"]),
            grace_s=float(options["--grace"]),
            parent=int(options["--parent"]),
        )
    except (ValueError, KeyError) as exc:
        print(f"supervisor: bad arguments {args!r}: {exc}", file=sys.stderr)
        return 2
    if not command:
        supervisor.report("failed 0 no command")
        return 2
    os.set_inheritable(supervisor.status_fd, False)  # the command must not hold it
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
