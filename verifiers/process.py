"""Running a check as a subprocess: bounded in time and in memory, never hanging.

Every check runs under the task supervisor (``supervised.py``), so that when it
ends, by itself or by its timeout, every process it started ends with it, those
that left its process group or double-forked included: a test runner's workers or
a forgotten server would otherwise keep the output pipe open and the evaluation
waiting forever. Output is read without blocking (``selectors``) in the calling
thread, so no reader thread can be left stuck on a pipe someone else still holds.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from .supervised import Supervised

MAX_OUTPUT_BYTES = 64 * 1024
#: once the supervisor has exited, how long anything may keep the pipe open (nothing
#: should: its sweep killed every descendant; elsewhere than on Linux one may escape)
LINGER_S = 0.5
_CHUNK = 64 * 1024


@attrs.frozen(kw_only=True)
class Completed:
    """How a command ended."""

    exit_code: int | None  #: None when it could not start or timed out
    output: str  #: stdout and stderr interleaved, the tail only, cleaned
    timed_out: bool = False
    duration_s: float
    error: str | None = None  #: why it could not start


class _Tail:
    """The last ``limit`` bytes of a stream, and how many came before them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.buffer += chunk
        if len(self.buffer) > self.limit:
            del self.buffer[: len(self.buffer) - self.limit]

    def text(self) -> str:
        text = clean(bytes(self.buffer))
        omitted = self.total - len(self.buffer)
        return f"[... {omitted} bytes omitted ...]\n{text}" if omitted else text


def clean(data: bytes) -> str:
    """Bytes as text that is safe to store: bad UTF-8 replaced, NUL removed (PostgreSQL
    text cannot hold NUL)."""
    return data.decode("utf-8", errors="replace").replace("\x00", "")


def run_bounded(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    max_output_bytes: int = MAX_OUTPUT_BYTES,
) -> Completed:
    """Run ``argv`` (never through a shell) and return how it ended; does not raise
    for the command's own failures (missing executable, timeout, non-zero exit)."""
    start = time.monotonic()
    try:
        supervised = Supervised.start(
            list(argv),
            cwd=cwd,
            env=env,
            grace_s=0.0,  # a check's timeout kills at once, as it always has
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    except OSError as exc:
        message = f"cannot run {argv[0]!r} in {str(cwd)!r}: {exc.strerror or exc}"
        return Completed(
            exit_code=None, output=message, duration_s=time.monotonic() - start, error=message
        )
    tail = _Tail(max_output_bytes)
    try:
        timed_out = _pump(supervised, tail, stdin, deadline=start + timeout_s)
    finally:
        supervised.close()
    if timed_out:
        tail.add(
            f"\n[timed out after {timeout_s:g} s; it and every process it started "
            "were killed]\n".encode()
        )
    return Completed(
        exit_code=None if timed_out else supervised.returncode,
        output=tail.text(),
        timed_out=timed_out,
        duration_s=time.monotonic() - start,
    )


def _pump(supervised: Supervised, tail: _Tail, stdin: bytes | None, deadline: float) -> bool:
    """Feed stdin and collect output until EOF or the deadline; True if timed out."""
    proc = supervised.proc
    assert proc.stdout is not None
    out_fd = proc.stdout.fileno()
    os.set_blocking(out_fd, False)
    sel = selectors.DefaultSelector()
    sel.register(out_fd, selectors.EVENT_READ)
    pending = memoryview(stdin or b"")
    if proc.stdin is not None:
        os.set_blocking(proc.stdin.fileno(), False)
        if pending:
            sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE)
        else:
            _close_stdin(proc)
    timed_out = False
    exited_at: float | None = None
    try:
        while out_fd in sel.get_map():
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > LINGER_S:
                break  # the command is done; a descendant holds the pipe: stop listening
            for key, _ in sel.select(min(deadline - now, 0.2)):
                if key.fd == out_fd:
                    _read(out_fd, sel, tail)
                else:
                    pending = _write(proc, sel, pending)
        if not timed_out:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:  # it closed its output but kept running
                timed_out = True
    finally:
        # A check leaves nothing behind (nothing to do when it has ended by itself).
        supervised.stop_and_wait(0.0)
        if (
            proc.stdin is not None
            and not proc.stdin.closed
            and proc.stdin.fileno() in sel.get_map()
        ):
            sel.unregister(proc.stdin.fileno())
        _drain(out_fd, sel, tail)
        sel.close()
        _close_stdin(proc)
        with contextlib.suppress(OSError):
            proc.stdout.close()
    return timed_out


def _read(fd: int, sel: selectors.BaseSelector, tail: _Tail) -> None:
    try:
        chunk = os.read(fd, _CHUNK)
    except BlockingIOError:
        return
    if chunk:
        tail.add(chunk)
    else:
        sel.unregister(fd)


def _write(
    proc: subprocess.Popen[bytes], sel: selectors.BaseSelector, pending: memoryview
) -> memoryview:
    assert proc.stdin is not None
    try:
        pending = pending[os.write(proc.stdin.fileno(), pending[:_CHUNK]) :]
    except BlockingIOError:
        return pending
    except OSError:  # the command stopped reading (EPIPE): it has what it wanted
        pending = pending[:0]
    if not pending:
        sel.unregister(proc.stdin.fileno())
        _close_stdin(proc)
    return pending


def _drain(fd: int, sel: selectors.BaseSelector, tail: _Tail) -> None:
    """Collect what is already in the pipe after the kill, without waiting for EOF
    (a process that escaped the group may still hold the write end)."""
    deadline = time.monotonic() + 0.2
    while fd in sel.get_map() and time.monotonic() < deadline:
        if not sel.select(0.05):
            return
        _read(fd, sel, tail)


def _close_stdin(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdin is not None and not proc.stdin.closed:
        with contextlib.suppress(OSError):
            proc.stdin.close()
