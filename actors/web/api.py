"""The JSON API under ``/api/``: what the command line reads and does, over HTTP.

Reads go through the read queries; every change is a command on the durable command
path (the engine that drives the directive applies it), answered with what became
of it: 200 applied, 409 rejected with the reason, 202 still pending at the timeout.
A new directive is checked and stored as a file's would be, then started the same way.
"""

from __future__ import annotations

import math
import uuid
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from directorate.persistence import validation as check
from directorate.persistence.convert import structure_spec
from directorate.persistence.models import Command, CommandStatus, CommandType

from ..commands.client import issue_command, wait_for_outcome
from ..core.escalation import BREAKER_LIMITS
from ..workspaces import diff_of
from .responses import HttpError, json_body, path_id, records

if TYPE_CHECKING:
    from .app import WebSettings

DIRECTIVE_ACTIONS = {
    "pause": CommandType.PAUSE,
    "resume": CommandType.RESUME,
    "stop": CommandType.STOP,
    "regenerate": CommandType.REGENERATE,
}
APPROVAL_ACTIONS = {"approve": CommandType.APPROVE, "deny": CommandType.DENY}
MAX_LIST = 1000
MAX_FIELD_CHARS = 10_000
"""A ``by``, ``note`` or ``reason``: a name or a few lines, not a document."""


def settings_of(request: Request) -> WebSettings:
    settings: WebSettings = request.app.state.settings
    return settings


def list_directives(request: Request) -> Response:
    text = request.query_params.get("limit", "100")
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIST:
        raise HttpError(400, f"limit must be a whole number from 1 to {MAX_LIST}")
    return records(settings_of(request).db.reads.directives(limit=int(text)))


def directive_detail(settings: WebSettings, directive_id: uuid.UUID) -> dict[str, Any]:
    """The directive, its current chain and steps (with their layout positions), its
    tasks, evaluations and pending approvals: what its page shows."""
    reads = settings.db.reads
    directive = reads.directive(directive_id)
    chain = reads.current_chain(directive_id)
    return {
        "directive": directive,
        "chain": chain,
        "steps": reads.steps(chain.id) if chain else [],
        "tasks": reads.tasks_of_directive(directive_id),
        "evaluations": reads.evaluations_of_directive(directive_id),
        "approvals": reads.pending_approvals(directive_id),
    }


def get_directive(request: Request) -> Response:
    return records(directive_detail(settings_of(request), path_id(request)))


def list_events(request: Request) -> Response:
    directive_id = path_id(request)
    after = _whole(request.query_params.get("after", "0"), "after")
    reads = settings_of(request).db.reads
    reads.directive(directive_id)  # 404 for an unknown directive, not an empty list
    return records(reads.events_after(directive_id, after=after, limit=MAX_LIST))


def get_diff(request: Request) -> Response:
    """The directive's diff since its base, or one step's (``?step=NAME``), as text."""
    settings = settings_of(request)
    directive = settings.db.reads.directive(path_id(request))
    chain = settings.db.reads.current_chain(directive.id)
    steps = settings.db.reads.steps(chain.id) if chain else []
    text = diff_of(directive, steps, request.query_params.get("step"))
    return PlainTextResponse(text)


def list_approvals(request: Request) -> Response:
    return records(settings_of(request).db.reads.pending_approvals())


async def submit_directive(request: Request) -> Response:
    data = await json_body(request)
    by = _optional_text(data, "by")
    data.pop("by", None)
    settings = settings_of(request)
    spec = structure_spec(data)  # InvalidInput (400) names the key, as for a file

    def store() -> tuple[uuid.UUID, Command]:
        directive_id = settings.submit(spec)
        command_id = issue_command(settings.db, CommandType.START, directive_id, {"by": by})
        return directive_id, wait_for_outcome(settings.db, command_id, settings.answer_within_s)

    directive_id, command = await run_in_threadpool(store)
    body = _outcome(command) | {"id": str(directive_id)}
    return JSONResponse(body, 201 if command.status is not CommandStatus.REJECTED else 409)


async def control_directive(request: Request) -> Response:
    kind = DIRECTIVE_ACTIONS.get(str(request.path_params["action"]))
    if kind is None:
        raise HttpError(404, f"no such action: {request.path_params['action']}")
    directive_id = path_id(request)
    data = await json_body(request, required=False)
    args: dict[str, Any] = {"by": _optional_text(data, "by")}
    if kind is CommandType.REGENERATE:
        args["reason"] = _optional_text(data, "reason") or "requested over HTTP"
    settings = settings_of(request)

    def issue() -> Command:
        settings.db.reads.directive(directive_id)  # 404 before anything is stored
        command_id = issue_command(settings.db, kind, directive_id, args)
        return wait_for_outcome(settings.db, command_id, settings.answer_within_s)

    return _answer(await run_in_threadpool(issue))


async def answer_approval(request: Request) -> Response:
    kind = APPROVAL_ACTIONS.get(str(request.path_params["action"]))
    if kind is None:
        raise HttpError(404, f"no such action: {request.path_params['action']}")
    approval_id = path_id(request)
    data = await json_body(request, required=False)
    args: dict[str, Any] = {
        "approval_id": str(approval_id),
        "by": _optional_text(data, "by") or "http",
        "note": _optional_text(data, "note"),
    }
    if kind is CommandType.APPROVE:
        args["raise_limit"] = raised_limits(data.get("raise_limit"))
    elif data.get("raise_limit"):
        raise HttpError(400, "raise_limit: only an approval raises limits")
    settings = settings_of(request)

    def issue() -> Command:
        approval = settings.db.reads.approval(approval_id)  # 404 before anything is stored
        command_id = issue_command(settings.db, kind, approval.directive_id, args)
        return wait_for_outcome(settings.db, command_id, settings.answer_within_s)

    return _answer(await run_in_threadpool(issue))


def raised_limits(given: Any) -> dict[str, float]:
    """``{"max_total_cost_usd": 10}`` checked: known limits, finite positive numbers."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise HttpError(400, "raise_limit: expected an object of limit names and numbers")
    limits = {}
    for name, value in given.items():
        if name not in BREAKER_LIMITS:
            raise HttpError(400, f"raise_limit: unknown limit {str(name)[:60]!r}")
        number_like = isinstance(value, int | float) and not isinstance(value, bool)
        if not number_like or not math.isfinite(value) or value <= 0 or value > 1e12:
            raise HttpError(400, f"raise_limit: {name} must be a positive number")
        limits[name] = float(value)
    return limits


def _answer(command: Command) -> Response:
    status = {CommandStatus.APPLIED: 200, CommandStatus.REJECTED: 409}.get(command.status, 202)
    return JSONResponse(_outcome(command), status)


def _outcome(command: Command) -> dict[str, Any]:
    body: dict[str, Any] = {
        "command": str(command.command),
        "command_id": str(command.id),
        "status": str(command.status),
    }
    if command.status is CommandStatus.REJECTED:
        body["reason"] = command.reason
    elif command.status is CommandStatus.PENDING:
        body["reason"] = "no engine answered in time; the command stays queued"
    if command.result is not None:
        body["directive_status"] = command.result
    return body


def _optional_text(data: dict[str, Any], key: str) -> str | None:
    """A string field of a request, or None; InvalidInput (400) names it otherwise."""
    value = data.get(key)
    check.check_optional_text(key, value)  # a string, no NUL byte
    if value is not None and len(value) > MAX_FIELD_CHARS:
        raise HttpError(400, f"{key}: longer than {MAX_FIELD_CHARS} characters")
    return value


def _whole(text: str, name: str) -> int:
    if not text.isdigit():
        raise HttpError(400, f"{name} must be a whole number")
    return int(text)


ROUTES = [
    Route("/api/directives", list_directives, methods=["GET"]),
    Route("/api/directives", submit_directive, methods=["POST"]),
    Route("/api/directives/{id}", get_directive, methods=["GET"]),
    Route("/api/directives/{id}/diff", get_diff, methods=["GET"]),
    Route("/api/directives/{id}/{action}", control_directive, methods=["POST"]),
    Route("/api/approvals", list_approvals, methods=["GET"]),
    Route("/api/approvals/{id}/{action}", answer_approval, methods=["POST"]),
]
