"""Engines and their leases on directives, in SQL (DESIGN §17).

An engine registers a row and renews it by heartbeat; a directive's lease names its
owner and an epoch. A lease is free when it names no owner and expired when its
owner's row has expired or stopped, always in the database's clock. Claims take only
free or expired leases, one statement for many directives, safe when several
engines claim at once; each claim adds one to the epoch, which every write of the
engine carries (``ops.fence``), so an engine that lost a lease changes nothing.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from importlib import metadata
from typing import Any

import attrs
import psycopg
from psycopg.rows import dict_row

from .models import DirectiveStatus, EngineRecord
from .queries import query

LIVE = (DirectiveStatus.PLANNING, DirectiveStatus.ACTIVE, DirectiveStatus.PAUSED)
"""The statuses whose directives an engine drives, and recovery claims."""


@attrs.frozen
class Lease:
    """This engine drives ``directive_id`` while the database says ``owner`` at ``epoch``."""

    directive_id: uuid.UUID
    owner: uuid.UUID
    epoch: int


@attrs.frozen(kw_only=True)
class Claimed:
    """A lease just taken, and from whom (None: it was free)."""

    lease: Lease
    previous: uuid.UUID | None = None
    previous_host: str | None = None
    previous_pid: int | None = None
    silent_s: float | None = None
    """How long the previous owner had been silent (since its last heartbeat)."""
    expired_s: float | None = None
    """How long its lease had been expired when it was taken."""


def version() -> str:
    try:
        return metadata.version("directorate")
    except metadata.PackageNotFoundError:  # running from a checkout that is not installed
        return "unknown"


def register_engine(
    conn: psycopg.Connection[Any], engine_id: uuid.UUID, *, ttl_s: float, takes_over: bool
) -> None:
    conn.execute(
        query("register_engine"),
        {
            "id": engine_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "version": version(),
            "takes_over": takes_over,
            "ttl": ttl_s,
        },
    )


@attrs.frozen
class LeaseSum:
    """A set of leases in three numbers: how many, their epochs' sum and their
    directives' ``lease_key`` sum. The heartbeat compares the database's with the
    engine's, so that an engine holding 10,000 leases reads them back only when the
    two differ (a lease taken, or a claim committing meanwhile), not every second.

    Two different sets of one engine's leases agree on all three only by a 60-bit
    coincidence; even then nothing is unsafe, since every write is fenced by its
    lease (``ops.fence``): the heartbeat only finds a lost lease sooner."""

    count: int = 0
    epochs: int = 0
    keys: int = 0

    def plus(self, lease: Lease) -> LeaseSum:
        return LeaseSum(
            self.count + 1, self.epochs + lease.epoch, self.keys + lease_key(lease.directive_id)
        )

    def minus(self, lease: Lease) -> LeaseSum:
        return LeaseSum(
            self.count - 1, self.epochs - lease.epoch, self.keys - lease_key(lease.directive_id)
        )


def lease_key(directive_id: uuid.UUID) -> int:
    """The id's first 60 bits, as ``lease_sum_of_engine`` reads them in SQL."""
    return directive_id.int >> 68


def heartbeat(
    conn: psycopg.Connection[Any], engine_id: uuid.UUID, *, ttl_s: float
) -> LeaseSum | None:
    """Renew the engine's row; the sum of the leases it holds now, or None when its
    row says it has stopped (it must drive nothing)."""
    with conn.transaction():
        renewed = conn.execute(query("engine_heartbeat"), {"id": engine_id, "ttl": ttl_s})
        if renewed.fetchone() is None:
            return None
        row = conn.execute(query("lease_sum_of_engine"), {"id": engine_id}).fetchone()
    assert row is not None  # an aggregate without GROUP BY: always one row
    return LeaseSum(int(row[0]), int(row[1]), int(row[2]))


def leases_of_engine(conn: psycopg.Connection[Any], engine_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """The leases the engine holds now: directive -> epoch."""
    rows = conn.execute(query("leases_of_engine"), {"id": engine_id}).fetchall()
    return {row[0]: row[1] for row in rows}


def stop_engine(conn: psycopg.Connection[Any], engine_id: uuid.UUID) -> None:
    conn.execute(query("stop_engine"), {"id": engine_id})


def claim(
    conn: psycopg.Connection[Any],
    engine_id: uuid.UUID,
    *,
    statuses: Iterable[DirectiveStatus] = LIVE,
    ids: Sequence[uuid.UUID] | None = None,
    limit: int = 1000,
) -> list[Claimed]:
    """Take the free and expired leases of directives in ``statuses`` (only ``ids``,
    when given), oldest directive first, at most ``limit``."""
    for attempt in range(3):
        try:
            rows = conn.execute(
                query("claim_directives"),
                {
                    "me": engine_id,
                    "statuses": [str(s) for s in statuses],
                    "ids": None if ids is None else list(ids),
                    "limit": limit,
                },
            ).fetchall()
            break
        except psycopg.errors.DeadlockDetected:  # a write of the old owner's: try again
            if attempt == 2:
                raise
    return [
        Claimed(
            lease=Lease(row[0], engine_id, row[1]),
            previous=row[2],
            previous_host=row[3],
            previous_pid=row[4],
            silent_s=row[5],
            expired_s=row[6],
        )
        for row in rows
    ]


def engines(conn: psycopg.Connection[Any]) -> list[tuple[EngineRecord, dict[str, Any]]]:
    """Every engine worth showing, and for each its heartbeat's age, whether it is
    alive, and the directives it owns."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query("engines")).fetchall()
    shown = []
    for row in rows:
        extra = {k: row.pop(k) for k in ("heartbeat_age_s", "alive", "directives")}
        shown.append((EngineRecord.from_row(row), extra))
    return shown
