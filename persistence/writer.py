"""The persistence actor: the only writer to PostgreSQL, with group commit.

Senders hand it a ``Write`` (one or more SQL statements that must apply
together) and get a future. The actor queues writes; a ``_Flush`` message that
it sends itself runs after every write already in its inbox, so everything that
arrived while the previous transaction was committing goes into the next one.
Each sender's future completes only after that transaction committed: a caller
that holds a result holds a durable write.

Failure contract:
- A compare-and-set statement (``Op(guard=True)``) that matches no row makes the
  write a ``Conflict``: nothing of that write is applied, the others in the batch
  are unaffected.
- A write PostgreSQL rejects (constraint, bad data), or whose parameters
  cannot be encoded, fails alone with ``InvalidInput``; the batch it was in is
  committed without it.
- A lost connection is reopened with exponential backoff and jitter until
  ``reconnect_timeout``. Every batch records its id and results in
  ``write_batches`` inside its own transaction, so a batch whose COMMIT outcome
  is unknown is looked up, not applied a second time; the row is written first,
  so a retry waits for an earlier attempt that is still committing.
- After ``reconnect_timeout`` the batch's senders get ``PersistenceUnavailable``.
- ``stop()`` commits everything queued before it, then closes the connection.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import psycopg
import pykka
from psycopg.types.json import Jsonb

from .errors import DirectorateError, InvalidInput, PersistenceUnavailable

log = logging.getLogger(__name__)

MAX_BATCH = 512
"""Writes per transaction: large enough to amortise the commit, small enough to
keep one transaction's lock time short."""


@attrs.frozen
class Op:
    """One SQL statement of a write."""

    sql: str
    params: Sequence[Any] | dict[str, Any] = ()
    guard: bool = False
    """A compare-and-set: if it matches no row, the whole write is a Conflict."""
    returning: bool = False
    """Keep the rows it returns (ints and strings only: they are stored as JSON)."""


@attrs.frozen
class Write:
    """Statements that apply together or not at all, and what to publish after."""

    ops: tuple[Op, ...]
    notices: tuple[Any, ...] = ()
    """Opaque payloads handed to ``on_commit`` after the commit (signals, events)."""


@attrs.frozen
class Committed:
    """The write is durable. ``rows[i]`` holds what op ``i`` returned."""

    rows: tuple[tuple[tuple[Any, ...], ...], ...]
    ok: bool = True

    def scalar(self, op_index: int = -1) -> Any:
        rows = self.rows[op_index]
        return rows[0][0] if rows else None


@attrs.frozen
class Conflict:
    """A compare-and-set matched no row: nothing of the write changed."""

    op_index: int
    ok: bool = False


WriteResult = Committed | Conflict


@attrs.frozen
class _Submit:
    write: Write
    future: pykka.Future[WriteResult]


@attrs.frozen
class _Flush:
    pass


@attrs.frozen
class _Stats:
    pass


class _GuardFailed(Exception):
    def __init__(self, op_index: int) -> None:
        self.op_index = op_index


class _BatchRejected(Exception):
    """A statement failed on a healthy connection; the transaction was rolled back.

    The cause is a ``psycopg.Error`` from the server, or a Python error raised
    while adapting a parameter (``TypeError`` from an unencodable jsonb value).
    """

    def __init__(self, cause: Exception) -> None:
        self.cause = cause


class PersistenceActor(pykka.ThreadingActor):
    """Owns one connection and commits queued writes in batches."""

    use_daemon_thread = True

    def __init__(
        self,
        dsn: str,
        *,
        on_commit: Callable[[list[tuple[Write, Committed]]], None] | None = None,
        reconnect_timeout: float = 60.0,
        slots: threading.BoundedSemaphore | None = None,
    ) -> None:
        super().__init__()
        self._dsn = dsn
        self._on_commit = on_commit
        self._reconnect_timeout = reconnect_timeout
        self._slots = slots
        self._pending: list[_Submit] = []
        self._flush_scheduled = False
        self._conn: psycopg.Connection[Any] | None = None
        self._last_prune = 0.0
        self.transactions = 0
        self.writes = 0
        self.reconnects = 0
        self.recovered = 0
        """Batches found already committed after their COMMIT's answer was lost."""

    # ----------------------------------------------------------------- pykka hooks

    def on_stop(self) -> None:
        # pykka delivers messages queued before stop() first, but a flush we
        # scheduled for ourselves may come after it: drain here.
        while self._pending:
            self._flush()
        if self._conn is not None:
            self._conn.close()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Submit):
            self._pending.append(message)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self.actor_ref.tell(_Flush())
        elif isinstance(message, _Flush):
            self._flush_scheduled = False
            self._flush()
            if self._pending:  # more than MAX_BATCH were waiting
                self._flush_scheduled = True
                self.actor_ref.tell(_Flush())
        elif isinstance(message, _Stats):
            return {
                "transactions": self.transactions,
                "writes": self.writes,
                "reconnects": self.reconnects,
                "recovered": self.recovered,
                "backend_pid": self._conn.info.backend_pid if self._conn else None,
            }
        return None

    # ----------------------------------------------------------------- flushing

    def _flush(self) -> None:
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        if not batch:
            return
        try:
            outcomes = self._commit(batch)
        except DirectorateError as exc:
            outcomes = [exc] * len(batch)
        except Exception as exc:  # a bug: fail the senders rather than leave them waiting
            log.exception("unexpected error while committing a batch")
            outcomes = [PersistenceUnavailable(f"write failed: {exc!r}")] * len(batch)
        published = []
        for submit, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                submit.future.set_exception((type(outcome), outcome, outcome.__traceback__))
            else:
                submit.future.set(outcome)
                if isinstance(outcome, Committed):
                    published.append((submit.write, outcome))
            if self._slots is not None:
                self._slots.release()
        if published and self._on_commit is not None:
            try:
                self._on_commit(published)
            except Exception:  # a subscriber problem must never stop the writer
                log.exception("on_commit callback failed")

    def _commit(self, batch: list[_Submit]) -> list[WriteResult | BaseException]:
        try:
            return list(self._commit_with_retry([s.write for s in batch]))
        except _BatchRejected as rejected:
            if len(batch) == 1:
                return [_translate(rejected.cause)]
        # One bad write spoiled the transaction: commit the others one by one so
        # that only the bad one fails.
        outcomes: list[WriteResult | BaseException] = []
        for submit in batch:
            try:
                outcomes.extend(self._commit_with_retry([submit.write]))
            except _BatchRejected as rejected:
                outcomes.append(_translate(rejected.cause))
        return outcomes

    def _commit_with_retry(self, writes: list[Write]) -> list[WriteResult]:
        batch_id = uuid.uuid4()
        deadline = time.monotonic() + self._reconnect_timeout
        # Set once a COMMIT of this batch may have happened without our hearing of
        # it; from then on every attempt first looks the batch up.
        outcome_unknown = False
        while True:
            conn = self._conn or self._connect_with_backoff(deadline)
            try:
                if outcome_unknown:
                    known = self._lookup_batch(conn, batch_id)
                    if known is not None:
                        self.recovered += 1
                        return known  # it did commit; do not apply it twice
                results = self._run_batch(conn, batch_id, writes)
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
                if time.monotonic() > deadline:
                    raise PersistenceUnavailable(f"write failed: {exc}") from exc
                continue  # rolled back: nothing applied, run it again
            except psycopg.errors.UniqueViolation as exc:
                if not _is_batch_key(exc):
                    raise _BatchRejected(exc) from exc
                # An earlier attempt, still in flight on a connection we had given
                # up on, committed while this one waited on its write_batches row.
                outcome_unknown = True
                continue
            except psycopg.Error as exc:
                if not (conn.closed or conn.broken):
                    raise _BatchRejected(exc) from exc
                log.warning("lost the database connection during a commit: %s", exc)
                self._conn = None
                outcome_unknown = True
                continue
            except (TypeError, ValueError) as exc:  # a parameter psycopg could not adapt
                if conn.closed or conn.broken:
                    raise
                raise _BatchRejected(exc) from exc
            self.transactions += 1
            self.writes += len(writes)
            return results

    def _run_batch(
        self, conn: psycopg.Connection[Any], batch_id: uuid.UUID, writes: list[Write]
    ) -> list[WriteResult]:
        results: list[WriteResult] = []
        with conn.transaction():
            # The batch's row goes first: a retry after a lost connection then
            # waits on it while an earlier attempt may still be committing, and
            # fails on its key if that attempt did commit (see _commit_with_retry).
            conn.execute("INSERT INTO write_batches (id, results) VALUES (%s, '[]')", (batch_id,))
            for write in writes:
                results.append(self._apply(conn, write))
            conn.execute(
                "UPDATE write_batches SET results = %s WHERE id = %s",
                (Jsonb([_encode(r) for r in results], dumps=_dumps), batch_id),
            )
            self._maybe_prune(conn)
        return results

    def _apply(self, conn: psycopg.Connection[Any], write: Write) -> WriteResult:
        # A guard after the first statement needs a savepoint to undo what came
        # before it; a guard that comes first fails before anything applied.
        if any(op.guard for op in write.ops[1:]):
            try:
                with conn.transaction():
                    return Committed(rows=self._run_ops(conn, write))
            except _GuardFailed as failed:
                return Conflict(op_index=failed.op_index)
        try:
            return Committed(rows=self._run_ops(conn, write))
        except _GuardFailed as failed:
            return Conflict(op_index=failed.op_index)

    @staticmethod
    def _run_ops(
        conn: psycopg.Connection[Any], write: Write
    ) -> tuple[tuple[tuple[Any, ...], ...], ...]:
        rows = []
        with conn.cursor() as cur:
            for index, op in enumerate(write.ops):
                cur.execute(op.sql, op.params)
                if op.guard and cur.rowcount == 0:
                    raise _GuardFailed(index)
                rows.append(tuple(tuple(r) for r in cur.fetchall()) if op.returning else ())
        return tuple(rows)

    def _maybe_prune(self, conn: psycopg.Connection[Any]) -> None:
        # Batch ids only matter for the few seconds of a reconnect.
        now = time.monotonic()
        if now - self._last_prune > 60:
            self._last_prune = now
            conn.execute("DELETE FROM write_batches WHERE committed_at < now() - interval '1 hour'")

    def _lookup_batch(
        self, conn: psycopg.Connection[Any], batch_id: uuid.UUID
    ) -> list[WriteResult] | None:
        row = conn.execute(
            "SELECT results FROM write_batches WHERE id = %s", (batch_id,)
        ).fetchone()
        return None if row is None else [_decode(r) for r in row[0]]

    # ----------------------------------------------------------------- connecting

    def _connect_with_backoff(self, deadline: float | None = None) -> psycopg.Connection[Any]:
        deadline = deadline or time.monotonic() + self._reconnect_timeout
        delay, attempts = 0.05, 0
        while True:
            attempts += 1
            try:
                conn = psycopg.connect(
                    self._dsn, autocommit=True, application_name="directorate-writer"
                )
            except psycopg.OperationalError as exc:
                if time.monotonic() + delay > deadline:
                    raise PersistenceUnavailable(
                        f"couldn't connect to PostgreSQL after {attempts} attempts: {exc}"
                    ) from exc
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 2.0)
                continue
            if self._conn is not None or attempts > 1 or self.transactions:
                self.reconnects += 1
            self._conn = conn
            return conn


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def _encode(result: WriteResult) -> dict[str, Any]:
    if isinstance(result, Conflict):
        return {"conflict": result.op_index}
    return {"rows": [[list(r) for r in rows] for rows in result.rows]}


def _decode(data: dict[str, Any]) -> WriteResult:
    if "conflict" in data:
        return Conflict(op_index=data["conflict"])
    return Committed(rows=tuple(tuple(tuple(r) for r in rows) for rows in data["rows"]))


def _is_batch_key(exc: psycopg.Error) -> bool:
    return exc.diag.constraint_name == "write_batches_pkey"


def _translate(exc: Exception) -> DirectorateError:
    if not isinstance(exc, psycopg.Error):
        error: DirectorateError = InvalidInput(f"write could not be sent: {exc}")
        error.__cause__ = exc
        return error
    diag = getattr(exc, "diag", None)
    detail = (diag.message_primary if diag else None) or str(exc)
    if isinstance(exc, psycopg.errors.IntegrityError | psycopg.DataError):
        constraint = diag.constraint_name if diag else None
        where = f" ({constraint})" if constraint else ""
        error = InvalidInput(f"rejected by the database{where}: {detail}")
    else:
        error = PersistenceUnavailable(f"write failed: {detail}")
    error.__cause__ = exc
    return error


class PersistenceClient:
    """Thread-safe handle to the persistence actor, with a bounded number of writes
    in flight: when ``max_pending`` are queued, senders wait instead of memory growing."""

    def __init__(
        self,
        dsn: str,
        *,
        on_commit: Callable[[list[tuple[Write, Committed]]], None] | None = None,
        max_pending: int = 10_000,
        reconnect_timeout: float = 60.0,
    ) -> None:
        self._slots = threading.BoundedSemaphore(max_pending)
        # Held while a write is handed over and while stopping, so no write can slip
        # in behind the stop message (pykka drops told messages after a stop).
        self._lock = threading.Lock()
        self._closed = False
        self.actor_ref = PersistenceActor.start(
            dsn, on_commit=on_commit, reconnect_timeout=reconnect_timeout, slots=self._slots
        )

    def submit(self, write: Write, *, timeout: float | None = 60.0) -> pykka.Future[WriteResult]:
        if not self._slots.acquire(timeout=timeout):
            raise PersistenceUnavailable(f"the writer has been full for {timeout:.2f} sec")
        future: pykka.Future[WriteResult] = pykka.ThreadingFuture()
        with self._lock:
            if self._closed or not self.actor_ref.is_alive():
                self._slots.release()
                raise PersistenceUnavailable("the persistence actor has stopped")
            self.actor_ref.tell(_Submit(write, future))
        return future

    def write(self, *ops: Op, notices: tuple[Any, ...] = (), timeout: float = 120.0) -> WriteResult:
        """Submit one write and wait until it is durable (or conflicted)."""
        return self.submit(Write(ops=ops, notices=notices)).get(timeout=timeout)

    def stats(self) -> dict[str, Any]:
        stats = self.actor_ref.ask(_Stats(), timeout=30)
        assert isinstance(stats, dict)
        return stats

    def stop(self, timeout: float | None = 120.0) -> None:
        """Commit what is queued, then close. Safe to call twice, from any thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            stopped = self.actor_ref.stop(block=False)
        assert isinstance(stopped, pykka.Future)
        stopped.get(timeout=timeout)
