"""The event stream over a real uvicorn server: dropped, resumed with Last-Event-ID,
every event exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from web_helpers import TOKEN, CallableAgent, Gate, diamond, settings_for, wait_for

from directorate.actors import DirectiveStatus
from directorate.actors.web import HttpServer, create_app


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Server-sent events as dicts of their fields; comments (pings) skipped."""
    event: dict[str, str] = {}
    for line in lines:
        if not line:
            if event:
                yield event
            event = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            event[field] = value.removeprefix(" ")


def read_events(
    url: str, count: int | None = None, last_id: str | None = None, until: int | None = None
) -> list[dict[str, str]]:
    """``count`` events from the stream (or up to the one numbered ``until``), then hang up."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "text/event-stream"}
    if last_id is not None:
        headers["Last-Event-ID"] = last_id
    got: list[dict[str, str]] = []
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in sse_events(response.iter_lines()):
            got.append(event)
            if count is not None and len(got) == count:
                break
            if until is not None and int(event["id"]) >= until:
                break
    return got


@pytest.mark.timeout(120)
def test_a_dropped_stream_resumes_after_the_last_event_seen_with_none_twice(
    engine_factory: Any,
) -> None:
    gate = Gate()
    engine = engine_factory(runner=CallableAgent(steps={"*": gate}).runner())
    directive_id = engine.submit(diamond())
    engine.start_directive(directive_id)
    wait_for(lambda: engine.snapshot(directive_id).steps[0].status == "running")
    server = HttpServer(create_app(settings_for(engine)), "127.0.0.1", 0).start()
    try:
        url = f"{server.url}/api/directives/{directive_id}/events"
        first = read_events(url, 3)  # the connection drops here
        for name in "abcd":
            gate.open(name)
        assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
        stored = engine.db.reads.events_after(directive_id, after=0, limit=10_000)
        rest = read_events(url, last_id=first[-1]["id"], until=stored[-1].seq)
        unauthorised = httpx.get(url, headers={"Accept": "text/event-stream"})
        assert unauthorised.status_code == 401
    finally:
        server.stop()
    seen = [int(e["id"]) for e in first + rest]
    assert seen == [e.seq for e in stored]  # all of them, in order, none twice
    assert {e["event"] for e in first + rest} == {"directive-event"}
    assert sum('"directive_completed"' in e["data"] for e in rest) == 1
