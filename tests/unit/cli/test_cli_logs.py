"""JSON log lines: the ids a record is about, from ``extra=`` or from its message."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from directorate.actors.cli.logs import JsonFormatter

D, S, T = (str(uuid.uuid4()) for _ in range(3))


def line(message: str, *args: object, **extra: object) -> dict[str, object]:
    record = logging.LogRecord(
        "directorate.actors.engine", logging.WARNING, "f.py", 1, message, args, None
    )
    for name, value in extra.items():
        setattr(record, name, value)
    parsed: dict[str, object] = json.loads(JsonFormatter().format(record))
    return parsed


@pytest.mark.parametrize(
    ("message", "args", "extra", "ids"),
    [
        ("directive %s: taken over", (D,), {}, {"directive_id": D}),
        ("step %s: gave up on %s", (S, "x"), {}, {"step_id": S}),
        ("could not record the report of task %s", (T,), {}, {"task_id": T}),
        ("engine shut down: %s", ("fine",), {}, {}),
        (
            "directive %s: %s",
            (D, f"step {S}"),
            {"task_id": uuid.UUID(T)},
            {"directive_id": D, "step_id": S, "task_id": T},
        ),
        ("a directive named %s", ("not-an-id",), {}, {}),
    ],
)
def test_a_json_line_names_the_ids_it_is_about(
    message: str, args: tuple[object, ...], extra: dict[str, object], ids: dict[str, str]
) -> None:
    parsed = line(message, *args, **extra)
    assert {k: v for k, v in parsed.items() if k.endswith("_id")} == ids
    assert parsed["message"] == message % args and parsed["level"] == "warning"


def test_an_exception_is_one_json_value() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, "f.py", 1, "failed", (), sys.exc_info())
    text = JsonFormatter().format(record)
    assert "\n" not in text and "ValueError: boom" in json.loads(text)["exception"]
