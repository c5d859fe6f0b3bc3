"""The PersistenceActor on a real PostgreSQL: group commit, compare-and-set,
rejected writes, unknown commit outcomes, the bounded inbox and stop()."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import attrs
import psycopg
import pytest
from persistence_helpers import RowLock, lock_waiters, new_directive, wait_until

from directorate.persistence import ops
from directorate.persistence.database import Database
from directorate.persistence.errors import InvalidInput, PersistenceUnavailable
from directorate.persistence.models import Event
from directorate.persistence.ownership import Lease
from directorate.persistence.writer import (
    Committed,
    Conflict,
    Op,
    PersistenceActor,
    PersistenceClient,
    Write,
)

pytestmark = pytest.mark.integration

WRITER = "directorate-writer"


def _actor(client: PersistenceClient) -> PersistenceActor:
    actor = client.actor_ref._actor_weakref()
    assert isinstance(actor, PersistenceActor)
    return actor


def _command(**values: Any) -> Op:
    return ops.insert("directive_commands", id=uuid.uuid4(), command="pause", **values)


def _count(admin: psycopg.Connection[Any], statement: str, *params: Any) -> Any:
    row = admin.execute(statement, params).fetchone()
    assert row is not None
    return row[0]


def _block_writer(
    dsn: str, client: PersistenceClient, admin: psycopg.Connection[Any], locks: list[RowLock]
) -> RowLock:
    """Park the writer inside a transaction until the returned lock is released."""
    directive_id = new_directive(client)
    lock = RowLock(dsn, directive_id)
    locks.append(lock)
    client.submit(Write((ops.add_cost(directive_id, 1.0),)))
    wait_until(lambda: lock_waiters(admin, WRITER) == 1, what="the writer to block")
    return lock


# ------------------------------------------------------------------ group commit


def test_group_commit_uses_fewer_transactions_than_writes(
    client: PersistenceClient, admin: psycopg.Connection[Any], dsn: str
) -> None:
    threads_n, per_thread = 32, 25
    before = client.stats()
    batches_before = _count(admin, "SELECT count(*) FROM write_batches")
    barrier = threading.Barrier(threads_n)
    failures: list[str] = []

    def sender(index: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as reader:
            barrier.wait()
            for n in range(per_thread):
                command_id = uuid.uuid4()
                result = client.write(
                    ops.insert(
                        "directive_commands", id=command_id, command="pause", reason=f"{index}:{n}"
                    )
                )
                # Acknowledged means durable: any other connection sees it now.
                seen = reader.execute(
                    "SELECT 1 FROM directive_commands WHERE id = %s", (command_id,)
                ).fetchone()
                if not isinstance(result, Committed) or seen is None:
                    failures.append(f"{index}:{n} {result} seen={seen}")

    started = time.monotonic()
    threads = [threading.Thread(target=sender, args=(i,)) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    elapsed = time.monotonic() - started

    after = client.stats()
    writes = after["writes"] - before["writes"]
    transactions = after["transactions"] - before["transactions"]
    batches = _count(admin, "SELECT count(*) FROM write_batches") - batches_before
    print(
        f"group commit: {writes} writes in {transactions} transactions"
        f" ({writes / transactions:.1f} per transaction), {writes / elapsed:.0f} writes/s"
    )
    assert failures == []
    assert writes == threads_n * per_thread
    assert _count(admin, "SELECT count(*) FROM directive_commands") == writes
    # The database's own count of committed batches agrees with the actor's.
    assert batches == transactions
    assert transactions < writes / 4


def test_a_committed_write_is_answered_while_the_next_batch_is_still_running(
    dsn: str, client: PersistenceClient, admin: psycopg.Connection[Any], row_locks: list[RowLock]
) -> None:
    # The writer answers a batch once it has sent the next one (so that its senders
    # do not take the GIL from it while it builds that batch), never later.
    first_id, second_id = new_directive(client), new_directive(client)
    row_locks.extend(locks := [RowLock(dsn, first_id), RowLock(dsn, second_id)])
    first = client.submit(Write((ops.add_cost(first_id, 1.0),)))
    wait_until(lambda: lock_waiters(admin, WRITER) == 1, what="the first batch to block")
    second = client.submit(Write((ops.add_cost(second_id, 1.0),)))  # the next batch
    locks[0].release()
    assert isinstance(first.get(timeout=10), Committed)
    wait_until(lambda: lock_waiters(admin, WRITER) == 1, what="the next batch to block")
    locks[1].release()
    assert isinstance(second.get(timeout=10), Committed)


# ------------------------------------------------------------------ merged event appends


def _events(directive_id: uuid.UUID, *types: str) -> list[Event]:
    return [Event(id=uuid.uuid4(), directive_id=directive_id, seq=0, event_type=t) for t in types]


def _appends(admin: psycopg.Connection[Any], directive_id: uuid.UUID) -> list[tuple[str, int]]:
    rows = admin.execute(
        "SELECT event_type, seq FROM directive_events WHERE directive_id = %s ORDER BY seq",
        (directive_id,),
    ).fetchall()
    return [(t, int(n)) for t, n in rows]


def _leased(admin: psycopg.Connection[Any], directive_id: uuid.UUID) -> Lease:
    lease = Lease(directive_id=directive_id, owner=uuid.uuid4(), epoch=3)
    admin.execute(
        "UPDATE directives SET lease_owner = %s, lease_epoch = %s WHERE id = %s",
        (lease.owner, lease.epoch, directive_id),
    )
    return lease


def test_a_batchs_event_appends_are_one_statement_numbered_as_if_one_by_one(
    dsn: str, client: PersistenceClient, admin: psycopg.Connection[Any], row_locks: list[RowLock]
) -> None:
    directives = [new_directive(client) for _ in range(3)]
    before = client.stats()  # (the writer answers only between flushes)
    lock = _block_writer(dsn, client, admin, row_locks)
    futures = []
    for round_ in range(2):  # each directive twice, interleaved with the others
        for n, directive_id in enumerate(directives):
            names = [f"r{round_}-{n}-{i}" for i in range(n + 1)]
            events = _events(directive_id, *names)
            put = ops.insert("directive_commands", id=uuid.uuid4(), command="pause")
            futures.append(
                (events, client.submit(Write((put, ops.append_events(directive_id, events)))))
            )
    lock.release()
    results = [(events, f.get(timeout=30)) for events, f in futures]
    after = client.stats()

    for events, result in results:
        assert isinstance(result, Committed), result
        assert [i for i, _ in result.rows[1]] == [str(e.id) for e in events]
    for n, directive_id in enumerate(directives):
        names = [f"r{r}-{n}-{i}" for r in range(2) for i in range(n + 1)]
        assert _appends(admin, directive_id) == [(t, k + 1) for k, t in enumerate(names)]
    # The six writes went in one batch: six inserts and ONE events statement (the two
    # writes before them: the parked one's directive, and the parked one).
    assert after["transactions"] - before["transactions"] == 3
    assert after["statements"] - before["statements"] == 2 + 6 + 1


def test_a_failed_fence_in_a_merged_append_fails_its_write_alone(
    dsn: str, client: PersistenceClient, admin: psycopg.Connection[Any], row_locks: list[RowLock]
) -> None:
    held, lost, free = (new_directive(client) for _ in range(3))
    lease = _leased(admin, held)
    stale = attrs.evolve(_leased(admin, lost), epoch=2)  # another engine took it over
    lock = _block_writer(dsn, client, admin, row_locks)
    writes = [
        (ops.append_events(held, _events(held, "a"), fence=lease),),
        (
            ops.update("directives", lost, title="changed"),
            ops.append_events(lost, _events(lost, "b"), fence=stale),
        ),
        (ops.append_events(free, _events(free, "c")),),
        # Two fences on one directive in a batch: each write is judged by its own.
        (ops.append_events(held, _events(held, "d"), fence=attrs.evolve(lease, epoch=1)),),
        (ops.append_events(held, _events(held, "e"), fence=lease),),
    ]
    futures = [client.submit(Write(w)) for w in writes]
    lock.release()
    results = [f.get(timeout=30) for f in futures]

    assert [type(r) for r in results] == [Committed, Conflict, Committed, Conflict, Committed]
    assert results[1] == Conflict(op_index=1)
    assert _appends(admin, held) == [("a", 1), ("e", 2)]
    assert _appends(admin, lost) == []
    assert _appends(admin, free) == [("c", 1)]
    row = admin.execute("SELECT title, last_event_seq FROM directives WHERE id = %s", (lost,))
    assert row.fetchone() == ("t", 0)  # nothing of the fenced-out write applied


# ------------------------------------------------------------------ compare-and-set


def test_a_compare_and_set_that_matches_no_row_is_a_conflict(
    client: PersistenceClient, admin: psycopg.Connection[Any]
) -> None:
    directive_id = new_directive(client)  # draft

    result = client.write(ops.transition("directives", directive_id, "active", "paused"))
    assert result == Conflict(op_index=0)
    assert not result.ok

    result = client.write(ops.transition("directives", directive_id, "draft", "planning"))
    assert isinstance(result, Committed) and result.ok
    status = "SELECT status, last_event_seq FROM directives WHERE id = %s"
    assert admin.execute(status, (directive_id,)).fetchone() == ("planning", 0)

    # A guard after other statements undoes them: no event, no sequence number used.
    result = client.write(
        ops.append_event(directive_id, "started"),
        ops.transition("directives", directive_id, "draft", "active"),
    )
    assert result == Conflict(op_index=1)
    assert admin.execute(status, (directive_id,)).fetchone() == ("planning", 0)
    assert _count(admin, "SELECT count(*) FROM directive_events") == 0

    missing = client.write(ops.transition("directives", uuid.uuid4(), "draft", "planning"))
    assert missing == Conflict(op_index=0)


def test_a_conflict_does_not_disturb_the_other_writes_of_its_batch(
    client: PersistenceClient,
    admin: psycopg.Connection[Any],
    dsn: str,
    row_locks: list[RowLock],
) -> None:
    directive_id = new_directive(client)
    batches = "SELECT count(*) FROM write_batches"
    batches_before = _count(admin, batches)
    lock = _block_writer(dsn, client, admin, row_locks)
    futures = [
        client.submit(Write((_command(),))),
        client.submit(
            Write(
                (
                    ops.append_event(directive_id, "a"),
                    ops.transition("directives", directive_id, "active", "paused"),
                )
            )
        ),
        client.submit(Write((ops.append_event(directive_id, "b"),))),
        client.submit(Write((_command(),))),
    ]
    lock.release()
    results = [f.get(timeout=10) for f in futures]

    assert [type(r) for r in results] == [Committed, Conflict, Committed, Committed]
    assert results[2].scalar(0) == 1  # the conflicted append gave its number back
    assert _count(admin, "SELECT count(*) FROM directive_commands") == 2
    # Parking the writer took two transactions; the four queued behind it, one.
    assert _count(admin, batches) - batches_before == 3


# ------------------------------------------------------------------ rejected writes


def test_a_write_the_database_rejects_fails_alone(
    client: PersistenceClient,
    admin: psycopg.Connection[Any],
    dsn: str,
    row_locks: list[RowLock],
) -> None:
    directive_id = new_directive(client)
    chain_id = uuid.uuid4()
    client.write(
        ops.insert(
            "directive_chains", id=chain_id, directive_id=directive_id, generation=1, name="c"
        ),
        ops.insert(
            "chain_steps",
            id=uuid.uuid4(),
            chain_id=chain_id,
            directive_id=directive_id,
            name="build",
            step_type="implement",
        ),
    )
    lock = _block_writer(dsn, client, admin, row_locks)
    bad = {
        "bad status": Write((ops.update("directives", directive_id, status="bogus"),)),
        "duplicate step": Write(
            (
                ops.insert(
                    "chain_steps",
                    id=uuid.uuid4(),
                    chain_id=chain_id,
                    directive_id=directive_id,
                    name="build",
                    step_type="test",
                ),
            )
        ),
        "missing chain": Write(
            (
                ops.insert(
                    "chain_steps",
                    id=uuid.uuid4(),
                    chain_id=uuid.uuid4(),
                    directive_id=directive_id,
                    name="x",
                    step_type="test",
                ),
            )
        ),
        "unencodable jsonb": Write((ops.append_event(directive_id, "x", {"when": object()}),)),
    }
    good = [Write((_command(),)) for _ in range(5)]
    mixed = [good[0], bad["bad status"], good[1], bad["duplicate step"], good[2]]
    mixed += [bad["missing chain"], good[3], bad["unencodable jsonb"], good[4]]
    futures = [client.submit(w) for w in mixed]
    lock.release()

    outcomes: dict[int, Any] = {}
    for index, future in enumerate(futures):
        try:
            outcomes[index] = future.get(timeout=10)
        except InvalidInput as exc:
            outcomes[index] = exc
    messages = {name: str(outcomes[mixed.index(w)]) for name, w in bad.items()}
    assert "directives_status_check" in messages["bad status"]
    assert "chain_steps_chain_id_name_key" in messages["duplicate step"]
    assert "chain_steps_chain_id_fkey" in messages["missing chain"]
    assert "not JSON serializable" in messages["unencodable jsonb"]
    for write in good:
        assert isinstance(outcomes[mixed.index(write)], Committed)
    assert _count(admin, "SELECT count(*) FROM directive_commands") == 5
    assert _count(admin, "SELECT count(*) FROM chain_steps") == 1
    assert _count(admin, "SELECT status FROM directives WHERE id = %s", directive_id) == "draft"


@pytest.mark.parametrize(
    "build",
    [
        lambda d: ops.insert("directives", id=uuid.uuid4(), title="a\x00b", goal="g"),
        lambda d: ops.update("directives", d, goal="nul\x00"),
        lambda d: ops.append_event(d, "x", {"nested": ["ok", {"deep": "\x00"}]}),
        lambda d: ops.append_event(d, "x", {"key\x00": 1}),
        lambda d: ops.insert(
            "directives", id=uuid.uuid4(), title="t", goal="g", constraints=["\x00"]
        ),
    ],
    ids=["text", "update", "nested-jsonb", "jsonb-key", "jsonb-list"],
)
def test_a_nul_byte_is_refused_before_it_reaches_postgres(
    client: PersistenceClient, admin: psycopg.Connection[Any], build: Any
) -> None:
    directive_id = new_directive(client)
    before = client.stats()
    with pytest.raises(InvalidInput, match="NUL byte"):
        build(directive_id)
    assert client.stats() == before


# ------------------------------------------------------------------ unknown commit outcome


@pytest.mark.parametrize("lookup_fails", [False, True], ids=["once", "lookup-also-lost"])
def test_a_commit_whose_outcome_was_lost_is_looked_up_not_applied_again(
    client: PersistenceClient, admin: psycopg.Connection[Any], lookup_fails: bool
) -> None:
    directive_id = new_directive(client)
    actor = _actor(client)
    run_batch, lookup_batch = actor._run_batch, actor._lookup_batch
    lost = threading.Event()
    lookup_lost = threading.Event()

    def commit_then_lose_the_connection(conn: Any, batch_id: Any, writes: Any) -> Any:
        results = run_batch(conn, batch_id, writes)
        if not lost.is_set():
            lost.set()
            conn.close()
            raise psycopg.OperationalError("simulated: the connection dropped after COMMIT")
        return results

    def lose_the_connection_again(conn: Any, batch_id: Any) -> Any:
        if lookup_fails and not lookup_lost.is_set():
            lookup_lost.set()
            conn.close()
            raise psycopg.OperationalError("simulated: dropped again during the lookup")
        return lookup_batch(conn, batch_id)

    actor._run_batch = commit_then_lose_the_connection  # type: ignore[method-assign]
    actor._lookup_batch = lose_the_connection_again  # type: ignore[method-assign]
    result = client.write(ops.add_cost(directive_id, 2.5), ops.append_event(directive_id, "x"))

    assert lost.is_set() and lookup_lost.is_set() == lookup_fails
    assert isinstance(result, Committed)
    assert result.rows == (((2.5,),), ((1,),))
    row = admin.execute(
        "SELECT total_cost_usd, last_event_seq FROM directives WHERE id = %s", (directive_id,)
    ).fetchone()
    assert row == (2.5, 1)
    stats = client.stats()
    assert stats["reconnects"] == 1 + lookup_fails
    assert stats["recovered"] == 1


def test_a_retry_waits_for_an_attempt_still_in_flight_and_does_not_double_apply(
    client: PersistenceClient,
    admin: psycopg.Connection[Any],
    dsn: str,
    row_locks: list[RowLock],
) -> None:
    """The old connection is cut off from us but its backend is alive and mid-commit
    (a network partition): the retry must not apply the batch a second time."""
    directive_id = new_directive(client)
    actor = _actor(client)
    original = actor._run_batch
    old_attempt: list[Any] = []
    side_connections: list[psycopg.Connection[Any]] = []

    def partitioned(conn: Any, batch_id: Any, writes: Any) -> Any:
        if old_attempt:
            return original(conn, batch_id, writes)
        side = psycopg.connect(dsn, autocommit=True, application_name="test-old-attempt")
        side_connections.append(side)
        worker = threading.Thread(
            target=lambda: old_attempt.append(original(side, batch_id, writes))
        )
        old_attempt.append(worker)
        worker.start()
        with psycopg.connect(dsn, autocommit=True) as watcher:
            wait_until(lambda: lock_waiters(watcher, "test-old-attempt") == 1)
        conn.close()
        raise psycopg.OperationalError("simulated: partitioned from the server")

    lock = RowLock(dsn, directive_id)
    row_locks.append(lock)
    actor._run_batch = partitioned  # type: ignore[method-assign]
    future = client.submit(
        Write((ops.add_cost(directive_id, 1.0), ops.append_event(directive_id, "x")))
    )
    # The retry is queued behind the old attempt's uncommitted batch row.
    wait_until(lambda: lock_waiters(admin, WRITER) == 1, what="the retry to wait")
    lock.release()
    result = future.get(timeout=10)
    old_attempt[0].join(timeout=10)
    side_connections[0].close()

    assert isinstance(result, Committed)
    assert result.rows == (((1.0,),), ((1,),))
    row = admin.execute(
        "SELECT total_cost_usd, last_event_seq FROM directives WHERE id = %s", (directive_id,)
    ).fetchone()
    assert row == (1.0, 1)


# ------------------------------------------------------------------ bounded inbox


def test_a_flood_of_senders_waits_instead_of_queueing_without_bound(
    dsn: str, admin: psycopg.Connection[Any], row_locks: list[RowLock]
) -> None:
    max_pending, senders = 8, 40
    client = PersistenceClient(dsn, max_pending=max_pending)
    try:
        lock = _block_writer(dsn, client, admin, row_locks)  # holds one slot
        handed_over: list[Any] = []
        threads = [
            threading.Thread(target=lambda: handed_over.append(client.submit(Write((_command(),)))))
            for _ in range(senders)
        ]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(handed_over) == max_pending - 1, what="the free slots to fill")
        time.sleep(0.3)  # give the other senders every chance to get past submit()
        assert len(handed_over) == max_pending - 1
        assert client.queued() <= max_pending
        with pytest.raises(PersistenceUnavailable, match="full"):
            client.submit(Write((_command(),)), timeout=0.05)

        lock.release()
        for thread in threads:
            thread.join(timeout=10)
        assert len(handed_over) == senders
        assert all(isinstance(f.get(timeout=10), Committed) for f in handed_over)
        assert _count(admin, "SELECT count(*) FROM directive_commands") == senders
    finally:
        for held in row_locks:
            held.release()
        client.stop()


# ------------------------------------------------------------------ stop


def test_stop_commits_every_pending_write_then_closes_the_pool(
    dsn: str, admin: psycopg.Connection[Any], row_locks: list[RowLock]
) -> None:
    db = Database(dsn)
    lock = _block_writer(dsn, db.writer, admin, row_locks)
    futures = [db.writer.submit(Write((_command(),))) for _ in range(300)]
    closer = threading.Thread(target=db.close, daemon=True)
    closer.start()
    time.sleep(0.2)
    assert closer.is_alive(), "close() returned with writes still pending"
    with pytest.raises(PersistenceUnavailable):
        db.writer.submit(Write((_command(),)))

    lock.release()
    closer.join(timeout=30)
    assert not closer.is_alive()
    assert all(f.get(timeout=0) for f in futures)
    assert all(isinstance(f.get(timeout=0), Committed) for f in futures)
    assert _count(admin, "SELECT count(*) FROM directive_commands") == 300
    assert db.pool.closed
    # The server notices a closed connection a moment later (its backend exits
    # asynchronously), so look for the writer's backend to go, with a deadline.
    deadline = time.monotonic() + 10
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
    while _count(admin, query, WRITER) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _count(admin, query, WRITER) == 0
    db.close()  # a second close is harmless


def test_close_lets_the_last_writes_be_read_before_the_readers_close(dsn: str) -> None:
    # What is told of the last writes (a directive's end, to its webhook) reads the
    # directive: close() runs it after the writer's last commit, before the readers go.
    db = Database(dsn)
    db.writer.submit(Write((_command(),)))  # still queued when close() begins
    seen: list[int] = []

    def read_the_last_writes() -> None:
        with db.pool.connection() as conn:
            row = conn.execute("SELECT count(*) FROM directive_commands").fetchone()
        seen.append(row[0] if row else -1)
        with pytest.raises(PersistenceUnavailable):  # and nothing more is written
            db.writer.submit(Write((_command(),)))

    db.close(while_readable=read_the_last_writes)
    assert seen == [1]
    assert db.pool.closed


# ------------------------------------------------------------------ pipelined flushes


def test_a_write_rejected_early_in_a_large_batch_fails_alone(
    client: PersistenceClient,
    admin: psycopg.Connection[Any],
    dsn: str,
    row_locks: list[RowLock],
) -> None:
    """The batch is sent in one pipeline: the server's error comes back while later
    statements are still being sent, and still costs only its own write."""
    directive_id = new_directive(client)
    lock = _block_writer(dsn, client, admin, row_locks)
    bad = client.submit(Write((ops.update("directives", directive_id, status="bogus"),)))
    good = [
        client.submit(Write((_command(), ops.append_event(directive_id, "e", {"n": n}))))
        for n in range(400)
    ]
    lock.release()

    with pytest.raises(InvalidInput, match="directives_status_check"):
        bad.get(timeout=30)
    seqs = [f.get(timeout=30).scalar(1) for f in good]
    assert seqs == list(range(1, 401))
    assert _count(admin, "SELECT count(*) FROM directive_commands") == 400


def test_a_rejected_write_is_recorded_with_its_batch_when_the_commit_outcome_is_lost(
    client: PersistenceClient, admin: psycopg.Connection[Any], row_locks: list[RowLock], dsn: str
) -> None:
    directive_id = new_directive(client)
    actor = _actor(client)
    run_batch = actor._run_batch
    lost = threading.Event()

    def commit_then_lose_the_connection(conn: Any, batch_id: Any, writes: Any) -> Any:
        results = run_batch(conn, batch_id, writes)
        if len(writes) > 1 and not lost.is_set():
            lost.set()
            conn.close()
            raise psycopg.OperationalError("simulated: the connection dropped after COMMIT")
        return results

    actor._run_batch = commit_then_lose_the_connection  # type: ignore[method-assign]
    lock = _block_writer(dsn, client, admin, row_locks)
    bad = client.submit(Write((ops.update("directives", directive_id, status="bogus"),)))
    good = client.submit(Write((ops.append_event(directive_id, "x"),)))
    lock.release()

    with pytest.raises(InvalidInput, match="directives_status_check"):
        bad.get(timeout=10)
    assert good.get(timeout=10) == Committed(rows=(((1,),),))
    assert lost.is_set() and client.stats()["recovered"] == 1
    assert _count(admin, "SELECT count(*) FROM directive_events") == 1


# ------------------------------------------------------------------ large values

TEN_MB = 10 * 1024 * 1024


@pytest.mark.timeout(120)
@pytest.mark.parametrize("company", ["alone", "in-a-batch", "beside-a-rejected-write"])
def test_a_10_mb_value_is_committed_instead_of_hanging_the_writer(
    client: PersistenceClient,
    admin: psycopg.Connection[Any],
    dsn: str,
    row_locks: list[RowLock],
    company: str,
) -> None:
    """A parameter larger than the socket's buffers used to leave the pipelined
    batch half sent, the server waiting for the rest and the writer for its answer
    (issue 11: a 2 MB goal hung submit). Text and jsonb, 10 MB each, in bytes:
    the goal is multi-byte characters."""
    directive_id = new_directive(client)
    goal = "\N{MUSICAL SYMBOL G CLEF}" * (TEN_MB // 4)
    log = "x" * TEN_MB
    big = [
        Write((ops.update("directives", directive_id, goal=goal),)),
        Write((ops.append_event(directive_id, "big", {"log": log}),)),
    ]
    others: list[Write] = []
    if company != "alone":
        others = [
            Write((_command(), ops.append_event(directive_id, "e", {"n": n}))) for n in range(50)
        ]
    if company == "beside-a-rejected-write":  # the batch then runs again write by write
        others.append(Write((ops.update("directives", directive_id, status="bogus"),)))
    lock = _block_writer(dsn, client, admin, row_locks) if others else None
    # Last in the batch: no later statement's sending pushes the rest out.
    futures = [client.submit(w) for w in [*others, *big]]
    if lock is not None:
        lock.release()

    outcomes = []
    for future in futures:
        try:
            outcomes.append(future.get(timeout=30))
        except InvalidInput as exc:
            outcomes.append(exc)
    rejected = [o for o in outcomes if isinstance(o, InvalidInput)]
    assert len(rejected) == (company == "beside-a-rejected-write")
    stored = _count(admin, "SELECT goal FROM directives WHERE id = %s", directive_id)
    assert stored == goal
    assert (
        _count(
            admin,
            "SELECT length(data->>'log') FROM directive_events"
            " WHERE directive_id = %s AND event_type = 'big'",
            directive_id,
        )
        == TEN_MB
    )
