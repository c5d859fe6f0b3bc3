"""The client's half of the command path: store a command, read back its outcome.

A process that does not drive the directive (the command line, the HTTP server)
calls ``issue_command``: one durable write inserts the pending row and NOTIFYs
``directorate_commands`` with the row's id (PostgreSQL delivers a notification
only when its transaction commits). The engine that drives the directive applies
it (``consumer.CommandConsumer``); ``wait_for_outcome`` reads the outcome back.
The client needs no engine: it imports nothing of the consumer's side.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from directorate.persistence import ops
from directorate.persistence.database import Database
from directorate.persistence.errors import PersistenceUnavailable
from directorate.persistence.models import Command, CommandStatus, CommandType
from directorate.persistence.writer import Conflict, Op

CHANNEL = "directorate_commands"
"""The NOTIFY channel the consumers LISTEN on; the payload is the command's id."""


def issue_command(
    db: Database,
    command: CommandType,
    directive_id: uuid.UUID | None,
    args: dict[str, Any] | None = None,
) -> uuid.UUID:
    """Store a pending command and wake the daemons; returns the command's id."""
    command_id = uuid.uuid4()
    result = db.writer.write(
        ops.insert(
            "directive_commands",
            id=command_id,
            directive_id=directive_id,
            command=str(command),
            args=args or {},
        ),
        Op("SELECT pg_notify(%s, %s)", (CHANNEL, str(command_id))),
    )
    if isinstance(result, Conflict):  # an insert has no guard; kept for the type checker
        raise PersistenceUnavailable("the command was not stored")
    return command_id


def wait_for_outcome(
    db: Database, command_id: uuid.UUID, timeout: float, interval: float = 0.1
) -> Command:
    """The command once a daemon applied or rejected it, or as it stands at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        command = db.reads.command(command_id)
        if command.status is not CommandStatus.PENDING or time.monotonic() >= deadline:
            return command
        time.sleep(interval)
