"""One engine's identity and leases: registered, kept alive, claimed, given up
(DESIGN §17).

The heartbeat runs on a thread and a connection of its own, so neither a busy writer
nor a full reader pool can delay it: every ``heartbeat_interval_s`` it renews the
engine's row (and so all its leases) for ``lease_ttl_s``, and reads back which
leases the engine still holds, so an engine that was frozen or cut off notices a
lease taken meanwhile even before one of its writes is refused.

After an outage every engine's row has expired at once. An engine whose heartbeat
failed takes over others' directives only once it has been renewed again for a whole
``lease_ttl_s``, so the engines that were only cut off renew theirs first and keep
their directives; a dead engine's stay expired.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import psycopg

from directorate.persistence import ownership as sql
from directorate.persistence.database import Database
from directorate.persistence.models import DirectiveStatus
from directorate.persistence.outage import Outage
from directorate.persistence.ownership import Claimed, Lease
from directorate.persistence.writer import CONNECT_TIMEOUT_S

from .leases import Leases

log = logging.getLogger(__name__)

CLAIM_WAIT_S = 5.0
"""How long a claim waits for a connection (the database away: the next tick tries)."""


class Ownership:
    """An engine's row, its heartbeat thread, and its claims. ``on_lost`` is called
    (on the heartbeat's thread) for a lease found taken by another engine."""

    def __init__(
        self,
        db: Database,
        *,
        lease_ttl_s: float,
        heartbeat_interval_s: float,
        takes_over: bool,
        on_lost: Callable[[Lease, str], None],
    ) -> None:
        if not 0 < heartbeat_interval_s < lease_ttl_s:
            raise ValueError("the heartbeat must come more often than the lease expires")
        self.engine_id = uuid.uuid4()
        self.leases = Leases(self.engine_id)
        self.takes_over = takes_over
        self._db = db
        self._ttl_s = lease_ttl_s
        self._interval_s = heartbeat_interval_s
        self._on_lost = on_lost
        self._stopping = threading.Event()
        self._failing = False
        """The heartbeat's last attempt failed: this engine may be cut off."""
        self._grace_until = 0.0
        """After the heartbeat failed, no takeover before this (monotonic) time."""
        with db.pool.connection() as conn:
            sql.register_engine(conn, self.engine_id, ttl_s=lease_ttl_s, takes_over=takes_over)
        self._thread = threading.Thread(
            target=self._beat, name="directorate-heartbeat", daemon=True
        )
        self._thread.start()

    # ----------------------------------------------------------------- claims

    def claim(
        self,
        *,
        statuses: Iterable[DirectiveStatus] = sql.LIVE,
        ids: Sequence[uuid.UUID] | None = None,
        limit: int = 1000,
    ) -> list[Claimed]:
        """Take free and expired leases (see ``persistence.ownership.claim``) and hold them."""
        with self._db.pool.connection(timeout=CLAIM_WAIT_S) as conn:
            claimed = sql.claim(conn, self.engine_id, statuses=statuses, ids=ids, limit=limit)
        for taken in claimed:
            self.leases.hold(taken.lease)
        return claimed

    def may_take_over(self) -> bool:
        """Whether this engine may claim others' expired leases now (module docstring)."""
        return (
            self.takes_over
            and not self._failing
            and time.monotonic() >= self._grace_until
            and not self._stopping.is_set()
        )

    # ----------------------------------------------------------------- stopping

    def stop(self, timeout: float = CONNECT_TIMEOUT_S + 5.0) -> None:
        """Stop the heartbeat, which marks the engine stopped on its way out: whatever
        leases it still holds are expired from then on (its writes are all committed
        by then). With the database away, the row simply expires."""
        self._stopping.set()
        self._thread.join(timeout=timeout)

    # ----------------------------------------------------------------- the heartbeat

    def _beat(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        outage: Outage | None = None
        try:
            while not self._stopping.wait(self._interval_s if outage is None else 0):
                try:
                    if conn is None:
                        conn = self._connect()
                    lost = self._renew(conn)
                except psycopg.Error as exc:
                    self._failing = True
                    if conn is not None:
                        conn.close()
                        conn = None
                    outage = outage or Outage("the heartbeat", logger=log)
                    self._stopping.wait(outage.failed(exc))
                    continue
                if outage is not None:
                    outage.over()
                    outage = None
                if self._failing:
                    self._failing = False
                    self._grace_until = time.monotonic() + self._ttl_s
                for lease, why in lost:
                    self._on_lost(lease, why)
        finally:
            if conn is None and outage is None:  # stopped before its first beat
                with contextlib.suppress(psycopg.Error):
                    conn = self._connect(connect_timeout=2)
            if conn is not None:
                self._mark_stopped(conn)
                conn.close()

    def _connect(self, connect_timeout: int = CONNECT_TIMEOUT_S) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self._db.dsn,
            autocommit=True,
            application_name="directorate-heartbeat",
            connect_timeout=connect_timeout,
        )

    def _mark_stopped(self, conn: psycopg.Connection[Any]) -> None:
        try:
            sql.stop_engine(conn, self.engine_id)
        except psycopg.Error as exc:  # the database is away: the row expires by itself
            log.info("engine %s: not marked stopped (%s)", self.engine_id, exc)

    def _renew(self, conn: psycopg.Connection[Any]) -> list[tuple[Lease, str]]:
        """One beat: renew the engine's row, and which leases it has lost. The leases
        are read back only when the database's sum of them differs from ours."""
        expected = self.leases.total()
        found = sql.heartbeat(conn, self.engine_id, ttl_s=self._ttl_s)
        if found == expected:
            return []
        # Only leases held before the query started can be missing from its answer
        # for having been taken (a claim may commit meanwhile).
        before = self.leases.held()
        held = None if found is None else sql.leases_of_engine(conn, self.engine_id)
        return lost_leases(before, self.leases.held(), held)


def lost_leases(
    before: Iterable[Lease], still: Iterable[Lease], held: dict[uuid.UUID, int] | None
) -> list[tuple[Lease, str]]:
    """Which leases the heartbeat found taken, and why: of those this engine held when
    the heartbeat's query started (``before``) and still holds (``still``: one given
    up meanwhile is not lost), those the database no longer gives it at their epoch
    (``held``: directive -> epoch; None: the engine's row says it stopped)."""
    kept = set(still)
    lost = []
    for lease in before:
        if lease not in kept:
            continue
        if held is None:
            lost.append((lease, "the engine's row says it has stopped"))
        elif held.get(lease.directive_id) != lease.epoch:
            lost.append((lease, "another engine took the lease while this one was silent"))
    return lost
