"""A future for the writer's answers: set once by the writer, waited on by its sender.

pykka's ``ThreadingFuture`` waits on a ``threading.Condition``: a lock, a waiter
lock made for every wait and a notify, all Python code run while holding the GIL,
and the writer answers every write of every batch. Here the answer is a lock the
future holds from birth and the writer releases once: the sender's wait and the
writer's hand-over are each one C call (on 64 threads, 38 rather than 55 us of CPU
per answer).
"""

from __future__ import annotations

import _thread
import sys
from typing import Any, TypeVar

import pykka

T = TypeVar("T")


class Reply(pykka.Future[T]):
    """Set once (``set`` or ``set_exception``; a second raises ``RuntimeError``),
    read any number of times, from any thread."""

    def __init__(self) -> None:
        super().__init__()
        self._ready = _thread.allocate_lock()
        self._ready.acquire()  # released by the one set: until then, get waits on it
        self._value: Any = None
        self._exc_info: Any = None
        self._done = False
        self._hook_lock: Any = None
        """Made by ``set_get_hook`` only (map/filter/join): a writer's answer has none."""

    def set_get_hook(self, func: Any) -> None:
        self._hook_lock = _thread.allocate_lock()
        super().set_get_hook(func)

    def get(self, *, timeout: float | None = None) -> T:
        if self._hook_lock is not None:  # a future made by map/filter/join
            with self._hook_lock:  # its function runs once, as on pykka's own futures
                return super().get(timeout=timeout)
        if not self._done:  # once set, no getter touches the lock again
            if not self._ready.acquire(True, -1 if timeout is None else max(0.0, timeout)):
                raise pykka.Timeout(f"{timeout} seconds")
            self._ready.release()  # for the next get waiting, here or on another thread
        if self._exc_info is not None:
            _, error, traceback = self._exc_info
            raise error.with_traceback(traceback)
        value: T = self._value
        return value

    def set(self, value: Any | None = None) -> None:
        self._settle(value, None)

    def set_exception(self, exc_info: Any = None) -> None:
        exc_info = exc_info or sys.exc_info()
        if exc_info[1] is None:  # given a type alone
            exc_info = (exc_info[0], exc_info[0](), exc_info[2])
        self._settle(None, exc_info)

    def _settle(self, value: Any, exc_info: Any) -> None:
        # One thread sets (the writer): nothing else can settle it in between.
        if self._done or self._get_hook is not None:
            raise RuntimeError("a Reply is set once, and not when made by map/filter/join")
        self._value, self._exc_info = value, exc_info
        self._done = True
        self._ready.release()
