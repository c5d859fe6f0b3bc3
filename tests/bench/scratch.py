"""A throwaway server and database for the benchmarks (run by hand, not in CI)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from directorate.persistence.embedded import start_embedded_server, stop_embedded_server


@contextlib.contextmanager
def scratch_server(dsn: str | None) -> Iterator[str]:
    """``dsn`` itself, else an embedded server in a temporary home, stopped and
    removed afterwards (it would outlive its directory)."""
    if dsn:
        yield dsn
        return
    home = Path(tempfile.mkdtemp(prefix="directorate-bench-"))
    try:
        yield start_embedded_server(home)
    finally:
        stop_embedded_server(home)
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def scratch_database(server: str) -> Iterator[str]:
    """A fresh, empty database on ``server``, dropped afterwards."""
    name = f"directorate_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(server)
    info["dbname"] = name
    try:
        yield psycopg.conninfo.make_conninfo(**info)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
