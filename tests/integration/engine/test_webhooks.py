"""Webhooks against real local HTTP servers: a receiver that fails its first tries
gets every notification once, in order; a receiver that hangs does not hold the
engine up, and is told once it answers."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from callable_agent import CallableAgent
from engine_helpers import wait_for

from directorate.actors import DirectiveSpec, DirectiveStatus, StepSpec
from directorate.actors import notify as notify_module
from directorate.persistence.errors import InvalidInput
from directorate.persistence.models import NotifySpec


class Receiver:
    """An HTTP server on a free port: refuses the first ``failures`` POSTs with 500,
    holds every POST until ``open`` is set, and keeps the bodies it accepted."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.refused = 0
        self.accepted: list[dict[str, Any]] = []
        self.open = threading.Event()
        self.open.set()
        self.arrived = threading.Event()
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.arrived.set()
                receiver.open.wait(30)
                with receiver.changed:
                    if receiver.refused < receiver.failures:
                        receiver.refused += 1
                        status = 500
                    else:
                        receiver.accepted.append(body)
                        status = 204
                    receiver.changed.notify_all()
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kinds(self) -> list[str]:
        return [body["kind"] for body in self.accepted]

    def close(self) -> None:
        self.open.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[Any]:
    made: list[Receiver] = []

    def make(**kwargs: Any) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify_module, "FIRST_BACKOFF_S", 0.05)


def breaking_spec(title: str, webhook: str | None) -> DirectiveSpec:
    # $2 for a step of a $1 directive: its breaker trips and asks a human.
    return DirectiveSpec(
        title=title,
        goal="Spend over the limit",
        autonomy_level="full_auto",
        max_total_cost_usd=1.0,
        steps=[StepSpec(name="only")],
        notify=NotifySpec(webhook=webhook),
    )


@pytest.mark.timeout(90)
def test_a_failing_receiver_gets_each_notification_once_in_order(
    engine_factory: Any, receivers: Any, fast_retries: None
) -> None:
    own, everyone = receivers(failures=3), receivers()
    agent = CallableAgent(steps={"*": lambda task, cancel: {"cost_usd": 2.0}})
    engine = engine_factory(runner=agent.runner(), notify_webhooks=(everyone.url,))
    directive_id = engine.submit(breaking_spec("Told", own.url))
    quiet = engine.submit(breaking_spec("Not its", None))
    engine.start_directive(directive_id)
    engine.start_directive(quiet)
    [approval] = wait_for(lambda: engine.snapshot(directive_id).pending_approvals, timeout=30)
    wait_for(lambda: engine.snapshot(quiet).pending_approvals, timeout=30)
    engine.approve(approval.id, "ops", None, max_total_cost_usd=10.0)
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
    engine.stop_directive(quiet)

    with own.changed:
        own.changed.wait_for(lambda: len(own.accepted) == 3, timeout=30)
    assert own.refused == 3  # refused three times, then accepted: none twice
    assert own.kinds() == ["breaker_tripped", "approval_required", "directive_ended"]
    assert {b["directive"]["id"] for b in own.accepted} == {str(directive_id)}
    assert own.accepted[0]["directive"]["title"] == "Told"
    assert own.accepted[0]["event"]["data"]["limit"] == "max_total_cost_usd"
    assert own.accepted[-1]["event"]["type"] == "directive_completed"
    seqs = [b["event"]["seq"] for b in own.accepted]
    assert seqs == sorted(seqs) and len({b["id"] for b in own.accepted}) == 3

    with everyone.changed:  # the daemon's hook hears both directives
        everyone.changed.wait_for(lambda: len(everyone.accepted) == 6, timeout=30)
    by_directive: dict[str, list[str]] = {}
    for body in everyone.accepted:
        by_directive.setdefault(body["directive"]["id"], []).append(body["kind"])
    assert by_directive[str(directive_id)] == own.kinds()
    assert by_directive[str(quiet)] == ["breaker_tripped", "approval_required", "directive_ended"]


@pytest.mark.timeout(90)
def test_a_hanging_receiver_does_not_hold_the_engine_up(
    engine_factory: Any, receivers: Any
) -> None:
    slow = receivers()
    slow.open.clear()  # every POST hangs until the test lets it answer
    agent = CallableAgent(steps={"*": lambda task, cancel: {"cost_usd": 2.0}})
    engine = engine_factory(runner=agent.runner())
    directive_id = engine.submit(breaking_spec("Slow", slow.url))
    engine.start_directive(directive_id)
    [approval] = wait_for(lambda: engine.snapshot(directive_id).pending_approvals, timeout=30)
    assert slow.arrived.wait(30)  # the first notification is stuck in the receiver
    engine.approve(approval.id, "ops", None, max_total_cost_usd=10.0)
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
    assert slow.accepted == []  # the engine went on while the receiver hung
    slow.open.set()
    with slow.changed:
        slow.changed.wait_for(lambda: len(slow.accepted) == 3, timeout=30)
    assert slow.kinds() == ["breaker_tripped", "approval_required", "directive_ended"]


def test_webhook_urls_are_checked_with_one_line_errors() -> None:
    for bad in ["ftp://host/x", "not a url", "http://", "http://host/ with space", "x" * 3000]:
        with pytest.raises(InvalidInput) as raised:
            NotifySpec(webhook=bad)
        assert "\n" not in str(raised.value)
    assert NotifySpec(webhook="https://hooks.example/abc?x=1").webhook


def test_the_backoff_doubles_up_to_a_minute() -> None:
    assert [notify_module.backoff_s(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert notify_module.backoff_s(30) == 60.0


def test_only_what_a_person_wants_to_hear_is_told() -> None:
    from directorate.persistence.models import Event

    def event(kind: str, **data: Any) -> Event:
        return Event(id=uuid.uuid4(), directive_id=uuid.uuid4(), seq=1, event_type=kind, data=data)

    table = [
        (event("approval_requested"), "approval_required"),
        (event("circuit_breaker_tripped"), "breaker_tripped"),
        (event("agent_unavailable"), "agent_unavailable"),
        (event("directive_completed"), "directive_ended"),
        (event("directive_failed"), "directive_ended"),
        (event("status_changed", new_status="cancelled"), "directive_ended"),
        (event("status_changed", new_status="paused"), None),
        (event("step_status_changed"), None),
    ]
    for given, expected in table:
        assert notify_module.kind_of(given) == expected, given.event_type


def test_a_directive_file_names_its_webhook_and_keeps_it(
    engine_factory: Any, tmp_path: Any
) -> None:
    from directorate.actors.directive_file import load_directive_file

    path = tmp_path / "d.toml"
    path.write_text('title = "t"\ngoal = "g"\n[notify]\nwebhook = "https://hooks.example/x"\n')
    spec = load_directive_file(path)
    assert spec.notify.webhook == "https://hooks.example/x"
    engine = engine_factory()
    directive_id = engine.submit(spec)
    assert engine.db.reads.directive(directive_id).notify.webhook == spec.notify.webhook
    path.write_text('title = "t"\ngoal = "g"\n[notify]\nwebhook = "gopher://x"\n')
    with pytest.raises(InvalidInput, match=r"notify\.webhook"):
        load_directive_file(path)
    path.write_text('title = "t"\ngoal = "g"\n[notify]\nwebhok = "https://x"\n')
    with pytest.raises(InvalidInput, match="webhok"):
        load_directive_file(path)
