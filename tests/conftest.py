"""Shared fixtures: a real PostgreSQL, and a fresh database per integration test.

The server is ``DIRECTORATE_TEST_DSN`` when set, else the embedded server in a
temporary ``DIRECTORATE_HOME``. A template database is migrated once; each test
gets ``CREATE DATABASE ... TEMPLATE`` of it (a file copy: ~20 ms, no migrations).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

TEMPLATE = "directorate_test_template"


def _with_database(dsn: str, database: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    info["dbname"] = database
    return psycopg.conninfo.make_conninfo(**info)


@pytest.fixture(scope="session")
def pg_server_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DSN of a maintenance database on a real server."""
    if os.environ.get("DIRECTORATE_TEST_DSN"):
        yield os.environ["DIRECTORATE_TEST_DSN"]
        return
    from directorate.persistence.embedded import start_embedded_server, stop_embedded_server

    kept = os.environ.get("DIRECTORATE_TEST_HOME")
    home = Path(kept or tmp_path_factory.mktemp("pghome"))
    yield start_embedded_server(home)
    if not kept:  # a server in a temporary home would outlive its directory
        stop_embedded_server(home)


@pytest.fixture(scope="session")
def template_dsn(pg_server_dsn: str) -> str:
    from directorate.persistence.migrate import migrate

    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    dsn = _with_database(pg_server_dsn, TEMPLATE)
    migrate(dsn)
    return dsn


@pytest.fixture
def dsn(pg_server_dsn: str, template_dsn: str) -> Iterator[str]:
    """A fresh, migrated database for one test, dropped afterwards."""
    name = f"directorate_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE)
            )
        )
    yield _with_database(pg_server_dsn, name)
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
