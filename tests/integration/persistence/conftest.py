"""Fixtures for the persistence layer on a real PostgreSQL (see tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from persistence_helpers import RowLock
from psycopg import sql

from directorate.persistence.writer import PersistenceClient


@pytest.fixture
def admin(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A plain autocommit connection to the test's database, for setup and checks."""
    with psycopg.connect(dsn, autocommit=True, application_name="test-admin") as conn:
        yield conn


@pytest.fixture
def client(dsn: str) -> Iterator[PersistenceClient]:
    writer = PersistenceClient(dsn, reconnect_timeout=20.0)
    yield writer
    writer.stop()


@pytest.fixture
def empty_dsn(pg_server_dsn: str) -> Iterator[str]:
    """A database with nothing in it, not even schema_migrations."""
    name = f"directorate_empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(pg_server_dsn)
    info["dbname"] = name
    yield psycopg.conninfo.make_conninfo(**info)
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def row_locks(client: PersistenceClient) -> Iterator[list[RowLock]]:
    """Locks a test takes to park a writer; released before any writer is stopped."""
    locks: list[RowLock] = []
    yield locks
    for lock in locks:
        lock.release()
