"""The dashboard: server-rendered HTML, made live by one small vendored script.

``/`` lists the directives, newest first; ``/directives/{id}`` draws the chain and
shows each step's attempts, output tails and evaluations, the pending approvals and
the event log; ``/approvals`` is the inbox. ``static/live.js`` follows the event
stream and swaps in ``/directives/{id}/live`` (the chain, steps and approvals) when
something happens; buttons post to the API with the page's CSRF value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from directorate.persistence.models import Approval, Directive, Evaluation, Step, Task

from ..core.escalation import BREAKER_LIMITS
from .api import directive_detail, settings_of
from .dag import chain_svg
from .responses import path_id

TAIL_CHARS = 2000


def page(request: Request, title: str, body: str, *, directive: str = "") -> HTMLResponse:
    csrf = settings_of(request).keys.csrf
    return HTMLResponse(
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)} · directorate</title>"
        f'<meta name="csrf" content="{csrf}">'
        '<link rel="stylesheet" href="/static/style.css">'
        '<script src="/static/live.js" defer></script></head>'
        f'<body data-directive="{escape(directive)}"><header><a href="/">directorate</a>'
        ' <a href="/approvals">approvals</a></header>'
        f"<main>{body}</main></body></html>"
    )


def money(value: float) -> str:
    return f"${value:,.2f}"


def elapsed_minutes(directive: Directive) -> float | None:
    if directive.started_at is None:
        return None
    end = directive.completed_at or datetime.now(UTC)
    return (end - directive.started_at).total_seconds() / 60


def against(used: str, limit: str | None) -> str:
    return used if limit is None else f"{used} of {limit}"


def directive_row(d: Directive) -> str:
    cost = directive_row_cost(d)
    minutes = elapsed_minutes(d)
    time = (
        "-"
        if minutes is None
        else against(
            f"{minutes:.1f} min",
            None if d.max_wall_time_minutes is None else f"{d.max_wall_time_minutes:g} min",
        )
    )
    created = d.created_at.isoformat(timespec="seconds") if d.created_at else ""
    return (
        f'<tr data-id="{d.id}"><td><a href="/directives/{d.id}">{escape(d.title)}</a></td>'
        f'<td><span class="badge {d.status}">{d.status}</span></td>'
        f"<td>{cost}</td><td>{time}</td><td>{created}</td></tr>"
    )


def index(request: Request) -> Response:
    directives = settings_of(request).db.reads.directives(limit=200)
    rows = "".join(directive_row(d) for d in directives) or (
        "<tr><td colspan=5>no directives yet: <code>directorate submit FILE</code></td></tr>"
    )
    return page(
        request,
        "directives",
        (
            '<h1>Directives</h1><table class="directives" data-refresh="5">'
            "<thead><tr><th>title</th>"
            "<th>status</th><th>cost</th><th>time</th><th>created</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        ),
    )


def approval_form(a: Approval) -> str:
    limits = "".join(f"<option>{name}</option>" for name in BREAKER_LIMITS)
    return (
        f'<li class="approval" data-id="{a.id}"><b>{a.approval_type}</b>: '
        f"{escape(a.description)}"
        f' <a href="/directives/{a.directive_id}">directive</a>'
        f'<form data-action="/api/approvals/{a.id}/approve">'
        '<input name="note" placeholder="note"> <select name="limit"><option value="">'
        f"raise no limit</option>{limits}</select>"
        ' <input name="value" type="number" step="any" min="0" placeholder="new limit">'
        ' <button name="approve">approve</button></form>'
        f'<form data-action="/api/approvals/{a.id}/deny"><input name="note" placeholder="note">'
        ' <button name="deny">deny</button></form></li>'
    )


def approvals(request: Request) -> Response:
    pending = settings_of(request).db.reads.pending_approvals()
    items = "".join(approval_form(a) for a in pending) or "<li>nothing waits for you</li>"
    return page(request, "approvals", f'<h1>Approvals</h1><ul class="approvals">{items}</ul>')


def evaluation_lines(evaluation: Evaluation) -> str:
    checks = "".join(
        f"<li>{escape(str(r.get('name') or r.get('verifier_type') or 'check'))}: "
        f"{float(r.get('score') or 0):.2f}{' passed' if r.get('passed') else ''}</li>"
        for r in [*evaluation.programmatic_results, *evaluation.llm_results]
    )
    return (
        f'<div class="evaluation {evaluation.confidence_level}">'
        f"{evaluation.confidence_level} {evaluation.composite_score:.2f}: "
        f"{escape(evaluation.summary)}<ul>{checks}</ul></div>"
    )


def step_section(step: Step, tasks: list[Task], evaluations: list[Evaluation]) -> str:
    attempts = "".join(
        f"<details><summary>attempt {t.attempt}: {t.status}"
        f"{'' if not t.cost_usd else ' · ' + money(t.cost_usd)}</summary>"
        f"<p>{escape(t.summary or '')}</p>"
        f"<pre>{escape((t.output_tail or '')[-TAIL_CHARS:])}</pre></details>"
        for t in tasks
    )
    judged = "".join(evaluation_lines(e) for e in evaluations)
    branch = ""
    if step.branch:
        diff = f"/api/directives/{step.directive_id}/diff?step={quote(step.name)}"
        branch = f' · branch <code>{escape(step.branch)}</code> · <a href="{diff}">diff</a>'

    return (
        f'<section class="step-detail" data-name="{escape(step.name)}">'
        f'<h3>{escape(step.name)} <span class="badge {step.status}">{step.status}</span>'
        f"{branch}</h3><p>{escape(step.description)}</p>{attempts}{judged}</section>"
    )


def live_fragment(detail: dict[str, Any]) -> str:
    directive: Directive = detail["directive"]
    steps: list[Step] = detail["steps"]
    tasks: list[Task] = detail["tasks"]
    evaluations: list[Evaluation] = detail["evaluations"]
    sections = "".join(
        step_section(
            s,
            [t for t in tasks if t.step_id == s.id],
            [e for e in evaluations if e.step_id == s.id],
        )
        for s in steps
    )
    pending = "".join(approval_form(a) for a in detail["approvals"])
    minutes = elapsed_minutes(directive)
    return (
        f'<p class="summary"><span class="badge {directive.status}" id="directive-status">'
        f"{directive.status}</span> cost {directive_row_cost(directive)}"
        f"{'' if minutes is None else f' · {minutes:.1f} min'}"
        f"{result_branch(directive)}"
        f"</p>{chain_svg(steps)}"
        f'<ul class="approvals">{pending}</ul>{sections}'
    )


def result_branch(d: Directive) -> str:
    if not d.result_branch:
        return ""
    diff = f"/api/directives/{d.id}/diff"
    return f' · result branch <code>{escape(d.result_branch)}</code> · <a href="{diff}">diff</a>'


def directive_row_cost(d: Directive) -> str:
    cap = None if d.max_total_cost_usd is None else money(d.max_total_cost_usd)
    return against(money(d.total_cost_usd), cap)


def directive_page(request: Request) -> Response:
    directive_id = path_id(request)
    detail = directive_detail(settings_of(request), directive_id)
    directive: Directive = detail["directive"]
    return page(
        request,
        directive.title,
        (
            f"<h1>{escape(directive.title)}</h1><p>{escape(directive.goal)}</p>"
            f'<div id="live">{live_fragment(detail)}</div>'
            '<h2>Events</h2><ol class="events" id="events"></ol>'
        ),
        directive=str(directive.id),
    )


def directive_live(request: Request) -> Response:
    detail = directive_detail(settings_of(request), path_id(request))
    return HTMLResponse(live_fragment(detail))


HANDLERS = {
    "/": index,
    "/approvals": approvals,
    "/directives/{id}": directive_page,
    "/directives/{id}/live": directive_live,
}
ROUTES = [Route(path, handler, methods=["GET"]) for path, handler in HANDLERS.items()]
