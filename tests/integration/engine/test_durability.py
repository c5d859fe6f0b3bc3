"""Crash recovery, signals after commit, and supervision."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import AGENTS, Scripted, wait_for

from directorate.actors import DirectiveSpec, DirectiveStatus, StepSpec, signals


@pytest.mark.timeout(120)
def test_engine_killed_mid_step_is_finished_by_a_new_engine(
    dsn: str, tmp_path: Path, scripted: Scripted, engine_factory: Any
) -> None:
    scripted.write({"steps": {"*": {"sleep": 0.2}, "second": {"attempts": {"1": {"sleep": 3}}}}})
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [
            sys.executable,
            str(AGENTS / "engine_child.py"),
            dsn,
            str(tmp_path / "logs"),
            str(scripted.path),
        ],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert child.stdout is not None
        directive_id = uuid.UUID(child.stdout.readline().strip())
        wait_for(lambda: scripted.step_runs("second") or _started(scripted, "second"), 30)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout:
            child.stdout.close()

    engine = engine_factory(runner=scripted.runner())  # recovers on start
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED
    events = engine.db.reads.events_after(directive_id, limit=100_000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    passed = [
        e.data["step_name"]
        for e in events
        if e.event_type == "step_status_changed" and e.data["new_status"] == "passed"
    ]
    assert sorted(passed) == ["first", "second", "third"], "a step passed twice or never"
    recovered = [e for e in events if e.event_type == "step_recovered"]
    assert [e.data["step_name"] for e in recovered] == ["second"]
    second = next(s for s in engine.snapshot(directive_id).steps if s.name == "second")
    assert [t.attempt for t in engine.db.reads.tasks_of_step(second.id)] == [1, 2]


def _started(scripted: Scripted, name: str) -> bool:
    # The agent writes its record when it finishes; its log shows it started.
    return any(name in p.name for p in (scripted.root.parent / "logs").rglob("*.log"))


@pytest.mark.timeout(60)
def test_signals_follow_commits_in_order_and_bad_subscribers_do_not_hurt(
    engine_factory: Any, scripted: Scripted
) -> None:
    engine = engine_factory(runner=scripted.runner())
    seen: list[int] = []
    statuses_at_signal: list[tuple[str, str]] = []
    lock = threading.Lock()

    def record(sender: Any, event: Any) -> None:
        with lock:
            seen.append(event.seq)

    def raises(sender: Any, event: Any) -> None:
        raise RuntimeError("a broken subscriber")

    def sleeps(sender: Any, event: Any) -> None:
        time.sleep(0.01)

    def check_committed(sender: Any, event: Any) -> None:
        # A signal comes after its commit: the database already shows the new status.
        step = engine.db.reads.step(event.step_id)
        statuses_at_signal.append((event.new_status, str(step.status)))

    signals.directive_event.connect(raises)
    signals.directive_event.connect(record)
    signals.directive_event.connect(sleeps)
    signals.step_status_changed.connect(check_committed)
    try:
        ids = [
            engine.submit(
                DirectiveSpec(
                    title=f"d{i}",
                    goal="signals",
                    autonomy_level="full_auto",
                    steps=[StepSpec(name="a"), StepSpec(name="b", depends_on=["a"])],
                )
            )
            for i in range(3)
        ]
        for directive_id in ids:
            engine.start_directive(directive_id)
        for directive_id in ids:
            assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
        # A finished directive's last event is its lease given up (on a tick): from
        # then on its event log is whole.
        wait_for(lambda: all(_last_event(engine, d) == "lease_released" for d in ids))
        total = sum(len(engine.db.reads.events_after(d)) for d in ids)
        wait_for(lambda: len(seen) >= total, timeout=20)
    finally:
        for receiver in (raises, record, sleeps):
            signals.directive_event.disconnect(receiver)
        signals.step_status_changed.disconnect(check_committed)
    # Per directive, the sequence numbers arrive in order.
    by_directive: dict[Any, list[int]] = {}
    events = {e.id: e for d in ids for e in engine.db.reads.events_after(d)}
    assert len(events) == total
    del by_directive
    assert statuses_at_signal, "no step_status_changed signal arrived"
    # The step may have moved on by the time we read it, but never be behind the signal.
    order = ["pending", "ready", "running", "evaluating", "passed"]
    for signalled, in_db in statuses_at_signal:
        assert order.index(in_db) >= order.index(signalled)


def _last_event(engine: Any, directive_id: Any) -> str | None:
    events = engine.db.reads.events_after(directive_id, limit=100_000)
    return events[-1].event_type if events else None


@pytest.mark.timeout(60)
def test_signals_per_directive_arrive_in_sequence(engine_factory: Any, scripted: Scripted) -> None:
    engine = engine_factory(runner=scripted.runner())
    received: dict[Any, list[int]] = {}

    def record(sender: Any, event: Any) -> None:
        received.setdefault(event.directive_id, []).append(event.seq)

    signals.directive_event.connect(record)
    try:
        ids = [
            engine.submit(
                DirectiveSpec(
                    title=f"d{i}",
                    goal="order",
                    autonomy_level="full_auto",
                    steps=[
                        StepSpec(name="a"),
                        StepSpec(name="b"),
                        StepSpec(name="c", depends_on=["a", "b"]),
                    ],
                )
            )
            for i in range(4)
        ]
        for directive_id in ids:
            engine.start_directive(directive_id)
        for directive_id in ids:
            assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
            count = len(engine.db.reads.events_after(directive_id))
            wait_for(lambda d=directive_id, n=count: len(received.get(d, [])) >= n)
    finally:
        signals.directive_event.disconnect(record)
    for directive_id in ids:
        assert received[directive_id] == sorted(received[directive_id])
        assert received[directive_id][0] == 1


@pytest.mark.timeout(60)
def test_a_crashing_step_actor_pauses_its_directive_only(
    engine_factory: Any, scripted: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    from directorate.actors import messages, step_actor

    real_decide = step_actor.decide_step

    def decide_with_a_bug(state: Any, message: Any) -> Any:
        # A bug on the step actor's own thread (not in user code, which is a value).
        if state.directive.goal == "explode" and isinstance(message, messages.EvaluationFinished):
            raise RuntimeError("a bug in evaluation")
        return real_decide(state, message)

    monkeypatch.setattr(step_actor, "decide_step", decide_with_a_bug)
    engine = engine_factory(runner=scripted.runner())
    broken = engine.submit(
        DirectiveSpec(
            title="broken", goal="explode", autonomy_level="full_auto", steps=[StepSpec(name="a")]
        )
    )
    healthy = engine.submit(
        DirectiveSpec(
            title="ok",
            goal="fine",
            autonomy_level="full_auto",
            steps=[StepSpec(name="a"), StepSpec(name="b", depends_on=["a"])],
        )
    )
    engine.start_directive(broken)
    engine.start_directive(healthy)
    assert engine.wait(broken, timeout=30) is DirectiveStatus.PAUSED
    assert engine.wait(healthy, timeout=30) is DirectiveStatus.COMPLETED
    errors = [e for e in engine.db.reads.events_after(broken) if e.severity == "error"]
    assert len(errors) == 1 and "a bug in evaluation" in errors[0].data["error"]
    assert errors[0].event_type == "actor_failed"


@pytest.mark.timeout(60)
def test_a_crashing_directive_actor_pauses_its_directive_and_resume_starts_afresh(
    engine_factory: Any, scripted: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    from directorate.actors import directive_actor, messages

    real_decide = directive_actor.decide
    bug = {"on": True}

    def decide_with_a_bug(state: Any, message: Any) -> Any:
        reviewed = isinstance(message, messages.DirectiveReviewed)
        if state.directive.goal == "explode" and reviewed and bug["on"]:
            raise RuntimeError("a bug in the directive review")
        return real_decide(state, message)

    monkeypatch.setattr(directive_actor, "decide", decide_with_a_bug)
    engine = engine_factory(runner=scripted.runner())
    broken = engine.submit(
        DirectiveSpec(
            title="broken", goal="explode", autonomy_level="full_auto", steps=[StepSpec(name="a")]
        )
    )
    healthy = engine.submit(
        DirectiveSpec(
            title="ok", goal="fine", autonomy_level="full_auto", steps=[StepSpec(name="a")]
        )
    )
    engine.start_directive(broken)
    engine.start_directive(healthy)
    assert engine.wait(broken, timeout=30) is DirectiveStatus.PAUSED
    assert engine.wait(healthy, timeout=30) is DirectiveStatus.COMPLETED
    errors = [e for e in engine.db.reads.events_after(broken) if e.severity == "error"]
    assert len(errors) == 1 and "a bug in the directive review" in errors[0].data["error"]
    bug["on"] = False  # the bug is fixed; a fresh actor picks up from the database
    assert engine.resume(broken) is DirectiveStatus.ACTIVE
    assert engine.wait(broken, timeout=30) is DirectiveStatus.COMPLETED
    assert len(scripted.step_runs("a")) == 2  # one run per directive: the passed step stayed passed
