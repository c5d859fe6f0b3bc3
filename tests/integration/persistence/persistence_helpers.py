"""Helpers shared by the persistence integration tests."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from directorate.persistence import ops
from directorate.persistence.writer import Committed, PersistenceClient


def new_directive(client: PersistenceClient, **values: Any) -> uuid.UUID:
    directive_id = uuid.uuid4()
    values = {"title": "t", "goal": "g", **values}
    result = client.write(ops.insert("directives", id=directive_id, **values))
    assert isinstance(result, Committed)
    return directive_id


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")


def lock_waiters(admin: psycopg.Connection[Any], application_name: str) -> int:
    """Backends of ``application_name`` waiting on a heavyweight lock right now."""
    row = admin.execute(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = %s AND wait_event_type = 'Lock'",
        (application_name,),
    ).fetchone()
    assert row is not None
    return int(row[0])


class RowLock:
    """Hold ``SELECT ... FOR UPDATE`` on a directive from another connection, so a
    writer that touches the row blocks until ``release()``."""

    def __init__(self, dsn: str, directive_id: uuid.UUID) -> None:
        self.conn = psycopg.connect(dsn, application_name="test-locker")
        self.conn.execute("SELECT 1 FROM directives WHERE id = %s FOR UPDATE", (directive_id,))
        self._released = threading.Event()

    def release(self) -> None:
        if not self._released.is_set():
            self._released.set()
            self.conn.commit()
            self.conn.close()
