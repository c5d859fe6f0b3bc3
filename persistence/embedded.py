"""Where the database is: an explicit DSN, ``DIRECTORATE_DSN``, or an embedded server.

The embedded server is PostgreSQL from the ``pgserver`` package, with its data
in ``$DIRECTORATE_HOME/pgdata`` (default ``~/.local/share/directorate``). pgserver
takes an inter-process lock while it checks ``postmaster.pid``, so several
processes using the same home share one server; a server whose owner was
killed is still running and reused, and a server that itself died is started
again (see ``start_embedded_server``); every wait is bounded.
We leave the server running when our process exits (cleanup_mode=None): the next
command then connects at once instead of paying a server start.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs

from .errors import PersistenceUnavailable

log = logging.getLogger(__name__)

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
    """The URI of the maintenance database of the server in ``home/pgdata``.

    pgserver trusts ``postmaster.pid`` as long as its process exists, so a
    crashed server that lingers as a zombie, or whose pid was reused, would be
    "reused" and refuse every connection. We check that the server answers and,
    when it is stale, clear it and start a new one, holding a lock on the home so
    that only one process restarts it.
    """
    home.mkdir(parents=True, exist_ok=True)
    pgdata = home / "pgdata"
    with _home_lock(home):
        uri = _pgserver_uri(pgdata)
        if _answers(uri):
            return uri
        pid = _postmaster_pid(pgdata)
        if pid is not None and _is_live_postgres(pid):
            # Starting, or recovering after a crash: give it a bounded while.
            if _wait_for(lambda: _answers(uri), STARTUP_WAIT):
                return uri
            raise PersistenceUnavailable(
                f"the embedded PostgreSQL in {pgdata} (pid {pid}) does not accept "
                f"connections after {STARTUP_WAIT:.0f} sec"
            )
        log.warning(
            "the embedded PostgreSQL in %s is gone (pid %s): starting it again", pgdata, pid
        )
        if pid is not None and not _wait_for(lambda: not _live_children(pid), STARTUP_WAIT):
            raise PersistenceUnavailable(
                f"processes of the crashed PostgreSQL in {pgdata} are still running"
            )
        _remove_lock_files(pgdata)
        uri = _pgserver_uri(pgdata, forget=True)
        if not _answers(uri):
            raise PersistenceUnavailable(f"the embedded PostgreSQL in {pgdata} does not answer")
        return uri


STARTUP_WAIT = 15.0
"""Seconds to wait for a server that is starting, or for a dead one's children to exit."""


@contextlib.contextmanager
def _home_lock(home: Path, timeout: float = 60.0) -> Iterator[None]:
    # flock is released by the kernel when its holder dies, so a killed process
    # never leaves the others waiting; the timeout only covers a stuck holder.
    with open(home / ".server.lock", "a") as handle:
        if not _wait_for(lambda: _try_flock(handle.fileno()), timeout):
            raise PersistenceUnavailable(
                f"couldn't lock {home} to start PostgreSQL after {timeout:.2f} sec"
            )
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _pgserver_uri(pgdata: Path, *, forget: bool = False) -> str:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless.
        warnings.simplefilter("ignore")
        # From the defining module: pgserver/__init__ re-exports get_server only implicitly.
        from pgserver.postgres_server import PostgresServer, get_server

        if forget:  # pgserver caches one handle per pgdata in each process
            PostgresServer._instances.pop(pgdata.expanduser().resolve(), None)
        try:
            server = get_server(pgdata, cleanup_mode=None)
        except Exception as exc:
            raise PersistenceUnavailable(
                f"could not start the embedded PostgreSQL in {pgdata}: {exc}"
            ) from exc
        return str(server.get_uri())


def _answers(uri: str) -> bool:
    import psycopg

    try:
        psycopg.connect(uri, connect_timeout=5).close()
    except psycopg.OperationalError:
        return False
    return True


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _remove_lock_files(pgdata: Path) -> None:
    """Remove a dead server's lock files, which name its (zombie or reused) pid."""
    pidfile = pgdata / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
    except OSError:
        return
    # postmaster.pid: pid, data dir, start time, port, socket dir, ...
    if len(lines) > 4 and lines[3].strip() and lines[4].strip():
        socket = Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}"
        for path in (Path(f"{socket}.lock"), socket):
            path.unlink(missing_ok=True)
    pidfile.unlink(missing_ok=True)


def _is_live_postgres(pid: int) -> bool:
    """True for a running postgres process; False for a zombie, a reused pid, or none."""
    import psutil

    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and process.name() == "postgres"
    except psutil.Error:
        return False


def _live_children(pid: int) -> bool:
    import psutil

    try:
        children = psutil.Process(pid).children()
    except psutil.Error:
        return False
    return any(_is_live_postgres(child.pid) for child in children)


def ensure_database(server_uri: str, database: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_uri, autocommit=True) as conn:
        # Two processes starting at once would both see no database and race to
        # create it (the loser gets a unique violation on pg_database): take turns.
        conn.execute("SELECT pg_advisory_lock(%s)", (CREATE_DATABASE_LOCK_KEY,))
        try:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (CREATE_DATABASE_LOCK_KEY,))


CREATE_DATABASE_LOCK_KEY = 0x6469726563746F73
"""Any constant, the same in every directorate process (see migrate.py)."""


def stop_embedded_server(home: Path, timeout: float = 10.0) -> bool:
    """Shut down the embedded server of ``home`` (fast shutdown), if one runs; whether
    it is gone within ``timeout`` (True too when none ran).

    For temporary homes (tests, benchmarks): a server would outlive its directory;
    and for ``directorate db stop``.
    """
    pgdata = home / "pgdata"
    try:
        os.kill(int((pgdata / "postmaster.pid").read_text().split()[0]), signal.SIGINT)
    except (OSError, ValueError, IndexError):
        return True
    deadline = time.monotonic() + timeout
    while (pgdata / "postmaster.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # PostgreSQL removes its pid file last; nothing to wait on instead
    return not (pgdata / "postmaster.pid").exists()


@attrs.frozen(kw_only=True)
class EmbeddedStatus:
    """The embedded server of a home, as its files and processes say."""

    home: Path
    pgdata: Path
    initialised: bool
    """``pgdata`` holds a database cluster."""
    pid: int | None = None
    """The postmaster's, from ``postmaster.pid`` (None: no pid file)."""
    running: bool = False
    """That pid is a live postgres process (not a zombie, not a reused pid)."""
    port: int | None = None
    socket_dir: str | None = None


def embedded_status(home: Path) -> EmbeddedStatus:
    """Where the embedded server of ``home`` is and whether it runs; starts nothing."""
    pgdata = home / "pgdata"
    initialised = (pgdata / "PG_VERSION").exists()
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return EmbeddedStatus(home=home, pgdata=pgdata, initialised=initialised)
    # postmaster.pid: pid, data dir, start time, port, socket dir, ...
    port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
    socket_dir = lines[4].strip() or None if len(lines) > 4 else None
    return EmbeddedStatus(
        home=home,
        pgdata=pgdata,
        initialised=initialised,
        pid=pid,
        running=_is_live_postgres(pid),
        port=port,
        socket_dir=socket_dir,
    )
