"""JSON answers and errors: every error is ``{"error": "one line"}`` with its status."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from directorate.persistence.convert import row_converter
from directorate.persistence.errors import (
    DirectorateError,
    InvalidInput,
    InvalidTransition,
    NotFound,
)

MAX_BODY_BYTES = 1024 * 1024
"""A directive spec or an answer is a few kB; more is refused before it is parsed."""


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = " ".join(message.split()) or "error"


def error(status: int, message: str, **headers: str) -> Response:
    return JSONResponse({"error": " ".join(message.split())}, status, headers=headers or None)


def for_exception(exc: Exception) -> Response:
    """The answer for what a handler raised; anything unexpected is a bug (500)."""
    if isinstance(exc, HttpError):
        return error(exc.status, exc.message)
    if isinstance(exc, NotFound):
        return error(404, str(exc))
    if isinstance(exc, InvalidTransition):
        return error(409, str(exc))
    if isinstance(exc, InvalidInput):
        return error(400, str(exc))
    if isinstance(exc, DirectorateError):
        return error(409, str(exc))
    raise exc


def records(value: Any, status: int = 200) -> Response:
    """Records (or lists and dicts of them) as JSON: uuids and datetimes as strings."""
    body = json.dumps(row_converter.unstructure(value), default=str)
    return Response(body, status, media_type="application/json")


def path_id(request: Request, name: str = "id") -> uuid.UUID:
    text = str(request.path_params[name])
    try:
        return uuid.UUID(text)
    except ValueError:
        raise HttpError(400, f"{text[:60]!r} is not an id") from None


async def json_body(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object; 413 when too big, 400 when not one JSON object."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HttpError(413, f"the body is over {MAX_BODY_BYTES} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HttpError(413, f"the body is over {MAX_BODY_BYTES} bytes")
    if not body.strip():
        if required:
            raise HttpError(400, "expected a JSON object in the body")
        return {}
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise HttpError(400, f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HttpError(400, "expected a JSON object in the body")
    return data
