"""Same-shaped writes of a batch run as one statement each (``grouping``), on a real
PostgreSQL: the rows, the guards' outcomes and the order are those of the writes run
one by one, in fewer statements."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from persistence_helpers import RowLock, new_directive
from test_pg_writer import _appends, _block_writer, _events

from directorate.persistence import ops
from directorate.persistence.writer import Committed, Conflict, PersistenceClient, Write

pytestmark = pytest.mark.integration

STARTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _start(directive_id: uuid.UUID, n: int, *, owner: uuid.UUID | None = None) -> Write:
    """A write shaped like a directive's start: a guarded move, a row inserted, an
    unguarded update (an int, a jsonb list, a NULL), the events."""
    return Write(
        (
            ops.transition(
                "directives", directive_id, "draft", "active", started_at=STARTED + timedelta(n)
            ),
            ops.insert(
                "directive_commands",
                id=uuid.uuid4(),
                directive_id=directive_id,
                command="pause",
                args={"n": n},
                reason=None,
            ),
            ops.update(
                "directives",
                directive_id,
                chain_generation_count=n,
                requirements=[f"r{n}"],
                base_ref=None,
            ),
            ops.append_events(directive_id, _events(directive_id, f"started {n}")),
        ),
        owner=directive_id if owner is None else owner,
    )


def _row(admin: psycopg.Connection[Any], directive_id: uuid.UUID) -> tuple[Any, ...]:
    row = admin.execute(
        "SELECT status, started_at, chain_generation_count, requirements, base_ref"
        " FROM directives WHERE id = %s",
        (directive_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def _commands(admin: psycopg.Connection[Any], directive_id: uuid.UUID) -> list[Any]:
    rows = admin.execute(
        "SELECT args, reason FROM directive_commands WHERE directive_id = %s", (directive_id,)
    ).fetchall()
    return [tuple(r) for r in rows]


def _submit_together(
    dsn: str,
    client: PersistenceClient,
    admin: psycopg.Connection[Any],
    locks: list[RowLock],
    writes: list[Write],
) -> tuple[list[Any], int]:
    """The writes' results, all handed over while the writer is parked (one batch), and
    the statements that batch sent."""
    before = client.stats()  # (the writer answers only between flushes)
    lock = _block_writer(dsn, client, admin, locks)
    futures = [client.submit(w) for w in writes]
    lock.release()
    results = [f.get(timeout=30) for f in futures]
    after = client.stats()
    # Parking the writer took two statements: the parked write's directive, and it.
    return results, after["statements"] - before["statements"] - 2


def test_same_shaped_writes_run_as_one_statement_each(
    dsn: str, client: PersistenceClient, admin: psycopg.Connection[Any], row_locks: list[RowLock]
) -> None:
    directives = [new_directive(client) for _ in range(5)]
    results, statements = _submit_together(
        dsn, client, admin, row_locks, [_start(d, n) for n, d in enumerate(directives)]
    )
    assert all(isinstance(r, Committed) for r in results), results
    for n, directive_id in enumerate(directives):
        assert _row(admin, directive_id) == ("active", STARTED + timedelta(n), n, [f"r{n}"], None)
        assert _commands(admin, directive_id) == [({"n": n}, None)]
        assert _appends(admin, directive_id) == [(f"started {n}", 1)]
    assert statements == 3 + 1  # the three grouped statements and the events


def test_a_guard_that_misses_in_a_group_conflicts_its_write_alone(
    dsn: str, client: PersistenceClient, admin: psycopg.Connection[Any], row_locks: list[RowLock]
) -> None:
    directives = [new_directive(client) for _ in range(4)]
    moved = directives[2]
    admin.execute("UPDATE directives SET status = 'cancelled' WHERE id = %s", (moved,))
    results, _ = _submit_together(
        dsn, client, admin, row_locks, [_start(d, n) for n, d in enumerate(directives)]
    )
    assert [type(r) for r in results] == [Committed, Committed, Conflict, Committed]
    assert results[2] == Conflict(op_index=0)
    assert _row(admin, moved) == ("cancelled", None, 0, [], None)  # nothing of it applied
    assert _commands(admin, moved) == []
    assert _appends(admin, moved) == []
    for n in (0, 1, 3):
        assert _row(admin, directives[n])[:3] == ("active", STARTED + timedelta(n), n)


def test_writes_of_one_owner_keep_their_order(
    dsn: str, client: PersistenceClient, admin: psycopg.Connection[Any], row_locks: list[RowLock]
) -> None:
    # The second move of `twice` needs the first one applied: were they grouped (run
    # together), its guard would read the row before the first.
    twice, other = new_directive(client), new_directive(client)

    def move(directive_id: uuid.UUID, old: str, new: str) -> Write:
        return Write(
            (
                ops.transition("directives", directive_id, old, new),
                ops.append_events(directive_id, _events(directive_id, new)),
            ),
            owner=directive_id,
        )

    writes = [
        move(twice, "draft", "planning"),
        move(other, "draft", "planning"),
        move(twice, "planning", "active"),
    ]
    results, statements = _submit_together(dsn, client, admin, row_locks, writes)
    assert all(isinstance(r, Committed) for r in results), results
    assert _row(admin, twice)[0] == "active"
    assert _appends(admin, twice) == [("planning", 1), ("active", 2)]
    assert _row(admin, other)[0] == "planning"
    assert statements == 3 + 1  # each move alone (their owners repeat or are alone)


def test_writes_without_an_owner_or_of_another_shape_run_alone(
    dsn: str, client: PersistenceClient, admin: psycopg.Connection[Any], row_locks: list[RowLock]
) -> None:
    first, second, third = (new_directive(client) for _ in range(3))
    anonymous = _start(third, 2, owner=None)
    anonymous = Write(anonymous.ops)  # no owner: it says nothing of whose rows it changes
    results, statements = _submit_together(
        dsn, client, admin, row_locks, [_start(first, 0), _start(second, 1), anonymous]
    )
    assert all(isinstance(r, Committed) for r in results), results
    assert [_row(admin, d)[2] for d in (first, second, third)] == [0, 1, 2]
    assert statements == 3 + 3 + 1  # the two owned grouped, the anonymous one alone
