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
from .reads import Reads
from .writer import Committed, PersistenceClient, Write

log = logging.getLogger(__name__)


class Database:
    """Open with ``Database.open(dsn)``; ``close()`` drains the writer, then the pool."""

    def __init__(
        self,
        dsn: str,
        *,
        on_commit: Callable[[list[tuple[Write, Committed]]], None] | None = None,
        pool_size: int = 8,
        max_pending_writes: int = 10_000,
    ) -> None:
        self.dsn = dsn
        self.pool: ConnectionPool[Any] = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "application_name": "directorate-reader"},
            open=True,
            name="directorate-readers",
        )
        self.reads = Reads(self.pool)
        self.writer = PersistenceClient(dsn, on_commit=on_commit, max_pending=max_pending_writes)

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

    def close(self, timeout: float = 120.0) -> None:
        """Commit what is queued and close, within ``timeout`` seconds in all."""
        deadline = time.monotonic() + timeout
        try:
            self.writer.stop(timeout=timeout)
        except pykka.Timeout:
            log.warning("the writer did not finish within %.1f s; closing anyway", timeout)
        self.pool.close(timeout=max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
