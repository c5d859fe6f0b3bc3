"""The Starlette application: routes, authentication, errors as JSON."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from directorate.persistence.database import Database
from directorate.persistence.errors import DirectorateError
from directorate.persistence.models import DirectiveSpec

from . import api, events, metrics, pages
from .auth import COOKIE, CSRF_HEADER, Access, Keys
from .responses import HttpError, error, for_exception

STATIC = Path(__file__).parent / "static"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


@attrs.frozen(kw_only=True)
class WebSettings:
    db: Database
    submit: Callable[[DirectiveSpec], uuid.UUID]
    """Checks and stores a new directive (``Engine.submit``); it is started by command."""
    keys: Keys
    answer_within_s: float = 30.0
    """How long a command's request waits for the engine's answer before saying pending."""
    writer_stats: Callable[[], dict[str, Any]] | None = None
    """This process's writer's figures, for the metrics."""


def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True})


class Authenticated:
    """ASGI middleware: every request but ``/healthz`` proves it knows the token.

    Refused requests are answered here, before any route runs, so they change nothing."""

    def __init__(self, app: ASGIApp, keys: Keys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/healthz":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> Response | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path, method = scope["path"], scope["method"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if path == "/" and "token" in query:
            return self.login(query["token"][0])
        bearer = self.keys.bearer(headers.get("authorization"))
        if "authorization" in headers:
            if bearer is Access.GRANTED:
                return None
            return error(403, "the token is not this server's")
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header: as if there were none
            cookie = SimpleCookie()
        session = self.keys.cookie(cookie[COOKIE].value if COOKIE in cookie else None)
        if session is Access.MISSING:
            if path.startswith(("/api/", "/metrics")):
                return error(
                    401, "send Authorization: Bearer TOKEN", **{"WWW-Authenticate": "Bearer"}
                )
            return HTMLResponse(
                "<!doctype html><title>directorate</title><p>Open this page as "
                "<code>/?token=TOKEN</code> once (the token is in the file "
                "<code>directorate serve</code> printed).",
                401,
            )
        if session is Access.REFUSED:
            return error(403, "the session is not this server's: open /?token=TOKEN again")
        if method not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin and urlsplit(origin).netloc != headers.get("host"):
                return error(403, "cross-site request refused")
            if not self.keys.csrf_ok(headers.get(CSRF_HEADER)):
                return error(403, f"a request from the page needs its {CSRF_HEADER} header")
        return None

    def login(self, token: str) -> Response:
        if not self.keys.is_token(token):
            return error(403, "the token is not this server's")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, self.keys.session, httponly=True, samesite="strict", path="/")
        return response


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, str(exc.detail))


async def _ours(request: Request, exc: Exception) -> Response:
    return for_exception(exc)


def create_app(settings: WebSettings) -> Starlette:
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            *events.ROUTES,
            *api.ROUTES,
            *metrics.ROUTES,
            *pages.ROUTES,
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={
            HTTPException: _http_error,
            HttpError: _ours,
            DirectorateError: _ours,
        },
    )
    app.state.settings = settings
    app.state.metrics = metrics.registry_for(settings.db, settings.writer_stats)
    app.add_middleware(Authenticated, keys=settings.keys)
    return app
