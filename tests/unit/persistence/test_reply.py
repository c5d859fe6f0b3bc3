"""The writer's one-shot future: what a sender waits on (no database)."""

from __future__ import annotations

import sys
import threading

import pykka
import pytest

from directorate.persistence.reply import Reply


def test_a_value_set_on_one_thread_is_got_on_another_and_again() -> None:
    reply: Reply[int] = Reply()
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(reply.get(timeout=10)))
    waiter.start()
    reply.set(7)
    waiter.join(10)
    assert got == [7]
    assert reply.get() == 7 and reply.get(timeout=0) == 7  # read again: no wait


def test_get_times_out_while_nothing_is_set() -> None:
    with pytest.raises(pykka.Timeout):
        Reply[int]().get(timeout=0.01)
    with pytest.raises(pykka.Timeout):
        Reply[int]().get(timeout=-1.0)  # a deadline already past: no wait at all


def _lose() -> None:
    raise KeyError("lost")


def test_an_exception_is_raised_by_every_get_with_its_traceback() -> None:
    reply: Reply[int] = Reply()
    try:
        _lose()
    except KeyError:
        reply.set_exception(sys.exc_info())
    for _ in range(2):
        with pytest.raises(KeyError, match="lost") as raised:
            reply.get(timeout=1)
        assert raised.traceback[-1].name == "_lose"  # where it was raised


def test_an_exception_type_alone_is_raised_as_an_instance() -> None:
    reply: Reply[int] = Reply()
    reply.set_exception((ValueError, None, None))
    with pytest.raises(ValueError):
        reply.get(timeout=1)


def test_a_second_set_is_an_error_and_keeps_the_first_value() -> None:
    reply: Reply[int] = Reply()
    reply.set(1)
    with pytest.raises(RuntimeError):
        reply.set(2)
    assert reply.get(timeout=1) == 1


def test_map_and_join_work_as_on_any_pykka_future() -> None:
    first: Reply[int] = Reply()
    second: Reply[int] = Reply()
    first.set(2)
    second.set(3)
    assert first.map(lambda v: v * 10).get(timeout=1) == 20
    assert first.join(second).get(timeout=1) == [2, 3]


def test_once_set_a_get_never_waits_on_the_lock() -> None:
    # A poll (timeout 0) while another getter is inside get() must see the value.
    reply: Reply[int] = Reply()
    reply.set(5)
    assert reply._ready.acquire(blocking=False)  # as a getter between its two calls
    try:
        assert reply.get(timeout=0) == 5
    finally:
        reply._ready.release()


def test_a_future_made_by_map_cannot_be_set() -> None:
    reply: Reply[int] = Reply()
    mapped = reply.map(lambda v: v + 1)
    with pytest.raises(RuntimeError):
        mapped.set(1)
    reply.set(1)
    assert mapped.get(timeout=1) == 2
