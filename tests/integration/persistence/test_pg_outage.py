"""The database goes away: the writer and the engine's reads wait for it, a stop does not.

Each test runs its own embedded server (``own_server``) and stops it: the outage
is real (connections refused, the socket gone), not a terminated backend.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import psycopg
import pykka
import pytest
from persistence_helpers import wait_until

from directorate.persistence import ops
from directorate.persistence.database import Database
from directorate.persistence.errors import PersistenceUnavailable
from directorate.persistence.reads import Reads
from directorate.persistence.writer import Committed, PersistenceClient, Write

pytestmark = pytest.mark.integration

WRITER_LOG = "directorate.persistence.writer"


def _said(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def _write(command_id: uuid.UUID) -> Write:
    op = ops.insert("directive_commands", id=command_id, command="pause")
    return Write(ops=(op,), what=f"command {command_id}")


def _stored(dsn: str, ids: list[uuid.UUID]) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM directive_commands WHERE id = ANY(%s)", (ids,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def _pending(future: pykka.Future[Any]) -> bool:
    try:
        future.get(timeout=0)
    except pykka.Timeout:
        return True
    return False


def test_writes_sent_during_an_outage_are_committed_once_the_database_is_back(
    own_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = PersistenceClient(own_server.dsn)  # no reconnect_timeout: it never gives up
    try:
        assert isinstance(client.write(*_write(uuid.uuid4()).ops), Committed)
        own_server.stop()
        ids = [uuid.uuid4() for _ in range(3)]
        with caplog.at_level(logging.WARNING, logger=WRITER_LOG):
            futures = [client.submit(_write(i)) for i in ids]
            wait_until(
                lambda: _said(caplog, "the database has been unavailable"),
                30,
                "the writer to say it is waiting",
            )
            assert all(_pending(f) for f in futures)
            own_server.start()
            results = [f.get(timeout=60) for f in futures]
        assert all(isinstance(r, Committed) for r in results)
        assert _stored(own_server.dsn, ids) == 3
        # One line when it began (the interval is 30 s) and one when it ended,
        # however many attempts were made in between.
        assert len(_said(caplog, "the database has been unavailable")) == 1
        assert len(_said(caplog, "the database is back")) == 1
    finally:
        client.stop()


def test_stop_during_an_outage_ends_within_its_deadline_and_says_what_was_not_written(
    own_server: Any,
) -> None:
    client = PersistenceClient(own_server.dsn)
    assert isinstance(client.write(*_write(uuid.uuid4()).ops), Committed)
    own_server.stop()
    ids = [uuid.uuid4() for _ in range(3)]
    futures = [client.submit(_write(i)) for i in ids]
    started = time.monotonic()
    unwritten = client.stop(timeout=3.0)
    took = time.monotonic() - started
    assert took < 3.0, f"stop took {took:.2f} s"
    assert sorted(unwritten) == sorted(f"command {i}" for i in ids)
    for future in futures:
        with pytest.raises(PersistenceUnavailable, match="couldn't connect"):
            future.get(timeout=1)
    own_server.start()
    assert _stored(own_server.dsn, ids) == 0  # nothing half-written, nothing written late


def test_senders_wait_on_the_bounded_inbox_during_an_outage(own_server: Any) -> None:
    client = PersistenceClient(own_server.dsn, max_pending=2)
    try:
        assert isinstance(client.write(*_write(uuid.uuid4()).ops), Committed)
        own_server.stop()
        ids = [uuid.uuid4() for _ in range(2)]
        futures = [client.submit(_write(i)) for i in ids]
        with pytest.raises(PersistenceUnavailable, match="full"):
            client.submit(_write(uuid.uuid4()), timeout=0.2)
        own_server.start()
        assert all(isinstance(f.get(timeout=60), Committed) for f in futures)
        assert isinstance(client.submit(_write(uuid.uuid4())).get(timeout=60), Committed)
    finally:
        client.stop()


def test_waiting_reads_wait_out_an_outage_bounded_reads_fail_and_a_stop_ends_the_wait(
    own_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(own_server.dsn)
    try:
        assert db.reads.directives() == []
        own_server.stop()
        bounded = Reads(db.pool, patience_s=0.5)
        with pytest.raises(PersistenceUnavailable, match="the database is unavailable"):
            bounded.directives()

        stopped = threading.Event()
        stopping = db.reads.waiting(stopped)
        failed: list[BaseException] = []

        def read_until_stopped() -> None:
            try:
                stopping.directives()
            except PersistenceUnavailable as exc:
                failed.append(exc)

        reader = threading.Thread(target=read_until_stopped, daemon=True)
        reader.start()
        stopped.set()
        reader.join(timeout=15)
        assert not reader.is_alive() and failed

        patient = db.reads.waiting(threading.Event())
        answers: list[Any] = []
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="directorate.persistence.reads"):
            waiter = threading.Thread(
                target=lambda: answers.append(patient.directives()), daemon=True
            )
            waiter.start()
            wait_until(lambda: _said(caplog, "reads: the database has been"), 30)
            own_server.start()
        waiter.join(timeout=60)
        assert answers == [[]]
    finally:
        db.close()
