"""Webhooks: a JSON POST when a human is needed or a directive ends.

The engine's notifier hears every event the engine commits (a listener of its
event bus, so two engines in one process do not both tell) and picks those a
person wants to be told of: an approval required, a circuit breaker tripped, a
directive ended. Each goes to the directive's ``[notify] webhook`` and to every
``--notify-webhook`` of the daemon.

Nothing here may slow the engine: the signal handler only appends to a queue. A
dispatcher thread finds each event's receivers (one read of the directive, then
remembered) and hands it to the receiver's own sender thread, which posts its
events one at a time, in order, retrying a failure with exponential backoff. A slow
or failing receiver delays only its own later events; none is dropped until it has
been refused ``MAX_ATTEMPTS`` times. What is still queued at shutdown is tried until
the shutdown's deadline and then logged as undelivered. The payload's ``id`` (the
event's) lets a receiver drop a repeat (a POST whose answer was lost is sent again).
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from directorate.persistence.errors import DirectorateError
from directorate.persistence.models import Directive, Event

log = logging.getLogger(__name__)

NOTABLE = {
    "approval_requested": "approval_required",
    "circuit_breaker_tripped": "breaker_tripped",
    "agent_unavailable": "agent_unavailable",
    "directive_completed": "directive_ended",
    "directive_failed": "directive_ended",
}
"""Event types that are told, and the kind each is told as."""
MAX_ATTEMPTS = 10
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 60.0
POST_TIMEOUT_S = 10.0
KNOWN_KEPT = 10_000
"""Directives whose title and webhook are remembered (each read once, then kept)."""


def kind_of(event: Event) -> str | None:
    """What ``event`` is told as, or None when it is not told."""
    if event.event_type == "status_changed" and event.data.get("new_status") == "cancelled":
        return "directive_ended"
    return NOTABLE.get(event.event_type)


def backoff_s(attempt: int) -> float:
    """The wait after the ``attempt``-th failure (1-based)."""
    return float(min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (attempt - 1)))


def payload(kind: str, event: Event, directive: Directive | None) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "kind": kind,
        "directive": {
            "id": str(event.directive_id),
            "title": directive.title if directive else None,
        },
        "event": {
            "seq": event.seq,
            "type": event.event_type,
            "severity": str(event.severity),
            "data": event.data,
            "step_id": None if event.step_id is None else str(event.step_id),
            "created_at": None if event.created_at is None else event.created_at.isoformat(),
        },
    }


def post_json(url: str, body: dict[str, Any]) -> None:
    """POST ``body``; raises unless the receiver answers 2xx."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body, default=str).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "directorate"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=POST_TIMEOUT_S) as answer:
        if not 200 <= answer.status < 300:
            raise urllib.error.HTTPError(url, answer.status, "not 2xx", answer.headers, None)


@attrs.define
class Sender:
    """One receiver's queue and the thread that empties it, in order."""

    url: str
    post: Callable[[str, dict[str, Any]], None]
    stop: threading.Event
    queue: collections.deque[dict[str, Any]] = attrs.field(factory=collections.deque)
    wake: threading.Condition = attrs.field(factory=threading.Condition)
    quit: threading.Event = attrs.field(factory=threading.Event)
    """Set when the shutdown's deadline has passed: give up on what is left."""
    delivered: int = 0
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="directorate-webhook", daemon=True)
        self.thread.start()

    def put(self, body: dict[str, Any]) -> None:
        with self.wake:
            self.queue.append(body)
            self.wake.notify()

    def _run(self) -> None:
        while True:
            with self.wake:
                while not self.queue and not self.stop.is_set():
                    self.wake.wait()
                if not self.queue or self.quit.is_set():
                    return
                body = self.queue[0]
            self._deliver(body)
            with self.wake:
                self.queue.popleft()
                self.wake.notify_all()

    def _deliver(self, body: dict[str, Any]) -> None:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                self.post(self.url, body)
                self.delivered += 1
                return
            except Exception as exc:  # any failure of the receiver's: try again later
                reason = f"{type(exc).__name__}: {exc}"
            if attempt == MAX_ATTEMPTS:
                break
            log.info("webhook %s: attempt %d failed (%s); again later", self.url, attempt, reason)
            if self.quit.wait(backoff_s(attempt)):
                break
        log.error(
            "webhook %s: %s %s not delivered (%s)", self.url, body["kind"], body["id"], reason
        )

    def drain(self, until: float) -> int:
        """Wait until the queue is empty or ``until`` (then give up on the rest);
        returns how many events were left undelivered."""
        with self.wake:
            while self.queue and time.monotonic() < until:
                self.wake.wait(until - time.monotonic())
            left = len(self.queue)
        self.quit.set()
        with self.wake:
            self.wake.notify_all()
        return left


class Notifier:
    """Tells the webhooks of the events they are to hear of (see the module's doc)."""

    def __init__(
        self,
        directive: Callable[[uuid.UUID], Directive],
        webhooks: Iterable[str] = (),
        post: Callable[[str, dict[str, Any]], None] = post_json,
    ) -> None:
        self._directive = directive
        self._global = tuple(webhooks)
        self._post = post
        self._stop = threading.Event()
        self._events: collections.deque[tuple[str, Event]] = collections.deque()
        self._wake = threading.Condition()
        self._senders: dict[str, Sender] = {}
        self._known: dict[uuid.UUID, Directive | None] = {}
        self._thread = threading.Thread(
            target=self._dispatch, name="directorate-notify", daemon=True
        )

    def start(self) -> Notifier:
        self._thread.start()
        return self

    def heard(self, event: Any) -> None:
        """An event the engine published (a listener of its bus, after commit)."""
        if not isinstance(event, Event) or self._stop.is_set():
            return
        kind = kind_of(event)
        if kind is not None:
            with self._wake:
                self._events.append((kind, event))
                self._wake.notify()

    def _dispatch(self) -> None:
        while True:
            with self._wake:
                while not self._events and not self._stop.is_set():
                    self._wake.wait()
                if not self._events:
                    return
                kind, event = self._events.popleft()
            directive = self._lookup(event.directive_id)
            own = directive.notify.webhook if directive else None
            body = payload(kind, event, directive)
            for url in dict.fromkeys([*self._global, *([own] if own else [])]):
                self._sender(url).put(body)

    def _lookup(self, directive_id: uuid.UUID) -> Directive | None:
        if len(self._known) > KNOWN_KEPT:  # a daemon's years of directives: start afresh
            self._known.clear()
        if directive_id not in self._known:
            try:
                self._known[directive_id] = self._directive(directive_id)
            except DirectorateError as exc:  # told without a title, to the global hooks
                log.warning("webhooks: directive %s unreadable: %s", directive_id, exc)
                return None
        return self._known[directive_id]

    def _sender(self, url: str) -> Sender:
        sender = self._senders.get(url)
        if sender is None:
            sender = self._senders[url] = Sender(url, self._post, self._stop)
            sender.start()
        return sender

    def stop(self, timeout: float = 10.0) -> int:
        """Deliver what is queued within ``timeout``; returns how many were not."""
        until = time.monotonic() + timeout
        with self._wake:
            self._stop.set()
            self._wake.notify_all()
        for sender in list(self._senders.values()):
            with sender.wake:  # an idle sender waits for work: it may go once its queue is empty
                sender.wake.notify_all()
        self._thread.join(max(0.0, until - time.monotonic()))
        left = sum(sender.drain(until) for sender in list(self._senders.values()))
        if left:
            log.error("webhooks: %d notification(s) undelivered at shutdown", left)
        return left
