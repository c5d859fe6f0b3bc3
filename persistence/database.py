"""One handle on the database: resolved DSN, migrations, the writer and the readers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pykka
from psycopg_pool import ConnectionPool

from .embedded import resolve_dsn
from .migrate import migrate
from .reads import DEFAULT_PATIENCE_S, Reads
from .writer import CONNECT_TIMEOUT_S, Committed, PersistenceClient, Write

log = logging.getLogger(__name__)

POOL_NAME = "directorate-readers"
POOL_RECONNECT_S = 10.0


class _PoolReconnects(logging.Filter):
    """Drops our pool's per-attempt connection warnings: during an outage the reads
    that wait say what is happening once per interval (``Outage``) instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (
            repr(POOL_NAME) in record.getMessage()
            and ("error connecting" in message or "reconnection attempt" in message)
        )


_POOL_FILTER = _PoolReconnects()


def _quiet_pool_reconnects() -> None:
    logger = logging.getLogger("psycopg.pool")
    if _POOL_FILTER not in logger.filters:
        logger.addFilter(_POOL_FILTER)


class Database:
    """Open with ``Database.open(dsn)``; ``close()`` drains the writer, then the pool."""

    def __init__(
        self,
        dsn: str,
        *,
        on_commit: Callable[[list[tuple[Write, Committed]]], None] | None = None,
        pool_size: int = 8,
        max_pending_writes: int = 10_000,
        write_patience_s: float | None = DEFAULT_PATIENCE_S,
    ) -> None:
        """``write_patience_s``: how long a write waits for a database that is away
        before it fails; None: for as long as it takes (an engine). Reads wait
        ``DEFAULT_PATIENCE_S``; ``reads.waiting(stop)`` makes reads that wait longer."""
        self.dsn = dsn
        _quiet_pool_reconnects()
        self.pool: ConnectionPool[Any] = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            kwargs={
                "autocommit": True,
                "application_name": "directorate-reader",
                "connect_timeout": CONNECT_TIMEOUT_S,
            },
            open=True,
            name=POOL_NAME,
            # The pool's own retries back off without bound (1, 2, 4 ... 256 s); kept
            # short, they end and the next read starts a fresh one, so a database
            # that is back is found within seconds, whatever the outage lasted.
            reconnect_timeout=POOL_RECONNECT_S,
        )
        self.reads = Reads(self.pool)
        self.writer = PersistenceClient(
            dsn,
            on_commit=on_commit,
            max_pending=max_pending_writes,
            reconnect_timeout=write_patience_s,
        )

    @classmethod
    def open(
        cls,
        dsn: str | None = None,
        *,
        run_migrations: bool = True,
        **kwargs: Any,
    ) -> Database:
        resolved = resolve_dsn(dsn)
        if run_migrations:
            migrate(resolved)
        return cls(resolved, **kwargs)

    def close(
        self, timeout: float = 120.0, *, while_readable: Callable[[], None] | None = None
    ) -> tuple[str, ...]:
        """Commit what is queued and close, within ``timeout`` seconds in all; returns
        what could not be written because the database was away. ``while_readable``
        runs once the writer has stopped and before the readers close: what still has
        to read about the last writes (the webhooks of a directive that just ended)."""
        deadline = time.monotonic() + timeout
        unwritten: tuple[str, ...] = ()
        try:
            try:
                unwritten = self.writer.stop(timeout=timeout)
            except pykka.Timeout:
                log.warning("the writer did not finish within %.1f s; closing anyway", timeout)
                unwritten = tuple(self.writer.unwritten)
            if while_readable is not None:
                while_readable()
        finally:
            self.pool.close(timeout=max(0.0, deadline - time.monotonic()))
        if unwritten:
            log.warning(
                "%d writes were not written (the database was unavailable): %s",
                len(unwritten),
                "; ".join(unwritten[:20]) + (" ..." if len(unwritten) > 20 else ""),
            )
        return unwritten

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
