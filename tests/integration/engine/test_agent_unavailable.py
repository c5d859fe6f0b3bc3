"""An agent that could not reach its model (issue 15 point 4), end to end: a real
PostgreSQL, real agent subprocesses replaying what the real Claude Code printed
when it was not logged in, read by the ``claude-code`` kind. The directive pauses
after one attempt with one ``agent_unavailable`` event and one approval; nothing is
judged, sent back or regenerated; approving retries, denying fails."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from callable_agent import CallableAgent
from engine_helpers import AGENTS, Scripted, wait_for

from directorate.actors import DirectiveSpec, DirectiveStatus, StepSpec
from directorate.actors.runners import TaskResult
from directorate.persistence.models import ApprovalType, StepStatus, TaskStatus
from directorate.verifiers.tools import kind_named

RECORDED = AGENTS / "recorded" / "claude"
LOGIN = "Not logged in · Please run /login"  # the tool's own words in that recording
PLAN = {"steps": [{"name": "build", "step_type": "implement", "description": "build it"}]}


def not_logged_in(until: Path, **more: Any) -> dict[str, Any]:
    """Replay Claude Code's not-logged-in output (exit 1) until ``until`` exists."""
    return {
        "replay": str(RECORDED / "not-logged-in.stdout"),
        "replay_stderr": str(RECORDED / "not-logged-in.stderr"),
        "replay_exit": json.loads((RECORDED / "not-logged-in.json").read_text())["returncode"],
        "until": str(until),
        **more,
    }


def claude_engine(engine_factory: Any, scripted: Scripted) -> Any:
    return engine_factory(runner=scripted.runner(kind=kind_named("claude-code"), timeout_s=60))


def events(engine: Any, directive_id: uuid.UUID, kind: str | None = None) -> list[Any]:
    found = engine.db.reads.events_after(directive_id, limit=100_000)
    return [e for e in found if kind is None or e.event_type == kind]


def paused_asking(engine: Any, directive_id: uuid.UUID) -> Any:
    """Wait until the directive is paused with its agent_unavailable question."""

    def asking() -> Any:
        if engine.db.reads.directive(directive_id).status is not DirectiveStatus.PAUSED:
            return None
        pending = engine.db.reads.pending_approvals(directive_id)
        return pending if pending else None

    [approval] = wait_for(asking, timeout=30)
    assert approval.approval_type is ApprovalType.AGENT_UNAVAILABLE
    return approval


def wait_status(engine: Any, directive_id: uuid.UUID, status: DirectiveStatus) -> None:
    wait_for(lambda: engine.db.reads.directive(directive_id).status is status, timeout=30)


def steps_of(engine: Any, directive_id: uuid.UUID) -> dict[str, Any]:
    chain = engine.db.reads.current_chain(directive_id)
    return {s.name: s for s in engine.db.reads.steps(chain.id)} if chain else {}


def no_work_judged(engine: Any, directive_id: uuid.UUID) -> None:
    kinds = {e.event_type for e in events(engine, directive_id)}
    assert not kinds & {"evaluation_completed", "step_rework", "step_blocked", "chain_superseded"}
    assert not kinds & {"plan_rejected"}


@pytest.mark.timeout(90)
def test_not_logged_in_pauses_after_one_attempt_and_approve_retries_it(
    engine_factory: Any, scripted: Scripted, tmp_path: Path
) -> None:
    logged_in = tmp_path / "logged-in"
    scripted.write({"steps": {"build": not_logged_in(logged_in)}})
    engine = claude_engine(engine_factory, scripted)
    directive_id = engine.submit(
        DirectiveSpec(
            title="Unavailable",
            goal="g",
            autonomy_level="full_auto",
            steps=[StepSpec(name="build")],
        )
    )
    engine.start_directive(directive_id)
    approval = paused_asking(engine, directive_id)

    [event] = events(engine, directive_id, "agent_unavailable")
    assert event.data["message"] == LOGIN
    assert (event.data["step_name"], event.data["attempt"]) == ("build", 1)
    assert LOGIN in approval.description
    step = steps_of(engine, directive_id)["build"]
    assert approval.step_id == step.id
    assert (step.status, step.rework_count, step.attempt) == (StepStatus.READY, 0, 1)
    no_work_judged(engine, directive_id)
    assert [r["replayed"] for r in scripted.step_runs("build")] == [True]
    assert len(engine.db.reads.tasks_of_directive(directive_id)) == 1

    logged_in.touch()  # the user logs in, then says so
    engine.approve(approval.id, "ann")
    wait_status(engine, directive_id, DirectiveStatus.COMPLETED)
    runs = scripted.step_runs("build")
    assert [(r["attempt"], r["replayed"]) for r in runs] == [(1, True), (2, False)]
    step = steps_of(engine, directive_id)["build"]
    assert (step.status, step.rework_count) == (StepStatus.PASSED, 0)
    assert len(events(engine, directive_id, "agent_unavailable")) == 1


@pytest.mark.timeout(90)
def test_denying_the_retry_fails_the_directive_with_the_tools_message(
    engine_factory: Any, scripted: Scripted, tmp_path: Path
) -> None:
    scripted.write({"steps": {"build": not_logged_in(tmp_path / "never")}})
    engine = claude_engine(engine_factory, scripted)
    directive_id = engine.submit(
        DirectiveSpec(title="Denied", goal="g", steps=[StepSpec(name="build")])
    )
    engine.start_directive(directive_id)
    approval = paused_asking(engine, directive_id)
    engine.deny(approval.id, "ann")
    wait_status(engine, directive_id, DirectiveStatus.FAILED)
    [failed] = events(engine, directive_id, "directive_failed")
    assert failed.data["reason"] == f"the agent could not reach its model: {LOGIN} (retry denied)"
    assert len(scripted.step_runs("build")) == 1
    no_work_judged(engine, directive_id)


@pytest.mark.timeout(90)
def test_parallel_steps_both_unavailable_ask_once_and_resume_retries_both(
    engine_factory: Any, scripted: Scripted, tmp_path: Path
) -> None:
    logged_in, gate, log = tmp_path / "logged-in", tmp_path / "gate", tmp_path / "runs.jsonl"
    held = not_logged_in(logged_in, gate=str(gate))  # both fail at the same moment
    scripted.write({"log": str(log), "steps": {"left": held, "right": held}})
    engine = claude_engine(engine_factory, scripted)
    directive_id = engine.submit(
        DirectiveSpec(
            title="Parallel",
            goal="g",
            autonomy_level="full_auto",
            steps=[StepSpec(name="left"), StepSpec(name="right")],
        )
    )
    engine.start_directive(directive_id)

    def started() -> int:
        lines = log.read_text().splitlines() if log.exists() else []
        return sum(1 for line in lines if json.loads(line)["what"] == "start")

    wait_for(lambda: started() == 2, timeout=30)
    gate.touch()
    approval = paused_asking(engine, directive_id)
    wait_for(
        lambda: all(s.status is StepStatus.READY for s in steps_of(engine, directive_id).values()),
        timeout=30,
    )
    assert len(events(engine, directive_id, "agent_unavailable")) == 1
    assert len(events(engine, directive_id, "approval_requested")) == 1
    assert [a.id for a in engine.db.reads.pending_approvals(directive_id)] == [approval.id]
    assert all(s.rework_count == 0 for s in steps_of(engine, directive_id).values())
    no_work_judged(engine, directive_id)
    assert started() == 2

    logged_in.touch()
    assert engine.resume(directive_id, by="ann") is DirectiveStatus.ACTIVE  # = approve
    wait_status(engine, directive_id, DirectiveStatus.COMPLETED)
    assert engine.db.reads.approval(approval.id).status == "approved"
    for name in ("left", "right"):
        assert [r["replayed"] for r in scripted.step_runs(name)][-1] is False


@pytest.mark.timeout(90)
def test_an_unavailable_planning_agent_pauses_and_approve_plans_again(
    engine_factory: Any, scripted: Scripted, tmp_path: Path
) -> None:
    logged_in = tmp_path / "logged-in"
    scripted.write({"plan": PLAN, "planning": not_logged_in(logged_in)})
    engine = claude_engine(engine_factory, scripted)
    directive_id = engine.submit(DirectiveSpec(title="Plan", goal="g", autonomy_level="full_auto"))
    engine.start_directive(directive_id)
    approval = paused_asking(engine, directive_id)
    assert approval.step_id is None and approval.context["context"] == "planning"
    assert engine.db.reads.current_chain(directive_id) is None  # no default chain
    [event] = events(engine, directive_id, "agent_unavailable")
    assert event.data["message"] == LOGIN and event.data["step_name"] is None
    no_work_judged(engine, directive_id)

    logged_in.touch()
    engine.approve(approval.id, "ann")
    wait_status(engine, directive_id, DirectiveStatus.COMPLETED)
    assert list(steps_of(engine, directive_id)) == ["build"]  # the agent's own plan
    plans = [r["replayed"] for r in scripted.runs("planning")]
    assert plans == [True, False]
    assert not events(engine, directive_id, "plan_rejected")


# ----------------------------------------------------------------- races, steered in-process


def unreachable_until(working: threading.Event, wait: Any) -> Any:
    """A step whose agent reports the tool's not-logged-in until ``working`` is set,
    reaching that report once ``wait()`` returns, whatever cancel it was sent."""

    def run(task: Any, cancel: threading.Event) -> Any:
        if working.is_set():
            return {"cost_usd": 0.0}
        wait()
        return TaskResult(status=TaskStatus.FAILED, exit_code=1, summary=LOGIN, unavailable=LOGIN)

    return run


def test_two_agents_unavailable_at_the_same_moment_ask_once(engine_factory: Any) -> None:
    working, barrier = threading.Event(), threading.Barrier(2, timeout=30)
    step = unreachable_until(working, barrier.wait)  # both report at once, cancel or not
    agent = CallableAgent(steps={"left": step, "right": step})
    engine = engine_factory(runner=agent.runner())
    directive_id = engine.submit(
        DirectiveSpec(title="Race", goal="g", steps=[StepSpec(name="left"), StepSpec(name="right")])
    )
    engine.start_directive(directive_id)
    approval = paused_asking(engine, directive_id)
    wait_for(
        lambda: all(s.status is StepStatus.READY for s in steps_of(engine, directive_id).values()),
        timeout=30,
    )
    finished = [t.status for t in engine.db.reads.tasks_of_directive(directive_id)]
    assert sorted(finished) == ["failed", "failed"]  # both reported unavailable
    assert len(events(engine, directive_id, "agent_unavailable")) == 1
    assert [a.id for a in engine.db.reads.pending_approvals(directive_id)] == [approval.id]
    working.set()
    engine.approve(approval.id, "ann")
    wait_status(engine, directive_id, DirectiveStatus.COMPLETED)


def test_paused_by_a_person_while_two_agents_fail_unavailable_it_asks_once(
    engine_factory: Any,
) -> None:
    working, release = threading.Event(), threading.Event()
    step = unreachable_until(working, lambda: release.wait(30))  # deaf to the pause's cancel
    agent = CallableAgent(steps={"left": step, "right": step})
    engine = engine_factory(runner=agent.runner())
    directive_id = engine.submit(
        DirectiveSpec(
            title="Paused", goal="g", steps=[StepSpec(name="left"), StepSpec(name="right")]
        )
    )
    engine.start_directive(directive_id)
    wait_for(lambda: len(agent.runs) == 2, timeout=30)
    assert engine.pause(directive_id, by="ann") is DirectiveStatus.PAUSED
    release.set()
    approval = paused_asking(engine, directive_id)
    wait_for(
        lambda: all(s.status is StepStatus.READY for s in steps_of(engine, directive_id).values()),
        timeout=30,
    )
    assert len(events(engine, directive_id, "agent_unavailable")) == 1
    assert [a.id for a in engine.db.reads.pending_approvals(directive_id)] == [approval.id]
    moves = [
        (e.data["old_status"], e.data["new_status"])
        for e in events(engine, directive_id, "status_changed")
    ]
    assert moves.count(("active", "paused")) == 1  # the person's; the question moved nothing
    working.set()
    assert engine.resume(directive_id, by="ann") is DirectiveStatus.ACTIVE
    wait_status(engine, directive_id, DirectiveStatus.COMPLETED)


@pytest.mark.timeout(90)
def test_the_question_outlives_the_engine_and_a_new_one_retries(
    engine_factory: Any, scripted: Scripted, tmp_path: Path
) -> None:
    logged_in = tmp_path / "logged-in"
    scripted.write({"steps": {"build": not_logged_in(logged_in)}})
    first = claude_engine(engine_factory, scripted)
    directive_id = first.submit(
        DirectiveSpec(title="Restart", goal="g", steps=[StepSpec(name="build")])
    )
    first.start_directive(directive_id)
    approval = paused_asking(first, directive_id)
    first.shutdown()

    second = claude_engine(engine_factory, scripted)  # recovers the paused directive
    assert paused_asking(second, directive_id).id == approval.id
    logged_in.touch()
    second.approve(approval.id, "ann")
    wait_status(second, directive_id, DirectiveStatus.COMPLETED)
    # One attempt before the answer (recovery ran none), one after.
    assert [r["replayed"] for r in scripted.step_runs("build")] == [True, False]
