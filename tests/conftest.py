"""Shared fixtures: a hermetic environment, a real PostgreSQL, a fresh database per test.

The tests are hermetic: whatever ``DIRECTORATE_*`` variables the caller has set (a
DSN, a home, ...) are removed for the whole session, and ``DIRECTORATE_HOME`` points
at a temporary directory; a test that needs one of them sets it itself.

The server is ``pytest --pg-dsn DSN`` when given (one where the tests may create and
drop databases), else the embedded server in a temporary home (``--pg-home DIR``
keeps it between runs). A template database is migrated once; each test gets
``CREATE DATABASE ... TEMPLATE`` of it (a file copy: ~20 ms, no migrations).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

TEMPLATE = "directorate_test_template"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("directorate")
    group.addoption("--pg-dsn", help="a PostgreSQL server the tests may create databases on")
    group.addoption("--pg-home", help="keep the tests' embedded server in this directory")
    group.addoption(
        "--outage-s",
        type=float,
        default=300.0,
        help="how long the outage tests keep their database away (default 300)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # An outage test's time limit follows the outage it is asked to ride out.
    limit = float(config.getoption("--outage-s")) + 300
    for item in items:
        if item.get_closest_marker("outage"):
            item.add_marker(pytest.mark.timeout(limit))


@pytest.fixture(scope="session", autouse=True)
def hermetic_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """No ``DIRECTORATE_*`` variable of the caller reaches the code under test."""
    home = tmp_path_factory.mktemp("directorate-home")
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("DIRECTORATE_")]:
            patch.delenv(name)
        patch.setenv("DIRECTORATE_HOME", str(home))
        yield home


def _with_database(dsn: str, database: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    info["dbname"] = database
    return psycopg.conninfo.make_conninfo(**info)


@pytest.fixture(scope="session")
def pg_server_dsn(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """DSN of a maintenance database on a real server."""
    given = request.config.getoption("--pg-dsn")
    if given:
        yield str(given)
        return
    from directorate.persistence.embedded import start_embedded_server, stop_embedded_server

    kept = request.config.getoption("--pg-home")
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


class OwnServer:
    """An embedded PostgreSQL that one test starts and stops itself (outages)."""

    def __init__(self, home: Path) -> None:
        from directorate.persistence.embedded import start_embedded_server
        from directorate.persistence.migrate import migrate

        self.home = home
        self.dsn = start_embedded_server(home)
        migrate(self.dsn)

    def stop(self) -> None:
        from directorate.persistence.embedded import stop_embedded_server

        stop_embedded_server(self.home)
        assert not (self.home / "pgdata" / "postmaster.pid").exists(), "the server did not stop"

    def start(self) -> None:
        from directorate.persistence.embedded import start_embedded_server

        assert start_embedded_server(self.home) == self.dsn


@pytest.fixture
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnServer]:
    """A server of this test's own, whatever ``--pg-dsn`` says: stopping it must not
    touch the other tests' databases. (A short path: its socket lives in it.)"""
    server = OwnServer(tmp_path_factory.mktemp("own"))
    yield server
    from directorate.persistence.embedded import stop_embedded_server

    stop_embedded_server(server.home)


@pytest.fixture
def engine_factory(dsn: str, tmp_path: Path) -> Iterator[Any]:
    """Engines on this test's fresh database, judged by the always-green verifier
    unless told otherwise; all shut down afterwards."""
    import sys

    from directorate.actors import Engine, EngineConfig

    sys.path.insert(0, str(Path(__file__).resolve().parent / "agents"))
    from green import GreenVerifier

    engines: list[Engine] = []

    def make(**overrides: Any) -> Engine:
        settings: dict[str, Any] = {
            "dsn": dsn,
            "log_dir": tmp_path / "logs",
            "verifiers": [GreenVerifier()],
            "verifier_config": {"auto_detect": False},
            "tick_interval_s": 0.2,
        }
        settings.update(overrides)
        engine = Engine.start(EngineConfig(**settings))
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.shutdown()
