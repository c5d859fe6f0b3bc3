"""Killing the writer's connection in the middle of a burst (issue point 5 and 8)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

import psycopg
import pytest
from persistence_helpers import new_directive, wait_until

from directorate.persistence import ops
from directorate.persistence.writer import Committed, Op, PersistenceClient

pytestmark = pytest.mark.integration

SENDERS = 24
WRITES_EACH = 50
KILL_AT = (150, 500, 850)  # acknowledged writes when each termination is fired


def _terminate_writer(admin: psycopg.Connection[Any]) -> int:
    rows = admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'directorate-writer' AND datname = current_database()"
    ).fetchall()
    return sum(1 for (ok,) in rows if ok)


def test_every_acknowledged_write_survives_terminated_connections_exactly_once(
    client: PersistenceClient, admin: psycopg.Connection[Any]
) -> None:
    # No unique key here: a batch applied twice would show as a duplicate row.
    admin.execute("CREATE TABLE burst (sender int NOT NULL, n int NOT NULL)")
    directive_id = new_directive(client)
    acked: list[tuple[int, int]] = []
    event_seqs: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(SENDERS + 1)

    def sender(index: int) -> None:
        start.wait()
        for n in range(WRITES_EACH):
            statements = [
                Op("INSERT INTO burst (sender, n) VALUES (%s, %s)", (index, n)),
                ops.add_cost(directive_id, 1.0),
            ]
            if n % 4 == 0:
                statements.append(ops.append_event(directive_id, "burst", {"s": index, "n": n}))
            try:
                result = client.write(*statements, timeout=60)
            except Exception as exc:  # every write should be acknowledged
                with lock:
                    errors.append(f"{index}:{n} {exc!r}")
                continue
            with lock:
                if isinstance(result, Committed):
                    acked.append((index, n))
                    if n % 4 == 0:
                        event_seqs.append(result.scalar(2))
                else:
                    errors.append(f"{index}:{n} {result}")

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(SENDERS)]
    for thread in threads:
        thread.start()
    start.wait()
    terminated = []
    for threshold in KILL_AT:
        wait_until(lambda t=threshold: len(acked) >= t, timeout=30, what=f"{threshold} acks")
        terminated.append(_terminate_writer(admin))
    for thread in threads:
        thread.join(timeout=60)

    stats = client.stats()
    print(f"terminated {terminated}, acknowledged {len(acked)}, writer stats {stats}")
    assert terminated == [1] * len(KILL_AT), "each termination must hit the writer"
    assert stats["reconnects"] >= len(KILL_AT)
    assert errors == []
    total = SENDERS * WRITES_EACH
    assert len(acked) == total

    copies = Counter((s, n) for s, n in admin.execute("SELECT sender, n FROM burst").fetchall())
    assert {key: c for key, c in copies.items() if c != 1} == {}, "applied twice"
    assert set(copies) == set(acked), "an acknowledged write is missing"
    cost, last_seq = admin.execute(
        "SELECT total_cost_usd, last_event_seq FROM directives WHERE id = %s", (directive_id,)
    ).fetchone() or (None, None)
    assert cost == total
    seqs = [
        r[0]
        for r in admin.execute(
            "SELECT seq FROM directive_events WHERE directive_id = %s ORDER BY seq", (directive_id,)
        )
    ]
    assert seqs == list(range(1, len(event_seqs) + 1)) == sorted(event_seqs)
    assert last_seq == len(seqs)


def test_a_writer_whose_server_stays_away_reports_unavailable(dsn: str) -> None:
    """After reconnect_timeout the sender hears PersistenceUnavailable, not silence."""
    from directorate.persistence.errors import PersistenceUnavailable

    info = psycopg.conninfo.conninfo_to_dict(dsn)
    info["dbname"] = f"missing_{uuid.uuid4().hex[:8]}"
    client = PersistenceClient(psycopg.conninfo.make_conninfo(**info), reconnect_timeout=0.5)
    try:
        with pytest.raises(PersistenceUnavailable, match="couldn't connect"):
            client.write(ops.insert("directive_commands", id=uuid.uuid4(), command="pause"))
    finally:
        client.stop()
