"""Building one durable write: statements, the events they append, the signals after.

An actor collects what a transition changes into a ``Tx`` and commits it through
the persistence actor; it acts on the transition only once ``commit`` returned
``Committed``. A write's events are appended by one statement at its end (their
sequence numbers in the order they were added); events and signals are published by
the event bus after the commit.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import attrs
import pykka

from directorate.persistence import ops
from directorate.persistence.database import Database
from directorate.persistence.models import ActorType, Event, Severity
from directorate.persistence.ownership import Lease
from directorate.persistence.writer import Op, Write, WriteResult

from .signals import EngineEvent


@attrs.frozen
class EventNotice:
    """An appended event; op ``op_index`` returned its (id, seq) among its rows."""

    op_index: int
    event: Event


class Tx:
    def __init__(self, directive_id: uuid.UUID) -> None:
        self.directive_id = directive_id
        self.ops: list[Op] = []
        """The write's statements, the events' own statement apart."""
        self.events: list[Event] = []
        self.notices: list[Event | EngineEvent] = []
        """Events and signals, in the order they are published."""

    def op(self, op: Op) -> Tx:
        self.ops.append(op)
        return self

    def event(
        self,
        event_type: str,
        data: dict[str, Any] | None = None,
        *,
        severity: Severity = Severity.INFO,
        step_id: uuid.UUID | None = None,
        actor_type: ActorType = ActorType.SYSTEM,
        actor_id: str | None = None,
    ) -> Tx:
        record = Event(
            id=uuid.uuid4(),
            directive_id=self.directive_id,
            seq=0,
            event_type=event_type,
            severity=severity,
            data=_jsonable(data or {}),
            actor_type=actor_type,
            actor_id=actor_id,
            step_id=step_id,
            created_at=datetime.now(UTC),
        )
        self.events.append(record)
        self.notices.append(record)
        return self

    def signal(self, event: EngineEvent) -> Tx:
        self.notices.append(event)
        return self

    def statements(
        self, fence: Lease | None = None
    ) -> tuple[list[Op], tuple[EventNotice | EngineEvent, ...]]:
        """Every statement (the events' last), and the notices pointing at it.

        With a ``fence`` (an engine's lease on the directive), the write applies only
        while the lease holds: the events' statement checks it, or, with no event, a
        statement of its own. Either way it is statement ``fence_index``, the last, so
        it reads the lease after every other statement has taken its locks."""
        statements = list(self.ops)
        if self.events:
            statements.append(ops.append_events(self.directive_id, self.events, fence=fence))
        elif fence is not None:
            statements.append(ops.fence(fence))
        at = len(self.ops)
        notices = tuple(EventNotice(at, n) if isinstance(n, Event) else n for n in self.notices)
        return statements, notices

    @property
    def fence_index(self) -> int:
        """The statement whose guard is the fence (see ``statements``)."""
        return len(self.ops)

    def commit(
        self, db: Database, timeout: float | None = None, *, fence: Lease | None = None
    ) -> WriteResult:
        """Write and wait until it is durable; during an outage, until the database
        is back (or the engine, stopping, gives the write up)."""
        statements, notices = self.statements(fence)
        return db.writer.write(
            *statements,
            notices=notices,
            what=self.what(),
            owner=self.directive_id,
            timeout=timeout,
        )

    def what(self) -> str:
        """For the report of writes an engine stopping during an outage gave up."""
        kinds = ", ".join(dict.fromkeys(e.event_type for e in self.events)) or "no events"
        return f"directive {self.directive_id}: {kinds}"

    def submit(self, db: Database, *, fence: Lease | None = None) -> pykka.Future[WriteResult]:
        """Hand the write to the writer without waiting for its commit."""
        statements, notices = self.statements(fence)
        write = Write(
            ops=tuple(statements), notices=notices, what=self.what(), owner=self.directive_id
        )
        return db.writer.submit(write)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, uuid.UUID | datetime):
        return str(value)
    return value
