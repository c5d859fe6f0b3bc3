"""Pooled actors: pykka's semantics (order, asks, failures, stop) on a few shared threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, TypeVar

import pykka
import pytest

from directorate.actors.pool import ActorExecutor, PoolDeadlock, PooledActor

R = TypeVar("R", bound=PooledActor)

WAIT_S = 10.0
"""Generous bound on any wait here: a hang fails the test instead of the run."""


@pytest.fixture
def executor() -> Iterator[ActorExecutor]:
    pool = ActorExecutor(4, name="test-actor")
    yield pool
    assert pool.shutdown(timeout=WAIT_S)


class Recorder(PooledActor):
    """Keeps what it is told; answers ``"count"`` and ``"got"``; raises on ``"boom"``;
    holds its thread on a ``threading.Event`` it is sent until the test sets it."""

    def __init__(self, executor: ActorExecutor | None = None) -> None:
        super().__init__(executor)
        self.got: list[Any] = []
        self.busy = threading.Lock()
        self.overlaps = 0
        self.threads: set[str] = set()
        self.failed: BaseException | None = None
        self.started_first = False

    def on_start(self) -> None:
        self.started_first = not self.got

    def on_receive(self, message: Any) -> Any:
        # Two threads in one actor would find the lock taken.
        if not self.busy.acquire(blocking=False):
            self.overlaps += 1
            return None
        try:
            self.threads.add(threading.current_thread().name)
            if isinstance(message, threading.Event):
                assert message.wait(WAIT_S)
                return None
            if message == "boom":
                raise ValueError("boom")
            if message == "count":
                return len(self.got)
            if message == "got":
                return list(self.got)
            self.got.append(message)
            return message
        finally:
            self.busy.release()

    def on_failure(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        self.failed = exc_value


def spawn(actor: R) -> R:
    """Start ``actor`` as ``Actor.start`` would, keeping the object to look into."""
    actor._start_actor_loop()
    return actor


def test_messages_are_handled_in_the_order_they_were_sent(executor: ActorExecutor) -> None:
    ref = Recorder.start(executor)
    for i in range(2000):
        ref.tell(i)
    assert ref.ask("got", timeout=WAIT_S) == list(range(2000))
    ref.stop()


def test_one_actor_never_runs_on_two_threads_at_once(executor: ActorExecutor) -> None:
    actors = [spawn(Recorder(executor)) for _ in range(3)]
    refs = [a.actor_ref for a in actors]
    go = threading.Event()

    def send(sender: int) -> None:
        assert go.wait(WAIT_S)
        for i in range(500):
            for ref in refs:
                ref.tell((sender, i))

    senders = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for thread in senders:
        thread.start()
    go.set()
    for thread in senders:
        thread.join(WAIT_S)
    for actor, ref in zip(actors, refs, strict=True):
        assert ref.ask("count", timeout=WAIT_S) == 8 * 500
        assert actor.overlaps == 0
        # Each sender's messages stay in its order.
        for sender in range(8):
            assert [i for s, i in actor.got if s == sender] == list(range(500))
        ref.stop()
    # The turns did move between threads (else the test proves nothing).
    assert len(set().union(*(a.threads for a in actors))) > 1


def test_an_ask_gets_the_answer_and_an_exception_goes_back_to_the_asker(
    executor: ActorExecutor,
) -> None:
    ref = Recorder.start(executor)
    assert ref.ask("hello", timeout=WAIT_S) == "hello"
    with pytest.raises(ValueError, match="boom"):
        ref.ask("boom", timeout=WAIT_S)
    assert ref.is_alive()  # an asked failure is the caller's: the actor lives on
    assert ref.ask("count", timeout=WAIT_S) == 1
    ref.stop()


def test_a_told_failure_calls_on_failure_and_stops_the_actor(executor: ActorExecutor) -> None:
    actor = spawn(Recorder(executor))
    ref = actor.actor_ref
    ref.tell("boom")
    assert ref.actor_stopped.wait(WAIT_S)
    assert isinstance(actor.failed, ValueError)
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("count", timeout=WAIT_S)
    assert executor.stats()["live"] == 0


def test_stop_handles_what_was_sent_before_then_refuses_asks(executor: ActorExecutor) -> None:
    ref = Recorder.start(executor)
    gate = threading.Event()
    ref.tell(gate)  # holds the actor until everything below is queued
    before = ref.ask("first", block=False)
    for i in range(100):
        ref.tell(i)
    stopped = ref.stop(block=False)
    after = ref.ask("late", block=False)
    gate.set()
    assert before.get(timeout=WAIT_S) == "first"
    assert stopped.get(timeout=WAIT_S) is True
    with pytest.raises(pykka.ActorDeadError):
        after.get(timeout=WAIT_S)
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("later", timeout=WAIT_S)
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("later")


def test_a_blocking_stop_returns_once_the_earlier_messages_are_handled(
    executor: ActorExecutor,
) -> None:
    actor = spawn(Recorder(executor))
    ref = actor.actor_ref
    for i in range(300):
        ref.tell(i)
    assert ref.stop(block=True, timeout=WAIT_S) is True
    assert actor.got == list(range(300))
    assert not ref.is_alive()


def test_thousands_of_actors_share_four_threads(executor: ActorExecutor) -> None:
    baseline = threading.active_count()
    refs = [Recorder.start(executor) for _ in range(5000)]
    for n, ref in enumerate(refs):
        ref.tell(n)
    answers = [ref.ask("got", block=False) for ref in refs]
    assert [a.get(timeout=WAIT_S) for a in answers] == [[n] for n in range(5000)]
    assert executor.stats()["threads"] <= 4
    assert threading.active_count() <= baseline + 4
    assert executor.stats()["live"] == 5000
    for future in [ref.stop(block=False) for ref in refs]:
        assert future.get(timeout=WAIT_S) is True
    assert executor.stats()["live"] == 0


class Probe(PooledActor):
    """Answers what the function it is sent returns, run in its own turn."""

    def on_receive(self, message: Any) -> Any:
        return message()


def test_a_busy_actor_yields_its_thread_to_the_others() -> None:
    pool = ActorExecutor(1, name="test-fair")
    try:
        busy = spawn(Recorder(pool))
        probe = Probe.start(pool)
        gate = threading.Event()
        busy.actor_ref.tell(gate)  # the one thread waits here until all is queued
        for i in range(10_000):
            busy.actor_ref.tell(i)
        handled = probe.ask(lambda: len(busy.got), block=False)
        gate.set()
        # The probe's turn ran after one quota of busy's, not after all of them.
        assert handled.get(timeout=WAIT_S) < PooledActor.pool_quota
        assert busy.actor_ref.ask("count", timeout=WAIT_S) == 10_000
    finally:
        assert pool.shutdown(timeout=WAIT_S)


def test_on_start_runs_before_the_first_message(executor: ActorExecutor) -> None:
    release = threading.Event()

    class Slow(Recorder):
        def on_start(self) -> None:
            assert release.wait(WAIT_S)  # messages arrive meanwhile
            super().on_start()

    actor = spawn(Slow(executor))
    ref = actor.actor_ref
    for i in range(10):
        ref.tell(i)
    release.set()
    assert ref.ask("count", timeout=WAIT_S) == 10
    assert actor.started_first
    ref.stop()


class CountsStarts(Recorder):
    def __init__(self, executor: ActorExecutor | None = None) -> None:
        super().__init__(executor)
        self.starts = 0
        self.stopped = False
        self.handled = threading.Event()

    def on_start(self) -> None:
        self.starts += 1
        super().on_start()

    def on_stop(self) -> None:
        self.stopped = True

    def on_receive(self, message: Any) -> Any:
        try:
            return super().on_receive(message)
        finally:
            self.handled.set()


def test_an_actor_started_idle_takes_no_turn_until_its_first_message() -> None:
    one = ActorExecutor(1, name="test-actor")  # turns run in the order they are queued
    try:
        idle = CountsStarts(one)
        ref = idle.pool_start(idle=True)
        other = Recorder.start(one)
        assert other.ask("count", timeout=WAIT_S) == 0  # a turn queued before would be done
        assert idle.starts == 0 and one.stats()["live"] == 2
        ref.tell("first")
        assert ref.ask("got", timeout=WAIT_S) == ["first"]
        assert idle.starts == 1 and idle.started_first  # on_start, then the message
        ref.stop()
        other.stop()
    finally:
        assert one.shutdown(timeout=WAIT_S)


def test_a_message_sent_before_an_idle_start_is_not_left_waiting(
    executor: ActorExecutor,
) -> None:
    early = CountsStarts(executor)
    early.actor_ref.tell("early")  # queued before the start: it must schedule a turn now
    early.pool_start(idle=True)
    assert early.handled.wait(WAIT_S)  # with no other message to bring a turn
    assert early.got == ["early"] and early.starts == 1 and early.started_first


def test_an_idle_actor_stops_when_told_without_another_message(
    executor: ActorExecutor,
) -> None:
    idle = CountsStarts(executor)
    ref = idle.pool_start(idle=True)
    ref.stop(timeout=WAIT_S)
    assert idle.stopped and idle.starts == 1 and not ref.is_alive()
    assert executor.stats()["live"] == 0


def test_an_on_start_failure_stops_the_actor(executor: ActorExecutor) -> None:
    class Broken(Recorder):
        def on_start(self) -> None:
            raise RuntimeError("no start")

    ref = Broken.start(executor)
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("count", timeout=WAIT_S)
    assert not ref.is_alive()


class Asker(PooledActor):
    """Asks ``target`` from its handler: what the pool forbids on one executor."""

    def __init__(self, executor: ActorExecutor, target: pykka.ActorRef[Any]) -> None:
        super().__init__(executor)
        self.target = target

    def on_receive(self, message: Any) -> Any:
        if message == "stop it":
            return self.target.stop(block=True, timeout=WAIT_S)
        return self.target.ask(message, timeout=WAIT_S)


def test_a_handler_waiting_for_a_pooled_answer_on_its_executor_fails_loudly(
    executor: ActorExecutor,
) -> None:
    target = Recorder.start(executor)
    asker = Asker.start(executor, target)
    with pytest.raises(PoolDeadlock):
        asker.ask("count", timeout=WAIT_S)
    # Another executor's actor answers on threads of its own: no deadlock to fear.
    elsewhere = ActorExecutor(1, name="test-other")
    try:
        across = Asker.start(elsewhere, target)
        assert across.ask("count", timeout=WAIT_S) == 0
        across.stop()
    finally:
        assert elsewhere.shutdown(timeout=WAIT_S)
    with pytest.raises(PoolDeadlock):  # the stop is sent; only the wait is refused
        asker.ask("stop it", timeout=WAIT_S)
    asker.stop()


class Parent(PooledActor):
    def on_receive(self, message: Any) -> Any:
        return Recorder.start()  # no executor given: its parent's


def test_an_actor_started_by_a_handler_runs_on_its_parents_executor(
    executor: ActorExecutor,
) -> None:
    parent = Parent.start(executor)
    child = parent.ask("spawn", timeout=WAIT_S)
    assert child.ask("hi", timeout=WAIT_S) == "hi"
    assert executor.stats()["live"] == 2
    with pytest.raises(RuntimeError, match="needs an ActorExecutor"):
        Recorder.start()  # outside a handler, an executor must be given
    child.stop()
    parent.stop()


def test_after_the_executor_shuts_down_an_actor_is_dead_and_its_threads_are_gone() -> None:
    baseline = threading.active_count()
    pool = ActorExecutor(3, name="test-shutdown")
    refs = [Recorder.start(pool) for _ in range(20)]
    assert [ref.ask("count", timeout=WAIT_S) for ref in refs] == [0] * 20
    assert pool.shutdown(timeout=WAIT_S)
    assert threading.active_count() == baseline
    with pytest.raises(pykka.ActorDeadError):
        refs[0].ask("count", timeout=WAIT_S)
    assert not refs[0].is_alive()
    late = spawn(Recorder(pool))  # a start after the shutdown: dead at once
    assert not late.actor_ref.is_alive()
