"""Migrations and the schema's own guarantees (DESIGN §4, issue point 3)."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
import pytest
from persistence_helpers import wait_until

from directorate.persistence import models
from directorate.persistence.migrate import MIGRATION_LOCK_KEY, available_migrations, migrate

pytestmark = pytest.mark.integration

STATUS_ENUMS = {
    "directives": models.DirectiveStatus,
    "directive_chains": models.ChainStatus,
    "chain_steps": models.StepStatus,
    "tasks": models.TaskStatus,
    "directive_approvals": models.ApprovalStatus,
    "directive_commands": models.CommandStatus,
}


def _migrations(conn: psycopg.Connection[Any]) -> list[tuple[int, str]]:
    return [(v, n) for v, n in conn.execute("SELECT version, name FROM schema_migrations")]


def test_migrating_a_migrated_database_is_a_no_op(dsn: str, admin: psycopg.Connection[Any]) -> None:
    before = admin.execute("SELECT version, name, applied_at FROM schema_migrations").fetchall()
    assert [v for v, _, _ in before] == [v for v, _, _ in available_migrations()]

    assert migrate(dsn) == []
    assert migrate(dsn) == []

    after = admin.execute("SELECT version, name, applied_at FROM schema_migrations").fetchall()
    assert after == before


def test_two_concurrent_migrations_take_turns_and_apply_each_once(
    empty_dsn: str,
) -> None:
    # Hold the migration lock ourselves so both migrators are provably queued on
    # it at the same moment; then let them go.
    holder = psycopg.connect(empty_dsn, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrate(empty_dsn))
        except BaseException as exc:  # reported below, with the other thread's outcome
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()

    def waiting() -> int:
        row = holder.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
        return row[0] if row else 0

    wait_until(lambda: waiting() == 2, what="both migrators to wait on the advisory lock")
    holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    holder.close()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    names = [name for _, name, _ in available_migrations()]
    assert sorted(results, key=len) == [[], names]
    with psycopg.connect(empty_dsn) as conn:
        assert _migrations(conn) == [(v, n) for v, n, _ in available_migrations()]


def test_migrations_are_numbered_and_applied_in_order(empty_dsn: str) -> None:
    found = available_migrations()
    versions = [v for v, _, _ in found]
    assert versions == sorted(set(versions)) and versions[0] == 1
    assert migrate(empty_dsn) == [n for _, n, _ in found]
    with psycopg.connect(empty_dsn) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY applied_at, version")
        assert [r[0] for r in rows] == versions


def test_every_status_column_has_a_check_with_exactly_its_enum_values(
    admin: psycopg.Connection[Any],
) -> None:
    for table, enum in STATUS_ENUMS.items():
        defs = [
            row[0]
            for row in admin.execute(
                "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c"
                " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)"
                " WHERE c.conrelid = %s::regclass AND c.contype = 'c' AND a.attname = 'status'",
                (table,),
            )
        ]
        assert len(defs) == 1, f"{table}.status: {defs}"
        quoted = set(_quoted_values(defs[0]))
        assert quoted == {member.value for member in enum}, table


def _quoted_values(text: str) -> list[str]:
    parts = text.split("'")
    return parts[1::2]


@pytest.mark.parametrize("table", sorted(STATUS_ENUMS))
def test_a_bad_status_is_rejected_by_the_database(
    admin: psycopg.Connection[Any], table: str
) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        _insert_with_bad_status(admin, table)


def _insert_with_bad_status(admin: psycopg.Connection[Any], table: str) -> None:
    directive_id = uuid.uuid4()
    admin.execute("INSERT INTO directives (id, title, goal) VALUES (%s, 't', 'g')", (directive_id,))
    chain_id, step_id = uuid.uuid4(), uuid.uuid4()
    admin.execute(
        "INSERT INTO directive_chains (id, directive_id, generation, name) VALUES (%s, %s, 1, 'c')",
        (chain_id, directive_id),
    )
    admin.execute(
        "INSERT INTO chain_steps (id, chain_id, directive_id, name, step_type)"
        " VALUES (%s, %s, %s, 'a', 'implement')",
        (step_id, chain_id, directive_id),
    )
    row_ids = {
        "directives": directive_id,
        "directive_chains": chain_id,
        "chain_steps": step_id,
    }
    if table == "tasks":
        row_ids[table] = uuid.uuid4()
        admin.execute(
            "INSERT INTO tasks (id, directive_id, step_id, kind, instructions)"
            " VALUES (%s, %s, %s, 'step', 'do')",
            (row_ids[table], directive_id, step_id),
        )
    elif table == "directive_approvals":
        row_ids[table] = uuid.uuid4()
        admin.execute(
            "INSERT INTO directive_approvals (id, directive_id, approval_type, description)"
            " VALUES (%s, %s, 'step_review', 'x')",
            (row_ids[table], directive_id),
        )
    elif table == "directive_commands":
        row_ids[table] = uuid.uuid4()
        admin.execute(
            "INSERT INTO directive_commands (id, directive_id, command) VALUES (%s, %s, 'pause')",
            (row_ids[table], directive_id),
        )
    admin.execute(f"UPDATE {table} SET status = 'bogus' WHERE id = %s", (row_ids[table],))


def test_duplicate_step_name_in_a_chain_is_rejected(admin: psycopg.Connection[Any]) -> None:
    directive_id, chain_id = uuid.uuid4(), uuid.uuid4()
    admin.execute("INSERT INTO directives (id, title, goal) VALUES (%s, 't', 'g')", (directive_id,))
    admin.execute(
        "INSERT INTO directive_chains (id, directive_id, generation, name) VALUES (%s, %s, 1, 'c')",
        (chain_id, directive_id),
    )
    insert = (
        "INSERT INTO chain_steps (id, chain_id, directive_id, name, step_type)"
        " VALUES (%s, %s, %s, 'same', 'implement')"
    )
    admin.execute(insert, (uuid.uuid4(), chain_id, directive_id))
    with pytest.raises(psycopg.errors.UniqueViolation) as caught:
        admin.execute(insert, (uuid.uuid4(), chain_id, directive_id))
    assert caught.value.diag.constraint_name == "chain_steps_chain_id_name_key"


def test_duplicate_event_seq_is_rejected(admin: psycopg.Connection[Any]) -> None:
    directive_id = uuid.uuid4()
    admin.execute("INSERT INTO directives (id, title, goal) VALUES (%s, 't', 'g')", (directive_id,))
    insert = (
        "INSERT INTO directive_events (id, directive_id, seq, event_type) VALUES (%s, %s, 1, 'x')"
    )
    admin.execute(insert, (uuid.uuid4(), directive_id))
    with pytest.raises(psycopg.errors.UniqueViolation):
        admin.execute(insert, (uuid.uuid4(), directive_id))


def test_postgres_itself_refuses_nul_in_text_and_jsonb(admin: psycopg.Connection[Any]) -> None:
    # Why the boundary check exists: a NUL would otherwise fail a whole batch.
    with pytest.raises(psycopg.DataError):
        admin.execute("SELECT %s::text", ("a\x00b",))
    with pytest.raises(psycopg.DataError):
        admin.execute("SELECT %s::jsonb", ('{"a": "\\u0000"}',))


def test_every_table_has_a_uuid_primary_key_and_its_foreign_keys(
    admin: psycopg.Connection[Any],
) -> None:
    keys = dict(
        admin.execute(
            "SELECT c.conrelid::regclass::text, format_type(a.atttypid, a.atttypmod)"
            " FROM pg_constraint c"
            " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
            " WHERE c.contype = 'p' AND c.connamespace = 'public'::regnamespace"
        ).fetchall()
    )
    for table in [*STATUS_ENUMS, "directive_evaluations", "directive_events", "write_batches"]:
        assert keys[table] == "uuid", table
    foreign = {
        (table, column, target)
        for table, column, target in admin.execute(
            "SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text"
            " FROM pg_constraint c"
            " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
            " WHERE c.contype = 'f'"
        )
    }
    expected = {
        ("directive_chains", "directive_id", "directives"),
        ("chain_steps", "chain_id", "directive_chains"),
        ("chain_steps", "directive_id", "directives"),
        ("tasks", "directive_id", "directives"),
        ("tasks", "step_id", "chain_steps"),
        ("directive_evaluations", "step_id", "chain_steps"),
        ("directive_evaluations", "task_id", "tasks"),
        ("directive_approvals", "directive_id", "directives"),
        ("directive_approvals", "step_id", "chain_steps"),
        ("directive_events", "directive_id", "directives"),
        ("directive_commands", "directive_id", "directives"),
    }
    assert expected <= foreign, expected - foreign


def test_a_step_of_a_missing_chain_is_rejected(admin: psycopg.Connection[Any]) -> None:
    directive_id = uuid.uuid4()
    admin.execute("INSERT INTO directives (id, title, goal) VALUES (%s, 't', 'g')", (directive_id,))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        admin.execute(
            "INSERT INTO chain_steps (id, chain_id, directive_id, name, step_type)"
            " VALUES (%s, %s, %s, 'a', 'implement')",
            (uuid.uuid4(), uuid.uuid4(), directive_id),
        )


@pytest.mark.parametrize(
    ("table", "columns", "unique", "predicate"),
    [
        ("chain_steps", "(chain_id, status)", False, None),
        ("chain_steps", "(chain_id, name)", True, None),
        ("directive_events", "(directive_id, seq)", True, None),
        ("directive_approvals", "(directive_id, created_at)", False, "'pending'"),
        ("directive_commands", "(created_at)", False, "'pending'"),
        ("tasks", "(step_id, attempt)", False, None),
        ("directives", "(status)", False, "'planning'"),
    ],
)
def test_the_hot_reads_have_indexes(
    admin: psycopg.Connection[Any],
    table: str,
    columns: str,
    unique: bool,
    predicate: str | None,
) -> None:
    defs = [
        row[0]
        for row in admin.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (table,))
    ]
    matching = [d for d in defs if d.endswith(columns) or f"{columns} WHERE" in d]
    assert matching, f"no index on {table} {columns}: {defs}"
    assert any(("UNIQUE" in d) == unique for d in matching), matching
    if predicate:
        assert any(predicate in d for d in matching), matching


def test_the_hot_reads_use_their_indexes(admin: psycopg.Connection[Any]) -> None:
    admin.execute("SET enable_seqscan = off")  # tiny tables: make the planner show its options
    plans = {
        "steps by chain and status": "SELECT * FROM chain_steps"
        " WHERE chain_id = gen_random_uuid() AND status = 'pending'",
        "events by directive and seq": "SELECT * FROM directive_events"
        " WHERE directive_id = gen_random_uuid() AND seq > 3 ORDER BY seq",
        "pending approvals": "SELECT * FROM directive_approvals"
        " WHERE status = 'pending' ORDER BY created_at",
        "pending commands": "SELECT * FROM directive_commands"
        " WHERE status = 'pending' ORDER BY created_at LIMIT 100",
    }
    for what, statement in plans.items():
        plan = "\n".join(r[0] for r in admin.execute(f"EXPLAIN {statement}"))
        assert "Index" in plan, f"{what}: {plan}"
