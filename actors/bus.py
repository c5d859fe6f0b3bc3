"""The event bus: publishes committed changes as blinker signals, off the writer's thread.

The persistence actor calls ``on_commit`` in commit order; the bus is one actor,
so its inbox keeps that order and every subscriber sees a directive's events in
sequence. A subscriber that raises is logged and skipped; one that sleeps only
delays later signals, never the engine, whose actors do not wait for the bus.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import attrs
import pykka

from directorate.persistence.writer import Committed, Write

from . import signals
from .tx import EventNotice

log = logging.getLogger(__name__)


@attrs.frozen
class _Published:
    batch: list[tuple[Write, Committed]]


class EventBus(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, listeners: list[Callable[[Any], None]]) -> None:
        super().__init__()
        self._listeners = listeners

    def on_receive(self, message: Any) -> None:
        if isinstance(message, _Published):
            for write, committed in message.batch:
                seqs: dict[str, int] = {}
                for notice in write.notices:
                    if isinstance(notice, EventNotice) and not seqs:  # one events op a write
                        seqs = {str(i): int(s) for i, s in committed.rows[notice.op_index]}
                    self._publish(notice, seqs)

    def _publish(self, notice: Any, seqs: dict[str, int]) -> None:
        if isinstance(notice, EventNotice):
            event = attrs.evolve(notice.event, seq=seqs[str(notice.event.id)])
            signal = signals.directive_event
        else:
            event = notice
            signal = signals.SIGNAL_FOR[type(notice)]
        for listener in self._listeners:  # the engine's own bookkeeping (wait, progress)
            _guarded(listener, event)
        if signal.receivers:
            for receiver in list(signal.receivers_for(event.directive_id)):
                _guarded(_sender_call(receiver), event)


def _sender_call(receiver: Callable[..., Any]) -> Callable[[Any], Any]:
    def call(event: Any) -> Any:
        return receiver(event.directive_id, event=event)

    return call


def _guarded(fn: Callable[[Any], Any], event: Any) -> None:
    try:
        fn(event)
    except Exception:
        log.exception("a signal subscriber failed on %s", type(event).__name__)


class Bus:
    """Starts the bus actor and gives the writer its ``on_commit`` callback."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[Any], None]] = []
        self.actor_ref = EventBus.start(self.listeners)

    def on_commit(self, batch: list[tuple[Write, Committed]]) -> None:
        if any(write.notices for write, _ in batch):
            self.actor_ref.tell(_Published(batch))

    def stop(self, timeout: float = 30.0) -> None:
        if self.actor_ref.is_alive():
            self.actor_ref.stop(block=True, timeout=timeout)
