"""Log formats for ``directorate daemon --log-format``: text for people, JSON lines
for machines.

A JSON line carries the time, level, logger and message, the traceback if any, and
the ids the record is about: ``directive_id``, ``step_id`` and ``task_id``, given as
``extra=`` or, as the engine's messages say them ("directive 1f0c…: …", "task …"),
read from the message.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

IDS = ("directive_id", "step_id", "task_id")
_NAMED_ID = re.compile(
    r"\b(directive|step|task) ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b"
)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def ids_of(record: logging.LogRecord, message: str) -> dict[str, str]:
    found = {f"{kind}_id": value for kind, value in _NAMED_ID.findall(message)}
    for name in IDS:
        given = getattr(record, name, None)
        if given is not None:
            found[name] = str(given)
    return {name: found[name] for name in IDS if name in found}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
            **ids_of(record, message),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: int, log_format: str) -> None:
    """The root logger's one handler on stderr, in ``log_format`` ("text" or "json")."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)
