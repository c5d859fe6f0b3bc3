"""A step's move that returns its chain's progress (``move_step(progress=True)``)
counts exactly what ``steps_in_progress`` counts after the move, on a real
PostgreSQL, whatever the move: the statement's own snapshot still shows the step as
it was, so the query has to judge it, and its dependents, by its new status."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from persistence_helpers import new_directive

from directorate.persistence import ops
from directorate.persistence.errors import InvalidInput
from directorate.persistence.writer import Committed, PersistenceClient

pytestmark = pytest.mark.integration

# A diamond, a -> (b, c) -> d, and the moves to make, one write each, in order.
JOURNEYS = {
    "all pass": [
        ("a", "ready"),
        ("a", "running"),
        ("a", "passed"),
        ("b", "ready"),
        ("c", "ready"),
        ("b", "running"),
        ("b", "passed"),
        ("c", "running"),
        ("c", "evaluating"),
        ("c", "passed"),
        ("d", "ready"),
        ("d", "running"),
        ("d", "passed"),
    ],
    "a branch blocks": [
        ("a", "ready"),
        ("a", "running"),
        ("a", "passed"),
        ("b", "ready"),
        ("b", "running"),
        ("b", "blocked"),
        ("c", "ready"),
        ("c", "running"),
        ("c", "passed"),
    ],
    "the first is skipped": [("a", "skipped"), ("b", "ready"), ("c", "skipped")],
    "sent back": [("a", "ready"), ("a", "running"), ("a", "evaluating"), ("a", "rework")],
}


def _diamond(client: PersistenceClient) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    directive_id = new_directive(client, status="active")
    chain_id = uuid.uuid4()
    ids = {name: uuid.uuid4() for name in "abcd"}
    deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    rows = [
        {
            "id": ids[n],
            "chain_id": chain_id,
            "directive_id": directive_id,
            "name": n,
            "step_type": "implement",
            "depends_on": [ids[d] for d in deps[n]],
        }
        for n in "abcd"
    ]
    result = client.write(
        ops.insert(
            "directive_chains", id=chain_id, directive_id=directive_id, generation=1, name="c"
        ),
        ops.insert_many("chain_steps", rows),
    )
    assert isinstance(result, Committed)
    return chain_id, ids


@pytest.mark.parametrize("journey", list(JOURNEYS))
def test_the_count_a_move_returns_is_the_count_after_it(
    client: PersistenceClient, journey: str
) -> None:
    chain_id, ids = _diamond(client)
    status = dict.fromkeys("abcd", "pending")
    for name, new in JOURNEYS[journey]:
        moved = client.write(ops.move_step(ids[name], status[name], new, progress=True))
        assert isinstance(moved, Committed), (name, new)
        status[name] = new
        after = client.write(ops.steps_in_progress(chain_id))
        assert isinstance(after, Committed)
        assert moved.scalar(0) == after.scalar(0), (name, new, status)


def test_many_rows_in_one_parameter_read_back_as_one_by_one_inserts(
    client: PersistenceClient, dsn: str
) -> None:
    """``insert_many`` sends its rows as one jsonb parameter: every kind of column
    (uuid, uuid[], jsonb list and object, text, NULL, float, int, timestamptz) reads
    back as the same row written by ``insert``."""
    directive_id = new_directive(client, status="active")
    chain_id = uuid.uuid4()
    client.write(
        ops.insert(
            "directive_chains", id=chain_id, directive_id=directive_id, generation=1, name="c"
        )
    )
    first, second = uuid.uuid4(), uuid.uuid4()

    def row(step_id: uuid.UUID, name: str) -> dict[str, object]:
        return {
            "id": step_id,
            "chain_id": chain_id,
            "directive_id": directive_id,
            "name": name,
            "step_type": "review",
            "description": 'quotes " and \\ and ünïcode',
            "task_plan": None,
            "depends_on": [first, second] if name.startswith("many") else [],
            "requirement_ids": ["R1", "R2"],
            "verifier_config": {"tests": {"command": ["pytest", "-q"]}, "weight": 0.5},
            "editor_x": 12.25,
            "attempt": 3,
            "confidence_score": None,
            "updated_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        }

    one = client.write(ops.insert("chain_steps", **row(first, "one")))
    many = client.write(ops.insert_many("chain_steps", [row(second, "many")]))
    assert isinstance(one, Committed) and isinstance(many, Committed)
    with psycopg.connect(dsn) as conn:
        got = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT name, step_type, description, task_plan, depends_on, requirement_ids,"
                " verifier_config, editor_x, attempt, confidence_score, updated_at"
                " FROM chain_steps WHERE chain_id = %s",
                (chain_id,),
            )
        }
    assert got["many"][3] == [first, second]
    assert got["one"][:3] + got["one"][4:] == got["many"][:3] + got["many"][4:]

    with pytest.raises(InvalidInput, match="NUL byte"):
        ops.insert_many("chain_steps", [{**row(uuid.uuid4(), "nul"), "description": "a\0b"}])
