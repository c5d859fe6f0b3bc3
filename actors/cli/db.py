"""``directorate db status`` and ``directorate db stop``: the embedded server.

Every command starts the embedded server when it needs one and leaves it running
(the next command then connects at once); these say where it is and stop it.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import psycopg

from directorate.persistence.embedded import (
    DATABASE,
    directorate_home,
    embedded_status,
    stop_embedded_server,
)
from directorate.persistence.errors import DirectorateError, InvalidInput
from directorate.persistence.ownership import engines

from .outcome import EXIT_OK


def _external(args: argparse.Namespace) -> str | None:
    """Where the DSN comes from when it is not the embedded server's."""
    if args.dsn:
        return "--dsn"
    if os.environ.get("DIRECTORATE_DSN"):
        return "DIRECTORATE_DSN"
    return None


def _live_engines(port: int, socket_dir: str | None) -> list[dict[str, Any]]:
    """The engines alive on the running embedded server (their heartbeat is current)."""
    host = socket_dir or "127.0.0.1"  # as embedded_dsn connects: the socket, user postgres
    try:
        with psycopg.connect(
            host=host, port=port, user="postgres", dbname=DATABASE, connect_timeout=5
        ) as conn:
            return [
                {"id": str(record.id), "pid": record.pid, "host": record.host}
                for record, extra in engines(conn)
                if extra["alive"]
            ]
    except psycopg.Error:
        return []  # no directorate database yet, or it cannot be read: none to speak of


def cmd_db_status(args: argparse.Namespace) -> int:
    status = embedded_status(directorate_home())
    external = _external(args)
    live = _live_engines(status.port, status.socket_dir) if status.running and status.port else []
    record = {
        "home": str(status.home),
        "pgdata": str(status.pgdata),
        "initialised": status.initialised,
        "running": status.running,
        "pid": status.pid if status.running else None,
        "port": status.port if status.running else None,
        "socket_dir": status.socket_dir if status.running else None,
        "engines": live,
        "dsn_from": external or "embedded",
    }
    if args.json:
        print(json.dumps(record))
        return EXIT_OK
    if external:
        print(f"the commands use the database of {external}, not the embedded server")
    print(f"embedded server  {status.pgdata}")
    if not status.initialised:
        print("                 not created yet (the first command that needs it makes it)")
    elif status.running:
        where = f"port {status.port}" + (
            f", socket {status.socket_dir}" if status.socket_dir else ""
        )
        print(f"                 running: pid {status.pid}, {where}")
        print(
            f"                 {len(live)} live engine(s)"
            + "".join(
                f"\n                   engine {e['id'][:8]} (pid {e['pid']} on {e['host']})"
                for e in live
            )
        )
    else:
        print("                 stopped (the next command that needs it starts it)")
    return EXIT_OK


def cmd_db_stop(args: argparse.Namespace) -> int:
    home = directorate_home()
    status = embedded_status(home)
    if not status.running:
        print(f"the embedded server of {home} is not running")
        return EXIT_OK
    live = _live_engines(status.port, status.socket_dir) if status.port else []
    if live and not args.force:
        pids = ", ".join(str(e["pid"]) for e in live)
        raise InvalidInput(
            f"{len(live)} live engine(s) use the embedded server (pid {pids}): "
            "stop them first, or pass --force"
        )
    if not stop_embedded_server(home, timeout=args.timeout):
        raise DirectorateError(
            f"the embedded server (pid {status.pid}) did not stop within {args.timeout:g} s"
        )
    print(f"stopped the embedded server of {home} (pid {status.pid})")
    return EXIT_OK


def add_db_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    db = sub.add_parser(
        "db",
        help="the embedded PostgreSQL server: status, stop",
        description="the embedded PostgreSQL server: status, stop",
    )
    commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    p = commands.add_parser(
        "status", parents=[common], help="where it is, whether it runs, who uses it"
    )
    p.set_defaults(handler=cmd_db_status)
    p = commands.add_parser("stop", parents=[common], help="stop it (refused while engines use it)")
    p.add_argument("--force", action="store_true", help="stop it even while engines use it")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for it (30)")
    p.set_defaults(handler=cmd_db_stop)
