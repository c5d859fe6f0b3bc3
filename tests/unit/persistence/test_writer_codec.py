"""The writer's batch-result encoding and its error translation (no database)."""

from __future__ import annotations

import json

import psycopg

from directorate.persistence.errors import InvalidInput, PersistenceUnavailable
from directorate.persistence.writer import (
    Committed,
    Conflict,
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
