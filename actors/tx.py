"""Building one durable write: statements, the events they append, the signals after.

An actor collects what a transition changes into a ``Tx`` and commits it through
the persistence actor; it acts on the transition only once ``commit`` returned
``Committed``. Events and signals are published by the event bus after the commit.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import attrs

from directorate.persistence import ops
from directorate.persistence.database import Database
from directorate.persistence.models import ActorType, Event, Severity
from directorate.persistence.writer import Op, WriteResult

from .signals import EngineEvent


@attrs.frozen
class EventNotice:
    """An appended event; its seq is what op ``op_index`` returned."""

    op_index: int
    event: Event


class Tx:
    def __init__(self, directive_id: uuid.UUID) -> None:
        self.directive_id = directive_id
        self.ops: list[Op] = []
        self.notices: list[Any] = []

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
        event_id = uuid.uuid4()
        data = _jsonable(data or {})
        self.ops.append(
            ops.append_event(
                self.directive_id,
                event_type,
                data,
                severity=severity,
                actor_type=actor_type,
                actor_id=actor_id,
                step_id=step_id,
                event_id=event_id,
            )
        )
        record = Event(
            id=event_id,
            directive_id=self.directive_id,
            seq=0,
            event_type=event_type,
            severity=severity,
            data=data,
            actor_type=actor_type,
            actor_id=actor_id,
            step_id=step_id,
            created_at=datetime.now(UTC),
        )
        self.notices.append(EventNotice(len(self.ops) - 1, record))
        return self

    def signal(self, event: EngineEvent) -> Tx:
        self.notices.append(event)
        return self

    def commit(self, db: Database, timeout: float = 120.0) -> WriteResult:
        return db.writer.write(*self.ops, notices=tuple(self.notices), timeout=timeout)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, uuid.UUID | datetime):
        return str(value)
    return value
