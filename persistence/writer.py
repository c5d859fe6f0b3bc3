"""The persistence actor: the only writer to PostgreSQL, with group commit.

Senders hand it a ``Write`` (one or more SQL statements that must apply
together) and get a future. Writes wait in a queue beside the actor's inbox; a
flush takes every write queued before it began, so everything that arrived while
the previous transaction was committing goes into the next one, and no write waits
for more than the flush in progress and its own.
Each sender's future completes only after that transaction committed: a caller
that holds a result holds a durable write.

Failure contract:
- A compare-and-set statement (``Op(guard=True)``) that matches no row makes the
  write a ``Conflict``: nothing of that write is applied, the others in the batch
  are unaffected.
- A write PostgreSQL rejects (constraint, bad data), or whose parameters
  cannot be encoded, fails alone with ``InvalidInput``; the batch it was in is
  committed without it.
- Any other error (a bug, an unexpected driver state) fails the batch's senders
  with ``PersistenceUnavailable``; a connection left inside a transaction is
  closed, so the next batch starts on a fresh one.
- A lost connection is reopened with exponential backoff and jitter (``Outage``:
  one log line per interval) for as long as the database is away: the writer
  never gives up on its own. Senders wait meanwhile, and once ``max_pending``
  writes are in flight new senders wait for room, so memory stays flat. Every
  batch records its id and results in ``write_batches`` inside its own
  transaction, so a batch whose COMMIT outcome is unknown is looked up, not
  applied a second time; the row is written first, so a retry waits for an
  earlier attempt that is still committing.
- With ``reconnect_timeout`` set (command-line clients, which should not hang),
  the batch's senders get ``PersistenceUnavailable`` once it has passed.
- ``stop(timeout)`` commits everything queued before it, then closes the
  connection. If the database is away, it gives up near the deadline: the
  writes still queued fail with ``PersistenceUnavailable`` and ``stop`` returns
  what they were, so the caller can say what was not written.

A flush costs two round trips whatever the batch size (DESIGN §15: group commit
only wins when a flush is not a round trip per statement). In pipeline mode the
actor sends BEGIN, the batch row and every write's statements at once; when their
results are in and every guard matched, it sends the batch's results and COMMIT.
If a guard missed or a statement failed, that transaction is rolled back and the
batch runs again statement by statement with a savepoint around each write, so
that the writes that fail are undone alone (the rare path: one round trip per
statement, as before).

A batch's senders are answered once the next batch is on its way to the server (at
once when no write waits): woken earlier, they would compete for the GIL with the
writer building it.

Same-shaped writes of different owners (``Write.owner``: a directive's starts, say)
are sent as one statement per statement kind rather than one each (``grouping``);
the writes' event appends are one statement at the end of the batch (``Merge``).
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import selectors
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from types import TracebackType
from typing import Any, Protocol

import attrs
import psycopg
import pykka
from psycopg.types.json import Jsonb

from .errors import DirectorateError, InvalidInput, PersistenceUnavailable
from .grouping import Shape, schedule
from .outage import Outage
from .reply import Reply

log = logging.getLogger(__name__)

MAX_BATCH = 512
"""Writes per transaction: large enough to amortise the commit, small enough to
keep one transaction's lock time short."""
ANSWER_FIRST_ABOVE = 64
"""A batch of more writes than this may not fit the socket's buffers, so its sending
may wait for the server to read: the last batch's senders are answered before it (see
``_answer_previous``)."""
CONNECT_TIMEOUT_S = 10
"""How long one connection attempt may take (a host that drops packets would
otherwise hold the writer for the operating system's TCP timeout)."""


@attrs.frozen
class Op:
    """One SQL statement of a write."""

    sql: str
    params: Sequence[Any] | dict[str, Any] = ()
    guard: bool = False
    """A compare-and-set: if it matches no row, the whole write is a Conflict."""
    returning: bool = False
    """Keep the rows it returns (ints and strings only: they are stored as JSON)."""
    merge: Merge | None = attrs.field(default=None, eq=False)
    """The write's last statement may be run at the end of its batch, as one statement
    with the same kind of last statement of the batch's other writes (see ``Merge``)."""
    raw: bool = False
    """``sql`` has PostgreSQL's own placeholders ($1, $2, ...) for positional ``params``:
    psycopg sends it as it is (a ``RawCursor``), where it would parse a ``%s`` statement
    of thousands of parameters afresh each time (it caches only short ones)."""
    group: Merge | None = attrs.field(default=None, eq=False)
    """The statement may be run as one with the same statement of the other writes of
    its group (``grouping``): where the group's first write stands, not at the end."""


class Merge(Protocol):
    """How same-shaped last statements of a batch's writes become one statement.

    Only for a statement that nothing else in the batch reads and that reads nothing
    the batch's later writes change, except what only makes its guard miss (then the
    batch runs write by write, in order): an event append, which numbers and stores.
    """

    @property
    def key(self) -> str:
        """Statements with the same key are combined."""
        ...

    def combine(self, ops: Sequence[Op]) -> Op | None:
        """One statement doing what ``ops`` do, in order; None if they cannot be."""
        ...

    def split(
        self, ops: Sequence[Op], rows: Sequence[tuple[Any, ...]]
    ) -> list[tuple[tuple[Any, ...], ...]]:
        """The combined statement's rows as each op would have returned them (no row:
        a guard that missed)."""
        ...


@attrs.frozen
class Write:
    """Statements that apply together or not at all, and what to publish after."""

    ops: tuple[Op, ...]
    notices: tuple[Any, ...] = ()
    """Opaque payloads handed to ``on_commit`` after the commit (signals, events)."""
    what: str = ""
    """What the write is, in a few words: said when it could not be written."""
    owner: Hashable | None = None
    """Whose rows it changes (a directive's id): a write with an owner may be grouped
    with others of its shape (``grouping``); None: it runs alone."""


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
Outcome = WriteResult | DirectorateError
"""What a sender gets: a result, or the error its write failed with alone."""

_INSERT_BATCH = "INSERT INTO write_batches (id, results) VALUES (%s, '[]')"
_RECORD_BATCH = "UPDATE write_batches SET results = %s WHERE id = %s"
_RETRY_BATCH = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
"""Errors after which the whole batch is rolled back and run again."""


@attrs.frozen
class _Submit:
    write: Write
    future: pykka.Future[WriteResult]


class _Queue:
    """Writes handed over and not yet taken into a batch.

    The writer is told to flush only when it is not already due to: a flush takes
    every write queued before it began, so a write that arrives while one is in
    progress goes into the next, and none waits for two (a ``_Flush`` told behind a
    write in the actor's inbox would make the writes after it wait a whole flush).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: deque[_Submit] = deque()
        self._due = False

    def put(self, submit: _Submit) -> bool:
        """Queue ``submit``; True if the writer has to be told to flush."""
        with self._lock:
            self._items.append(submit)
            wake, self._due = not self._due, True
            return wake

    def take(self, limit: int) -> tuple[list[_Submit], bool]:
        """Up to ``limit`` writes, oldest first, and whether more are left (then the
        writer flushes again without being told)."""
        with self._lock:
            batch = [self._items.popleft() for _ in range(min(limit, len(self._items)))]
            self._due = bool(self._items)
            return batch, self._due

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


@attrs.frozen
class _Flush:
    pass


@attrs.frozen
class _Stats:
    pass


class _Slots:
    """At most ``limit`` writes in flight: the bounded inbox senders wait on."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0
        self._cond = threading.Condition()

    def take(self, timeout: float | None, closed: Callable[[], bool]) -> bool:
        """Wait for room; False if ``timeout`` passed first or the writer closed."""
        with self._cond:
            room = self._cond.wait_for(lambda: closed() or self.taken < self.limit, timeout)
            if not room or closed():
                return False
            self.taken += 1
            return True

    def give(self) -> None:
        with self._cond:
            self.taken -= 1
            self._cond.notify()

    def wake_all(self) -> None:
        with self._cond:
            self._cond.notify_all()


class _GiveUp:
    """When a stopping client stops waiting for the database (never, until told)."""

    def __init__(self) -> None:
        self.at = math.inf
        self._cond = threading.Condition()

    def by(self, at: float) -> None:
        with self._cond:
            self.at = min(self.at, at)
            self._cond.notify_all()

    def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the give-up time comes first."""
        end = time.monotonic() + seconds
        with self._cond:
            while (now := time.monotonic()) < min(end, self.at):
                self._cond.wait(min(end, self.at) - now)


class _GuardFailed(Exception):
    def __init__(self, op_index: int) -> None:
        self.op_index = op_index


FLUSH_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Histogram:
    """Counts of observations by upper bound, and their sum: what a metrics endpoint
    turns into a histogram. Kept by the writer's own thread, so it needs no lock;
    ``snapshot`` copies it for another thread's reading (its turn, on the actor)."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def snapshot(self) -> dict[str, Any]:
        """``buckets``: (upper bound, cumulative count) pairs ending with +inf."""
        cumulative, buckets = 0, []
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        return {"buckets": buckets, "sum": self.sum, "count": cumulative}


class PersistenceActor(pykka.ThreadingActor):
    """Owns one connection and commits queued writes in batches."""

    use_daemon_thread = True

    def __init__(
        self,
        dsn: str,
        *,
        on_commit: Callable[[list[tuple[Write, Committed]]], None] | None = None,
        reconnect_timeout: float | None = None,
        slots: _Slots | None = None,
        give_up: _GiveUp | None = None,
        unwritten: list[str] | None = None,
        queue: _Queue | None = None,
    ) -> None:
        super().__init__()
        self._dsn = dsn
        self._on_commit = on_commit
        self._reconnect_timeout = reconnect_timeout
        self._slots = slots
        self._give_up = give_up or _GiveUp()
        self._unwritten = unwritten if unwritten is not None else []
        """What failed with ``PersistenceUnavailable``: the database stayed away."""
        self._queue = queue if queue is not None else _Queue()
        self._conn: psycopg.Connection[Any] | None = None
        self._last_prune = 0.0
        self.transactions = 0
        self.writes = 0
        self.statements = 0
        """Statements of the writes committed, as sent (merged ones count once; not the
        batch's BEGIN, COMMIT and row)."""
        self._executed = 0
        """Statements sent for the batch being committed."""
        self.reconnects = 0
        self.recovered = 0
        """Batches found already committed after their COMMIT's answer was lost."""
        self.flush_seconds = Histogram(FLUSH_SECONDS_BUCKETS)
        """How long each flush took, from taking the batch to answering its senders."""
        self.batch_sizes = Histogram(BATCH_SIZE_BUCKETS)
        """How many writes each flush committed."""
        self._answered: tuple[list[_Submit], list[Outcome], float] | None = None
        """The batch committed last, its outcomes and when its flush began, until its
        senders are answered (``_answer_previous``)."""

    # ----------------------------------------------------------------- pykka hooks

    def on_stop(self) -> None:
        # pykka delivers messages queued before stop() first, but a flush we
        # scheduled for ourselves may come after it: drain here.
        while True:
            batch, _ = self._queue.take(MAX_BATCH)
            if not batch:
                break
            self._flush(batch)
        self._answer_previous()
        if self._conn is not None:
            self._conn.close()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Flush):
            batch, more = self._queue.take(MAX_BATCH)
            self._flush(batch)
            if more:  # more than MAX_BATCH were waiting
                self.actor_ref.tell(_Flush())
        elif isinstance(message, _Stats):
            return {
                "transactions": self.transactions,
                "writes": self.writes,
                "statements": self.statements,
                "reconnects": self.reconnects,
                "recovered": self.recovered,
                "flush_seconds": self.flush_seconds.snapshot(),
                "batch_sizes": self.batch_sizes.snapshot(),
                "backend_pid": self._conn.info.backend_pid if self._conn else None,
            }
        return None

    # ----------------------------------------------------------------- flushing

    def _flush(self, batch: list[_Submit]) -> None:
        """Commit ``batch``; its senders are answered once the next batch's statements
        are sent, or now if no write is waiting (see ``_answer_previous``)."""
        if not batch:
            self._answer_previous()
            return
        began = time.monotonic()
        try:
            outcomes = self._commit(batch)
        except DirectorateError as exc:
            outcomes = [exc] * len(batch)
        except Exception as exc:  # a bug: fail the senders rather than leave them waiting
            log.exception("unexpected error while committing a batch")
            outcomes = [PersistenceUnavailable(f"write failed: {exc!r}")] * len(batch)
        finally:
            self._answer_previous()  # if this batch's statements were never sent
        self._answered = (batch, outcomes, began)
        if not len(self._queue):
            self._answer_previous()

    def _answer_previous(self) -> None:
        """Answer the senders of the batch committed last.

        Held back until the next batch is sent: its senders would otherwise wake
        while the writer still has that batch to build and send, and every one of
        them would take the GIL from the writer in turn (with 64 senders that was
        a millisecond a flush). Sent, the next batch keeps the server busy while
        they run."""
        if self._answered is None:
            return
        batch, outcomes, began = self._answered
        self._answered = None
        published = []
        for submit, outcome in zip(batch, outcomes, strict=True):
            try:
                if isinstance(outcome, BaseException):
                    if isinstance(outcome, PersistenceUnavailable):
                        self._unwritten.append(submit.write.what or "a write")
                    submit.future.set_exception((type(outcome), outcome, outcome.__traceback__))
                else:
                    submit.future.set(outcome)
                    if isinstance(outcome, Committed):
                        published.append((submit.write, outcome))
            except Exception:  # a bug (a future set twice): the other senders still hear
                log.exception("could not answer a write")
            if self._slots is not None:
                self._slots.give()
        if published and self._on_commit is not None:
            try:
                self._on_commit(published)
            except Exception:  # a subscriber problem must never stop the writer
                log.exception("on_commit callback failed")
        self.flush_seconds.observe(time.monotonic() - began)
        self.batch_sizes.observe(len(batch))

    def _commit(self, batch: list[_Submit]) -> list[Outcome]:
        return self._commit_with_retry([s.write for s in batch])

    def _commit_with_retry(self, writes: list[Write]) -> list[Outcome]:
        batch_id = uuid.uuid4()
        deadline = (
            math.inf
            if self._reconnect_timeout is None
            else time.monotonic() + self._reconnect_timeout
        )
        outage: Outage | None = None
        # Set once a COMMIT of this batch may have happened without our hearing of
        # it; from then on every attempt first looks the batch up.
        outcome_unknown = False
        while True:
            if self._conn is None:
                try:
                    self._conn = self._open()
                except psycopg.OperationalError as exc:
                    outage = self._wait_out(outage, exc, deadline, "couldn't connect to PostgreSQL")
                    continue
            conn = self._conn
            try:
                if outcome_unknown:
                    known = self._lookup_batch(conn, batch_id)
                    if known is not None:
                        self.recovered += 1
                        return self._over(outage, known)  # it did commit: not twice
                results = self._run_batch(conn, batch_id, writes)
            except _RETRY_BATCH as exc:
                if time.monotonic() > deadline:
                    raise PersistenceUnavailable(f"write failed: {exc}") from exc
                continue  # rolled back: nothing applied, run it again
            except psycopg.errors.UniqueViolation as exc:
                if not _is_batch_key(exc):
                    raise _translate(exc) from exc
                # An earlier attempt, still in flight on a connection we had given
                # up on, committed while this one waited on its write_batches row.
                outcome_unknown = True
                continue
            except psycopg.Error as exc:
                if not _connection_lost(conn, exc):
                    raise _translate(exc) from exc
                log.warning("lost the database connection during a commit: %s", exc)
                conn.close()
                self._conn = None
                outcome_unknown = True
                # Pause before reconnecting: a server that accepts connections and
                # drops them at once must not make this a busy loop.
                outage = self._wait_out(outage, exc, deadline, "lost the database")
                continue
            finally:
                self._discard_if_dirty(conn)
            self.transactions += 1
            self.writes += len(writes)
            self.statements += self._executed
            return self._over(outage, results)

    def _wait_out(
        self, outage: Outage | None, exc: psycopg.Error, deadline: float, what: str
    ) -> Outage:
        """Pause before the next attempt, or raise once the writer is to give up."""
        self._answer_previous()  # committed: its senders must not wait out the outage too
        outage = outage or Outage("the writer", logger=log)
        waiting = f"{self._slots.taken} writes waiting" if self._slots else ""
        pause = outage.failed(exc, waiting)
        if time.monotonic() + pause > min(deadline, self._give_up.at):
            raise PersistenceUnavailable(
                f"{what} after {outage.attempts} attempts in {outage.elapsed_s:.0f} s: {exc}"
            ) from exc
        self._give_up.pause(pause)
        return outage

    @staticmethod
    def _over(outage: Outage | None, outcomes: list[Outcome]) -> list[Outcome]:
        if outage is not None:
            outage.over()
        return outcomes

    def _discard_if_dirty(self, conn: psycopg.Connection[Any]) -> None:
        # Every path rolls back what it began; this is for the ones nobody foresaw.
        if conn.closed or (
            conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            and conn.pgconn.pipeline_status == psycopg.pq.PipelineStatus.OFF
        ):
            return
        log.error("the writer's connection was left inside a transaction: closing it")
        conn.close()
        if self._conn is conn:
            self._conn = None

    def _run_batch(
        self, conn: psycopg.Connection[Any], batch_id: uuid.UUID, writes: list[Write]
    ) -> list[Outcome]:
        # The batch's row goes first: a retry after a lost connection then waits
        # on it while an earlier attempt may still be committing, and fails on its
        # key if that attempt did commit (see _commit_with_retry).
        self._executed = 0
        results = self._run_pipelined(conn, batch_id, writes)
        if results is None:
            self._executed = sum(len(w.ops) for w in writes)
            return self._run_write_by_write(conn, batch_id, writes)
        return list(results)

    def _run_pipelined(
        self, conn: psycopg.Connection[Any], batch_id: uuid.UUID, writes: list[Write]
    ) -> list[Committed] | None:
        """The batch in two round trips; None, with nothing applied, if a write
        conflicted or was rejected."""
        error: Exception | None = None
        results: list[Committed] | None = None
        if len(writes) > ANSWER_FIRST_ABOVE:
            self._answer_previous()  # its sending may wait on the socket: answer first
        with conn.pipeline() as pipeline:
            conn.execute("BEGIN")
            head = conn.execute(_INSERT_BATCH, (batch_id,))
            sent: list[list[psycopg.Cursor[Any] | None]] = []
            merged: list[_Merged] = []
            try:
                deferred = self._send(conn, writes, sent, merged)
                for places in deferred.values():
                    merged.extend(self._send_merged(conn, writes, sent, places))
            except (TypeError, ValueError) as exc:  # a parameter psycopg could not adapt
                error = exc
            except psycopg.Error as exc:  # results come back while we send: an earlier one
                if _connection_lost(conn, exc):
                    raise
                error = exc
            _send_buffered(conn)  # the server has the batch: now the last one's answers
            self._answer_previous()
            synced = _sync(conn, pipeline)  # always: it reads every result sent so far
            error = error or synced
            if error is None:
                try:
                    results = _collect(writes, sent, merged)
                except psycopg.ProgrammingError:  # rows asked of a statement that has none
                    results = None  # the write-by-write run says whose
            if results is None:
                conn.execute("ROLLBACK")
            else:
                conn.execute(
                    _RECORD_BATCH, (Jsonb([_encode(r) for r in results], dumps=_dumps), batch_id)
                )
                self._maybe_prune(conn)
                conn.execute("COMMIT")
        # The batch row's own error, or one that calls for running it all again, is
        # _commit_with_retry's business; a write's error, the write-by-write run's.
        if isinstance(error, psycopg.Error) and (
            head.pgresult is None or isinstance(error, _RETRY_BATCH)
        ):
            raise error
        return results

    def _send(
        self,
        conn: psycopg.Connection[Any],
        writes: list[Write],
        sent: list[list[psycopg.Cursor[Any] | None]],
        grouped: list[_Merged],
    ) -> dict[str, list[tuple[int, int]]]:
        """Send every statement but the mergeable last ones (their places ``None`` in
        ``sent``), which are returned by merge key as (write, op) indices. A group's
        statements (``grouping``) are sent as one each, in ``grouped``."""
        deferred: dict[str, list[tuple[int, int]]] = {}
        shapes: list[Shape | None] = []
        for w, write in enumerate(writes):
            sent.append([None] * len(write.ops))
            last = write.ops[-1] if write.ops else None
            if last is not None and last.merge is not None:
                deferred.setdefault(last.merge.key, []).append((w, len(write.ops) - 1))
            shapes.append(_shape(write))
        for members in schedule(shapes, [w.owner for w in writes]):
            if len(members) == 1:
                self._send_alone(conn, writes, members[0], sent)
                continue
            for o in range(len(writes[members[0]].ops) - 1):  # the last is the merge
                places = [(w, o) for w in members]
                grouped.extend(self._send_merged(conn, writes, sent, places, grouping=True))
        return deferred

    def _send_alone(
        self,
        conn: psycopg.Connection[Any],
        writes: list[Write],
        w: int,
        sent: list[list[psycopg.Cursor[Any] | None]],
    ) -> None:
        write = writes[w]
        last = len(write.ops) - 1
        for o, op in enumerate(write.ops):
            if op.merge is None or o != last:
                sent[w][o] = conn.execute(op.sql, op.params)
                self._executed += 1

    def _send_merged(
        self,
        conn: psycopg.Connection[Any],
        writes: list[Write],
        sent: list[list[psycopg.Cursor[Any] | None]],
        places: list[tuple[int, int]],
        *,
        grouping: bool = False,
    ) -> list[_Merged]:
        """Statements of one kind as one, when they can be; else one by one, in order:
        the deferred ones at the end of the batch (``Op.merge``), or a group's
        (``Op.group``)."""
        group = [writes[w].ops[o] for w, o in places]
        how = group[0].group if grouping else group[0].merge
        combined = how.combine(group) if how is not None and len(group) > 1 else None
        self._executed += 1 if combined is not None else len(group)
        if combined is None or how is None:
            for w, o in places:
                op = writes[w].ops[o]
                sent[w][o] = conn.execute(op.sql, op.params)
            return []
        return [_Merged(places, group, _execute(conn, combined), how)]

    def _run_write_by_write(
        self, conn: psycopg.Connection[Any], batch_id: uuid.UUID, writes: list[Write]
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        with conn.transaction():
            conn.execute(_INSERT_BATCH, (batch_id,))
            for write in writes:
                try:
                    with conn.transaction():  # a savepoint: undoes this write alone
                        outcomes.append(Committed(rows=self._run_ops(conn, write)))
                except _GuardFailed as failed:
                    outcomes.append(Conflict(op_index=failed.op_index))
                except _RETRY_BATCH:
                    raise
                except psycopg.Error as exc:
                    if _connection_lost(conn, exc):
                        raise
                    outcomes.append(_translate(exc))
                except (TypeError, ValueError) as exc:  # a parameter psycopg could not adapt
                    outcomes.append(_translate(exc))
            conn.execute(
                _RECORD_BATCH, (Jsonb([_encode(o) for o in outcomes], dumps=_dumps), batch_id)
            )
            self._maybe_prune(conn)
        return outcomes

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
    ) -> list[Outcome] | None:
        row = conn.execute(
            "SELECT results FROM write_batches WHERE id = %s", (batch_id,)
        ).fetchone()
        return None if row is None else [_decode(r) for r in row[0]]

    # ----------------------------------------------------------------- connecting

    def _open(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self._dsn,
            autocommit=True,
            application_name="directorate-writer",
            connect_timeout=CONNECT_TIMEOUT_S,
        )
        if self.transactions or self.reconnects or self.recovered:
            self.reconnects += 1
        return conn

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # A bug got past _flush: no sender may be left waiting for ever.
        self._answer_previous()  # committed: they hear so
        error = PersistenceUnavailable("the writer failed")
        while True:
            batch, _ = self._queue.take(MAX_BATCH)
            if not batch:
                break
            for submit in batch:
                self._unwritten.append(submit.write.what or "a write")
                submit.future.set_exception((type(error), error, None))


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def _sync(conn: psycopg.Connection[Any], pipeline: psycopg.Pipeline) -> psycopg.Error | None:
    """Sync until every result sent so far is in; the first statement error, if any.

    A sync that raises may leave the results behind the failed statement
    unread: the next one reads them (each of those raises ``PipelineAborted``).
    """
    _send_buffered(conn)
    first: psycopg.Error | None = None
    for _ in range(4):
        try:
            pipeline.sync()
            return first
        except psycopg.errors.PipelineAborted as exc:  # a statement after the failed one
            first = first or exc
        except psycopg.Error as exc:
            if _connection_lost(conn, exc):
                raise
            first = first or exc
    assert first is not None
    raise first


def _send_buffered(conn: psycopg.Connection[Any]) -> None:
    """Hand the server every byte libpq still holds for it, reading meanwhile.

    In pipeline mode psycopg (3.3.9 still) stops writing once every statement is
    queued, even when the socket took only part of them, and ``Pipeline.sync()``
    then only waits to read: with a parameter larger than the socket's buffers
    (a 2 MB goal) the server waits for the rest of the statement (``ClientRead``)
    and we for its answer, forever. So the rest is sent here first; what the server
    answers meanwhile is read into libpq's buffer, so that it never blocks writing
    to us either.
    """
    pgconn = conn.pgconn
    if not pgconn.flush():  # 0: all sent (the usual case: no system call at all)
        return
    with selectors.DefaultSelector() as selector:
        selector.register(pgconn.socket, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while pgconn.flush():
            for _, events in selector.select():
                if events & selectors.EVENT_READ:
                    pgconn.consume_input()  # a lost connection raises OperationalError


@attrs.frozen
class _Merged:
    """Statements of several writes sent as one: where they were, and its cursor."""

    places: list[tuple[int, int]]
    ops: list[Op]
    cursor: psycopg.Cursor[Any]
    how: Merge

    def rows(self) -> dict[tuple[int, int], tuple[tuple[Any, ...], ...]]:
        returned = self.cursor.description is not None  # an INSERT returns no rows
        got = [tuple(r) for r in self.cursor.fetchall()] if returned else []
        split = self.how.split(self.ops, got)
        return dict(zip(self.places, split, strict=True))


def _execute(conn: psycopg.Connection[Any], op: Op) -> psycopg.Cursor[Any]:
    if op.raw:
        cursor: psycopg.Cursor[Any] = psycopg.RawCursor(conn)
        return cursor.execute(op.sql, op.params)
    return conn.execute(op.sql, op.params)


def _shape(write: Write) -> Shape | None:
    """The write's shape for ``grouping.schedule``: the group keys of its statements
    but the last, a merge (sent at the end of the batch anyway); None when it does not
    end with a merge or some other statement of it cannot be grouped."""
    ops = write.ops
    if not ops:
        return ()
    if ops[-1].merge is None:
        return None
    keys = tuple(op.group.key for op in ops[:-1] if op.group is not None)
    return keys if len(keys) == len(ops) - 1 else None


def _collect(
    writes: list[Write],
    sent: list[list[psycopg.Cursor[Any] | None]],
    merged: Sequence[_Merged],
) -> list[Committed] | None:
    """Each write's rows, or None if a guard matched no row."""
    split: dict[tuple[int, int], tuple[tuple[Any, ...], ...]] = {}
    for statement in merged:
        split.update(statement.rows())
    results = []
    for w, (write, cursors) in enumerate(zip(writes, sent, strict=True)):
        rows = []
        for o, (op, cur) in enumerate(zip(write.ops, cursors, strict=True)):
            if cur is None:
                got = split[(w, o)]
                if op.guard and not got:
                    return None
                rows.append(got if op.returning else ())
                continue
            if op.guard and cur.rowcount == 0:
                return None
            rows.append(tuple(tuple(r) for r in cur.fetchall()) if op.returning else ())
        results.append(Committed(rows=tuple(rows)))
    return results


_ERRORS: dict[str, type[DirectorateError]] = {
    "InvalidInput": InvalidInput,
    "PersistenceUnavailable": PersistenceUnavailable,
}


def _encode(result: Outcome) -> dict[str, Any]:
    if isinstance(result, DirectorateError):
        return {"error": type(result).__name__, "message": str(result)}
    if isinstance(result, Conflict):
        return {"conflict": result.op_index}
    return {"rows": result.rows}  # tuples: json writes them as arrays


def _decode(data: dict[str, Any]) -> Outcome:
    if "error" in data:
        return _ERRORS.get(data["error"], PersistenceUnavailable)(data["message"])
    if "conflict" in data:
        return Conflict(op_index=data["conflict"])
    return Committed(rows=tuple(tuple(tuple(r) for r in rows) for rows in data["rows"]))


_PREPARED_STATEMENT_GONE = "26000"  # invalid_sql_statement_name


def _connection_lost(conn: psycopg.Connection[Any], exc: psycopg.Error) -> bool:
    """The session is gone or in a state we cannot trust, rather than a statement failed.

    In pipeline mode the server's "terminating connection" can be read before libpq
    sees the socket close, so the connection does not look broken yet; and libpq
    reports a pipeline in a state it cannot leave as an OperationalError without
    a SQLSTATE. Treating these as a lost connection is safe: the batch's outcome
    is then looked up, never guessed.
    """
    if conn.closed or conn.broken:
        return True
    sqlstate = exc.sqlstate
    if sqlstate is None:
        return isinstance(exc, psycopg.OperationalError)
    # Connection exception, shutdown; or one of psycopg's own prepared statements gone
    # (26000: a pipeline aborted, by a deadlock say, while it was being prepared, and
    # psycopg's cache still names it): only a fresh session sets that right.
    return sqlstate.startswith(("08", "57P")) or sqlstate == _PREPARED_STATEMENT_GONE


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
    in flight: when ``max_pending`` are queued, senders wait instead of memory growing.

    ``reconnect_timeout`` None (the default) rides out an outage of any length;
    a number makes the senders hear ``PersistenceUnavailable`` after that long.
    """

    def __init__(
        self,
        dsn: str,
        *,
        on_commit: Callable[[list[tuple[Write, Committed]]], None] | None = None,
        max_pending: int = 10_000,
        reconnect_timeout: float | None = None,
    ) -> None:
        self._slots = _Slots(max_pending)
        self._give_up = _GiveUp()
        self.unwritten: list[str] = []
        """What could not be written because the database stayed away (see ``stop``)."""
        # Held while a write is handed over and while stopping, so no write can slip
        # in behind the stop message (pykka drops told messages after a stop).
        self._lock = threading.Lock()
        self._closed = False
        self._queue = _Queue()
        self.actor_ref = PersistenceActor.start(
            dsn,
            on_commit=on_commit,
            reconnect_timeout=reconnect_timeout,
            slots=self._slots,
            give_up=self._give_up,
            unwritten=self.unwritten,
            queue=self._queue,
        )

    def submit(self, write: Write, *, timeout: float | None = None) -> pykka.Future[WriteResult]:
        """Queue ``write``, waiting for room while ``max_pending`` writes are in flight
        (for at most ``timeout`` seconds; None: as long as it takes)."""
        if not self._slots.take(timeout, closed=lambda: self._closed):
            if self._closed:
                raise PersistenceUnavailable("the writer has stopped")
            raise PersistenceUnavailable(f"the writer has been full for {timeout:.2f} sec")
        future: pykka.Future[WriteResult] = Reply()
        with self._lock:
            if self._closed or not self.actor_ref.is_alive():
                self._slots.give()
                raise PersistenceUnavailable("the writer has stopped")
            if self._queue.put(_Submit(write, future)):
                self.actor_ref.tell(_Flush())
        return future

    def queued(self) -> int:
        """Writes handed over and not yet taken into a batch."""
        return len(self._queue)

    def write(
        self,
        *ops: Op,
        notices: tuple[Any, ...] = (),
        what: str = "",
        owner: Hashable | None = None,
        timeout: float | None = None,
    ) -> WriteResult:
        """Submit one write and wait until it is durable (or conflicted, or failed).

        The writer answers every write (during an outage, once the database is back
        or once the writer stops), so waiting without a timeout never waits for ever.
        """
        write = Write(ops=ops, notices=notices, what=what, owner=owner)
        return self.submit(write, timeout=timeout).get(timeout=timeout)

    def give_up_by(self, at: float) -> None:
        """From ``at`` (``time.monotonic()``) on, a write that cannot reach the database
        fails instead of waiting (an engine shutting down, with its deadline)."""
        self._give_up.by(at)

    def stats(self) -> dict[str, Any]:
        stats = self.actor_ref.ask(_Stats(), timeout=30)
        assert isinstance(stats, dict)
        return stats

    def stop(self, timeout: float | None = 120.0) -> tuple[str, ...]:
        """Commit what is queued, then close. Safe to call twice, from any thread.

        If the database is away, the writer stops waiting for it shortly before
        ``timeout``: what is still queued fails with ``PersistenceUnavailable``.
        Returns what could not be written (``Write.what`` of each).
        """
        with self._lock:
            if self._closed:
                return tuple(self.unwritten)
            self._closed = True
            if timeout is not None:
                # A tenth of the time is left to answer the senders and close.
                self._give_up.by(time.monotonic() + 0.9 * timeout)
            stopped = self.actor_ref.stop(block=False)
        self._slots.wake_all()  # senders waiting for room hear that it has stopped
        assert isinstance(stopped, pykka.Future)
        stopped.get(timeout=timeout)
        return tuple(self.unwritten)
