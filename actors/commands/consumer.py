"""The engine's half of the command path: apply the pending commands.

Every engine applies the commands for the directives it drives (holds the lease of),
and one that takes directives over also those for directives no live engine drives,
taking their leases first (DESIGN §17). ``CommandConsumer`` is woken by the NOTIFY
that ``client.issue_command`` sends, applies each pending command to its engine and
records the outcome, which the issuing process reads back.

Each command is claimed with ``FOR UPDATE SKIP LOCKED`` and its outcome recorded
in that same transaction, guarded by ``status = 'pending'``: two daemons never
apply one command twice, and a daemon that dies mid-command leaves it pending
for the next one. Most engine operations refuse a repeated transition, so such a
command is then rejected, not applied twice; ``regenerate`` is the exception (a
second regeneration is a legal request), so it may run twice in that rare case.
A start claims the starts pending after it too (``START_BATCH`` at most) and applies
them together with ``Engine.start_many``, each recorded with its own outcome: many
``submit``s cost the daemon one round of commits, not one each.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import TYPE_CHECKING, Any

import psycopg
import pykka
from psycopg.rows import dict_row

from directorate.persistence.errors import DirectorateError
from directorate.persistence.models import Command, CommandStatus, CommandType, DirectiveStatus
from directorate.persistence.outage import Outage
from directorate.persistence.writer import CONNECT_TIMEOUT_S

from .client import CHANNEL

if TYPE_CHECKING:  # only for annotations: the engine imports this module
    from ..engine import Engine

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 2.0
"""The fallback when a notification is lost (for example across a reconnect)."""

_CLAIM = (
    "SELECT c.* FROM directive_commands c"
    " LEFT JOIN directives d ON d.id = c.directive_id"
    " LEFT JOIN engines e ON e.id = d.lease_owner"
    " WHERE c.status = 'pending'"
    " AND (d.lease_owner = %(me)s OR (%(takes_over)s AND (d.id IS NULL OR d.lease_owner IS NULL"
    " OR e.expires_at <= now() OR e.stopped_at IS NOT NULL)))"
    " ORDER BY c.created_at LIMIT 1 FOR UPDATE OF c SKIP LOCKED"
)
"""The oldest pending command this engine is to apply: one for a directive it drives,
or, if it takes directives over, one for a directive no live engine drives (DESIGN §17)."""
_CLAIM_STARTS = _CLAIM.replace(
    "WHERE c.status = 'pending'", "WHERE c.status = 'pending' AND c.command = 'start'"
).replace("LIMIT 1", "LIMIT %(limit)s")
"""More pending starts, claimed with the first: they are applied together (``start_many``)."""
START_BATCH = 200
"""Starts applied together at most (their rows stay locked until all are recorded)."""
_RECORD = (
    "UPDATE directive_commands SET status = %s, reason = %s, result = %s, applied_at = now()"
    " WHERE id = %s AND status = 'pending'"
)


def apply_command(engine: Engine, command: Command) -> DirectiveStatus | None:
    """Apply one command to an engine: the status it left the directive in (None for an
    approval's answer or a regeneration); raises what the engine raises."""
    args = command.args
    by = args.get("by")
    directive_id = command.directive_id
    kind = command.command
    if kind in (CommandType.APPROVE, CommandType.DENY):
        approval_id = uuid.UUID(str(args["approval_id"]))
        if kind is CommandType.APPROVE:
            limits = {str(k): float(v) for k, v in (args.get("raise_limit") or {}).items()}
            engine.approve(approval_id, by or "user", args.get("note"), **limits)
        else:
            engine.deny(approval_id, by or "user", args.get("note"))
        return None
    if directive_id is None:
        raise DirectorateError(f"{kind} needs a directive id")
    if kind is CommandType.START:
        return engine.start_directive(directive_id)
    if kind is CommandType.PAUSE:
        return engine.pause(directive_id, by=by)
    if kind is CommandType.RESUME:
        return engine.resume(directive_id, by=by)
    if kind is CommandType.STOP:
        return engine.stop_directive(directive_id, by=by)
    if kind is CommandType.REGENERATE:
        reason = args.get("reason") or "requested from the command line"
        engine.regenerate_chain(directive_id, reason, by=by)
    return None


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, DirectorateError):
        text = str(exc)
    elif isinstance(exc, pykka.Timeout):
        text = "the engine did not answer in time"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


class CommandConsumer:
    """Applies pending commands to an engine: a named thread woken by LISTEN/NOTIFY.

    It polls every ``poll_interval`` seconds as well, and after a lost connection
    reconnects with exponential backoff and jitter and LISTENs again. If the thread
    dies, ``failure`` holds why and ``is_alive()`` turns false: its owner checks.
    ``stop()`` is safe from any thread and returns once the thread has finished.
    """

    def __init__(
        self, engine: Engine, *, dsn: str | None = None, poll_interval: float = POLL_INTERVAL_S
    ):
        self.engine = engine
        self.dsn = dsn or engine.db.dsn
        self.poll_interval = poll_interval
        self.applied = 0
        self.rejected = 0
        self.failure: BaseException | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="directorate-commands", daemon=True)

    def start(self) -> CommandConsumer:
        self._thread.start()
        return self

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # ----------------------------------------------------------------- the thread

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                conn = self._connect()
                if conn is None:
                    return
                try:
                    self._serve(conn)
                except psycopg.OperationalError as exc:
                    log.warning("command listener lost its connection: %s; reconnecting", exc)
                finally:
                    conn.close()
        except BaseException as exc:  # the owner sees it through is_alive() and failure
            self.failure = exc
            log.exception("the command consumer stopped")

    def _connect(self) -> psycopg.Connection[Any] | None:
        outage: Outage | None = None
        while not self._stopping.is_set():
            try:
                conn = psycopg.connect(
                    self.dsn,
                    autocommit=True,
                    application_name="directorate-commands",
                    connect_timeout=CONNECT_TIMEOUT_S,
                )
                conn.execute(f"LISTEN {CHANNEL}")
            except psycopg.OperationalError as exc:
                outage = outage or Outage("the command listener", logger=log)
                self._stopping.wait(outage.failed(exc))
                continue
            if outage is not None:
                outage.over()
            return conn
        return None

    def _serve(self, conn: psycopg.Connection[Any]) -> None:
        while not self._stopping.is_set():
            while not self._stopping.is_set() and self._apply_next(conn):
                pass
            # Short waits keep stop() prompt; the notification itself only wakes us.
            waited = 0.0
            while waited < self.poll_interval and not self._stopping.is_set():
                if any(True for _ in conn.notifies(timeout=0.5, stop_after=1)):
                    break
                waited += 0.5

    def _apply_next(self, conn: psycopg.Connection[Any]) -> bool:
        """Claim, apply and record one pending command (a start with the starts pending
        after it); False when none is left."""
        engine = self.engine
        mine = {"me": engine.engine_id, "takes_over": engine.config.recover}
        with conn.transaction() as tx, conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(_CLAIM, mine).fetchone()
            if row is None:
                return False
            command = Command.from_row(row)
            if command.command is CommandType.START:
                more = cur.execute(_CLAIM_STARTS, mine | {"limit": START_BATCH - 1}).fetchall()
                return self._apply_starts(cur, [command, *map(Command.from_row, more)])
            status: CommandStatus | None = None
            if not engine.take_for_command(command.directive_id):
                # Another engine took the directive meanwhile: the command is its now.
                raise psycopg.Rollback(tx)
            reason: str | None = None
            result: DirectiveStatus | None = None
            try:
                result = apply_command(self.engine, command)
            except Exception as exc:
                status, reason = CommandStatus.REJECTED, _one_line(exc)
                self.rejected += 1
                if not isinstance(exc, DirectorateError | pykka.Timeout):
                    log.error("command %s failed", command.id, exc_info=exc)
            else:
                status = CommandStatus.APPLIED
                self.applied += 1
            cur.execute(
                _RECORD, (str(status), reason, None if result is None else str(result), command.id)
            )
        if status is None:
            return False
        log.info(
            "command %s %s: %s%s",
            command.command,
            command.id,
            status,
            f" ({reason})" if reason else "",
        )
        return True

    def _apply_starts(self, cur: psycopg.Cursor[dict[str, Any]], commands: list[Command]) -> bool:
        """Apply claimed start commands together and record each outcome, in the
        claim's transaction. A start whose directive another engine took meanwhile is
        left pending, for that engine (as a single command is rolled back)."""
        engine = self.engine
        taken = [c for c in commands if engine.take_for_command(c.directive_id)]
        starts = [c for c in taken if c.directive_id is not None]
        outcomes: list[DirectiveStatus | Exception]
        try:
            outcomes = list(engine.start_many([c.directive_id for c in starts if c.directive_id]))
        except Exception as exc:  # a bug: each start is refused with it, as one alone would be
            log.error("commands %s failed", ", ".join(str(c.id) for c in starts), exc_info=exc)
            outcomes = [exc] * len(starts)
        results: list[tuple[Command, DirectiveStatus | Exception]] = [
            *zip(starts, outcomes, strict=True),
            *(
                (c, DirectorateError(f"{c.command} needs a directive id"))
                for c in taken
                if c.directive_id is None
            ),
        ]
        for command, outcome in results:
            if isinstance(outcome, Exception):
                status, reason, result = CommandStatus.REJECTED, _one_line(outcome), None
                self.rejected += 1
            else:
                status, reason, result = CommandStatus.APPLIED, None, str(outcome)
                self.applied += 1
            cur.execute(_RECORD, (str(status), reason, result, command.id))
            log.info(
                "command %s %s: %s%s",
                command.command,
                command.id,
                status,
                f" ({reason})" if reason else "",
            )
        return bool(results)
