"""Builders for the statements the engine writes (each returns an ``Op``).

Column names come from this code, never from users; values always travel as
parameters. dict and list values go to jsonb, except the uuid[] columns.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
from psycopg.types.json import Jsonb

from .models import Event
from .ownership import Lease
from .queries import query
from .validation import reject_nul
from .writer import Op

_IDENT = re.compile(r"^[a-z_]+$")
_ARRAY_COLUMNS = frozenset({"depends_on"})
TABLES = frozenset(
    {
        "directives",
        "directive_chains",
        "chain_steps",
        "tasks",
        "directive_evaluations",
        "directive_approvals",
        "directive_events",
        "directive_commands",
    }
)


def _value(column: str, value: Any) -> Any:
    reject_nul(column, value)  # PostgreSQL would refuse it mid-batch: refuse it here
    if column not in _ARRAY_COLUMNS and isinstance(value, dict | list):
        return Jsonb(value)
    return value


def _check(table: str, columns: Iterable[str]) -> None:
    _check_names(table, tuple(columns))


@functools.cache
def _check_names(table: str, columns: tuple[str, ...]) -> None:
    # Cached: the engine writes the same few shapes of statement over and over.
    if table not in TABLES or not all(_IDENT.match(c) for c in columns):
        raise ValueError(f"bad table or column in {table}: {list(columns)}")


def insert(table: str, **values: Any) -> Op:
    _check(table, values)
    columns = ", ".join(values)
    marks = ", ".join(f"%({c})s" for c in values)
    sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
    return Op(
        sql,
        {c: _value(c, v) for c, v in values.items()},
        group=_inserts(sql, table, tuple(values)),
    )


def transition(
    table: str,
    row_id: uuid.UUID,
    expected: str | Iterable[str],
    new_status: str,
    **values: Any,
) -> Op:
    """Compare-and-set: change status only if it still is one of ``expected``."""
    expected_list = [expected] if isinstance(expected, str) else list(expected)
    return update(table, row_id, status=new_status, _where_status=expected_list, **values)


def update(
    table: str,
    row_id: uuid.UUID,
    *,
    _where_status: list[str] | None = None,
    _now: Iterable[str] = (),
    **values: Any,
) -> Op:
    """UPDATE one row by id; a guard when ``_where_status`` is given.

    ``_now`` names timestamp columns to set to the transaction time.
    """
    now_columns = list(_now)
    _check(table, [*values, *now_columns])
    sets = [f"{c} = %({c})s" for c in values] + [f"{c} = now()" for c in now_columns]
    if table in ("directives", "chain_steps"):
        sets.append("updated_at = now()")
    params = {c: _value(c, v) for c, v in values.items()}
    params["_id"] = row_id
    where = "id = %(_id)s"
    if _where_status is not None and len(_where_status) == 1:
        # The usual guard: a text parameter is adapted far faster than an array.
        where += " AND status = %(_expected)s"
        params["_expected"] = str(_where_status[0])
    elif _where_status is not None:
        where += " AND status = ANY(%(_expected)s)"
        params["_expected"] = [str(s) for s in _where_status]
    sql = f"UPDATE {table} SET {', '.join(sets)} WHERE {where}"
    many = _where_status is not None and len(_where_status) > 1
    return Op(
        sql,
        params,
        guard=_where_status is not None,
        # A guard on one of several statuses is rare: such a statement runs alone.
        group=None if many else _updates(sql, table, tuple(values), tuple(sets[len(values) :])),
    )


def append_event(
    directive_id: uuid.UUID,
    event_type: str,
    data: dict[str, Any] | None = None,
    *,
    severity: str = "info",
    actor_type: str = "system",
    actor_id: str | None = None,
    step_id: uuid.UUID | None = None,
    event_id: uuid.UUID | None = None,
) -> Op:
    """Append an event; the op returns its gap-free sequence number."""
    return Op(
        query("append_event"),
        {
            "id": event_id or uuid.uuid4(),
            "directive_id": directive_id,
            "event_type": event_type,
            "severity": str(severity),
            "data": _value("data", data or {}),
            "actor_type": str(actor_type),
            "actor_id": actor_id,
            "step_id": step_id,
        },
        returning=True,
    )


def add_cost(directive_id: uuid.UUID, cost: float) -> Op:
    return Op(query("add_cost"), {"directive_id": directive_id, "cost": cost}, returning=True)


def add_usage(directive_id: uuid.UUID, *, cost: float, tokens: int | None, turns: int | None) -> Op:
    """Add a judge's (or another non-task session's) dollars, tokens and turns to the
    directive's totals (None: unknown, adds nothing); returns the new totals."""
    params = {"directive_id": directive_id, "cost": cost, "tokens": tokens, "turns": turns}
    return Op(query("add_usage"), params, returning=True)


def require_live_chain(
    directive_id: uuid.UUID, chain_id: uuid.UUID, directive_as: Mapping[str, Any] | None = None
) -> Op:
    """Guard: the directive is active and the chain is its current one (and, with
    ``directive_as``, as ``move_step`` has it)."""
    params: dict[str, Any] = {"directive_id": directive_id, "chain_id": chain_id}
    sql = query("require_live_chain")
    if directive_as is not None:
        params |= {f"seen_{c}": directive_as[c] for c in SEEN_COLUMNS}
        sql = sql.rstrip().rstrip(";") + _as_seen(_named)
    return Op(sql, params, guard=True)


def require_no_pending_approval(directive_id: uuid.UUID, approval_type: str) -> Op:
    """Guard: no approval of ``approval_type`` is pending for the directive."""
    return Op(
        query("require_no_pending_approval"),
        {"directive_id": directive_id, "approval_type": approval_type},
        guard=True,
    )


def cancel_pending_approvals(directive_id: uuid.UUID) -> Op:
    return Op(query("cancel_pending_approvals"), {"directive_id": directive_id})


def record_task_result(
    directive_id: uuid.UUID,
    task_id: uuid.UUID,
    *,
    status: str,
    exit_code: int | None,
    cost: float,
    summary: str | None,
    output_tail: str | None,
    tokens: int | None = None,
    turns: int | None = None,
    session_id: str | None = None,
) -> Op:
    """Store a task's outcome once and add its cost, tokens and turns (None: unknown,
    adds nothing); returns (total cost, stored 0/1, total tokens, total turns).

    Not a guard: a report always commits, whatever happened to its step meanwhile.
    """
    params = _report(directive_id, task_id, exit_code, cost, summary, output_tail, tokens, turns)
    params.update(status=str(status), session_id=session_id)
    return Op(query("record_task_result"), params, returning=True, group=RESULTS_OF_BATCH)


@attrs.frozen
class _Results:
    """``record_task_result`` of several writes (so of several directives) as one
    statement: the tasks' reports stored from one VALUES list, and each directive's
    totals moved by what its stored report adds, returning per task what the single
    statement does (the totals, whether this report was the one stored)."""

    key: str = "record_task_result"

    # (parameter, the tasks column it is typed as)
    COLUMNS = (
        ("id", "id"),
        ("directive_id", "directive_id"),
        ("status", "status"),
        ("exit_code", "exit_code"),
        ("cost", "cost_usd"),
        ("tokens", "tokens"),
        ("turns", "turns"),
        ("summary", "summary"),
        ("output_tail", "output_tail"),
        ("session_id", "session_id"),
    )

    def combine(self, results: Sequence[Op]) -> Op | None:
        if len(results) * len(self.COLUMNS) > _MAX_PARAMETERS:
            return None
        if len({_param(op, "directive_id") for op in results}) < len(results):
            return None  # one directive's totals twice in one UPDATE: not allowed
        if len({_param(op, "id") for op in results}) < len(results):
            return None  # one task's report twice: which one was stored would not be known
        rows, params = _typed_values(
            [("tasks", c, p) for p, c in self.COLUMNS],
            [[_param(op, p) for p, _ in self.COLUMNS] for op in results],
        )
        return Op(
            f"WITH v AS ({rows}),"
            " done AS (UPDATE tasks AS t SET status = v.status, exit_code = v.exit_code,"
            " cost_usd = v.cost, tokens = v.tokens, turns = v.turns, summary = v.summary,"
            " output_tail = v.output_tail, session_id = v.session_id, finished_at = now()"
            " FROM v WHERE t.id = v.id AND t.finished_at IS NULL"
            " RETURNING v.id, t.cost_usd, t.tokens, t.turns)"
            " UPDATE directives AS d"
            " SET total_cost_usd = d.total_cost_usd + coalesce(done.cost_usd, 0),"
            " total_tokens = d.total_tokens + coalesce(done.tokens, 0),"
            " total_agent_turns = d.total_agent_turns + coalesce(done.turns, 0),"
            " updated_at = now()"
            " FROM v LEFT JOIN done ON done.id = v.id WHERE d.id = v.directive_id"
            " RETURNING v.id, d.total_cost_usd, (done.id IS NOT NULL)::int,"
            " d.total_tokens, d.total_agent_turns",
            params,
            raw=True,
        )

    def split(
        self, results: Sequence[Op], rows: Sequence[tuple[Any, ...]]
    ) -> list[tuple[tuple[Any, ...], ...]]:
        by_task = {row[0]: row[1:] for row in rows}
        return [(by_task[i],) if (i := _param(op, "id")) in by_task else () for op in results]


RESULTS_OF_BATCH = _Results()


def _report(
    directive_id: uuid.UUID,
    task_id: uuid.UUID,
    exit_code: int | None,
    cost: float,
    summary: str | None,
    output_tail: str | None,
    tokens: int | None,
    turns: int | None,
) -> dict[str, Any]:
    """The parameters of a task's report, for record_task_result and record_stale_attempt."""
    return {
        "directive_id": directive_id,
        "id": task_id,
        "exit_code": exit_code,
        "cost": cost,
        "tokens": tokens,
        "turns": turns,
        "summary": _value("summary", summary),
        "output_tail": _value("output_tail", output_tail),
    }


def record_task_process(
    task_id: uuid.UUID,
    *,
    pid: int,
    pgid: int,
    host: str,
    process_started_at: datetime | None,
    supervisor_pid: int,
    supervisor_started_at: datetime | None,
    engine_id: uuid.UUID | None = None,
) -> Op:
    """Record which processes run an unfinished task (for recovery: DESIGN §18)."""
    return Op(
        query("record_task_process"),
        {
            "id": task_id,
            "pid": pid,
            "pgid": pgid,
            "host": _value("host", host),
            "process_started_at": process_started_at,
            "supervisor_pid": supervisor_pid,
            "supervisor_started_at": supervisor_started_at,
            "engine_id": engine_id,
        },
    )


def request_cancel_tasks(directive_id: uuid.UUID, reason: str) -> Op:
    """Mark a directive's unfinished tasks as asked to stop (not as stopped)."""
    return Op(query("request_cancel_tasks"), {"directive_id": directive_id, "reason": reason})


def abandon_tasks(
    directive_id: uuid.UUID,
    *,
    live: Iterable[uuid.UUID] = (),
    step_id: uuid.UUID | None = None,
    summary: str = "the engine running this task stopped",
) -> Op:
    """Finish, as cancelled, the unfinished tasks that no live agent runs (``live``)."""
    return Op(
        query("abandon_tasks"),
        {
            "directive_id": directive_id,
            "step_id": step_id,
            "live": list(live),
            "summary": summary,
        },
    )


def steps_in_progress(chain_id: uuid.UUID) -> Op:
    """Returns how many steps of the chain are ready, running, evaluating or in rework."""
    return Op(query("steps_in_progress"), {"chain_id": chain_id}, returning=True)


def _in_live_chain(step: str) -> str:
    """A move's guard on the step row ``step``: its chain current, its directive not
    finished."""
    return (
        " AND EXISTS (SELECT 1 FROM directive_chains c JOIN directives d ON d.id = c.directive_id"
        f" WHERE c.id = {step}.chain_id AND c.status = 'active'"
        " AND d.status NOT IN ('completed', 'failed', 'cancelled'))"
    )


SEEN_COLUMNS = (
    "total_cost_usd",
    "total_tokens",
    "total_agent_turns",
    "max_total_cost_usd",
    "max_total_tokens",
    "max_agent_turns",
)
"""The directive's columns a dispatch decided on a handed-over row may require unchanged
(``directive_as``): what its breakers and its task's budget were figured from."""

_NO_HUMAN_ASKED = (
    " AND NOT EXISTS (SELECT 1 FROM directive_approvals a WHERE a.directive_id = d.id"
    " AND a.status = 'pending' AND a.approval_type IN ('circuit_breaker', 'agent_unavailable'))"
)


def _as_seen(seen: Callable[[str], str]) -> str:
    """Conditions on ``d``, the directive: each ``SEEN_COLUMNS`` column as the
    expression ``seen(column)`` gives it, and no breaker or unavailable agent waiting."""
    return "".join(f" AND d.{c} IS NOT DISTINCT FROM {seen(c)}" for c in SEEN_COLUMNS) + (
        _NO_HUMAN_ASKED
    )


def _in_active_chain(step: str, seen: Callable[[str], str] | None = None) -> str:
    """The dispatch's guard on the step row ``step``: its chain current, its directive
    active (and, with ``seen``, as ``_as_seen`` has it)."""
    return (
        " AND EXISTS (SELECT 1 FROM directive_chains c JOIN directives d ON d.id = c.directive_id"
        f" WHERE c.id = {step}.chain_id AND c.status = 'active' AND d.status = 'active'"
        + (_as_seen(seen) if seen is not None else "")
        + ")"
    )


def _named(column: str) -> str:
    return f"%(seen_{column})s"


def move_step(
    step_id: uuid.UUID,
    expected: str,
    new_status: str,
    *,
    directive_active: bool = False,
    directive_as: Mapping[str, Any] | None = None,
    progress: bool = False,
    **values: Any,
) -> Op:
    """Compare-and-set of a step's status that also requires its chain to be current and
    its directive not finished (``directive_active``: active, for a dispatch): a
    decision made on a stale view changes nothing.

    ``directive_as``: the ``SEEN_COLUMNS`` values the decision read from a directive row
    it did not read itself; the dispatch also requires them unchanged and no breaker or
    unavailable agent awaiting a human (with ``directive_active`` only).

    ``progress``: the statement returns how many steps of the chain are at work once
    it has moved (``steps_in_progress`` in the same statement)."""
    op = transition("chain_steps", step_id, expected, new_status, **values)
    params = op.params
    if not directive_active:
        guard = _in_live_chain("chain_steps")
    elif directive_as is None:
        guard = _in_active_chain("chain_steps")
    else:
        assert isinstance(params, dict)
        params = params | {f"seen_{c}": directive_as[c] for c in SEEN_COLUMNS}
        guard = _in_active_chain("chain_steps", _named)
    sql = op.sql + guard
    if progress:
        sql += " RETURNING " + query("steps_in_progress_after_move")
    group = None
    if not directive_active:  # a dispatch groups as a whole (``dispatch_step``)
        assert isinstance(op.group, _Updates)  # one expected status: it has one
        group = _moves(op.group, sql, progress)
    return Op(sql, params, guard=True, returning=progress, group=group)


_PROGRESS_NAMES = (
    ("chain_steps.chain_id", "t.chain_id"),
    ("chain_steps.id", "t.id"),
    ("%(status)s", "v.status"),
)
"""``steps_in_progress_after_move`` as a grouped move's RETURNING: the moved row is
``t``, its new status ``v.status``. The steps of a group are of different directives
(``grouping``), so of different chains: each counts its chain as its single move does."""


@functools.cache
def _moves(transition: _Updates, sql: str, progress: bool) -> _Updates:
    """The group of a move (``move_step``): its transition's, under the move's guard."""
    counted = ""
    if progress:
        counted = query("steps_in_progress_after_move")
        for single, grouped in _PROGRESS_NAMES:
            counted = counted.replace(single, grouped)
    return attrs.evolve(transition, key=sql, where=_in_live_chain("t"), returning=counted)


def dispatch_step(move: Op, **task: Any) -> Op:
    """A step's move to running and its new task's row as one statement: the task is
    inserted only if the move matched, and the statement is guarded by that insert."""
    _check("tasks", task)
    columns = ", ".join(task)
    marks = ", ".join(f"%(task_{c})s" for c in task)
    assert isinstance(move.params, dict)
    params = dict(move.params) | {f"task_{c}": _value(c, v) for c, v in task.items()}
    sql = (
        f"WITH moved AS ({move.sql} RETURNING 1) INSERT INTO tasks ({columns}) "
        f"SELECT {marks} FROM moved"
    )
    moved = tuple(c for c in move.params if c not in ("_id", "_expected", *_SEEN_PARAMS))
    seen = "seen_total_cost_usd" in move.params
    return Op(sql, params, guard=True, group=_dispatches(sql, moved, tuple(task), seen))


_SEEN_PARAMS = tuple(f"seen_{c}" for c in SEEN_COLUMNS)


@attrs.frozen
class _Dispatches:
    """Dispatches (``dispatch_step``) of the same columns as one statement: the steps'
    moves as one ``UPDATE ... FROM (VALUES ...)`` under the same guard, and the tasks of
    the steps it moved inserted from the same VALUES (``_typed_values``), returning
    their steps' ids (each dispatch's guard: its step moved)."""

    key: str
    moved: tuple[str, ...]
    """The step's columns the move sets (its status, its attempt)."""
    task: tuple[str, ...]
    seen: bool
    """Guarded on the directive as seen (``move_step``'s ``directive_as``)."""

    def combine(self, dispatches: Sequence[Op]) -> Op | None:
        seen = _SEEN_PARAMS if self.seen else ()
        keys = ("_id", "_expected", *self.moved, *seen, *(f"task_{c}" for c in self.task))
        if len(dispatches) * len(keys) > _MAX_PARAMETERS:
            return None
        if len({_param(op, "_id") for op in dispatches}) < len(dispatches):
            return None  # one step twice: which one moved would not be known
        sources = [
            ("chain_steps", "id"),
            ("chain_steps", "status"),
            *(("chain_steps", c) for c in self.moved),
            *(("directives", c) for c in SEEN_COLUMNS if self.seen),
            *(("tasks", c) for c in self.task),
        ]
        rows, params = _typed_values(
            [(table, column, key) for (table, column), key in zip(sources, keys, strict=True)],
            [[_param(op, k) for k in keys] for op in dispatches],
        )
        sets = ", ".join([*(f"{c} = v.{c}" for c in self.moved), "updated_at = now()"])
        guard = _in_active_chain("t", (lambda c: f"v.seen_{c}") if self.seen else None)
        return Op(
            f"WITH v AS ({rows}),"
            f" moved AS (UPDATE chain_steps AS t SET {sets} FROM v"
            f" WHERE t.id = v._id AND t.status = v._expected{guard} RETURNING t.id)"
            f" INSERT INTO tasks ({', '.join(self.task)})"
            f" SELECT {', '.join(f'v.task_{c}' for c in self.task)}"
            " FROM v JOIN moved ON moved.id = v._id RETURNING step_id",
            params,
            raw=True,
        )

    def split(
        self, dispatches: Sequence[Op], rows: Sequence[tuple[Any, ...]]
    ) -> list[tuple[tuple[Any, ...], ...]]:
        moved = {row[0] for row in rows}
        return [((i,),) if (i := _param(op, "_id")) in moved else () for op in dispatches]


@functools.cache
def _dispatches(sql: str, moved: tuple[str, ...], task: tuple[str, ...], seen: bool) -> _Dispatches:
    return _Dispatches(sql, moved, task, seen)


def insert_many(table: str, rows: Sequence[dict[str, Any]]) -> Op:
    """One INSERT of rows that all have the same columns, as one jsonb parameter:
    a VALUES list would take a parameter per cell, which psycopg converts afresh for
    every statement (past 50 parameters it caches no query), and a chain's steps
    are many cells."""
    columns = list(rows[0])
    _check(table, columns)
    if any(list(row) != columns for row in rows):
        raise ValueError(f"rows of different columns for {table}")
    cells = [{c: _json_cell(c, row[c]) for c in columns} for row in rows]
    names = ", ".join(columns)
    sql = (
        f"INSERT INTO {table} ({names})"
        f" SELECT {names} FROM jsonb_populate_recordset(NULL::{table}, %(rows)s)"
    )
    return Op(sql, {"rows": Jsonb(cells)}, group=_recordsets(sql))


def _json_cell(column: str, value: Any) -> Any:
    """``value`` as JSON that jsonb_populate_recordset reads back as the column's type
    (a JSON array into a uuid[] column, a nested object into a jsonb one)."""
    reject_nul(column, value)
    if isinstance(value, uuid.UUID | datetime):
        return str(value) if isinstance(value, uuid.UUID) else value.isoformat()
    if isinstance(value, list | tuple) and column in _ARRAY_COLUMNS:
        return [str(v) for v in value]
    return value


def append_events(
    directive_id: uuid.UUID, events: Sequence[Event], *, fence: Lease | None = None
) -> Op:
    """Append a write's events in one statement, numbered in order (gap-free: the
    directive row's lock serialises appends); returns (id, seq) per event. With a
    ``fence``, only while that lease holds: otherwise it matches no row (a guard)."""
    rows = [
        {
            "id": str(e.id),
            "event_type": e.event_type,
            "severity": str(e.severity),
            "data": e.data,
            "actor_type": str(e.actor_type),
            "actor_id": e.actor_id,
            "step_id": str(e.step_id) if e.step_id else None,
        }
        for e in events
    ]
    return Op(
        query("append_events"),
        {
            "directive_id": directive_id,
            "n": len(rows),
            "events": _value("events", rows),
            "owner": fence.owner if fence else None,
            "epoch": fence.epoch if fence else None,
        },
        returning=True,
        guard=fence is not None,
        merge=EVENTS_OF_BATCH,
    )


@attrs.frozen
class _EventsOfBatch:
    """The writes' ``append_events`` of a batch as one statement (the writer's Merge)."""

    key: str = "append_events"

    def combine(self, appends: Sequence[Op]) -> Op | None:
        # Keyed by the directive's id as text, made once per write: a UUID's str() and
        # hash() are Python code, which ran for every event of a 500-write batch.
        fences: dict[str, tuple[Any, Any]] = {}
        counts: dict[str, int] = {}
        events: list[dict[str, Any]] = []
        for op in appends:
            params = op.params
            assert isinstance(params, dict)
            directive_id = str(params["directive_id"])
            fence = (params["owner"], params["epoch"])
            if fences.setdefault(directive_id, fence) != fence:
                return None  # two fences on one directive: each write on its own
            counts[directive_id] = counts.get(directive_id, 0) + params["n"]
            events.extend({"directive_id": directive_id, **e} for e in params["events"].obj)
        directives = [
            {
                "directive_id": d,
                "n": n,
                "owner": str(fences[d][0]) if fences[d][0] else None,
                "epoch": fences[d][1],
            }
            for d, n in sorted(counts.items())  # one lock order (the text sorts as the ids)
        ]
        return Op(
            query("append_events_of_batch"),
            {"directives": Jsonb(directives), "events": Jsonb(events)},
            returning=True,
        )

    def split(
        self, appends: Sequence[Op], rows: Sequence[tuple[Any, ...]]
    ) -> list[tuple[tuple[Any, ...], ...]]:
        seq = {str(row[0]): row for row in rows}
        split = []
        for op in appends:
            params = op.params
            assert isinstance(params, dict)
            ids = [e["id"] for e in params["events"].obj]
            split.append(tuple(seq[i] for i in ids if i in seq))
        return split


EVENTS_OF_BATCH = _EventsOfBatch()


def fence(lease: Lease) -> Op:
    """Guard: the engine still holds ``lease`` (for a write that appends no event)."""
    return Op(query("fence"), _lease(lease), guard=True)


def release_lease(lease: Lease) -> Op:
    """Guard: give ``lease`` up, if it is still held."""
    return Op(query("release_lease"), _lease(lease), guard=True)


def _lease(lease: Lease) -> dict[str, Any]:
    return {"directive_id": lease.directive_id, "owner": lease.owner, "epoch": lease.epoch}


def record_stale_attempt(
    directive_id: uuid.UUID,
    task_id: uuid.UUID,
    *,
    exit_code: int | None,
    cost: float,
    summary: str | None,
    output_tail: str | None,
    tokens: int | None = None,
    turns: int | None = None,
) -> Op:
    """A report from an agent of an engine that lost the lease: its cost, tokens and
    turns are counted once, its outcome is not the task's (DESIGN §17)."""
    params = _report(directive_id, task_id, exit_code, cost, summary, output_tail, tokens, turns)
    return Op(query("record_stale_attempt"), params, returning=True)


# ----------------------------------------------------------------- groups (grouping.py)
# How the same statement of a group's writes runs as one (``Op.group``): the rows of
# every write's INSERT in one INSERT, every write's UPDATE by id in one UPDATE ... FROM
# VALUES that returns the ids it changed, so that each guard's outcome is still known.

_MAX_PARAMETERS = 30_000
"""PostgreSQL takes at most 65,535 parameters in a statement; a group past this many
runs its statements one by one."""


@attrs.frozen
class _Inserts:
    """Single-row INSERTs of the same columns as one multi-row INSERT (VALUES in an
    INSERT are coerced to the columns' types, as the single rows' are)."""

    key: str
    table: str
    columns: tuple[str, ...]

    def combine(self, inserts: Sequence[Op]) -> Op | None:
        if len(inserts) * len(self.columns) > _MAX_PARAMETERS:
            return None
        values, params = _values(
            [[_param(op, c) for c in self.columns] for op in inserts],
            [_null_of(self.table, c) for c in self.columns],
        )
        return Op(
            f"INSERT INTO {self.table} ({', '.join(self.columns)}) VALUES {values}",
            params,
            raw=True,
        )

    def split(
        self, inserts: Sequence[Op], rows: Sequence[tuple[Any, ...]]
    ) -> list[tuple[tuple[Any, ...], ...]]:
        return [() for _ in inserts]


@attrs.frozen
class _Recordsets:
    """``insert_many`` statements of the same table and columns as one: their rows in
    one jsonb parameter."""

    key: str

    def combine(self, inserts: Sequence[Op]) -> Op:
        cells = [cell for op in inserts for cell in _param(op, "rows").obj]
        return Op(self.key, {"rows": Jsonb(cells)})

    def split(
        self, inserts: Sequence[Op], rows: Sequence[tuple[Any, ...]]
    ) -> list[tuple[tuple[Any, ...], ...]]:
        return [() for _ in inserts]


@attrs.frozen
class _Updates:
    """UPDATEs of one row by id, setting the same columns (guarded on one status, or
    not), as one ``UPDATE ... FROM (VALUES ...) RETURNING id`` (``_typed_values``).
    ``where``: more of the guard, on the row ``t``; ``returning``: what each single
    UPDATE returns, computed for its row ``t`` (its new values in ``v``)."""

    key: str
    table: str
    columns: tuple[str, ...]
    extra: tuple[str, ...]
    """The SET items that take no parameter (``c = now()``)."""
    where: str = ""
    returning: str = ""

    def combine(self, updates: Sequence[Op]) -> Op | None:
        guarded = updates[0].guard
        keys = ("_id", "_expected", *self.columns) if guarded else ("_id", *self.columns)
        if len(updates) * len(keys) > _MAX_PARAMETERS:
            return None
        if len({_param(op, "_id") for op in updates}) < len(updates):
            return None  # one row twice: which one matched would not be known
        columns = ("id", *(["status"] if guarded else []), *self.columns)
        rows, params = _typed_values(
            [(self.table, c, k) for c, k in zip(columns, keys, strict=True)],
            [[_param(op, k) for k in keys] for op in updates],
        )
        sets = [f"{c} = v.{c}" for c in self.columns] + list(self.extra)
        where = "t.id = v._id" + (" AND t.status = v._expected" if guarded else "")
        returning = "t.id" + (f", {self.returning}" if self.returning else "")
        return Op(
            f"UPDATE {self.table} AS t SET {', '.join(sets)} FROM ({rows}) AS v"
            f" WHERE {where}{self.where} RETURNING {returning}",
            params,
            raw=True,
        )

    def split(
        self, updates: Sequence[Op], rows: Sequence[tuple[Any, ...]]
    ) -> list[tuple[tuple[Any, ...], ...]]:
        changed = {row[0]: row for row in rows}
        return [
            ((changed[i][1:] if self.returning else changed[i]),) if i in changed else ()
            for i in (_param(op, "_id") for op in updates)
        ]


def _values(rows: Sequence[Sequence[Any]], nulls: Sequence[str]) -> tuple[str, list[Any]]:
    """``($1, $2), ($3, NULL)``: ``rows`` as the rows of a VALUES list in PostgreSQL's own
    placeholders (which psycopg sends as they are: see ``Op.raw``), and the parameters.

    A None is the literal NULL (psycopg would send a text parameter, which a VALUES
    row cannot match to a column of another type), and in a column of Nones only the
    first row's is ``nulls[column]``, a NULL of the column's own type: a VALUES column
    of untyped NULLs alone would be taken as text."""
    empty = {i for i in range(len(nulls)) if all(row[i] is None for row in rows)}
    params: list[Any] = []
    text = []
    for r, row in enumerate(rows):
        cells = []
        for i, value in enumerate(row):
            if value is not None:
                params.append(value)
                cells.append(f"${len(params)}")
            else:
                cells.append(nulls[i] if r == 0 and i in empty else "NULL")
        text.append("(" + ", ".join(cells) + ")")
    return ", ".join(text), params


def _null_of(table: str, column: str) -> str:
    return f"(SELECT {column} FROM {table} WHERE false)"


def _typed_values(
    sources: Sequence[tuple[str, str, str]], rows: Sequence[Sequence[Any]]
) -> tuple[str, list[Any]]:
    """``rows`` as a typed VALUES list, and its parameters: a SELECT of no row naming
    each ``(table, column, name)`` of ``sources``, then ``UNION ALL VALUES`` (see
    ``_values``), so that each parameter is taken as its column's type, as in the
    single statements the rows come from."""
    tables = list(dict.fromkeys(table for table, _, _ in sources))
    alias = {table: f"x{n}" for n, table in enumerate(tables)}
    typed = ", ".join(f"{alias[table]}.{column} AS {name}" for table, column, name in sources)
    values, params = _values(rows, [_null_of(table, column) for table, column, _ in sources])
    froms = ", ".join(f"{table} {alias[table]}" for table in tables)
    return f"SELECT {typed} FROM {froms} WHERE false UNION ALL VALUES {values}", params


def _param(op: Op, name: str) -> Any:
    assert isinstance(op.params, dict)
    return op.params[name]


@functools.cache
def _inserts(sql: str, table: str, columns: tuple[str, ...]) -> _Inserts:
    return _Inserts(sql, table, columns)


@functools.cache
def _recordsets(sql: str) -> _Recordsets:
    return _Recordsets(sql)


@functools.cache
def _updates(sql: str, table: str, columns: tuple[str, ...], extra: tuple[str, ...]) -> _Updates:
    return _Updates(sql, table, columns, extra)
