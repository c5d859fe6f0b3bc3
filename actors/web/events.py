"""A directive's events: JSON, or a server-sent event stream.

Each SSE event's id is the event's sequence number in its directive, so a browser's
``EventSource`` (or any client) that reconnects with ``Last-Event-ID`` gets exactly
the events after the last one it saw: none twice, none lost.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from directorate.persistence.convert import row_converter

from .api import MAX_LIST, list_events, settings_of
from .responses import HttpError, path_id

POLL_S = 0.25
"""How often a stream looks for new events (a read of an index range when there are none)."""
PING_S = 15.0
"""A comment line this often keeps proxies from closing a quiet stream."""


def wants_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def resume_point(request: Request) -> int:
    """The sequence number the client saw last: ``Last-Event-ID``, else ``?after=``."""
    text = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    if not text.strip().isdigit():
        raise HttpError(400, "Last-Event-ID (or after) must be an event's sequence number")
    return int(text.strip())


async def events(request: Request) -> Response:
    if not wants_stream(request):
        return await run_in_threadpool(list_events, request)
    directive_id = path_id(request)
    after = resume_point(request)
    reads = settings_of(request).db.reads
    await run_in_threadpool(reads.directive, directive_id)  # 404 before the stream opens

    async def stream() -> AsyncIterator[dict[str, Any]]:
        seen = after
        while True:
            batch = await run_in_threadpool(
                reads.events_after, directive_id, after=seen, limit=MAX_LIST
            )
            for event in batch:
                seen = event.seq
                data = json.dumps(row_converter.unstructure(event), default=str)
                yield {"id": str(event.seq), "event": "directive-event", "data": data}
            if len(batch) < MAX_LIST:
                await asyncio.sleep(POLL_S)

    return EventSourceResponse(stream(), ping=int(PING_S))


ROUTES = [Route("/api/directives/{id}/events", events, methods=["GET"])]
