"""Exit statuses, and a command's outcome as the command line reports it.

Shared by every subcommand module; it imports none of them, so they import it
(and not ``app``, which imports them).
"""

from __future__ import annotations

import argparse
import sys
import uuid

from directorate.persistence.database import Database
from directorate.persistence.models import CommandStatus

from ..commands.client import wait_for_outcome
from . import views

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_WAITING = 0, 1, 2, 3


def report_outcome(args: argparse.Namespace, db: Database, command_id: uuid.UUID) -> int:
    command = wait_for_outcome(db, command_id, timeout=args.timeout)
    if args.json:
        print(views.to_json(command))
    elif command.status is CommandStatus.APPLIED:
        print(f"{command.command}: applied")
    elif command.status is CommandStatus.REJECTED:
        print(f"{command.command}: rejected: {command.reason}")
    if command.status is CommandStatus.PENDING:
        print(
            f"no engine answered within {args.timeout:g} s; the {command.command} command "
            f"{command.id} stays queued (start one with `directorate daemon`)",
            file=sys.stderr,
        )
        return EXIT_WAITING
    return EXIT_OK if command.status is CommandStatus.APPLIED else EXIT_FAILED
