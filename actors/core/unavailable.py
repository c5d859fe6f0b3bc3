"""Is a finished attempt an infrastructure failure rather than bad work? (issue 15
point 4)

An agent that could not reach its model (not logged in, key refused, network down)
did no work: sending it back for rework, blocking its chain and regenerating it only
repeats the failure (118 runs in 5 minutes, measured). Such an attempt pauses the
directive and asks a human instead. Two signs, in order of trust:

- the tool said so: ``TaskResult.unavailable`` holds its own message (set by the
  agent kinds in ``verifiers.tools``);
- the same failure line ``n`` times in a row with usage *reported* as zero (tokens
  or turns reported, all of them 0, and no cost): the model was never reached; for
  a tool whose words the kinds do not know yet. Unknown usage is not
  zero: a script that fails without reporting figures failed at its own work, and
  goes through rework as before (our scripted test agents do exactly that).

Pure: the caller hands in the step's earlier tasks (latest first).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from directorate.persistence.models import ApprovalType, Severity, Step, Task, TaskStatus

from ..runners import TaskResult
from ..usage import kept_tokens, kept_turns
from .changes import ApprovalOpened, Change, Note, RequireNoPending

REPEATS = 2
"""How many identical zero-usage failures in a row count as unavailable."""

EARLIER_TASKS = 4
"""How many of a step's earlier tasks its state carries: enough for any ``n`` used
(the ``LIMIT`` of ``earlier_tasks`` in ``step_state``, persistence/sql/queries.sql)."""

_NOT_WORK = (TaskStatus.SUCCEEDED, TaskStatus.CANCELLED)
"""Outcomes that never are an unavailable agent: it worked, or we stopped it."""


def unavailable_reason(
    result: TaskResult, earlier: Sequence[Task] = (), n: int = REPEATS
) -> str | None:
    """Why the agent of ``result`` could not work (the tool's own words), or None
    when the attempt is to be judged as work. ``earlier``: the same step's previous
    tasks, latest first."""
    if result.status in _NOT_WORK:
        return None
    if result.unavailable and result.unavailable.strip():
        return result.unavailable.strip()
    if result.status is not TaskStatus.FAILED or n < 2:
        return None
    # Keyed as the stored attempts are (their summary: ``error`` is not stored).
    line = failure_line(result.summary, result.output_tail)
    used = _used_nothing(result.cost_usd, kept_tokens(result), kept_turns(result))
    if line is None or not used:
        return None
    before = list(earlier[: n - 1])
    if len(before) < n - 1:
        return None
    for task in before:
        same = failure_line(task.summary, task.output_tail) == line
        if task.status is not TaskStatus.FAILED or not same:
            return None
        if not _used_nothing(task.cost_usd, task.tokens, task.turns):
            return None
    return f"{line} (the same failure {n} times in a row, no tokens or turns used)"


def failure_line(summary: str | None, output_tail: str | None) -> str | None:
    """The line an attempt's failure is known by: its summary's first (the runner puts
    the tool's failure there), else its output's last."""
    for text, pick in ((summary, 0), (output_tail, -1)):
        lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
        if lines:
            return lines[pick][:500]
    return None


def _used_nothing(cost: float | None, tokens: int | None, turns: int | None) -> bool:
    """Usage reported, and all of it zero. A stored task's cost is 0 when unknown,
    so the tokens or the turns must be reported to tell zero from unknown."""
    if tokens is None and turns is None:
        return False
    return not (cost or 0.0) > 0 and not tokens and not turns


def asked(
    reason: str,
    *,
    step: Step | None,
    task_id: uuid.UUID,
    attempt: int,
    now: datetime,
    timeout_s: float | None,
) -> tuple[Change, ...]:
    """The one question an unavailable agent asks: its ``agent_unavailable`` event and
    approval (guarded, so that two steps failing at once ask once). ``step`` None:
    the planning agent."""
    what = f"step '{step.name}'" if step is not None else "planning"
    retry = "run the step again" if step is not None else "plan again"
    description = (
        f"The agent could not reach its model ({what}, attempt {attempt}): {reason}. "
        f"Nothing was judged or sent back for rework. Fix it (log in, set the key, "
        f"check the network), then approve to {retry}, or deny to fail the directive."
    )
    data = {
        "message": reason,
        "step_id": step.id if step is not None else None,
        "step_name": step.name if step is not None else None,
        "task_id": task_id,
        "attempt": attempt,
    }
    opened = ApprovalOpened(
        approval_id=uuid.uuid4(),
        kind=ApprovalType.AGENT_UNAVAILABLE,
        description=description,
        context={**data, "context": "step" if step is not None else "planning"},
        step_id=step.id if step is not None else None,
        expires_at=now + timedelta(seconds=timeout_s) if timeout_s else None,
    )
    step_id = step.id if step is not None else None
    return (
        RequireNoPending(kind=ApprovalType.AGENT_UNAVAILABLE),
        Note(event_type="agent_unavailable", data=data, severity=Severity.WARNING, step_id=step_id),
        opened,
        Note(
            event_type="approval_requested",
            data={
                "approval_id": opened.approval_id,
                "approval_type": str(opened.kind),
                "description": description,
            },
            step_id=step_id,
        ),
    )


def denied_reason(context: Mapping[str, Any]) -> str:
    """Why the directive fails when a human denies the retry (or it expires): the
    tool's message, kept in the approval's context."""
    return f"the agent could not reach its model: {context.get('message') or 'unavailable'}"
