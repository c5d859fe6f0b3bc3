"""The writer's batch-result encoding and its error translation (no database)."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from directorate.persistence.errors import InvalidInput, PersistenceUnavailable
from directorate.persistence.writer import (
    Committed,
    Conflict,
    _connection_lost,
    _decode,
    _dumps,
    _encode,
    _translate,
)


def test_results_survive_the_round_trip_through_write_batches() -> None:
    for result in [
        Committed(rows=((), ((1,), (2,)), (("a", 3),))),
        Conflict(op_index=2),
        Committed(rows=()),
        InvalidInput("rejected by the database: too long"),
    ]:
        decoded = _decode(json.loads(_dumps(_encode(result))))  # as write_batches keeps it
        if isinstance(result, InvalidInput):
            assert isinstance(decoded, InvalidInput) and str(decoded) == str(result)
        else:
            assert decoded == result


def test_an_unencodable_parameter_is_invalid_input_with_its_cause() -> None:
    cause = TypeError("Object of type object is not JSON serializable")
    error = _translate(cause)
    assert isinstance(error, InvalidInput) and error.__cause__ is cause


def test_other_driver_errors_are_persistence_unavailable() -> None:
    cause = psycopg.OperationalError("server closed the connection")
    error = _translate(cause)
    assert isinstance(error, PersistenceUnavailable) and error.__cause__ is cause


class _Open:
    """A connection as _connection_lost sees one that is neither closed nor broken."""

    closed = False
    broken = False


def test_which_errors_call_for_a_fresh_session() -> None:
    lost = [
        psycopg.errors.AdminShutdown("terminating connection"),  # 57P01
        psycopg.errors.ConnectionFailure("connection failure"),  # 08006
        # psycopg's cache names a prepared statement a pipeline's abort took away
        psycopg.errors.InvalidSqlStatementName('prepared statement "_pg3_14" does not exist'),
        psycopg.OperationalError("no SQLSTATE: the pipeline is in a state it cannot leave"),
    ]
    kept = [
        psycopg.errors.UniqueViolation("duplicate key"),
        psycopg.errors.DeadlockDetected("deadlock detected"),
        psycopg.errors.InvalidTextRepresentation("invalid input syntax for type uuid"),
    ]
    conn: Any = _Open()
    assert [_connection_lost(conn, e) for e in lost] == [True] * len(lost)
    assert [_connection_lost(conn, e) for e in kept] == [False] * len(kept)
