"""How the command line shows records: one-line events, the chain as a tree, JSON."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from directorate.persistence.convert import row_converter
from directorate.persistence.models import Approval, Directive, EngineRecord, Event, Step, Task

WIDTH = 110


def to_json(value: Any, *, compact: bool = False) -> str:
    """Records (or lists and dicts of them) as JSON; uuids and datetimes as strings.
    ``compact`` gives one line (JSON Lines, for streams of events)."""
    return json.dumps(row_converter.unstructure(value), default=str, indent=None if compact else 2)


def short(value: uuid.UUID | str | None) -> str:
    return str(value)[:8] if value else "-"


def one_line(text: Any, width: int = WIDTH) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def usage_line(directive: Directive) -> str:
    """What the agents used, against each limit set: ``used 5,650 of 10,000 tokens,
    14 agent turns, $0.42 of $5.00``."""
    d = directive
    counts = [
        (d.total_tokens, d.max_total_tokens, "tokens"),
        (d.total_agent_turns, d.max_agent_turns, "agent turns"),
    ]
    parts = [
        f"{used:,}{'' if cap is None else f' of {cap:,}'} {unit}" for used, cap, unit in counts
    ]
    cap = "" if d.max_total_cost_usd is None else f" of ${d.max_total_cost_usd:.2f}"
    return "used " + ", ".join([*parts, f"${d.total_cost_usd:.2f}{cap}"])


def elapsed(start: datetime | None, end: datetime | None = None) -> str:
    if start is None:
        return "-"
    seconds = max(0.0, ((end or datetime.now(UTC)) - start).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


_STALE_AGENT = {
    "stale_agent_killed": "stopped",
    "stale_agent_gone": "already gone",
    "stale_agent_elsewhere": "on another host",
    "stale_agent_check_failed": "not checked",
}
"""What became of a dead engine's agent before its task ran again."""


def describe_event(event: Event) -> str:
    """One readable line for an event."""
    d = event.data
    step = d.get("step_name") or "planning"
    kind = event.event_type
    if kind == "directive_created":
        return f"directive created: {d.get('title')}"
    if kind == "status_changed":
        return f"directive {d.get('old_status')} -> {d.get('new_status')}"
    if kind == "planning_started":
        return "planning: the agent is writing the plan"
    if kind == "planning_completed":
        steps = ", ".join(d.get("steps") or []) or d.get("source", "")
        return f"plan ready: {steps}"
    if kind == "plan_rejected":
        return f"plan rejected ({d.get('reason')}); using {d.get('fallback')}"
    if kind == "chain_created":
        return f"chain generation {d.get('generation')}: {', '.join(d.get('steps') or [])}"
    if kind == "step_status_changed":
        return f"{step}: {d.get('old_status')} -> {d.get('new_status')}"
    if kind == "step_started":
        return f"{step}: attempt {d.get('attempt')} started"
    if kind == "task_finished":
        cost = float(d.get("cost_usd") or 0.0)
        said = f": {d['summary']}" if d.get("summary") else ""
        used = "".join(
            f", {d[key]:,} {key}" for key in ("tokens", "turns") if isinstance(d.get(key), int)
        )
        return (
            f"{step}: agent {d.get('status')} (exit {d.get('exit_code')}, ${cost:.2f}{used}){said}"
        )
    if kind == "evaluation_completed":
        score = float(d.get("composite_score") or 0.0)
        return f"{step}: {d.get('confidence_level')} ({score:.2f}): {d.get('summary')}"
    if kind == "step_rework":
        return f"{step}: sent back for rework (rework {d.get('rework_count', '?')})"
    if kind == "step_blocked":
        return f"{step}: blocked: {d.get('reason')}"
    if kind == "step_recovered":
        return f"{step}: recovered after a restart, runs again"
    if kind in _STALE_AGENT:
        task = short(d.get("task_id"))
        return f"old agent of task {task} {_STALE_AGENT[kind]}: {d.get('detail')}"
    if kind == "approval_requested":
        what = d.get("description") or d.get("step_name") or ""
        return f"approval {short(d.get('approval_id'))} needed ({d.get('approval_type')}): {what}"
    if kind == "approval_resolved":
        by = f" by {d['responded_by']}" if d.get("responded_by") else ""
        return f"approval {short(d.get('approval_id'))} {d.get('status')}{by}"
    if kind == "agent_unavailable":
        return (
            f"{step}: the agent could not reach its model (attempt {d.get('attempt')}): "
            f"{d.get('message')}; paused, approve to retry"
        )
    if kind == "circuit_breaker_tripped":
        return f"circuit breaker: {d.get('message')}"
    if kind == "directive_reviewed":
        score = float(d.get("composite_score") or 0.0)
        return f"directive review: {d.get('confidence_level')} ({score:.2f}): {d.get('summary')}"
    if kind == "directive_completed":
        return f"completed: {d.get('steps')} steps, ${float(d.get('total_cost_usd') or 0):.2f}"
    if kind == "directive_failed":
        return f"failed: {d.get('reason')}"
    rest = " ".join(f"{k}={v}" for k, v in d.items() if not k.endswith("_id"))
    return f"{kind.replace('_', ' ')} {rest}".strip()


def event_line(event: Event) -> str:
    when = event.created_at.astimezone().strftime("%H:%M:%S") if event.created_at else "--:--:--"
    marker = {"warning": "!", "error": "x"}.get(str(event.severity), " ")
    return one_line(f"{when} {event.seq:>4} {marker} {describe_event(event)}")


def directive_line(d: Directive, why: str | None = None) -> str:
    """One directive; ``why``: what it waits for (``pause_reason``)."""
    cost = f"${d.total_cost_usd:.2f}"
    waits = f"  ({why})" if why else ""
    return one_line(f"{short(d.id)}  {d.status:<10} {cost:>8}  {d.title}{waits}")


def pause_reason(pending: list[Approval]) -> str | None:
    """Why a directive is paused, when it says more than its status: an agent that
    could not reach its model, with the tool's words. Derived from the pending
    approval (not a column of its own): the approval is the one fact, answered or
    not, so the reason cannot outlive it."""
    for approval in pending:
        if approval.approval_type == "agent_unavailable":
            return f"agent unavailable: {approval.context.get('message') or approval.description}"
    return None


def step_depths(steps: list[Step]) -> dict[uuid.UUID, int]:
    by_id = {s.id: s for s in steps}
    depth: dict[uuid.UUID, int] = {}

    def of(step_id: uuid.UUID, trail: frozenset[uuid.UUID] = frozenset()) -> int:
        if step_id not in depth:
            deps = [d for d in by_id[step_id].depends_on if d in by_id and d not in trail]
            depth[step_id] = 1 + max((of(d, trail | {step_id}) for d in deps), default=-1)
        return depth[step_id]

    for s in steps:
        of(s.id)
    return depth


def step_times(tasks: list[Task]) -> dict[uuid.UUID, tuple[datetime | None, datetime | None]]:
    """Per step: when its first attempt started and, if it is not running, when it ended."""
    times: dict[uuid.UUID, tuple[datetime | None, datetime | None]] = {}
    for task in tasks:
        if task.step_id is None:
            continue
        start, _ = times.get(task.step_id, (task.started_at, None))
        running = not task.status.finished
        end = None if running else task.finished_at
        times[task.step_id] = (start or task.started_at, end)
    return times


def confidence(step: Step) -> str:
    if step.confidence_score is None:
        return "-"
    return f"{step.confidence_score:.2f} {step.confidence_level or ''}".strip()


def chain_tree(steps: list[Step], tasks: list[Task]) -> list[str]:
    """The chain indented by dependency depth, with status, attempt, confidence, elapsed."""
    depths = step_depths(steps)
    names = {s.id: s.name for s in steps}
    times = step_times(tasks)
    lines = []
    ordered = sorted(steps, key=lambda s: (depths[s.id], s.editor_y, s.name))
    for step in ordered:
        depth = depths[step.id]
        label = ("  " * (depth - 1) + "└─ " if depth else "") + step.name
        deps = [names[d] for d in step.depends_on if d in names]
        after = f"  after {', '.join(deps)}" if len(deps) > 1 else ""
        start, end = times.get(step.id, (None, None))
        work = ""
        if step.merge_sha:
            work = f"  merged {step.merge_sha[:12]}"
        elif step.head_sha:
            work = f"  at {step.head_sha[:12]}"
        lines.append(
            f"{label:<32} {step.status:<10} attempt {step.attempt:<2} "
            f"{confidence(step):<12} {elapsed(start, end) if start else '-':>8}{work}{after}"
        )
        if step.branch:
            lines.append(f"{'':<4}{'  ' * depth}branch {step.branch}")
    return lines


def approval_line(a: Approval) -> str:
    return one_line(
        f"{short(a.id)}  directive {short(a.directive_id)}  {a.approval_type:<16} {a.description}",
        width=160,
    )


def result_branch_lines(directive: Directive, indent: str = "") -> list[str]:
    """Where the directive's work is, and how to look at it (with a workspace)."""
    if not directive.result_branch:
        return []
    base = (directive.base_sha or "")[:12]
    where = directive.repository or directive.local_path or "."
    return [
        f"{indent}result branch {directive.result_branch} (from {directive.base_ref or base})",
        f"{indent}  see it with: git -C {where} log --stat {base}..{directive.result_branch}",
    ]


# --------------------------------------------------------------------------- engines

SHOWN_DIRECTIVES = 3
"""An engine's line names this many of its directives, then says how many more."""


def engine_state(engine: EngineRecord, alive: bool) -> str:
    """``alive`` (beating), ``stopped`` (it said so on its way out) or ``expired``
    (it stopped beating without saying so: killed, frozen or cut off)."""
    if engine.stopped_at is not None:
        return "stopped"
    return "alive" if alive else "expired"


def engine_record(engine: EngineRecord, extra: dict[str, Any]) -> dict[str, Any]:
    """An engine as ``directorate engines --json`` shows it (``extra``: what
    ``persistence.ownership.engines`` adds to its row)."""
    return {
        "id": str(engine.id),
        "state": engine_state(engine, bool(extra["alive"])),
        "host": engine.host,
        "pid": engine.pid,
        "version": engine.version,
        "started_at": engine.started_at,
        "heartbeat_at": engine.heartbeat_at,
        "heartbeat_age_s": extra["heartbeat_age_s"],
        "expires_at": engine.expires_at,
        "stopped_at": engine.stopped_at,
        "alive": bool(extra["alive"]),
        "takes_over": engine.takes_over,
        "directives": [str(d) for d in extra["directives"]],
    }


def ago(seconds: float) -> str:
    """``0.4 s ago``, ``3m05s ago``, ``2h10m ago``, ``3d04h ago``."""
    seconds = max(0.0, seconds)
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s ago"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s ago"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m ago"
    return f"{hours // 24}d{hours % 24:02d}h ago"


def local_time(when: datetime, now: datetime | None = None) -> str:
    """The time of day in local time when it is today, else the date and time."""
    local = when.astimezone()
    today = (now or datetime.now(UTC)).astimezone().date()
    return local.strftime("%H:%M:%S" if local.date() == today else "%Y-%m-%d %H:%M")


def engine_line(engine: dict[str, Any], now: datetime | None = None) -> str:
    """One engine (an ``engine_record``): ``3f2a91c0  alive    host  pid 4242  0.1.0
    started 14:02:11  heartbeat 0.3 s ago  daemon  owns 2: 1a2b3c4d, 5e6f7a8b``."""
    ids = engine["directives"]
    if ids:
        named = ", ".join(short(d) for d in ids[:SHOWN_DIRECTIVES])
        more = f" and {len(ids) - SHOWN_DIRECTIVES} more" if len(ids) > SHOWN_DIRECTIVES else ""
        owns = f"owns {len(ids)}: {named}{more}"
    else:
        owns = "owns nothing"
    return (
        f"{short(engine['id'])}  {engine['state']:<8} {engine['host']}  pid {engine['pid']}"
        f"  {engine['version']}  started {local_time(engine['started_at'], now)}"
        f"  heartbeat {ago(engine['heartbeat_age_s'])}"
        f"  {'daemon' if engine['takes_over'] else 'run':<6}  {owns}"
    )
