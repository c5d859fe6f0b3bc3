"""Tokens and turns are stored with the task's result and added to the directive's
totals in the same statement, once; an unknown count is NULL and adds nothing."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from persistence_helpers import new_directive

from directorate.persistence import ops
from directorate.persistence.writer import Committed, PersistenceClient


def new_task(client: PersistenceClient, directive_id: uuid.UUID) -> uuid.UUID:
    task_id = uuid.uuid4()
    insert = ops.insert(
        "tasks", id=task_id, directive_id=directive_id, kind="planning", instructions="plan it",
        budget_usd=2.5,
    )  # fmt: skip
    assert isinstance(client.write(insert), Committed)
    return task_id


def record(
    client: PersistenceClient, directive_id: uuid.UUID, task_id: uuid.UUID, **counts: Any
) -> tuple[Any, ...]:
    result = client.write(
        ops.record_task_result(
            directive_id, task_id, status="succeeded", exit_code=0, cost=0.25, summary=None,
            output_tail="", **counts,
        )
    )  # fmt: skip
    assert isinstance(result, Committed)
    [row] = result.rows[0]
    return tuple(row)


def test_a_report_adds_its_tokens_and_turns_once_and_an_unknown_adds_nothing(
    client: PersistenceClient, admin: psycopg.Connection[Any]
) -> None:
    directive_id = new_directive(client, max_total_tokens=10**12, max_agent_turns=10**6)
    first, second, unknown = (new_task(client, directive_id) for _ in range(3))
    # (total cost, stored, total tokens, total turns)
    assert record(client, directive_id, first, tokens=1500, turns=3) == (0.25, 1, 1500, 3)
    assert record(client, directive_id, first, tokens=99, turns=99) == (0.25, 0, 1500, 3)
    assert record(client, directive_id, second, tokens=10**10, turns=1) == (
        0.5,
        1,
        10**10 + 1500,
        4,
    )
    assert record(client, directive_id, unknown) == (0.75, 1, 10**10 + 1500, 4)
    rows = admin.execute(
        "SELECT id, tokens, turns, budget_usd FROM tasks WHERE directive_id = %s", (directive_id,)
    ).fetchall()
    assert {r[0]: r[1:] for r in rows} == {
        first: (1500, 3, 2.5),
        second: (10**10, 1, 2.5),
        unknown: (None, None, 2.5),
    }
    limits = admin.execute(
        "SELECT max_total_tokens, max_agent_turns FROM directives WHERE id = %s", (directive_id,)
    ).fetchone()
    assert limits == (10**12, 10**6)


@pytest.mark.parametrize(
    "values",
    [
        {"max_total_tokens": 0},
        {"max_agent_turns": -1},
        {"total_tokens": -5},
        {"total_agent_turns": -1},
    ],
)
def test_the_schema_refuses_limits_and_totals_out_of_range(
    admin: psycopg.Connection[Any], values: dict[str, int]
) -> None:
    columns = ", ".join(values)
    with pytest.raises(psycopg.errors.CheckViolation):
        admin.execute(
            f"INSERT INTO directives (id, title, goal, {columns}) VALUES (%s, 't', 'g', %s)",
            (uuid.uuid4(), *values.values()),
        )
