"""Writer benchmark (by hand, not in CI): event appends through the PersistenceActor
against one commit per write.

    python tests/bench/persistence.py [--dsn DSN] [--senders 1 8 64] [--seconds 3]
                                      [--writes N]

Each sender thread appends an event with ``ops.append_events``, the statement
every engine write ends with (so each gets its gap-free per-directive seq; through
the writer, a batch's appends are one statement), and waits for the write to be
durable before sending the next. "actor" sends through ``Database.writer`` as the
engine does; "direct" gives each sender its own psycopg connection in autocommit,
so each append is one statement in its own transaction: one round trip and one
commit per write, the best a writer without group commit can do. Senders spread
over one directive each, then (last rows) all on ONE directive, where every append
waits on its row lock.
Without --dsn (or DIRECTORATE_DSN) it uses the embedded server in a temporary
DIRECTORATE_HOME; either way it creates a fresh database and drops it at the end.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import uuid
from collections.abc import Callable

import psycopg
from scratch import scratch_database, scratch_server

from directorate.persistence import ops
from directorate.persistence.database import Database
from directorate.persistence.models import Event
from directorate.persistence.writer import Committed, Op

Append = Callable[[uuid.UUID, int], None]


def run_senders(
    make_append: Callable[[], tuple[Append, Callable[[], None]]],
    directives: list[uuid.UUID],
    seconds: float,
    writes: int | None,
) -> tuple[int, float]:
    """Run one sender per entry of ``directives``; returns (writes done, elapsed)."""
    done = [0] * len(directives)
    stop = threading.Event()
    start = threading.Barrier(len(directives) + 1)
    quota = None if writes is None else max(1, writes // len(directives))

    def sender(index: int) -> None:
        append, close = make_append()
        try:
            start.wait()
            while not stop.is_set() and (quota is None or done[index] < quota):
                append(directives[index], done[index])
                done[index] += 1
        finally:
            close()

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(len(directives))]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.monotonic()
    if quota is None:
        time.sleep(seconds)
        stop.set()
    for thread in threads:
        thread.join()
    return sum(done), time.monotonic() - began


def _append(directive_id: uuid.UUID, n: int) -> Op:
    event = Event(
        id=uuid.uuid4(), directive_id=directive_id, seq=0, event_type="bench", data={"n": n}
    )
    return ops.append_events(directive_id, [event])


def bench_actor(db: Database, directives: list[uuid.UUID], args: argparse.Namespace) -> tuple:
    def make_append() -> tuple[Append, Callable[[], None]]:
        def append(directive_id: uuid.UUID, n: int) -> None:
            result = db.writer.write(_append(directive_id, n))
            assert isinstance(result, Committed), result

        return append, lambda: None

    before = db.writer.stats()
    count, elapsed = run_senders(make_append, directives, args.seconds, args.writes)
    after = db.writer.stats()
    assert after["writes"] - before["writes"] == count
    return count / elapsed, (after["transactions"] - before["transactions"]) / count


def bench_direct(dsn: str, directives: list[uuid.UUID], args: argparse.Namespace) -> float:
    def make_append() -> tuple[Append, Callable[[], None]]:
        conn = psycopg.connect(dsn, autocommit=True, application_name="bench-direct")

        def append(directive_id: uuid.UUID, n: int) -> None:
            op = _append(directive_id, n)
            assert conn.execute(op.sql, op.params).fetchone() is not None

        return append, conn.close

    count, elapsed = run_senders(make_append, directives, args.seconds, args.writes)
    return count / elapsed


def new_directives(db: Database, n: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    for directive_id in ids:
        db.writer.write(ops.insert("directives", id=directive_id, title="bench", goal="bench"))
    return ids


def check_sequences(db: Database) -> None:
    """Every directive's seqs are 1..last_event_seq: nothing lost, nothing twice."""
    with db.pool.connection() as conn:
        bad = conn.execute(
            "SELECT d.id FROM directives d LEFT JOIN directive_events e ON e.directive_id = d.id"
            " GROUP BY d.id, d.last_event_seq"
            " HAVING count(e.seq) <> d.last_event_seq OR coalesce(max(e.seq), 0) <> count(e.seq)"
        ).fetchall()
    assert not bad, f"{len(bad)} directives with gaps or duplicates in their seq"


def run(dsn: str, args: argparse.Namespace) -> None:
    print(f"{'case':<24} {'actor/s':>9} {'direct/s':>9} {'ratio':>6} {'tx/write':>9}")
    with Database.open(dsn, pool_size=2) as db:
        cases = [(f"{n} senders, {n} directives", n, n) for n in args.senders]
        cases.append((f"{max(args.senders)} senders, 1 directive", max(args.senders), 1))
        for label, senders, directive_count in cases:
            owned = new_directives(db, directive_count)
            directives = [owned[i % directive_count] for i in range(senders)]
            actor_rate, tx_per_write = bench_actor(db, directives, args)
            direct_rate = bench_direct(dsn, directives, args)
            print(
                f"{label:<24} {actor_rate:>9.0f} {direct_rate:>9.0f}"
                f" {actor_rate / direct_rate:>6.2f} {tx_per_write:>9.3f}",
                flush=True,
            )
        check_sequences(db)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", default=os.environ.get("DIRECTORATE_DSN"))
    parser.add_argument("--senders", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--seconds", type=float, default=3.0, help="per case and writer")
    parser.add_argument("--writes", type=int, help="total writes per case instead of --seconds")
    args = parser.parse_args()
    with scratch_server(args.dsn) as server, scratch_database(server) as dsn:
        run(dsn, args)


if __name__ == "__main__":
    main()
