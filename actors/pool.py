"""Pooled actors: pykka actors that run on a shared, bounded set of threads.

A ``pykka.ThreadingActor`` holds a thread for its whole life (~188 KiB of RSS and a
thread start each), which bounded one process at ~3,100 live directives of six
steps. A ``PooledActor`` holds none while it has nothing to do: its inbox is a plain
list, and a message that arrives while the actor is idle schedules a *turn* on the
actor's ``ActorExecutor``, a few threads that every actor of an engine shares.

A turn handles the actor's messages one at a time exactly as pykka's own loop does:
an ask's future gets the handler's answer or its exception, a told failure calls
``on_failure`` (and the actor stops), ``stop()`` is a message like any other, so what
was sent before it is handled first, and once the actor has stopped every ask left in
its inbox, or sent later, fails with ``ActorDeadError``.

Rules the design rests on:

- **One turn per actor at a time.** An actor is scheduled when a message arrives
  while it is idle and stays scheduled until a turn finds its inbox empty, so its
  messages are handled in the order they arrived and never by two threads at once.
- **Fair.** A turn handles at most ``PooledActor.pool_quota`` messages, then schedules
  the next one behind the turns already waiting: a busy actor does not starve the rest.
- **on_start first.** It runs as the actor's first turn, before any message. An
  actor started idle (``pool_start(idle=True)``: a step waiting on its dependencies)
  takes that turn with its first message: till then it costs no turn at all.
- **A handler never waits for a pooled actor's answer** (``ask``, ``stop(block=True)``,
  a future's ``get``) on its own executor: with every thread of the pool waiting so,
  no thread would be left to answer, and the pool would deadlock. Such a wait raises
  ``PoolDeadlock`` at once instead. directorate's handlers only ``tell``; the engine
  asks from its own threads (its callers, the command consumer, the tick). Waiting on
  something that progresses on threads of its own (the persistence actor's commit, a
  database read) is fine: it only bounds how many actors progress at once.
- **Not in pykka's ActorRegistry.** Its list costs a scan per stop (6 ms each with
  70,000 actors registered); the engine keeps its own refs, and the executor counts
  the live actors. ``ActorRegistry.stop_all()`` therefore does not reach pooled actors.
- **Children run where their parent runs.** ``PooledActor.__init__`` takes the
  executor; without one it uses the executor of the turn starting it (a step actor
  started by its directive actor's handler), and refuses anywhere else.

The machinery's names start with ``_pool_``/``pool_``, so that a subclass's own
(a ``_handle`` of its own, say) never replaces them.

``ActorExecutor.shutdown`` refuses new turns, lets the threads finish the turns
already queued, and joins them. An actor whose turn is refused then (it was not
stopped first) is dead: the asks in its inbox fail with ``ActorDeadError``.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, Self, TypeVar

import pykka
from pykka import ActorDeadError, ActorRef, messages
from pykka._envelope import Envelope

log = logging.getLogger(__name__)

T = TypeVar("T")

_local = threading.local()
"""``executor``: the executor whose turn this thread is running, else absent."""


class PoolDeadlock(RuntimeError):
    """A pooled actor's handler waited for the answer of a pooled actor on its own
    executor (see the module docstring): refused, since it could deadlock the pool."""


def current_executor() -> ActorExecutor | None:
    """The executor whose turn runs on this thread (None outside a turn)."""
    executor: ActorExecutor | None = getattr(_local, "executor", None)
    return executor


class ActorExecutor:
    """``threads`` daemon threads named ``name``-N, started with the first turn."""

    def __init__(self, threads: int, *, name: str = "directorate-actor") -> None:
        if threads < 1:
            raise ValueError(f"an actor executor needs at least one thread, not {threads}")
        self.size = threads
        self._name = name
        # A C queue: every tell to an idle actor queues a turn, and a Python Condition
        # shared with the threads was the busiest lock of a start of many directives.
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        """Orders submits against the shutdown (the closed flag, the threads)."""
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._live: set[int] = set()
        """Ids of the pooled actors started and not yet stopped (set ops need no lock)."""

    def submit(self, job: Callable[[], None]) -> bool:
        """Queue ``job``; False (and not queued) once the executor is shut down."""
        with self._lock:
            if self._closed:
                return False
            if not self._threads:  # an engine that only submits never starts them
                self._threads = [
                    threading.Thread(target=self._work, name=f"{self._name}-{n}", daemon=True)
                    for n in range(self.size)
                ]
                for thread in self._threads:
                    thread.start()
            self._jobs.put(job)
        return True

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            _local.executor = self
            try:
                job()
            except BaseException:  # a turn catches its own; this is a bug of ours
                log.exception("an actor turn failed")
            finally:
                _local.executor = None

    def shutdown(self, timeout: float | None = None) -> bool:
        """Refuse new turns, let the queued ones run, join the threads; False when
        some thread was still busy at ``timeout`` (it is a daemon: it ends with the
        process)."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
            for _ in threads:  # behind every queued turn: each thread ends after them
                self._jobs.put(None)
        deadline = None if timeout is None else time.monotonic() + timeout
        others = [t for t in threads if t is not threading.current_thread()]
        for thread in others:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in others)

    # ----------------------------------------------------------------- statistics

    def stats(self) -> dict[str, int]:
        """Threads started, turns waiting for a thread, pooled actors not yet stopped."""
        return {
            "threads": len(self._threads),
            "queued": self._jobs.qsize(),
            "live": len(self._live),
        }

    def _started(self, actor: object) -> None:
        self._live.add(id(actor))  # removed before the actor can be freed: ids stay unique

    def _stopped(self, actor: object) -> None:
        self._live.discard(id(actor))


class _PoolFuture(pykka.ThreadingFuture[T]):
    """A pooled actor's answer; waiting for it in a turn of its executor is refused."""

    executor: ActorExecutor | None = None
    """The executor of the actor that answers (set when the ask reaches its inbox)."""

    def get(self, *, timeout: float | None = None) -> Any:
        here = current_executor()
        if here is not None and here is self.executor:
            raise PoolDeadlock(
                "a pooled actor's handler waited for the answer of another pooled actor on "
                "the same executor; handlers must only tell (see directorate.actors.pool)"
            )
        return super().get(timeout=timeout)


class _Inbox:
    """A pooled actor's messages and whether a turn of it is scheduled.

    A list, not a deque: an empty deque is 760 bytes, which across 70,000 mostly idle
    actors is 50 MB, and an inbox rarely holds more than a few messages."""

    __slots__ = ("_actor", "_closed", "_executor", "_fresh", "_lock", "_messages", "_scheduled")

    def __init__(self) -> None:
        self._messages: list[Envelope[Any]] = []
        self._lock = threading.Lock()
        self._scheduled = True
        """True until the actor starts (messages sent before wait for its first turn)."""
        self._fresh = False
        """Started idle, and no turn yet: the first message schedules the first turn."""
        self._closed = False
        self._actor: PooledActor | None = None
        self._executor: ActorExecutor | None = None

    def bind(self, actor: PooledActor, executor: ActorExecutor) -> None:
        self._actor, self._executor = actor, executor

    # pykka's ActorInbox protocol (the refs put; get and empty serve pykka's teardown,
    # which a pooled actor does itself).

    def put(self, envelope: Envelope[Any], /) -> None:
        future = envelope.reply_to
        if isinstance(future, _PoolFuture):
            future.executor = self._executor
        with self._lock:
            closed = self._closed
            if not closed:
                self._messages.append(envelope)
                schedule = not self._scheduled
                self._scheduled = True
                first, self._fresh = self._fresh, False
        if closed:
            _refuse(envelope, raise_for_tell=True)
        elif schedule:
            self.schedule(first=first)

    def get(self) -> Envelope[Any]:
        with self._lock:
            return self._messages.pop(0)

    def empty(self) -> bool:
        with self._lock:
            return not self._messages

    def start_idle(self) -> bool:
        """No first turn until the first message (``PooledActor.pool_start``); False
        if one is here already (sent before the start): then it is due now."""
        with self._lock:
            if self._messages:
                return False
            self._scheduled, self._fresh = False, True
            return True

    # The turns' side.

    def schedule(self, *, first: bool) -> None:
        """Queue a turn of the actor (its first: on_start, then its messages); when the
        executor refuses it (shut down), the actor is dead."""
        actor, executor = self._actor, self._executor
        if actor is None or executor is None:  # closed meanwhile: nothing to run
            return
        if not executor.submit(actor._pool_first_turn if first else actor._pool_turn):
            actor._pool_died("its executor is shut down")

    def take(self) -> Envelope[Any] | None:
        """The next message, or None, and then the actor is idle: the next ``put``
        schedules a new turn, so the caller must leave the actor at once."""
        with self._lock:
            if self._messages:
                return self._messages.pop(0)
            self._scheduled = False
            return None

    def close(self) -> bool:
        """Take no more messages; refuse those left (asks fail with ActorDeadError).
        False if it was closed already."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            left, self._messages = self._messages, []
        self._actor = None  # a dead actor is freed even while refs to it remain
        for envelope in left:
            _refuse(envelope, raise_for_tell=False)
        return True


def _refuse(envelope: Envelope[Any], *, raise_for_tell: bool) -> None:
    """As pykka answers what a stopped actor did not handle: a stop gets None (it
    is stopped), an ask ``ActorDeadError``; a tell is dropped, or raises for a sender
    that told a dead actor."""
    future = envelope.reply_to
    if future is None:
        if raise_for_tell:
            raise ActorDeadError(f"{type(envelope.message).__name__}: the actor has stopped")
        return
    if isinstance(envelope.message, messages._ActorStop):
        future.set(None)
        return
    error = ActorDeadError("the actor stopped before handling the message")
    future.set_exception(exc_info=(ActorDeadError, error, None))


class PooledActor(pykka.Actor):
    """A pykka actor whose turns run on an ``ActorExecutor`` (module docstring)."""

    pool_quota: ClassVar[int] = 32
    """Messages per turn before the actor yields its thread to the turns waiting."""

    actor_executor: ActorExecutor

    def __init__(self, executor: ActorExecutor | None = None) -> None:
        super().__init__()
        chosen = executor or current_executor()
        if chosen is None:
            raise RuntimeError(
                f"{type(self).__name__} needs an ActorExecutor: pass one, or start it "
                "from a pooled actor's handler"
            )
        self.actor_executor = chosen
        self._pool_inbox.bind(self, chosen)

    @property
    def _pool_inbox(self) -> _Inbox:
        inbox = self.actor_inbox
        assert isinstance(inbox, _Inbox)
        return inbox

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> ActorRef[Self]:
        """As ``pykka.Actor.start``, without the registry (module docstring)."""
        return cls(*args, **kwargs).pool_start()

    def pool_start(self, *, idle: bool = False) -> ActorRef[Self]:
        """Start an actor made here (``start`` makes and starts it at once). ``idle``:
        its first turn (on_start, then its messages) waits for its first message, so
        that an actor which may wait long for one holds no turn meanwhile."""
        self.actor_executor._started(self)
        if not (idle and self._pool_inbox.start_idle()):
            self._pool_inbox.schedule(first=True)
        return self.actor_ref

    @staticmethod
    def _create_actor_inbox() -> _Inbox:
        return _Inbox()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return _PoolFuture()

    def _start_actor_loop(self) -> None:
        self.pool_start()

    # ----------------------------------------------------------------- turns

    def _pool_first_turn(self) -> None:
        self._pool_guarded(self._actor_loop_setup)  # on_start; a failure stops the actor

    def _pool_turn(self) -> None:
        self._pool_guarded(lambda: None)

    def _pool_guarded(self, before: Callable[[], None]) -> None:
        try:
            before()
            self._pool_handle_some()
        except BaseException:  # a bug of this module's, never a handler's
            log.exception("%s: its turn failed; the actor is stopped", self)
            self.actor_stopped.set()
            self._pool_teardown()

    def _pool_handle_some(self) -> None:
        inbox = self._pool_inbox
        for _ in range(self.pool_quota):
            if self.actor_stopped.is_set():
                self._pool_teardown()
                return
            envelope = inbox.take()
            if envelope is None:
                return  # idle, and another thread may already run our next turn
            self._pool_handle(envelope)
        if self.actor_stopped.is_set():
            self._pool_teardown()
        else:  # its quota used: the next turn waits behind the others
            inbox.schedule(first=False)

    def _pool_handle(self, envelope: Envelope[Any]) -> None:
        """One message, as pykka's ``Actor._actor_loop_running`` handles it."""
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                log.info("Exception returned from %s to caller:", self, exc_info=sys.exc_info())
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())
        except BaseException:
            # pykka stops every actor then, waiting for each: from a turn it must not
            # wait (module docstring), so the stops are only sent.
            log.debug("%r in %s: stopping all actors", sys.exc_info()[1], self)
            self._stop()
            pykka.ActorRegistry.stop_all(block=False)

    def _pool_teardown(self) -> None:
        """Stopped: refuse what is left, and forget the actor (once)."""
        if self._pool_inbox.close():
            self.actor_executor._stopped(self)

    def _pool_died(self, why: str) -> None:
        log.warning("%s: stopped without on_stop: %s", self, why)
        self.actor_stopped.set()
        self._pool_teardown()
