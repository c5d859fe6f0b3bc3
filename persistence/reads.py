"""Read queries for the engine and the command line (any thread, pooled connections)."""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolClosed

from .errors import InvalidInput, NotFound, PersistenceUnavailable
from .models import Approval, Chain, Command, Directive, Evaluation, Event, Step, Task
from .outage import Outage
from .queries import query

log = logging.getLogger(__name__)

R = TypeVar("R", Directive, Chain, Step, Task, Evaluation, Approval, Event, Command)


DEFAULT_PATIENCE_S = 10.0
"""How long a read waits for a database that is away before it fails (an engine's
own reads wait until the database is back: see ``Reads.waiting``)."""
POOL_WAIT_S = 5.0
"""How long one attempt waits for a pooled connection."""


class _Waiting:
    """The reads of one ``Reads`` that wait for the database: one ``Outage`` for all
    of them, so an engine whose every actor waits logs one line per interval."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outage: Outage | None = None
        self._names: Counter[str] = Counter()

    def failed(self, name: str, exc: BaseException, first: bool) -> float:
        """Count a failed attempt of read ``name``; the pause before its next one."""
        with self._lock:
            if first:
                self._names[name] += 1
            self._outage = self._outage or Outage("reads", logger=log)
            names = ", ".join(sorted(self._names))
            return self._outage.failed(exc, f"{self._names.total()} waiting ({names})")

    def ended(self, name: str, answered: bool) -> None:
        with self._lock:
            self._names[name] -= 1
            if self._names[name] <= 0:
                del self._names[name]
            if answered and self._outage is not None:
                self._outage.over()
                self._outage = None


class Reads:
    def __init__(
        self,
        pool: ConnectionPool[Any],
        *,
        patience_s: float | None = DEFAULT_PATIENCE_S,
        stop: threading.Event | None = None,
    ) -> None:
        self._pool = pool
        self._patience_s = patience_s
        self._stop = stop or threading.Event()
        self._waiting = _Waiting()

    def waiting(self, stop: threading.Event) -> Reads:
        """Reads that wait out an outage of any length, until ``stop`` is set (an
        engine's actors: a directive must not fail because the database was away)."""
        return Reads(self._pool, patience_s=None, stop=stop)

    def rows(self, name: str, **params: Any) -> list[dict[str, Any]]:
        # Connections are not checked on every checkout (a round trip per read): a
        # read that finds its connection lost (a server restart) is tried again on
        # a fresh one, which the pool opens in its place.
        patience = math.inf if self._patience_s is None else self._patience_s
        since: float | None = None  # when this read first found the database away
        try:
            while True:
                elapsed = 0.0 if since is None else time.monotonic() - since
                try:
                    with (
                        self._pool.connection(
                            timeout=max(0.1, min(POOL_WAIT_S, patience - elapsed))
                        ) as conn,
                        conn.cursor(row_factory=dict_row) as cur,
                    ):
                        cur.execute(query(name), params)
                        rows: list[dict[str, Any]] = cur.fetchall()
                    if since is not None:
                        self._waiting.ended(name, answered=True)
                        since = None
                    return rows
                except psycopg.DataError as exc:  # a malformed id, say: the caller's input
                    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    raise InvalidInput(f"read {name}: {first}") from exc
                except psycopg.OperationalError as exc:
                    if not database_away(exc):
                        raise PersistenceUnavailable(f"read {name} failed: {exc}") from exc
                    pause = self._waiting.failed(name, exc, first=since is None)
                    since = time.monotonic() if since is None else since
                    unavailable = PersistenceUnavailable(
                        f"read {name}: the database is unavailable ({exc})"
                    )
                    if time.monotonic() - since + pause > patience or self._stop.is_set():
                        raise unavailable from exc
                    self._pool.check()  # drop every idle connection that is lost too
                    if self._stop.wait(pause):
                        raise unavailable from exc
        finally:
            if since is not None:
                self._waiting.ended(name, answered=False)

    def _many(self, cls: type[R], name: str, **params: Any) -> list[R]:
        return [cls.from_row(row) for row in self.rows(name, **params)]

    def _one(self, cls: type[R], name: str, what: str, **params: Any) -> R:
        rows = self.rows(name, **params)
        if not rows:
            raise NotFound(f"no {what} {next(iter(params.values()))}")
        return cls.from_row(rows[0])

    def directive(self, directive_id: uuid.UUID) -> Directive:
        return self._one(Directive, "directive", "directive", id=directive_id)

    def directives_by_id(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Directive]:
        """The directives of ``ids`` that exist, by id (one read for all)."""
        found = self._many(Directive, "directives_by_id", ids=list(ids))
        return {d.id: d for d in found}

    def directives(self, limit: int = 100) -> list[Directive]:
        return self._many(Directive, "directives", limit=limit)

    def live_directives(self) -> list[Directive]:
        return self._many(Directive, "live_directives")

    def current_chain(self, directive_id: uuid.UUID) -> Chain | None:
        chains = self._many(Chain, "current_chain", directive_id=directive_id)
        return chains[0] if chains else None

    def chains(self, directive_id: uuid.UUID) -> list[Chain]:
        return self._many(Chain, "chains", directive_id=directive_id)

    def steps(self, chain_id: uuid.UUID) -> list[Step]:
        return self._many(Step, "steps", chain_id=chain_id)

    def step(self, step_id: uuid.UUID) -> Step:
        return self._one(Step, "step", "step", id=step_id)

    def ready_steps(self, chain_id: uuid.UUID) -> list[Step]:
        return self._many(Step, "ready_steps", chain_id=chain_id)

    def events_after(
        self, directive_id: uuid.UUID, after: int = 0, limit: int = 1000
    ) -> list[Event]:
        return self._many(
            Event, "events_after", directive_id=directive_id, after=after, limit=limit
        )

    def pending_approvals(self, directive_id: uuid.UUID | None = None) -> list[Approval]:
        return self._many(Approval, "pending_approvals", directive_id=directive_id)

    def approval(self, approval_id: uuid.UUID) -> Approval:
        return self._one(Approval, "approval", "approval", id=approval_id)

    def pending_commands(self, limit: int = 100) -> list[Command]:
        return self._many(Command, "pending_commands", limit=limit)

    def command(self, command_id: uuid.UUID) -> Command:
        return self._one(Command, "command", "command", id=command_id)

    def tasks_of_step(self, step_id: uuid.UUID) -> list[Task]:
        return self._many(Task, "tasks_of_step", step_id=step_id)

    def tasks_of_directive(self, directive_id: uuid.UUID) -> list[Task]:
        return self._many(Task, "tasks_of_directive", directive_id=directive_id)

    def task(self, task_id: uuid.UUID) -> Task:
        return self._one(Task, "task", "task", id=task_id)

    def evaluations_of_step(self, step_id: uuid.UUID) -> list[Evaluation]:
        return self._many(Evaluation, "evaluations_of_step", step_id=step_id)

    def evaluations_of_directive(self, directive_id: uuid.UUID) -> list[Evaluation]:
        return self._many(Evaluation, "evaluations_of_directive", directive_id=directive_id)

    def directive_state(self, directive_id: uuid.UUID) -> dict[str, Any]:
        """The ``directive_state`` row (JSON columns); the engine builds its state from it."""
        rows = self.rows("directive_state", id=directive_id)
        if not rows:
            raise NotFound(f"no directive {directive_id}")
        return rows[0]

    def step_state(self, step_id: uuid.UUID) -> dict[str, Any]:
        """The ``step_state`` row (JSON columns) of one step."""
        rows = self.rows("step_state", id=step_id)
        if not rows:
            raise NotFound(f"no step {step_id}")
        return rows[0]

    def finished_directives(self, ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Those of ``ids`` finished, with no task left unfinished."""
        return [row["id"] for row in self.rows("finished_directives", ids=ids)]

    def due_directives(self, ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Those of ``ids`` with an expired approval or a passed wall-time limit."""
        return [row["id"] for row in self.rows("due_directives", ids=ids)]


def database_away(exc: psycopg.OperationalError) -> bool:
    """The server cannot be reached or is shutting down, rather than the query failed
    (a statement timeout, say, which waiting would not cure)."""
    if isinstance(exc, PoolClosed):  # we closed it: nothing to wait for
        return False
    sqlstate = exc.sqlstate
    return sqlstate is None or sqlstate.startswith(("08", "57P"))
