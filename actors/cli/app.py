"""The ``directorate`` command (DESIGN §12).

Every error is one line on stderr: exit 2 for bad input (a malformed file, an
unknown id), 1 for any other failure. ``run`` and ``daemon`` live in the
modules of those names; the rest are small functions here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.padding import Padding

from directorate.persistence.database import Database
from directorate.persistence.embedded import resolve_dsn
from directorate.persistence.errors import DirectorateError, InvalidInput, NotFound
from directorate.persistence.migrate import migrate
from directorate.persistence.models import Approval, CommandType
from directorate.persistence.ownership import engines

from ..commands.client import issue_command
from ..core.escalation import BREAKER_LIMITS
from . import views
from .db import add_db_commands
from .logs import configure
from .outcome import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, report_outcome

_ID_PREFIX = re.compile(r"^[0-9a-f-]{1,36}$")
_ID_TABLES = {"directive": "directives", "approval": "directive_approvals"}


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def open_db(args: argparse.Namespace) -> Iterator[Database]:
    db = Database.open(args.dsn)
    try:
        yield db
    finally:
        db.close()


def parse_id_prefix(text: str) -> uuid.UUID | str:
    """A full uuid, or a lower-case prefix of one; InvalidInput for anything else."""
    cleaned = text.strip().lower()
    with contextlib.suppress(ValueError):
        return uuid.UUID(cleaned)
    if not _ID_PREFIX.match(cleaned):
        raise InvalidInput(f"{text!r} is not an id (or the first characters of one)")
    return cleaned


def resolve_id(db: Database, kind: str, text: str) -> uuid.UUID:
    """The one id of a ``kind`` record that is (or starts with) ``text``."""
    parsed = parse_id_prefix(text)
    if isinstance(parsed, uuid.UUID):
        return parsed
    table = _ID_TABLES[kind]
    with db.pool.connection() as conn:
        rows = conn.execute(
            f"SELECT id FROM {table} WHERE id::text LIKE %s ORDER BY created_at LIMIT 2",
            (parsed + "%",),
        ).fetchall()
    if not rows:
        raise NotFound(f"no {kind} has an id starting with {parsed!r}")
    if len(rows) > 1:
        raise InvalidInput(f"{parsed!r} matches several {kind}s: give more characters")
    return uuid.UUID(str(rows[0][0]))


def emit(args: argparse.Namespace, record: Any, text: str | list[str]) -> None:
    if args.json:
        print(views.to_json(record))
    else:
        print(text if isinstance(text, str) else "\n".join(text))


# --------------------------------------------------------------------------- reading


def cmd_migrate(args: argparse.Namespace) -> int:
    applied = migrate(resolve_dsn(args.dsn))
    if args.json:
        print(json.dumps({"applied": applied}))
    else:
        print(f"applied {', '.join(applied)}" if applied else "the database is up to date")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    with open_db(args) as db:
        directives = db.reads.directives(limit=args.limit)
        pending: dict[uuid.UUID, list[Approval]] = {}
        for approval in db.reads.pending_approvals():
            pending.setdefault(approval.directive_id, []).append(approval)
    lines = [
        views.directive_line(d, views.pause_reason(pending.get(d.id, []))) for d in directives
    ] or ["no directives yet"]
    emit(args, directives, lines)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    with open_db(args) as db:
        directive = db.reads.directive(resolve_id(db, "directive", args.id))
        chain = db.reads.current_chain(directive.id)
        steps = db.reads.steps(chain.id) if chain else []
        tasks = db.reads.tasks_of_directive(directive.id)
        approvals = db.reads.pending_approvals(directive.id)
    if args.json:
        record = {"directive": directive, "chain": chain, "steps": steps, "approvals": approvals}
        print(views.to_json(record))
        return EXIT_OK
    print(f"{directive.title}  ({directive.id})")
    print(
        f"status {directive.status}, autonomy {directive.autonomy_level}, "
        f"cost ${directive.total_cost_usd:.2f}, "
        f"elapsed {views.elapsed(directive.started_at, directive.completed_at)}"
    )
    print(views.usage_line(directive))
    why = views.pause_reason(approvals)
    if why:
        print(f"paused: {why}")
    if directive.local_path:
        print(f"working directory {directive.local_path}")
    for line in views.result_branch_lines(directive):
        print(line)
    if chain:
        print(f"\nchain generation {chain.generation}: {chain.name}")
        if sys.stdout.isatty():  # fitted to the terminal, statuses in colour
            from .screen import chain_table, console

            out = console()
            out.print(Padding(chain_table(steps, tasks, out.width - 2), (0, 0, 0, 2)))
        else:
            for line in views.chain_tree(steps, tasks):
                print("  " + line)
    for approval in approvals:
        print(f"\nwaiting for approval {approval.id}:\n  {approval.description}")
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    """A step's diff since it left the result branch, or the directive's since its base."""
    from ..workspaces import diff_of

    with open_db(args) as db:
        directive = db.reads.directive(resolve_id(db, "directive", args.id))
        chain = db.reads.current_chain(directive.id)
        steps = db.reads.steps(chain.id) if chain else []
    sys.stdout.write(diff_of(directive, steps, args.step))
    return EXIT_OK


def cmd_events(args: argparse.Namespace) -> int:
    with open_db(args) as db:
        directive_id = resolve_id(db, "directive", args.id)
        last = 0
        while True:
            events = db.reads.events_after(directive_id, last)
            for event in events:
                line = views.to_json(event, compact=True) if args.json else views.event_line(event)
                print(line, flush=True)
                last = event.seq
            if not args.follow:
                return EXIT_OK
            if not events and db.reads.directive(directive_id).status.terminal:
                # One more read: events committed with the final status.
                if not db.reads.events_after(directive_id, last):
                    return EXIT_OK
                continue
            time.sleep(args.interval)


def cmd_approvals(args: argparse.Namespace) -> int:
    with open_db(args) as db:
        approvals = db.reads.pending_approvals()
    emit(args, approvals, [views.approval_line(a) for a in approvals] or ["no pending approvals"])
    return EXIT_OK


def cmd_engines(args: argparse.Namespace) -> int:
    """The engines on this database (the stopped ones of the last day), oldest first."""
    with open_db(args) as db, db.pool.connection() as conn:
        shown = [views.engine_record(engine, extra) for engine, extra in engines(conn)]
    emit(args, shown, [views.engine_line(e) for e in shown] or ["no engines"])
    return EXIT_OK


# --------------------------------------------------------------------------- control


def cmd_control(args: argparse.Namespace) -> int:
    kind = CommandType(args.command)
    command_args: dict[str, Any] = {"by": args.by}
    with open_db(args) as db:
        if kind in (CommandType.APPROVE, CommandType.DENY):
            approval = db.reads.approval(resolve_id(db, "approval", args.id))
            directive_id = approval.directive_id
            command_args.update(approval_id=str(approval.id), note=args.note)
            if kind is CommandType.APPROVE:
                command_args["raise_limit"] = _parse_limits(args.raise_limit)
        else:
            directive_id = db.reads.directive(resolve_id(db, "directive", args.id)).id
            if kind is CommandType.REGENERATE:
                command_args["reason"] = args.reason
        command_id = issue_command(db, kind, directive_id, command_args)
        return report_outcome(args, db, command_id)


def _parse_limits(pairs: list[str] | None) -> dict[str, float]:
    limits = {}
    for pair in pairs or []:
        name, _, value = pair.partition("=")
        try:
            limits[name.strip()] = float(value)
        except ValueError:
            raise InvalidInput(f"--raise-limit {pair!r}: expected NAME=NUMBER") from None
        if name.strip() not in BREAKER_LIMITS:  # refused here, before a command is queued
            raise InvalidInput(
                f"--raise-limit {pair!r}: no circuit breaker has {name.strip()!r} "
                f"(the limits are {', '.join(BREAKER_LIMITS)})"
            )
    return limits


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from . import daemon as cli_daemon
    from . import run as cli_run
    from . import serve as cli_serve

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dsn", help="PostgreSQL DSN (else DIRECTORATE_DSN, else embedded)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    control = argparse.ArgumentParser(add_help=False, parents=[common])
    control.add_argument("--by", default=os.environ.get("USER") or "user", help="who asks")
    control.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for the daemon (30)"
    )

    parser = argparse.ArgumentParser(
        prog="directorate", description="Orchestrate AI coding agents: directives, chains, steps."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        help: str,
        parents: list[argparse.ArgumentParser] | None = None,
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, parents=parents or [common])
        p.set_defaults(handler=handler)
        return p

    p = add("run", cli_run.cmd_run, "submit a directive file and follow it here to the end")
    p.add_argument("file", type=Path)
    p.add_argument("--auto-approve", action="store_true", help="answer yes to approvals")
    p.add_argument("--in-place", action="store_true", help="work in local_path, not a copy")

    p = add("daemon", cli_daemon.cmd_daemon, "run an engine until SIGTERM/SIGINT")
    p.add_argument("--agent", help="agent command for directives without [agent]")
    p.add_argument("--max-tasks", type=int, default=4, help="agent tasks at once (4)")
    p.add_argument(
        "--lease-ttl",
        type=float,
        default=5.0,
        help="seconds its leases outlive its last heartbeat: how soon another engine "
        "takes its directives over if it dies (5)",
    )
    p.add_argument("--heartbeat", type=float, default=1.0, help="seconds between heartbeats (1)")
    cli_serve.add_http_arguments(p, port=None)
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="text lines, or JSON lines carrying directive, step and task ids (text)",
    )
    p.add_argument(
        "--notify-webhook",
        action="append",
        metavar="URL",
        help="POST JSON here when an approval is required, a breaker trips or a directive ends",
    )

    p = add("serve", cli_serve.cmd_serve, "serve the dashboard and HTTP API until SIGTERM/SIGINT")
    cli_serve.add_http_arguments(p, port=8080)

    p = add("submit", cli_daemon.cmd_submit, "create directives; the daemon starts them", [control])
    p.add_argument("file", type=Path, nargs="+", help="directive files (all stored, or none)")
    p.add_argument("--wait", action="store_true", help="wait until the daemon started it")
    p.add_argument("--copy", action="store_true", help="work on a copy of local_path")

    p = add("list", cmd_list, "directives, newest first")
    p.add_argument("--limit", type=int, default=50)
    p = add("show", cmd_show, "a directive and its chain as a tree")
    p.add_argument("id")
    p = add("diff", cmd_diff, "a directive's diff since its base, or one step's")
    p.add_argument("id")
    p.add_argument("step", nargs="?", help="a step's own diff, since it left the result branch")
    p = add("events", cmd_events, "a directive's event log")
    p.add_argument("id")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    p.add_argument("--interval", type=float, default=0.3, help=argparse.SUPPRESS)
    add("approvals", cmd_approvals, "pending approvals")
    add("engines", cmd_engines, "engines, their heartbeats and the directives they drive")

    p = add("approve", cmd_control, "approve a pending approval", [control])
    p.add_argument("id", help="approval id (or its first characters)")
    p.add_argument("--note")
    p.add_argument(
        "--raise-limit",
        action="append",
        metavar="NAME=VALUE",
        help="circuit breakers: the new limit, e.g. max_total_cost_usd=20, "
        "max_total_tokens=2000000 or max_agent_turns=400 (default: doubled)",
    )
    p = add("deny", cmd_control, "deny a pending approval", [control])
    p.add_argument("id", help="approval id (or its first characters)")
    p.add_argument("--note")
    for name, text in [
        ("pause", "pause a directive"),
        ("resume", "resume a directive"),
        ("stop", "stop (cancel) a directive"),
    ]:
        add(name, cmd_control, text, [control]).add_argument("id")
    p = add("regenerate", cmd_control, "plan the directive's chain again", [control])
    p.add_argument("id")
    p.add_argument("--reason", default="requested from the command line")
    add("migrate", cmd_migrate, "apply database migrations")
    add_db_commands(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure(
        logging.INFO if args.command == "daemon" else logging.WARNING,
        getattr(args, "log_format", "text"),
    )
    try:
        return int(args.handler(args))
    except (InvalidInput, NotFound) as exc:
        print(f"directorate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DirectorateError as exc:
        print(f"directorate: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`directorate events ID | head`): not an error.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return EXIT_OK
