"""The writer's queue (persistence.writer._Queue): the writer is told to flush only
when it is not already due to, and a flush takes every write queued before it began,
so a write waits for at most the flush in progress and its own (issue 13: one flush
per durable hop)."""

from __future__ import annotations

import pykka

from directorate.persistence.writer import Op, Write, _Queue, _Submit


def _submit(n: int) -> _Submit:
    return _Submit(Write((Op(f"SELECT {n}"),)), pykka.ThreadingFuture())


def test_only_the_write_that_finds_the_writer_not_due_wakes_it() -> None:
    queue = _Queue()
    assert queue.put(_submit(1)) is True  # the writer is told to flush
    assert queue.put(_submit(2)) is False  # it will take this one too
    assert queue.put(_submit(3)) is False
    batch, more = queue.take(limit=10)
    assert [s.write.ops[0].sql for s in batch] == ["SELECT 1", "SELECT 2", "SELECT 3"]
    assert more is False
    # Taken: the next write, arriving while that flush is in progress, wakes it again,
    # so it goes in the very next flush.
    assert queue.put(_submit(4)) is True


def test_a_flush_that_leaves_writes_behind_stays_due() -> None:
    queue = _Queue()
    for n in range(5):
        queue.put(_submit(n))
    batch, more = queue.take(limit=2)
    assert len(batch) == 2 and more is True  # the writer flushes again unasked
    assert queue.put(_submit(9)) is False
    batch, more = queue.take(limit=10)
    assert [s.write.ops[0].sql for s in batch] == ["SELECT 2", "SELECT 3", "SELECT 4", "SELECT 9"]
    assert more is False and len(queue) == 0
    assert queue.take(limit=10) == ([], False)  # a flush with nothing to do
    assert queue.put(_submit(10)) is True
