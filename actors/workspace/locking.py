"""One writer at a time per repository: a thread lock in this process, ``flock`` across processes.

git takes its own locks per ref and per index, but it fails instead of waiting when one
is held ("cannot lock ref", "index.lock exists"), and the engine's operations are
sequences of git calls (merge-tree, commit-tree, update-ref) that must not interleave
with another engine's. The key is the repository's common git dir, so a repository's
linked worktrees share one lock; the file lives there, so two engine processes on one
repository find the same one. ``flock`` is released by the kernel when a process dies,
so a killed engine never leaves a stale lock behind (the file stays, unlocked).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import GitError

LOCK_FILE = "directorate-workspace.lock"
#: how long an operation waits for another one on the same repository
LOCK_TIMEOUT_S = 120.0


class _RepositoryLock:
    """Re-entrant in its thread (an operation may call another), one flock while held."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.thread_lock = threading.RLock()
        self.depth = 0  # guarded by thread_lock
        self.fd: int | None = None


_locks: dict[str, _RepositoryLock] = {}
_locks_guard = threading.Lock()


@contextlib.contextmanager
def repository_lock(
    common_dir: Path, operation: str, timeout_s: float = LOCK_TIMEOUT_S
) -> Iterator[None]:
    """Hold the repository's lock for the block; :class:`GitError` after ``timeout_s``."""
    key = os.path.realpath(common_dir)
    with _locks_guard:
        lock = _locks.setdefault(key, _RepositoryLock(Path(key) / LOCK_FILE))
    deadline = time.monotonic() + timeout_s
    if not lock.thread_lock.acquire(timeout=timeout_s):
        raise GitError(f"{operation}: the repository {key} stayed locked for {timeout_s:g} s")
    try:
        if lock.depth == 0:
            lock.fd = _flock(lock.path, deadline, operation)
        lock.depth += 1
        try:
            yield
        finally:
            lock.depth -= 1
            if lock.depth == 0 and lock.fd is not None:
                os.close(lock.fd)  # closing the last descriptor releases the flock
                lock.fd = None
    finally:
        lock.thread_lock.release()


def _flock(path: Path, deadline: float, operation: str) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise GitError(f"{operation}: cannot open the lock file {path}: {exc.strerror}") from exc
    delay = 0.005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            pass
        except OSError as exc:
            os.close(fd)
            raise GitError(f"{operation}: cannot lock {path}: {exc.strerror}") from exc
        if time.monotonic() >= deadline:
            os.close(fd)
            raise GitError(f"{operation}: another process held {path} too long")
        # Backoff with jitter: two engines waiting on one repository do not wake in step.
        time.sleep(min(delay * random.uniform(0.5, 1.5), max(deadline - time.monotonic(), 0)))
        delay = min(delay * 2, 0.2)
