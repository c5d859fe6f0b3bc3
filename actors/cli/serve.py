"""``directorate serve``, and the same HTTP server inside ``directorate daemon --http``."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from ..context import EngineConfig
from ..engine import Engine
from ..web import HttpServer, WebSettings, create_app
from ..web.auth import TOKEN_ENV, Keys, load_token
from .outcome import EXIT_OK


def http_server(engine: Engine, host: str, port: int) -> tuple[HttpServer, str]:
    """The server over ``engine`` (bound, not yet serving), and a line saying where it
    is and where its token lives; the token itself is never printed."""
    token, path = load_token()
    settings = WebSettings(
        db=engine.db, submit=engine.submit, keys=Keys(token), writer_stats=engine.db.writer.stats
    )
    server = HttpServer(create_app(settings), host, port)
    where = f"the token from ${TOKEN_ENV}" if path is None else f"the token in {path}"
    return server, f"dashboard and API on {server.url} ({where}; open {server.url}/?token=TOKEN)"


def cmd_serve(args: argparse.Namespace) -> int:
    # An engine only to check and store new directives: the daemons drive them, and
    # every other change goes to them as a command.
    engine = Engine.start(EngineConfig(dsn=args.dsn, recover=False, commands=False))
    try:
        server, line = http_server(engine, args.host, args.port)
        print(f"directorate serve: {line}", flush=True)
        stopping = threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            stopping.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            server.start()
            stopping.wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            server.stop()
    finally:
        engine.shutdown()
    print("directorate serve: stopped", flush=True)
    return EXIT_OK


def add_http_arguments(parser: argparse.ArgumentParser, *, port: int | None) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)"
    )
    if port is None:
        parser.add_argument(
            "--http", type=int, metavar="PORT", help="serve the dashboard and API on PORT too"
        )
    else:
        parser.add_argument("--port", type=int, default=port, help=f"port to listen on ({port})")
