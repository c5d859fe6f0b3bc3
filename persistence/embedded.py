"""Where the database is: an explicit DSN, ``DIRECTORATE_DSN``, or an embedded server.

The embedded server is PostgreSQL from the ``pgserver`` package, with its data
in ``$DIRECTORATE_HOME/pgdata`` (default ``~/.local/share/directorate``). pgserver
takes an inter-process lock while it checks ``postmaster.pid``, so several
processes using the same home share one server, and a server whose owner was
killed is either still running (reused) or stale (started again), never waited on.
We leave the server running when our process exits (cleanup_mode=None): the next
command then connects at once instead of paying a server start.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

from .errors import PersistenceUnavailable

DEFAULT_HOME = "~/.local/share/directorate"
DATABASE = "directorate"


def directorate_home() -> Path:
    return Path(os.environ.get("DIRECTORATE_HOME") or DEFAULT_HOME).expanduser()


def resolve_dsn(dsn: str | None = None) -> str:
    """The DSN to use: the argument, else ``DIRECTORATE_DSN``, else the embedded server."""
    if dsn:
        return dsn
    if os.environ.get("DIRECTORATE_DSN"):
        return os.environ["DIRECTORATE_DSN"]
    return embedded_dsn(directorate_home())


def embedded_dsn(home: Path, database: str = DATABASE) -> str:
    """Start (or join) the embedded server in ``home`` and make sure ``database`` exists."""
    server_uri = start_embedded_server(home)
    ensure_database(server_uri, database)
    base, _, query = server_uri.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{database}?{query}"


def start_embedded_server(home: Path) -> str:
    """The URI of the maintenance database of the server in ``home/pgdata``."""
    home.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless.
        warnings.simplefilter("ignore")
        import pgserver

        try:
            server = pgserver.get_server(home / "pgdata", cleanup_mode=None)
        except Exception as exc:
            raise PersistenceUnavailable(
                f"could not start the embedded PostgreSQL in {home / 'pgdata'}: {exc}"
            ) from exc
        return str(server.get_uri())


def ensure_database(server_uri: str, database: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_uri, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            # Another process may create it between our check and our create.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
