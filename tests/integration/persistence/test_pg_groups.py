"""Same-shaped writes of a batch run as one statement each (``grouping``), on a real
PostgreSQL: the rows, the guards' outcomes and the order are those of the writes run
one by one, in fewer statements."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import psycopg
import pytest
from persistence_helpers import RowLock, new_directive
from test_pg_writer import _appends, _block_writer, _events

from directorate.actors.core import changes as c
from directorate.actors.evaluation import Judgement
from directorate.actors.runners import TaskResult
from directorate.actors.writes import write
from directorate.persistence import ops
from directorate.persistence.models import (
    ConfidenceLevel,
    Step,
    StepStatus,
    StepType,
    Task,
    TaskKind,
    TaskStatus,
)
from directorate.persistence.writer import Committed, Conflict, PersistenceClient, Write

pytestmark = pytest.mark.integration

STARTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _start(directive_id: uuid.UUID, n: int, *, owner: uuid.UUID | None = None) -> Write:
    """A write shaped like a directive's start: a guarded move, a row inserted, an
    unguarded update (an int, a jsonb list, a NULL), the events."""
    return Write(
        (
            ops.transition(
                "directives", directive_id, "draft", "active", started_at=STARTED + timedelta(n)
            ),
            ops.insert(
                "directive_commands",
                id=uuid.uuid4(),
                directive_id=directive_id,
                command="pause",
                args={"n": n},
                reason=None,
            ),
            ops.update(
                "directives",
                directive_id,
                chain_generation_count=n,
                requirements=[f"r{n}"],
                base_ref=None,
            ),
            ops.append_events(directive_id, _events(directive_id, f"started {n}")),
        ),
        owner=directive_id if owner is None else owner,
    )


def _row(admin: psycopg.Connection[Any], directive_id: uuid.UUID) -> tuple[Any, ...]:
    row = admin.execute(
        "SELECT status, started_at, chain_generation_count, requirements, base_ref"
        " FROM directives WHERE id = %s",
        (directive_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def _commands(admin: psycopg.Connection[Any], directive_id: uuid.UUID) -> list[Any]:
    rows = admin.execute(
        "SELECT args, reason FROM directive_commands WHERE directive_id = %s", (directive_id,)
    ).fetchall()
    return [tuple(r) for r in rows]


def _submit_together(
    dsn: str,
    client: PersistenceClient,
    admin: psycopg.Connection[Any],
    locks: list[RowLock],
    writes: list[Write],
) -> tuple[list[Any], int]:
    """The writes' results, all handed over while the writer is parked (one batch), and
    the statements that batch sent."""
    before = client.stats()  # (the writer answers only between flushes)
    lock = _block_writer(dsn, client, admin, locks)
    futures = [client.submit(w) for w in writes]
    lock.release()
    results = [f.get(timeout=30) for f in futures]
    after = client.stats()
    # Parking the writer took two statements: the parked write's directive, and it.
    return results, after["statements"] - before["statements"] - 2


def test_same_shaped_writes_run_as_one_statement_each(
    dsn: str, client: PersistenceClient, admin: psycopg.Connection[Any], row_locks: list[RowLock]
) -> None:
    directives = [new_directive(client) for _ in range(5)]
    results, statements = _submit_together(
        dsn, client, admin, row_locks, [_start(d, n) for n, d in enumerate(directives)]
    )
    assert all(isinstance(r, Committed) for r in results), results
    for n, directive_id in enumerate(directives):
        assert _row(admin, directive_id) == ("active", STARTED + timedelta(n), n, [f"r{n}"], None)
        assert _commands(admin, directive_id) == [({"n": n}, None)]
        assert _appends(admin, directive_id) == [(f"started {n}", 1)]
    assert statements == 3 + 1  # the three grouped statements and the events


def test_a_guard_that_misses_in_a_group_conflicts_its_write_alone(
    dsn: str, client: PersistenceClient, admin: psycopg.Connection[Any], row_locks: list[RowLock]
) -> None:
    directives = [new_directive(client) for _ in range(4)]
    moved = directives[2]
    admin.execute("UPDATE directives SET status = 'cancelled' WHERE id = %s", (moved,))
    results, _ = _submit_together(
        dsn, client, admin, row_locks, [_start(d, n) for n, d in enumerate(directives)]
    )
    assert [type(r) for r in results] == [Committed, Committed, Conflict, Committed]
    assert results[2] == Conflict(op_index=0)
    assert _row(admin, moved) == ("cancelled", None, 0, [], None)  # nothing of it applied
    assert _commands(admin, moved) == []
    assert _appends(admin, moved) == []
    for n in (0, 1, 3):
        assert _row(admin, directives[n])[:3] == ("active", STARTED + timedelta(n), n)


def test_writes_of_one_owner_keep_their_order(
    dsn: str, client: PersistenceClient, admin: psycopg.Connection[Any], row_locks: list[RowLock]
) -> None:
    # The second move of `twice` needs the first one applied: were they grouped (run
    # together), its guard would read the row before the first.
    twice, other = new_directive(client), new_directive(client)

    def move(directive_id: uuid.UUID, old: str, new: str) -> Write:
        return Write(
            (
                ops.transition("directives", directive_id, old, new),
                ops.append_events(directive_id, _events(directive_id, new)),
            ),
            owner=directive_id,
        )

    writes = [
        move(twice, "draft", "planning"),
        move(other, "draft", "planning"),
        move(twice, "planning", "active"),
    ]
    results, statements = _submit_together(dsn, client, admin, row_locks, writes)
    assert all(isinstance(r, Committed) for r in results), results
    assert _row(admin, twice)[0] == "active"
    assert _appends(admin, twice) == [("planning", 1), ("active", 2)]
    assert _row(admin, other)[0] == "planning"
    assert statements == 3 + 1  # each move alone (their owners repeat or are alone)


def test_writes_without_an_owner_or_of_another_shape_run_alone(
    dsn: str, client: PersistenceClient, admin: psycopg.Connection[Any], row_locks: list[RowLock]
) -> None:
    first, second, third = (new_directive(client) for _ in range(3))
    anonymous = _start(third, 2, owner=None)
    anonymous = Write(anonymous.ops)  # no owner: it says nothing of whose rows it changes
    results, statements = _submit_together(
        dsn, client, admin, row_locks, [_start(first, 0), _start(second, 1), anonymous]
    )
    assert all(isinstance(r, Committed) for r in results), results
    assert [_row(admin, d)[2] for d in (first, second, third)] == [0, 1, 2]
    assert statements == 3 + 3 + 1  # the two owned grouped, the anonymous one alone


def _ready_step(admin: psycopg.Connection[Any], directive_id: uuid.UUID) -> Step:
    """An active directive with a current chain of one ready step ($0.50 spent of $5)."""
    chain_id, step_id = uuid.uuid4(), uuid.uuid4()
    admin.execute(
        "UPDATE directives SET status = 'active', total_cost_usd = 0.5,"
        " max_total_cost_usd = 5 WHERE id = %s",
        (directive_id,),
    )
    admin.execute(
        "INSERT INTO directive_chains (id, directive_id, generation, name) VALUES (%s, %s, 1, 'c')",
        (chain_id, directive_id),
    )
    admin.execute(
        "INSERT INTO chain_steps (id, chain_id, directive_id, name, step_type, status)"
        " VALUES (%s, %s, %s, 'a', 'implement', 'ready')",
        (step_id, chain_id, directive_id),
    )
    return Step(
        id=step_id,
        chain_id=chain_id,
        directive_id=directive_id,
        name="a",
        step_type=StepType.IMPLEMENT,
        status=StepStatus.READY,
    )


def _dispatch(step: Step, *, seen: c.Seen | None = None, budget: float | None = 4.5) -> Write:
    """The write of a step's dispatch, as ``actors.writes`` makes it."""
    task = Task(
        id=uuid.uuid4(),
        directive_id=step.directive_id,
        kind=TaskKind.STEP,
        instructions=f"do {step.id}",
        step_id=step.id,
        status=TaskStatus.RUNNING,
        workdir="/w",
        budget_usd=budget,
        started_at=STARTED,
    )
    written = write(
        step.directive_id,
        [
            c.StepMoved(step=step, new=StepStatus.RUNNING, values={"attempt": 1}),
            c.RequireLiveChain(chain_id=step.chain_id, seen=seen),
            c.TaskCreated(task=task),
            c.Note(event_type="step_started", data={}, step_id=step.id),
        ],
    )
    statements, _ = written.tx.statements()
    return Write(tuple(statements), owner=step.directive_id)


def _dispatched(admin: psycopg.Connection[Any], step: Step) -> tuple[Any, ...]:
    row = admin.execute(
        "SELECT s.status, s.attempt, t.attempt, t.status, t.instructions, t.budget_usd"
        " FROM chain_steps s LEFT JOIN tasks t ON t.step_id = s.id WHERE s.id = %s",
        (step.id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


SEEN = c.Seen(
    total_cost_usd=0.5,
    total_tokens=0,
    total_agent_turns=0,
    max_total_cost_usd=5.0,
    max_total_tokens=None,
    max_agent_turns=None,
)


@pytest.mark.parametrize("seen", [None, SEEN], ids=["read", "as-seen"])
def test_dispatches_of_a_batch_run_as_one_statement_and_a_missed_guard_conflicts_alone(
    dsn: str,
    client: PersistenceClient,
    admin: psycopg.Connection[Any],
    row_locks: list[RowLock],
    seen: c.Seen | None,
) -> None:
    steps = [_ready_step(admin, new_directive(client)) for _ in range(4)]
    paused = steps[1]
    admin.execute("UPDATE directives SET status = 'paused' WHERE id = %s", (paused.directive_id,))
    results, _ = _submit_together(
        dsn, client, admin, row_locks, [_dispatch(s, seen=seen) for s in steps]
    )
    assert [type(r) for r in results] == [Committed, Conflict, Committed, Committed]
    assert _dispatched(admin, paused) == ("ready", 0, None, None, None, None)
    assert _appends(admin, paused.directive_id) == []
    for s in (steps[0], steps[2], steps[3]):
        assert _dispatched(admin, s) == ("running", 1, 1, "running", f"do {s.id}", 4.5)
        assert _appends(admin, s.directive_id) == [
            ("step_status_changed", 1),
            ("step_started", 2),
        ]
    # With no guard missing, the batch's dispatches are one statement (and the events).
    more = [_ready_step(admin, new_directive(client)) for _ in range(3)]
    results, statements = _submit_together(
        dsn, client, admin, row_locks, [_dispatch(s, seen=seen) for s in more]
    )
    assert all(isinstance(r, Committed) for r in results), results
    assert statements == 1 + 1
    assert [_dispatched(admin, s)[:4] for s in more] == [("running", 1, 1, "running")] * 3


def test_grouped_dispatches_as_seen_conflict_where_the_directive_moved_or_a_human_is_asked(
    dsn: str, client: PersistenceClient, admin: psycopg.Connection[Any], row_locks: list[RowLock]
) -> None:
    steps = [_ready_step(admin, new_directive(client)) for _ in range(4)]
    spent, raised, asked = steps[1], steps[2], steps[3]
    admin.execute("UPDATE directives SET total_cost_usd = 1.5 WHERE id = %s", (spent.directive_id,))
    admin.execute(
        "UPDATE directives SET max_total_cost_usd = 9 WHERE id = %s", (raised.directive_id,)
    )
    admin.execute(
        "INSERT INTO directive_approvals (id, directive_id, approval_type, description)"
        " VALUES (%s, %s, 'circuit_breaker', 'asked')",
        (uuid.uuid4(), asked.directive_id),
    )
    results, _ = _submit_together(
        dsn, client, admin, row_locks, [_dispatch(s, seen=SEEN) for s in steps]
    )
    assert [type(r) for r in results] == [Committed, Conflict, Conflict, Conflict]
    assert _dispatched(admin, steps[0])[:2] == ("running", 1)
    assert [_dispatched(admin, s)[:3] for s in steps[1:]] == [("ready", 0, None)] * 3


def test_a_group_takes_nones_in_columns_of_any_type(
    dsn: str, client: PersistenceClient, admin: psycopg.Connection[Any], row_locks: list[RowLock]
) -> None:
    """A None is sent as NULL of its column's type (psycopg would send text): a column
    of Nones only, and Nones beside numbers, in a float and a bigint column."""
    directives = [new_directive(client, max_total_cost_usd=3.0) for _ in range(3)]

    def limits(directive_id: uuid.UUID, tokens: int | None) -> Write:
        return Write(
            (
                ops.update(
                    "directives", directive_id, max_total_cost_usd=None, max_agent_turns=tokens
                ),
                ops.append_events(directive_id, _events(directive_id, "limits")),
            ),
            owner=directive_id,
        )

    results, statements = _submit_together(
        dsn,
        client,
        admin,
        row_locks,
        [limits(d, t) for d, t in zip(directives, [None, 7, None], strict=True)],
    )
    assert all(isinstance(r, Committed) for r in results), results
    assert statements == 1 + 1  # grouped, not run write by write after a failed group
    rows = [
        admin.execute(
            "SELECT max_total_cost_usd, max_agent_turns FROM directives WHERE id = %s", (d,)
        ).fetchone()
        for d in directives
    ]
    assert rows == [(None, None), (None, 7), (None, None)]


def _running_step(
    admin: psycopg.Connection[Any], directive_id: uuid.UUID
) -> tuple[Step, uuid.UUID]:
    """``_ready_step`` dispatched: running attempt 1, its task running; and a second
    step of the chain still pending on it."""
    step = _ready_step(admin, directive_id)
    task_id = uuid.uuid4()
    admin.execute(
        "UPDATE chain_steps SET status = 'running', attempt = 1 WHERE id = %s", (step.id,)
    )
    admin.execute(
        "INSERT INTO tasks (id, directive_id, step_id, kind, attempt, status, instructions)"
        " VALUES (%s, %s, %s, 'step', 1, 'running', 'do')",
        (task_id, directive_id, step.id),
    )
    admin.execute(
        "INSERT INTO chain_steps (id, chain_id, directive_id, name, step_type, depends_on)"
        " VALUES (%s, %s, %s, 'b', 'implement', %s)",
        (uuid.uuid4(), step.chain_id, directive_id, [step.id]),
    )
    return attrs.evolve(step, status=StepStatus.RUNNING, attempt=1), task_id


def _report(step: Step, task_id: uuid.UUID, cost: float) -> Write:
    """The write of a report judged inline: recorded, evaluating, stored, passed, and
    the chain's progress, as ``actors.writes`` makes it."""
    verdict = Judgement(
        evaluation_id=uuid.uuid4(),
        passed=True,
        composite_score=0.9,
        confidence_level=ConfidenceLevel.GREEN,
        summary="green",
    )
    result = TaskResult(status=TaskStatus.SUCCEEDED, exit_code=0, cost_usd=cost, output_tail="ok")
    evaluating = attrs.evolve(step, status=StepStatus.EVALUATING)
    written = write(
        step.directive_id,
        [
            c.TaskRecorded(task_id=task_id, result=result, step=step),
            c.StepMoved(step=step, new=StepStatus.EVALUATING),
            c.EvaluationStored(
                judgement=verdict, chain_id=step.chain_id, step=step, task_id=task_id
            ),
            c.StepMoved(step=evaluating, new=StepStatus.PASSED, values={"confidence_score": 0.9}),
            c.ChainProgress(chain_id=step.chain_id),
        ],
    )
    statements, _ = written.tx.statements()
    return Write(tuple(statements), owner=step.directive_id)


def test_reports_of_a_batch_run_as_one_statement_each_with_the_rows_of_each(
    dsn: str, client: PersistenceClient, admin: psycopg.Connection[Any], row_locks: list[RowLock]
) -> None:
    running = [_running_step(admin, new_directive(client)) for _ in range(3)]
    _, stale_task = running[2]
    admin.execute(  # reported already: its second report is stored nowhere, adds nothing
        "UPDATE tasks SET status = 'failed', finished_at = now() WHERE id = %s", (stale_task,)
    )
    writes = [_report(s, t, cost) for (s, t), cost in zip(running, [0.25, 1.0, 2.0], strict=True)]
    results, statements = _submit_together(dsn, client, admin, row_locks, writes)
    assert all(isinstance(r, Committed) for r in results), results
    # The report, the move with the chain's progress, the evaluation, and the events.
    assert statements == 3 + 1
    totals = [r.rows[0][0] for r in results if isinstance(r, Committed)]
    assert totals == [(0.75, 1, 0, 0), (1.5, 1, 0, 0), (0.5, 0, 0, 0)]  # $0.50 spent before
    progress = [r.rows[1] for r in results if isinstance(r, Committed)]
    assert progress == [((1,),)] * 3  # b, pending on a passed step, may start: at work
    # The same writes alone, one batch each, return the same rows.
    alone = [_running_step(admin, new_directive(client)) for _ in range(3)]
    admin.execute(
        "UPDATE tasks SET status = 'failed', finished_at = now() WHERE id = %s", (alone[2][1],)
    )
    singles = [
        client.submit(_report(s, t, cost)).get(timeout=30)
        for (s, t), cost in zip(alone, [0.25, 1.0, 2.0], strict=True)
    ]
    assert [r.rows[:2] for r in singles if isinstance(r, Committed)] == [
        r.rows[:2] for r in results if isinstance(r, Committed)
    ]
    for step, task_id in running:
        row = admin.execute(
            "SELECT s.status, t.status FROM chain_steps s JOIN tasks t ON t.id = %s"
            " WHERE s.id = %s",
            (task_id, step.id),
        ).fetchone()
        assert row == ("passed", "failed" if task_id == stale_task else "succeeded")
