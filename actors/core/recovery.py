"""What recovering a dead engine's task records about its agent (DESIGN §18).

Before a task of an engine that is gone runs again, its agent is made sure to be
gone (``StopStaleAgent``, then ``StaleAgentStopped``); the decision that then runs
the next attempt records what was found and done, in the same write.
"""

from __future__ import annotations

import uuid

from directorate.persistence.models import Severity
from directorate.verifiers.stale_agents import StaleAgentCheck, StaleOutcome

from .changes import Note

_EVENTS = {
    StaleOutcome.KILLED: ("stale_agent_killed", Severity.WARNING),
    StaleOutcome.GONE: ("stale_agent_gone", Severity.INFO),
    StaleOutcome.ELSEWHERE: ("stale_agent_elsewhere", Severity.WARNING),
    StaleOutcome.FAILED: ("stale_agent_check_failed", Severity.ERROR),
}


def stale_agent_note(
    task_id: uuid.UUID, check: StaleAgentCheck, step_id: uuid.UUID | None = None
) -> Note | None:
    """The event saying what became of the task's old agent; None when there is
    nothing to say (no process was recorded for it and none was found: a callable
    agent, or one whose runner reports no processes)."""
    recorded = check.recorded
    nothing_known = recorded.pid is None and recorded.supervisor_pid is None
    if check.outcome is StaleOutcome.GONE and nothing_known and not check.spared:
        return None
    event_type, severity = _EVENTS[check.outcome]
    data: dict[str, object] = {
        "task_id": task_id,
        "pid": recorded.pid,
        "process_started_at": recorded.started_at,
        "supervisor_pid": recorded.supervisor_pid,
        "recorded_host": recorded.host,
        "host": check.host,
        "detail": check.detail,
    }
    if check.killed or check.outcome is StaleOutcome.KILLED:
        data["killed"] = list(check.killed)
    if check.spared:
        data["spared"] = list(check.spared)
    if check.left:
        data["left"] = list(check.left)
    return Note(event_type=event_type, data=data, severity=severity, step_id=step_id)
