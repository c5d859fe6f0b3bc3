"""``directorate daemon`` and ``directorate submit``: an engine serving other processes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import attrs

from directorate.persistence.errors import InvalidInput
from directorate.persistence.models import CommandType, NotifySpec

from ..commands.client import issue_command
from ..context import EngineConfig
from ..directive_file import check_local_path, load_directive_file
from ..engine import Engine
from . import outcome

log = logging.getLogger("directorate.daemon")


def prefer_own_python() -> None:
    """Put this Python's bin folder first on PATH, so that ``python`` in agent and
    verifier commands is the interpreter directorate runs on (as in an activated venv)."""
    folder = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != folder:
        os.environ["PATH"] = folder + os.pathsep + path


def cmd_daemon(args: argparse.Namespace) -> int:
    prefer_own_python()
    runner = None
    if args.agent:
        from ..runners import CommandRunner

        runner = CommandRunner(shlex.split(args.agent))
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        log.info("received %s: shutting down", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    for url in args.notify_webhook or ():
        NotifySpec(webhook=url)  # InvalidInput, one line, before anything starts
    if not 0 < args.heartbeat < args.lease_ttl:
        raise InvalidInput("--heartbeat must be more than 0 and less than --lease-ttl")
    engine = Engine.start(
        EngineConfig(
            dsn=args.dsn,
            runner=runner,
            max_concurrent_tasks=args.max_tasks,
            lease_ttl_s=args.lease_ttl,
            heartbeat_interval_s=args.heartbeat,
            notify_webhooks=tuple(args.notify_webhook or ()),
        )
    )
    consumer = engine.consumer
    assert consumer is not None  # a daemon's engine applies commands
    server = None
    if args.http is not None:
        from .serve import http_server

        try:
            server, line = http_server(engine, args.host, args.http)
        except Exception:
            engine.shutdown()
            raise
        server.start()
        print(f"directorate daemon: {line}", flush=True)
    print(
        f"directorate daemon (pid {os.getpid()}, engine {engine.engine_id}): "
        f"{engine.live_actor_count()} live directive(s) recovered; waiting for commands "
        "(and for the directives of engines that stop beating)",
        flush=True,
    )
    status = outcome.EXIT_OK
    try:
        while not stop.wait(0.5):
            if not consumer.is_alive():
                print(
                    f"directorate: the command consumer died: {consumer.failure}", file=sys.stderr
                )
                status = outcome.EXIT_FAILED
                break
    finally:
        for signum in previous:  # a second signal must not interrupt the shutdown
            signal.signal(signum, signal.SIG_IGN)
        if server is not None:
            server.stop()
        report = engine.shutdown()
        print(f"directorate daemon stopped: {report.describe()}", flush=True)
    return status


def cmd_submit(args: argparse.Namespace) -> int:
    """Store every file's directive (all or none: each is checked first) and ask the
    daemons to start them; prints each id, in the files' order."""
    from .run import copy_workspace

    files: list[Path] = args.file
    specs = []
    for path in files:
        spec = load_directive_file(path)
        check_local_path(path, spec)
        if args.copy and spec.local_path:
            copy = copy_workspace(Path(spec.local_path))
            print(f"working on a copy of {spec.local_path}: {copy}", file=sys.stderr)
            spec = attrs.evolve(spec, local_path=str(copy))
        specs.append(spec)
    # Only to check and store the directives: the daemons start and drive them.
    engine = Engine.start(EngineConfig(dsn=args.dsn, recover=False, commands=False))
    try:
        ids = engine.submit_many(specs, names=[str(path) for path in files])
        commands = [
            issue_command(engine.db, CommandType.START, directive_id, {"by": args.by})
            for directive_id in ids
        ]
        if args.wait:
            if not args.json:
                for directive_id in ids:
                    print(directive_id, flush=True)
            # The highest of the files' exit statuses (waiting for a human over failed).
            return max(outcome.report_outcome(args, engine.db, command) for command in commands)
        for directive_id, command_id in zip(ids, commands, strict=True):
            if args.json:
                ids_json = {"directive_id": str(directive_id), "command_id": str(command_id)}
                print(json.dumps(ids_json))
            else:
                print(directive_id)
        return outcome.EXIT_OK
    finally:
        engine.shutdown()
