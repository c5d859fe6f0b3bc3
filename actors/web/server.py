"""Serving the application with uvicorn on a thread of its own (inside a daemon, or
in ``directorate serve``), stopped cleanly; port 0 picks a free port."""

from __future__ import annotations

import asyncio
import socket
import threading

import uvicorn
from starlette.applications import Starlette

from directorate.persistence.errors import DirectorateError


class HttpServer:
    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 8080) -> None:
        # Bound here, so that a taken port is a clear error before anything starts.
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError as exc:
            self._socket.close()
            reason = exc.strerror or str(exc)
            raise DirectorateError(f"cannot listen on {host}:{port}: {reason}") from None
        # Listening now: a client that connects before uvicorn's loop runs waits in the
        # backlog, so ``start`` need not wait for the server to be up.
        self._socket.listen(128)
        self.host = host
        self.port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="directorate-http", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._socket.close()
