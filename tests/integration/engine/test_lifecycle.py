"""The engine end to end on a real PostgreSQL, with scripted agents as real subprocesses."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import Scripted, pid_alive, running_task, wait_for

from directorate.actors import (
    DirectiveSpec,
    DirectiveStatus,
    InvalidTransition,
    NotFound,
    StepSpec,
    StepStatus,
)
from directorate.persistence.validation import MAX_CHAIN_STEPS

DIAMOND_PLAN = {
    "steps": [
        {"name": "survey", "step_type": "research", "description": "look around"},
        {"name": "left", "step_type": "implement", "depends_on": ["survey"]},
        {"name": "right", "step_type": "implement", "depends_on": ["survey"]},
        {"name": "join", "step_type": "implement", "depends_on": ["left", "right"]},
        {"name": "verify", "step_type": "test", "depends_on": ["join"]},
    ]
}


def spec(**changes: Any) -> DirectiveSpec:
    return DirectiveSpec(title="Test directive", goal="Exercise the engine", **changes)


def event_types(engine: Any, directive_id: uuid.UUID) -> list[str]:
    return [e.event_type for e in engine.db.reads.events_after(directive_id)]


def assert_gap_free(engine: Any, directive_id: uuid.UUID) -> None:
    seqs = [e.seq for e in engine.db.reads.events_after(directive_id, limit=100_000)]
    assert seqs == list(range(1, len(seqs) + 1))


@pytest.mark.timeout(60)
def test_planned_diamond_completes_with_parallel_middle_steps(
    engine_factory: Any, scripted: Scripted
) -> None:
    scripted.write(
        {
            "plan": DIAMOND_PLAN,
            "steps": {"*": {"sleep": 0.1}, "left": {"sleep": 1.0}, "right": {"sleep": 1.0}},
        }
    )
    engine = engine_factory(runner=scripted.runner())
    directive_id = engine.submit(spec(autonomy_level="full_auto"))
    engine.start_directive(directive_id)

    assert engine.wait(directive_id, timeout=45) is DirectiveStatus.COMPLETED
    view = engine.snapshot(directive_id)
    assert sorted(s.name for s in view.steps) == sorted(s["name"] for s in DIAMOND_PLAN["steps"])
    assert all(s.status is StepStatus.PASSED for s in view.steps)
    left, right = scripted.step_runs("left")[0], scripted.step_runs("right")[0]
    assert left["started"] < right["finished"] and right["started"] < left["finished"], (
        "the two middle steps did not overlap"
    )
    survey, join = scripted.step_runs("survey")[0], scripted.step_runs("join")[0]
    assert survey["finished"] <= min(left["started"], right["started"])
    assert join["started"] >= max(left["finished"], right["finished"])
    types = event_types(engine, directive_id)
    for expected in (
        "planning_started",
        "planning_completed",
        "step_started",
        "directive_completed",
        "status_changed",
    ):
        assert expected in types
    assert "plan_rejected" not in types
    layout = {s.name: (s.editor_x, s.editor_y) for s in view.steps}
    assert layout["survey"][0] < layout["left"][0] == layout["right"][0] < layout["join"][0]
    assert_gap_free(engine, directive_id)


BAD_PLANS = {
    "cycle": {"steps": [{"name": "a", "depends_on": ["b"]}, {"name": "b", "depends_on": ["a"]}]},
    "unknown-dependency": {"steps": [{"name": "a", "depends_on": ["ghost"]}]},
    "duplicate-name": {"steps": [{"name": "a"}, {"name": "a"}]},
    "bad-name": {"steps": [{"name": "Not Kebab"}]},
    "empty": {"steps": []},
    "not-json": "this is not { json",
    "no-file": None,
    # Hard inputs (issue 11): each used to pause the directive or slip through.
    "nested-100000-deep": '{"steps": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "nul-byte": '{"steps": [{"name": "a\x00b"}]}',
    "nul-escape": {"steps": [{"name": "a", "task_plan": "do\x00it"}]},
    "lone-surrogate": '{"steps": [{"name": "a", "task_plan": "x\\ud800y"}]}',
    "too-many-steps": {"steps": [{"name": f"s{i}"} for i in range(MAX_CHAIN_STEPS + 1)]},
}
REASONS = {
    "nested-100000-deep": "nested more than",
    "nul-byte": "NUL byte",
    "nul-escape": "NUL byte",
    "lone-surrogate": "not valid UTF-8",
    "too-many-steps": "more than the",
    "cycle": "cycle",
    "unknown-dependency": "unknown step",
    "duplicate-name": "duplicate",
    "bad-name": "kebab",
    "empty": "at least one step",
    "not-json": "not JSON",
    "no-file": "no plan file",
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", sorted(BAD_PLANS))
def test_invalid_plan_falls_back_to_default_chain(
    engine_factory: Any, scripted: Scripted, kind: str
) -> None:
    scripted.write({"plan": BAD_PLANS[kind]})
    engine = engine_factory(runner=scripted.runner())
    directive_id = engine.submit(spec(autonomy_level="full_auto"))
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, timeout=45) is DirectiveStatus.COMPLETED
    steps = engine.snapshot(directive_id).steps
    assert [s.name for s in sorted(steps, key=lambda s: s.editor_x)] == [
        "research",
        "implement",
        "test",
    ]
    rejected = [
        e for e in engine.db.reads.events_after(directive_id) if e.event_type == "plan_rejected"
    ]
    assert len(rejected) == 1 and REASONS[kind] in rejected[0].data["reason"]
    assert "\n" not in rejected[0].data["reason"]
    assert "actor_failed" not in event_types(engine, directive_id)


@pytest.mark.timeout(60)
def test_pause_and_resume_in_the_middle_of_a_running_step(
    engine_factory: Any, scripted: Scripted
) -> None:
    scripted.write({"steps": {"slow": {"attempts": {"1": {"sleep": 30}}}}})
    engine = engine_factory(runner=scripted.runner(kill_grace_s=0.5))
    directive_id = engine.submit(spec(autonomy_level="full_auto", steps=[StepSpec(name="slow")]))
    engine.start_directive(directive_id)
    wait_for(lambda: scripted.records.exists() and running_task(engine, directive_id))
    first = running_task(engine, directive_id)
    assert engine.pause(directive_id) is DirectiveStatus.PAUSED
    wait_for(lambda: engine.db.reads.task(first.id).status == "cancelled", timeout=10)
    assert engine.wait(directive_id, timeout=5) is DirectiveStatus.PAUSED
    assert engine.snapshot(directive_id).steps[0].status is StepStatus.READY

    assert engine.resume(directive_id) is DirectiveStatus.ACTIVE
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
    attempts = [t.attempt for t in engine.db.reads.tasks_of_directive(directive_id)]
    assert attempts == [1, 2]


@pytest.mark.timeout(60)
def test_stop_kills_the_running_agents_process_group(
    engine_factory: Any, scripted: Scripted
) -> None:
    scripted.write({"steps": {"*": {"sleep": 60, "sleeper": True}}})
    engine = engine_factory(runner=scripted.runner(kill_grace_s=0.5))
    directive_id = engine.submit(spec(steps=[StepSpec(name="forever")]))
    engine.start_directive(directive_id)
    task = wait_for(lambda: running_task(engine, directive_id))
    pgid = wait_for(lambda: _agent_pgid(task.log_path))
    assert engine.stop_directive(directive_id) is DirectiveStatus.CANCELLED
    wait_for(lambda: not _group_alive(pgid), timeout=10)
    assert engine.db.reads.directive(directive_id).status is DirectiveStatus.CANCELLED
    # A stop asks; the agent's own report (once it is dead) records how the task ended.
    wait_for(lambda: engine.db.reads.task(task.id).status == "cancelled", timeout=10)


def _agent_pgid(log_path: str | None) -> int | None:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"scripted_agent.py" in cmdline:
            try:
                return os.getpgid(int(proc.name))
            except ProcessLookupError:
                continue
    return None


def _group_alive(pgid: int) -> bool:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.getpgid(int(proc.name)) == pgid and pid_alive(int(proc.name)):
                return True
        except (ProcessLookupError, PermissionError):
            continue
    return False


@pytest.mark.timeout(60)
def test_illegal_transitions_raise_and_change_nothing(
    engine_factory: Any, scripted: Scripted
) -> None:
    engine = engine_factory(runner=scripted.runner())
    directive_id = engine.submit(spec(steps=[StepSpec(name="only")], autonomy_level="full_auto"))
    before = event_types(engine, directive_id)
    with pytest.raises(InvalidTransition):
        engine.resume(directive_id)  # draft -> active is not resume
    with pytest.raises(InvalidTransition):
        engine.pause(directive_id)  # draft cannot pause
    assert engine.db.reads.directive(directive_id).status is DirectiveStatus.DRAFT
    assert event_types(engine, directive_id) == before
    assert engine.live_actor_count() == 0  # refusing left no actor behind

    engine.start_directive(directive_id)
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
    # Its last event is its lease given up, on a tick after it finished.
    wait_for(lambda: event_types(engine, directive_id)[-1] == "lease_released")
    after = event_types(engine, directive_id)
    for call in (engine.start_directive, engine.pause, engine.resume, engine.stop_directive):
        with pytest.raises(InvalidTransition):
            call(directive_id)
    assert engine.db.reads.directive(directive_id).status is DirectiveStatus.COMPLETED
    assert event_types(engine, directive_id) == after
    draft = engine.submit(spec(steps=[StepSpec(name="only")]))
    assert engine.stop_directive(draft) is DirectiveStatus.CANCELLED  # a draft can be dropped
    with pytest.raises(NotFound):
        engine.pause(uuid.uuid4())
