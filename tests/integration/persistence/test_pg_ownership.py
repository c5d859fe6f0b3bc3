"""Engines and leases in SQL (DESIGN §17): claims from many engines at once, expiry in
the database's clock, and fenced writes that change nothing once a lease is taken."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from persistence_helpers import wait_until

from directorate.actors.tx import Tx
from directorate.persistence import ops, ownership
from directorate.persistence.database import Database
from directorate.persistence.models import DirectiveStatus
from directorate.persistence.ownership import Lease, LeaseSum
from directorate.persistence.writer import Committed, Conflict, Op


@pytest.fixture
def db(dsn: str) -> Iterator[Database]:
    with Database.open(dsn) as database:
        yield database


def connect(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True)


def directives(dsn: str, count: int, status: str = "active") -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    with connect(dsn) as conn:
        for directive_id in ids:
            conn.execute(
                "INSERT INTO directives (id, title, goal, status) VALUES (%s, 't', 'g', %s)",
                (directive_id, status),
            )
    return ids


def engine(dsn: str, ttl_s: float = 30.0, takes_over: bool = True) -> uuid.UUID:
    engine_id = uuid.uuid4()
    with connect(dsn) as conn:
        ownership.register_engine(conn, engine_id, ttl_s=ttl_s, takes_over=takes_over)
    return engine_id


def lease_row(dsn: str, directive_id: uuid.UUID) -> tuple[Any, ...]:
    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT lease_owner, lease_epoch, last_event_seq FROM directives WHERE id = %s",
            (directive_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


def expired(dsn: str, engine_id: uuid.UUID) -> bool:
    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT expires_at <= now() FROM engines WHERE id = %s", (engine_id,)
        ).fetchone()
    return bool(row and row[0])


def test_engines_claiming_at_once_take_each_directive_once(dsn: str) -> None:
    ids = set(directives(dsn, 60))
    engines = [engine(dsn) for _ in range(4)]
    taken: list[tuple[uuid.UUID, uuid.UUID]] = []
    lock, start = threading.Lock(), threading.Barrier(8)

    def claim(engine_id: uuid.UUID) -> None:
        with connect(dsn) as conn:
            start.wait()
            for _ in range(10):  # small claims, over and over, against each other
                for claim in ownership.claim(conn, engine_id, limit=3):
                    with lock:
                        taken.append((claim.lease.directive_id, engine_id))

    threads = [threading.Thread(target=claim, args=(engines[i % 4],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [directive_id for directive_id, _ in taken]
    assert sorted(claimed) == sorted(ids), "each directive claimed exactly once"
    for directive_id, engine_id in taken:
        assert lease_row(dsn, directive_id)[:2] == (engine_id, 1)


def test_only_free_or_expired_leases_of_live_directives_are_claimed(dsn: str) -> None:
    [live] = directives(dsn, 1, "active")
    [draft] = directives(dsn, 1, "draft")
    [done] = directives(dsn, 1, "completed")
    first, second = engine(dsn, ttl_s=0.5), engine(dsn)
    with connect(dsn) as conn:
        [claim] = ownership.claim(conn, first)
        assert claim.lease == Lease(live, first, 1) and claim.previous is None
        assert not ownership.claim(conn, second), "held by a live engine"
        assert not ownership.claim(conn, first), "an engine never takes its own lease again"
        wait_until(lambda: expired(dsn, first), what="the first engine's row expires")
        [taken] = ownership.claim(conn, second)
    assert taken.lease == Lease(live, second, 2)
    assert taken.previous == first and taken.previous_pid is not None
    assert taken.silent_s is not None and taken.silent_s >= 0.5
    assert taken.expired_s is not None and taken.expired_s >= 0
    # Drafts only when asked for, and never a finished directive.
    with connect(dsn) as conn:
        assert [c.lease.directive_id for c in ownership.claim(conn, second)] == []
        drafts = ownership.claim(conn, second, statuses=[DirectiveStatus.DRAFT], ids=[draft])
        assert [c.lease.directive_id for c in drafts] == [draft]
        everything = list(DirectiveStatus)
        assert not ownership.claim(conn, engine(dsn), statuses=everything, ids=[done])


def test_a_stopped_engines_leases_are_free_at_once(dsn: str) -> None:
    [directive_id] = directives(dsn, 1)
    first, second = engine(dsn), engine(dsn)
    with connect(dsn) as conn:
        assert ownership.claim(conn, first)
        assert ownership.heartbeat(conn, first, ttl_s=30) == LeaseSum().plus(
            Lease(directive_id, first, 1)
        )
        assert ownership.leases_of_engine(conn, first) == {directive_id: 1}
        ownership.stop_engine(conn, first)
        assert ownership.heartbeat(conn, first, ttl_s=30) is None, "stopped: drives nothing"
        [taken] = ownership.claim(conn, second)
    assert taken.previous == first


def test_a_write_under_a_lease_that_was_taken_changes_nothing(dsn: str, db: Database) -> None:
    [directive_id] = directives(dsn, 1)
    first, second = engine(dsn, ttl_s=0.3), engine(dsn)
    with connect(dsn) as conn:
        [claim] = ownership.claim(conn, first)
    old = claim.lease
    ok = Tx(directive_id).event("note", {"n": 1})
    assert isinstance(ok.commit(db, fence=old), Committed)
    wait_until(lambda: expired(dsn, first))
    with connect(dsn) as conn:
        [taken] = ownership.claim(conn, second)
    before = lease_row(dsn, directive_id)
    assert before[:2] == (second, 2)
    # With events: the events' statement is the fence; without: a statement of its own.
    with_events = (
        Tx(directive_id)
        .op(set_title(directive_id, "changed by the old owner"))
        .event("note", {"n": 2})
    )
    without = Tx(directive_id).op(set_title(directive_id, "changed again"))
    for tx in (with_events, without):
        result = tx.commit(db, fence=old)
        assert result == Conflict(op_index=tx.fence_index)
    assert lease_row(dsn, directive_id) == before
    with connect(dsn) as conn:
        row = conn.execute("SELECT title FROM directives WHERE id = %s", (directive_id,))
        assert row.fetchone() == ("t",)
    # The new owner's writes go through.
    mine = Tx(directive_id).op(set_title(directive_id, "new owner")).event("note", {})
    assert isinstance(mine.commit(db, fence=taken.lease), Committed)
    assert lease_row(dsn, directive_id)[2] == before[2] + 1


def test_a_claim_passes_over_a_fenced_write_in_flight_and_then_sees_it(
    dsn: str, db: Database
) -> None:
    """The fence locks the directive's row until the write commits: a takeover cannot
    slip in between the fence's check and the commit (it skips the row, and takes it
    on a later tick, with the write in it)."""
    [directive_id] = directives(dsn, 1)
    first, second = engine(dsn, ttl_s=0.3), engine(dsn)
    with connect(dsn) as conn:
        [claim] = ownership.claim(conn, first)
    wait_until(lambda: expired(dsn, first))
    tx = Tx(directive_id).op(set_title(directive_id, "in flight"))
    statements, _ = tx.statements(claim.lease)
    with psycopg.connect(dsn) as writing, connect(dsn) as claiming:
        for op in statements:  # the fence passes: still the first's
            assert writing.execute(op.sql, op.params).rowcount == 1
        assert ownership.claim(claiming, second) == []
        writing.commit()
        assert [c.lease for c in ownership.claim(claiming, second)] == [
            Lease(directive_id, second, 2)
        ]
        row = claiming.execute("SELECT title FROM directives WHERE id = %s", (directive_id,))
        assert row.fetchone() == ("in flight",)


def set_title(directive_id: uuid.UUID, title: str) -> Op:
    return ops.update("directives", directive_id, title=title)


def test_the_heartbeats_sum_of_leases_is_the_engines_own_sum_of_them(dsn: str) -> None:
    """The database's LeaseSum (SQL) equals the one the engine keeps (Python) for the
    same leases, and moves when one of them is taken: ids of every shape, epochs past
    one, an engine holding none."""
    ids = [*directives(dsn, 40), uuid.UUID(int=2**128 - 1), uuid.UUID(int=1)]
    with connect(dsn) as conn:
        for edge in ids[-2:]:
            conn.execute(
                "INSERT INTO directives (id, title, goal, status) VALUES (%s, 't', 'g', 'active')",
                (edge,),
            )
    first, second = engine(dsn), engine(dsn)
    with connect(dsn) as conn:
        assert ownership.heartbeat(conn, first, ttl_s=30) == LeaseSum()
        claimed = ownership.claim(conn, first)
        ownership.stop_engine(conn, first)
        first_again = engine(dsn)
        taken = ownership.claim(conn, first_again)  # epochs of 2 now
        held = LeaseSum()
        for claim in taken:
            held = held.plus(claim.lease)
        assert len(claimed) == len(taken) == len(ids)
        assert {c.lease.epoch for c in taken} == {2}
        assert ownership.heartbeat(conn, first_again, ttl_s=30) == held
        ownership.stop_engine(conn, first_again)
        [moved] = ownership.claim(conn, second, ids=[ids[-1]])
        assert ownership.heartbeat(conn, second, ttl_s=30) == LeaseSum().plus(moved.lease)
