"""Races, recovery and escalation edges found in review: each test drives the
interleaving that once left a directive stuck, wrong or over budget."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from callable_agent import CallableAgent, SteeredVerifier, until_cancelled
from engine_helpers import wait_for

from directorate.actors import (
    CircuitBreakerTripped,
    DirectiveSpec,
    DirectiveStatus,
    InvalidInput,
    InvalidTransition,
    StepSpec,
)
from directorate.persistence.models import WorkspaceSpec

pytestmark = pytest.mark.timeout(90)
ACTIVE, PAUSED = DirectiveStatus.ACTIVE, DirectiveStatus.PAUSED
COMPLETED = DirectiveStatus.COMPLETED


def spec(*names: str, **changes: Any) -> DirectiveSpec:
    settings: dict[str, Any] = {
        "title": "race",
        "goal": "survive",
        "autonomy_level": "full_auto",
        "steps": [StepSpec(name=n) for n in names],
    }
    settings.update(changes)
    return DirectiveSpec(**settings)


def status_of(engine: Any, directive_id: Any, step: str) -> str:
    return str(next(s.status for s in engine.snapshot(directive_id).steps if s.name == step))


def running_tasks(engine: Any, directive_id: Any) -> list[Any]:
    return [t for t in engine.db.reads.tasks_of_directive(directive_id) if t.status == "running"]


def test_resume_after_a_step_actor_crash_finishes_the_directive(
    engine_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from directorate.actors import messages, step_actor

    real_decide, bug = step_actor.decide_step, {"on": True}

    def decide(state: Any, message: Any) -> Any:
        if bug["on"] and isinstance(message, messages.EvaluationFinished):
            raise RuntimeError("a bug in the step actor")
        return real_decide(state, message)

    monkeypatch.setattr(step_actor, "decide_step", decide)
    engine = engine_factory(runner=CallableAgent().runner())
    directive_id = engine.submit(spec("a"))
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, 30) is PAUSED
    bug["on"] = False
    assert engine.resume(directive_id) is ACTIVE
    assert engine.wait(directive_id, 30) is COMPLETED


def test_a_directive_review_cannot_be_approved_while_paused(engine_factory: Any) -> None:
    engine = engine_factory(
        runner=CallableAgent().runner(), verifiers=[SteeredVerifier(1.0, 0.6)]
    )
    directive_id = engine.submit(spec("a", autonomy_level="guardrails"))
    engine.start_directive(directive_id)
    engine.wait(directive_id, 30)
    [approval] = engine.snapshot(directive_id).pending_approvals
    assert approval.approval_type == "directive_review"
    engine.pause(directive_id)
    with pytest.raises(InvalidTransition):
        engine.approve(approval.id, "ana")
    assert engine.db.reads.approval(approval.id).status == "pending"  # nothing changed
    engine.resume(directive_id)
    engine.approve(approval.id, "ana")
    assert engine.wait(directive_id, 30) is COMPLETED


def test_a_review_of_a_superseded_chain_is_dropped(engine_factory: Any) -> None:
    gate, started, release_b = threading.Event(), threading.Event(), threading.Event()

    def b(task: Any, cancel: threading.Event) -> Any:
        release_b.wait(30)
        return {"cost_usd": 0.0}

    agent = CallableAgent(plan={"steps": [{"name": "b"}]}, steps={"b": b})
    verifier = SteeredVerifier(1.0, 1.0, review_gate=gate, review_started=started)
    engine = engine_factory(runner=agent.runner(), verifiers=[verifier])
    directive_id = engine.submit(spec("a"))
    engine.start_directive(directive_id)
    assert started.wait(30)  # the review of the first chain is under way
    engine.regenerate_chain(directive_id, "change of plan")
    wait_for(lambda: agent.step_runs("b"))
    gate.set()  # the old review answers now, while b still works
    release_b.set()
    assert engine.wait(directive_id, 30) is COMPLETED
    assert status_of(engine, directive_id, "b") == "passed"
    # Only the new chain's review counted: the old one was dropped, not stored.
    current = engine.snapshot(directive_id).chain
    reviews = [e for e in engine.db.reads.evaluations_of_directive(directive_id) if not e.step_id]
    assert [r.chain_id for r in reviews] == [current.id]


def test_regeneration_cancels_the_old_chains_approvals(engine_factory: Any) -> None:
    agent = CallableAgent(plan={"steps": [{"name": "c"}]})
    verifier = SteeredVerifier(0.6, 1.0)
    engine = engine_factory(runner=agent.runner(), verifiers=[verifier])
    directive_id = engine.submit(spec("a", autonomy_level="guardrails"))
    engine.start_directive(directive_id)
    engine.wait(directive_id, 30)
    [review] = engine.snapshot(directive_id).pending_approvals
    verifier.step_score = 1.0
    engine.regenerate_chain(directive_id, "new plan")
    assert engine.db.reads.approval(review.id).status == "cancelled"
    assert engine.wait(directive_id, 30) is COMPLETED
    with pytest.raises(InvalidTransition):
        engine.approve(review.id)


def test_recovery_escalates_a_chain_blocked_just_before_the_crash(
    engine_factory: Any, dsn: str
) -> None:
    agent = CallableAgent(steps={"a": until_cancelled()})
    first = engine_factory(runner=agent.runner())
    directive_id = first.submit(spec("a", autonomy_level="guardrails"))
    first.start_directive(directive_id)
    wait_for(lambda: agent.step_runs("a"))
    first.shutdown()
    # What a crash leaves between the step's "blocked" and the directive's question.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE chain_steps SET status = 'blocked' WHERE directive_id = %s",
                     (directive_id,))
    second = engine_factory(runner=agent.runner())
    [approval] = wait_for(lambda: second.snapshot(directive_id).pending_approvals)
    assert approval.approval_type == "chain_blocked"


def test_an_approved_cost_breaker_does_not_trip_again_at_once(engine_factory: Any) -> None:
    agent = CallableAgent(steps={"a": lambda task, cancel: {"cost_usd": 5.0}})
    engine = engine_factory(runner=agent.runner())
    directive_id = engine.submit(
        spec("a", max_total_cost_usd=1.0, steps=[StepSpec(name="a"), StepSpec(name="b")])
    )
    engine.start_directive(directive_id)
    [breaker] = wait_for(lambda: engine.snapshot(directive_id).pending_approvals)
    with pytest.raises(InvalidInput, match="must be above"):
        engine.approve(breaker.id, "ana", max_total_cost_usd=4.0)  # below the $5 spent
    engine.approve(breaker.id, "ana")  # no figure: doubled, and above what was spent
    assert engine.wait(directive_id, 30) is not PAUSED
    assert engine.db.reads.directive(directive_id).max_total_cost_usd == 7.5


def test_regeneration_is_refused_while_a_breaker_is_open_and_asks_once_at_its_limit(
    engine_factory: Any,
) -> None:
    agent = CallableAgent(steps={"a": until_cancelled()})
    engine = engine_factory(runner=agent.runner())
    directive_id = engine.submit(spec("a", max_chain_regenerations=0))
    engine.start_directive(directive_id)
    wait_for(lambda: agent.step_runs("a"))
    for _ in range(3):
        with pytest.raises(CircuitBreakerTripped):
            engine.regenerate_chain(directive_id, "again")
    pending = engine.snapshot(directive_id).pending_approvals
    assert [a.approval_type for a in pending] == ["circuit_breaker"]
    assert engine.db.reads.directive(directive_id).chain_generation_count == 1


def test_a_refused_regeneration_changes_nothing(engine_factory: Any) -> None:
    agent = CallableAgent(steps={"a": until_cancelled(3)})
    engine = engine_factory(runner=agent.runner())
    directive_id = engine.submit(spec("a"))
    engine.start_directive(directive_id)
    wait_for(lambda: agent.step_runs("a"))
    with pytest.raises(InvalidInput, match="NUL"):
        engine.regenerate_chain(directive_id, "bad\x00reason")
    assert running_tasks(engine, directive_id)  # the agent was left alone
    assert engine.wait(directive_id, 30) is COMPLETED
    assert len(agent.step_runs("a")) == 1


def test_a_nul_in_the_judges_feedback_is_cleaned(engine_factory: Any, tmp_path: Path) -> None:
    judge = tmp_path / "judge.py"
    judge.write_text(
        "import sys; sys.stdin.read()\n"
        "print('{\"passed\": true, \"score\": 0.95, \"feedback\": \"fine\\\\u0000\"}')\n"
    )
    (tmp_path / "repo").mkdir()
    llm = {"command": [sys.executable, str(judge)], "timeout_s": 30}
    engine = engine_factory(runner=CallableAgent().runner(), verifiers=[])
    directive_id = engine.submit(
        spec(
            "a",
            local_path=str(tmp_path / "repo"),
            verifiers={"auto_detect": False, "llm": llm},
            workspace=WorkspaceSpec(isolation="shared"),
        )
    )
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, 30) is COMPLETED
    [evaluation, *_] = engine.db.reads.evaluations_of_directive(directive_id)
    assert evaluation.llm_results[0]["details"]["feedback"] == "fine"


def test_a_planning_task_given_up_on_still_records_its_end_and_cost(engine_factory: Any) -> None:
    calls = {"n": 0}

    def planning(task: Any, cancel: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            cancel.wait(20)
            time.sleep(0.5)  # an agent finishing its last words after the cancel
            return {"cost_usd": 0.25}
        return None

    def x(task: Any, cancel: Any) -> Any:
        cancel.wait(2)  # still working when the first planning agent reports

    agent = CallableAgent(plan={"steps": [{"name": "x"}]}, planning=planning, steps={"x": x})
    engine = engine_factory(runner=agent.runner())
    directive_id = engine.submit(spec(steps=None))
    engine.start_directive(directive_id)
    wait_for(lambda: agent.runs)
    engine.pause(directive_id)
    engine.resume(directive_id)
    assert engine.wait(directive_id, 30) is COMPLETED
    assert not running_tasks(engine, directive_id)
    assert engine.db.reads.directive(directive_id).total_cost_usd == 0.25


def test_a_restart_while_regenerating_keeps_the_passed_steps(engine_factory: Any) -> None:
    plan = {"steps": [{"name": "a"}, {"name": "b", "depends_on": ["a"]}]}

    def slow_replanning(task: Any, cancel: Any) -> Any:
        return (cancel.wait(30), {"cost_usd": 0.0})[1] if "abandoned" in task.instructions else None

    first_agent = CallableAgent(plan, steps={"b": until_cancelled()}, planning=slow_replanning)
    first = engine_factory(runner=first_agent.runner())
    steps = [StepSpec(name="a"), StepSpec(name="b", depends_on=["a"])]
    directive_id = first.submit(spec(steps=steps))
    first.start_directive(directive_id)
    wait_for(lambda: first_agent.step_runs("b"))
    first.regenerate_chain(directive_id, "replan")
    wait_for(lambda: any(r[0] == "planning" for r in first_agent.runs))
    first.shutdown()
    second_agent = CallableAgent(plan)
    second = engine_factory(runner=second_agent.runner())
    assert second.wait(directive_id, 30) is COMPLETED
    assert not second_agent.step_runs("a")  # passed before: carried over, not redone
    assert second_agent.step_runs("b")
    regenerated = [e for e in second.db.reads.events_after(directive_id)
                   if e.event_type == "chain_regenerated"]
    assert len(regenerated) == 1 and regenerated[0].data["carried_over"] == ["a"]


def test_rework_instructions_survive_pause_and_restart(engine_factory: Any) -> None:
    def a(task: Any, cancel: Any) -> Any:
        if task.attempt == 1:
            return {"success": False, "summary": "broken"}
        cancel.wait(30)
        return None

    first_agent = CallableAgent(steps={"a": a})
    first = engine_factory(runner=first_agent.runner())
    directive_id = first.submit(spec("a"))
    first.start_directive(directive_id)
    wait_for(lambda: len(first_agent.step_runs("a")) == 2)
    assert "## Rework" in first_agent.step_runs("a")[1][3]
    first.pause(directive_id)
    wait_for(lambda: status_of(first, directive_id, "a") == "ready")
    first.shutdown()
    second_agent = CallableAgent()
    second = engine_factory(runner=second_agent.runner())
    second.resume(directive_id)
    assert second.wait(directive_id, 30) is COMPLETED
    [(_, _, attempt, instructions)] = second_agent.step_runs("a")
    assert attempt == 3 and "## Rework" in instructions


def test_shutdown_right_after_pause_records_the_cancelled_task(engine_factory: Any) -> None:
    def slow_to_stop(task: Any, cancel: Any) -> Any:
        cancel.wait(30)
        time.sleep(0.3)  # an agent's last words after its cancel
        return {"cost_usd": 0.5}

    agent = CallableAgent(steps={"a": slow_to_stop})
    engine = engine_factory(runner=agent.runner())
    directive_id = engine.submit(spec("a"))
    engine.start_directive(directive_id)
    wait_for(lambda: agent.step_runs("a"))
    engine.pause(directive_id)
    engine.shutdown()  # at once, as `directorate run` does on Ctrl-C
    later = engine_factory(runner=agent.runner(), recover=False)
    assert status_of(later, directive_id, "a") == "ready"
    [task] = later.db.reads.tasks_of_directive(directive_id)
    assert task.status == "cancelled" and task.cost_usd == 0.5
    assert later.db.reads.directive(directive_id).total_cost_usd == 0.5


def test_an_embedded_agent_calling_sys_exit_fails_its_attempt_not_the_engine(
    engine_factory: Any,
) -> None:
    def exits_once(task: Any, cancel: Any) -> Any:
        if task.attempt == 1:
            sys.exit(3)
        return {"cost_usd": 0.0}

    agent = CallableAgent(steps={"a": exits_once})
    engine = engine_factory(runner=agent.runner())
    directive_id = engine.submit(spec("a"))
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, 30) is COMPLETED
    attempts = [(t.attempt, t.status) for t in engine.db.reads.tasks_of_directive(directive_id)]
    assert attempts == [(1, "failed"), (2, "succeeded")]
