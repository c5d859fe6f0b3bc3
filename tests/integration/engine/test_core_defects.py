"""Defects of the directive core, one test each: every test here failed (or hung
until its timeout) on the core as it was before its rebuild, and passes once the
defect is fixed.

- Cost an agent reports after a stop or a regeneration is counted.
- ``sys.exit`` in a verifier fails that evaluation only, not every actor.
- A refused start changes nothing.
- A plan finished just before a pause survives a restart.
- Autonomy is bounded by default: an always-failing agent ends up asking a human.
- No ``pykka.Timeout`` or raw psycopg error escapes an Engine call, and
  ``shutdown(timeout)`` keeps to its timeout.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from callable_agent import CallableAgent, until_cancelled
from engine_helpers import Scripted, pid_alive, wait_for

from directorate.actors import (
    CommandRunner,
    DirectiveSpec,
    DirectiveStatus,
    DirectorateError,
    InvalidInput,
    NotFound,
    RunnerError,
    StepSpec,
    TaskResult,
)
from directorate.persistence.models import TaskStatus
from directorate.verifiers import VerifierResult, VerifierType

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ACTIVE, PAUSED = DirectiveStatus.ACTIVE, DirectiveStatus.PAUSED
COMPLETED, CANCELLED = DirectiveStatus.COMPLETED, DirectiveStatus.CANCELLED
FINISHED_TASK = {"succeeded", "failed", "timed_out", "cancelled"}

# A real agent process for the stop/regenerate/shutdown tests. argv: MODE READY_DIR [PLAN].
# Planning: writes PLAN (JSON) to $DIRECTORATE_PLAN_FILE. The step named "slow" works
# until it is signalled; any other step succeeds at once. MODE "report": on SIGTERM it
# prints its report, {"cost_usd": 2.0}, and exits; MODE "ignore": it ignores SIGTERM.
# Once its handler is in place it writes READY_DIR/<task id>.pid (its pid).
STUBBORN_AGENT = r"""
import json, os, signal, sys
from pathlib import Path

mode, ready_dir = sys.argv[1], Path(sys.argv[2])
plan = sys.argv[3] if len(sys.argv) > 3 else None
instructions = sys.stdin.read()
if os.environ["DIRECTORATE_TASK_KIND"] == "planning":
    if plan:
        Path(os.environ["DIRECTORATE_PLAN_FILE"]).write_text(plan)
    print(json.dumps({"cost_usd": 0.0, "summary": "planned"}))
    sys.exit(0)
first = instructions.splitlines()[0] if instructions else ""
if first.removeprefix("## Step: ").strip() != "slow":
    print(json.dumps({"cost_usd": 0.0, "summary": "quick work"}))
    sys.exit(0)


def report_and_exit(signum, frame):
    print(json.dumps({"cost_usd": 2.0, "summary": "stopped, and said what it spent"}), flush=True)
    os._exit(0)


signal.signal(signal.SIGTERM, report_and_exit if mode == "report" else signal.SIG_IGN)
print("working", flush=True)
ready = ready_dir / (os.environ["DIRECTORATE_TASK_ID"] + ".pid")
ready.with_suffix(".tmp").write_text(str(os.getpid()))
ready.with_suffix(".tmp").rename(ready)
while True:
    signal.pause()
"""


# ----------------------------------------------------------------- helpers


def spec(*names: str, **changes: Any) -> DirectiveSpec:
    settings: dict[str, Any] = {
        "title": "core defect",
        "goal": "prove the fix",
        "autonomy_level": "full_auto",
        "steps": [StepSpec(name=n) for n in names] or None,
    }
    settings.update(changes)
    return DirectiveSpec(**settings)


def tasks(engine: Any, directive_id: uuid.UUID) -> list[Any]:
    return engine.db.reads.tasks_of_directive(directive_id)


def events(engine: Any, directive_id: uuid.UUID) -> list[Any]:
    return engine.db.reads.events_after(directive_id, limit=100_000)


def step_names(engine: Any, directive_id: uuid.UUID) -> list[str]:
    return sorted(s.name for s in engine.snapshot(directive_id).steps)


def total_cost(engine: Any, directive_id: uuid.UUID) -> float:
    return engine.db.reads.directive(directive_id).total_cost_usd


class StubbornAgent:
    """``STUBBORN_AGENT`` as a CommandRunner, and the pids its slow steps wrote."""

    def __init__(self, root: Path, mode: str, plan: dict[str, Any] | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.ready = root / "ready"
        self.ready.mkdir(exist_ok=True)
        self.script = root / "stubborn_agent.py"
        self.script.write_text(STUBBORN_AGENT)
        self.argv = [sys.executable, str(self.script), mode, str(self.ready)]
        if plan is not None:
            self.argv.append(json.dumps(plan))

    def runner(self, **kwargs: Any) -> CommandRunner:
        return CommandRunner(self.argv, **kwargs)

    def pids(self) -> list[int]:
        return [int(p.read_text()) for p in self.ready.glob("*.pid")]

    def kill_all(self) -> None:
        for pid in self.pids():
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


class ReportsCostWhenCancelled:
    """A step callable that works until it is cancelled, then reports $2 spent."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.reporting = threading.Event()

    def __call__(self, task: Any, cancel: threading.Event) -> Any:
        self.started.set()
        cancel.wait(30)
        self.reporting.set()  # what follows is the report
        return {"cost_usd": 2.0, "summary": "stopped, and said what it spent"}


def agent_log_has_report(engine: Any, directive_id: uuid.UUID, step: str) -> bool:
    """The agent process printed its report (so a missing cost is the engine's doing)."""
    [task] = [t for t in tasks(engine, directive_id) if f"/{step}-" in (t.log_path or "")]
    log = Path(task.log_path)
    return log.exists() and '"cost_usd": 2.0' in log.read_text()


def assert_the_late_report_counted(engine: Any, directive_id: uuid.UUID, step: str) -> None:
    """The agent's report, which arrives after the engine let the task go, is in the
    directive's total and in the task's row."""
    try:
        wait_for(lambda: total_cost(engine, directive_id) == 2.0, timeout=10)
    except AssertionError:
        raise AssertionError(
            f"the $2.00 reported after the cancel was not counted: directive total is "
            f"{total_cost(engine, directive_id)}"
        ) from None
    [task] = [t for t in tasks(engine, directive_id) if f"/{step}-" in (t.log_path or "")]
    assert task.cost_usd == 2.0
    assert str(task.status) in FINISHED_TASK


# ----------------------------------------------------------------- 1, 2: late cost reports


def test_cost_reported_by_a_callable_agent_after_stop_is_counted(engine_factory: Any) -> None:
    slow = ReportsCostWhenCancelled()
    engine = engine_factory(runner=CallableAgent(steps={"slow": slow}).runner())
    directive_id = engine.submit(spec("slow"))
    engine.start_directive(directive_id)
    assert slow.started.wait(20)
    assert engine.stop_directive(directive_id) is CANCELLED
    assert slow.reporting.wait(10), "the agent was not cancelled"
    assert_the_late_report_counted(engine, directive_id, "slow")
    assert engine.db.reads.directive(directive_id).status is CANCELLED


def test_cost_reported_by_an_agent_process_on_sigterm_after_stop_is_counted(
    engine_factory: Any, tmp_path: Path
) -> None:
    agent = StubbornAgent(tmp_path / "agent", "report")
    engine = engine_factory(runner=agent.runner(kill_grace_s=10))
    try:
        directive_id = engine.submit(spec("slow"))
        engine.start_directive(directive_id)
        [pid] = wait_for(agent.pids)
        assert engine.stop_directive(directive_id) is CANCELLED
        wait_for(lambda: agent_log_has_report(engine, directive_id, "slow"), timeout=10)
        wait_for(lambda: not pid_alive(pid), timeout=10)
        assert_the_late_report_counted(engine, directive_id, "slow")
    finally:
        agent.kill_all()


def test_cost_reported_by_a_callable_agent_after_regeneration_is_counted(
    engine_factory: Any,
) -> None:
    slow = ReportsCostWhenCancelled()
    agent = CallableAgent(plan={"steps": [{"name": "quick"}]}, steps={"slow": slow})
    engine = engine_factory(runner=agent.runner())
    directive_id = engine.submit(spec("slow"))
    engine.start_directive(directive_id)
    assert slow.started.wait(20)
    engine.regenerate_chain(directive_id, reason="a better plan")
    assert slow.reporting.wait(10), "the agent was not cancelled"
    assert engine.wait(directive_id, timeout=30) is COMPLETED
    assert step_names(engine, directive_id) == ["quick"]
    assert_the_late_report_counted(engine, directive_id, "slow")


def test_cost_reported_by_an_agent_process_on_sigterm_after_regeneration_is_counted(
    engine_factory: Any, tmp_path: Path
) -> None:
    agent = StubbornAgent(tmp_path / "agent", "report", plan={"steps": [{"name": "quick"}]})
    engine = engine_factory(runner=agent.runner(kill_grace_s=10))
    try:
        directive_id = engine.submit(spec("slow"))
        engine.start_directive(directive_id)
        wait_for(agent.pids)
        engine.regenerate_chain(directive_id, reason="a better plan")
        wait_for(lambda: agent_log_has_report(engine, directive_id, "slow"), timeout=10)
        assert engine.wait(directive_id, timeout=30) is COMPLETED
        assert step_names(engine, directive_id) == ["quick"]
        assert_the_late_report_counted(engine, directive_id, "slow")
    finally:
        agent.kill_all()


# ----------------------------------------------------------------- 3: sys.exit in a verifier


class ExitsOnceVerifier:
    """Calls ``sys.exit(3)`` the first time it judges ``when`` ("step": a step's
    attempt, "review": the directive review); otherwise green."""

    name = "exits-once"
    verifier_type = VerifierType.CUSTOM
    weight = 1.0
    required = True

    def __init__(self, when: str) -> None:
        self.when = when
        self.exited = False
        self._lock = threading.Lock()

    def verify(self, repo_path: Path, ctx: Any) -> VerifierResult:
        target = (ctx.step_id is None) == (self.when == "review")
        with self._lock:
            exit_now = target and not self.exited
            self.exited = self.exited or exit_now
        if exit_now:
            sys.exit(3)
        return VerifierResult(
            name=self.name,
            verifier_type=self.verifier_type,
            passed=True,
            score=1.0,
            output="ok",
            duration_s=0.0,
        )


def assert_the_engine_still_works(engine: Any) -> None:
    other = engine.submit(spec("after", title="a directive started afterwards"))
    engine.start_directive(other)
    assert engine.wait(other, timeout=20) is COMPLETED
    assert [s.name for s in engine.snapshot(other).steps] == ["after"]


def test_sys_exit_in_a_verifier_fails_that_attempt_only(engine_factory: Any) -> None:
    verifier = ExitsOnceVerifier("step")
    engine = engine_factory(runner=CallableAgent().runner(), verifiers=[verifier])
    directive_id = engine.submit(spec("judged"))
    engine.start_directive(directive_id)
    status = engine.wait(directive_id, timeout=15)
    assert verifier.exited
    assert status is COMPLETED, (
        f"the directive is {status} with nothing running after its verifier called sys.exit"
    )
    [step] = engine.snapshot(directive_id).steps
    assert step.rework_count == 1, "the attempt judged by the exiting verifier was not failed"
    attempts = sorted((t.attempt, str(t.status)) for t in tasks(engine, directive_id))
    assert [a for a, _ in attempts] == [1, 2] and attempts[-1] == (2, "succeeded")
    assert_the_engine_still_works(engine)


def test_sys_exit_in_the_directive_review_leaves_the_directive_answerable(
    engine_factory: Any,
) -> None:
    verifier = ExitsOnceVerifier("review")
    engine = engine_factory(runner=CallableAgent().runner(), verifiers=[verifier])
    directive_id = engine.submit(spec("judged", autonomy_level="guardrails"))
    engine.start_directive(directive_id)
    status = engine.wait(directive_id, timeout=15)
    assert verifier.exited
    view = engine.snapshot(directive_id)
    # An end, a pause, or a question for a human: not "active" with nothing under way.
    assert status.terminal or status is PAUSED or view.pending_approvals, (
        f"the directive is left {status}, with no approval, after its review called sys.exit"
    )
    assert [str(s.status) for s in view.steps] == ["passed"]
    assert_the_engine_still_works(engine)


# ----------------------------------------------------------------- 4: a refused start


@pytest.mark.parametrize("explicit_steps", [False, True], ids=["planned", "explicit-steps"])
def test_a_start_refused_for_want_of_a_runner_changes_nothing(
    engine_factory: Any, explicit_steps: bool
) -> None:
    engine = engine_factory(runner=None)
    directive_id = engine.submit(spec(*(["a", "b"] if explicit_steps else [])))
    with pytest.raises(RunnerError):
        engine.start_directive(directive_id)
    directive = engine.db.reads.directive(directive_id)
    assert directive.status is DirectiveStatus.DRAFT
    assert directive.started_at is None
    assert tasks(engine, directive_id) == []
    assert engine.db.reads.chains(directive_id) == []
    assert [e.event_type for e in events(engine, directive_id)] == ["directive_created"]
    # Still a draft that can be started once a runner is there.
    with pytest.raises(RunnerError):
        engine.start_directive(directive_id)


# ----------------------------------------------------------------- 5: plan, pause, restart


def test_a_plan_finished_just_before_a_pause_survives_a_restart(engine_factory: Any) -> None:
    plan = {"steps": [{"name": "alpha"}, {"name": "beta", "depends_on": ["alpha"]}]}
    planning_started, paused = threading.Event(), threading.Event()

    def planner(task: Any, cancel: threading.Event) -> Any:
        Path(task.plan_file).parent.mkdir(parents=True, exist_ok=True)
        Path(task.plan_file).write_text(json.dumps(plan))
        planning_started.set()
        assert paused.wait(20)
        # The agent had exited by itself (with its plan written) when the pause came:
        # its run succeeded, as CommandRunner reports an agent that ended on its own.
        now = time.time()
        return TaskResult(
            status=TaskStatus.SUCCEEDED,
            exit_code=0,
            cost_usd=0.0,
            summary="planned",
            started_at=now,
            finished_at=now,
        )

    first = engine_factory(runner=CallableAgent(planning=planner).runner())
    directive_id = first.submit(spec())
    first.start_directive(directive_id)
    assert planning_started.wait(20)
    assert first.pause(directive_id) is PAUSED
    paused.set()
    first.shutdown()

    # Another agent now: one that would leave the default chain if asked to plan.
    later_agent = CallableAgent()
    second = engine_factory(runner=later_agent.runner())
    assert second.db.reads.directive(directive_id).status is PAUSED
    second.resume(directive_id)
    assert second.wait(directive_id, timeout=30) is COMPLETED
    assert step_names(second, directive_id) == ["alpha", "beta"], "the finished plan was lost"
    planning = [t for t in tasks(second, directive_id) if str(t.kind) == "planning"]
    first_plan = min(planning, key=lambda t: t.attempt)
    assert (first_plan.attempt, str(first_plan.status)) == (1, "succeeded")
    assert all(str(t.status) in FINISHED_TASK for t in planning)


# ----------------------------------------------------------------- 6: bounded autonomy


@pytest.mark.timeout(120)
def test_an_always_failing_agent_under_full_auto_ends_up_asking_a_human(
    engine_factory: Any, scripted: Scripted
) -> None:
    scripted.write({"steps": {"*": {"exit": 1}}})  # every step fails; planning leaves no plan
    engine = engine_factory(runner=scripted.runner())
    directive_id = engine.submit(spec("doomed", autonomy_level="full_auto"))
    engine.start_directive(directive_id)
    limit = 60

    def asks_a_human() -> bool:
        count = len(tasks(engine, directive_id))
        kinds = {a.approval_type for a in engine.db.reads.pending_approvals(directive_id)}
        if kinds & {"chain_blocked", "circuit_breaker"}:
            return True
        assert count <= limit, (
            f"{count} tasks and no human asked: the engine regenerates without end "
            f"({len(engine.db.reads.chains(directive_id))} chains)"
        )
        return False

    wait_for(asks_a_human, timeout=90, interval=0.1)
    started = time.monotonic()
    status = engine.wait(directive_id, timeout=10)
    assert time.monotonic() - started < 5, "wait did not return on the pending question"
    assert status in (ACTIVE, PAUSED)
    assert len(tasks(engine, directive_id)) <= limit


# ----------------------------------------------------------------- 7: the engine's boundary


def test_an_engine_call_that_times_out_raises_a_directorate_error(
    engine_factory: Any, dsn: str
) -> None:
    agent = CallableAgent(steps={"a": until_cancelled(30)})
    engine = engine_factory(runner=agent.runner(), ask_timeout_s=0.5)
    directive_id = engine.submit(spec("a"))
    engine.start_directive(directive_id)
    wait_for(lambda: agent.step_runs("a"))
    # Another session holds the directive's row: the engine's write must wait for it.
    with psycopg.connect(dsn) as blocker:
        blocker.execute("SELECT 1 FROM directives WHERE id = %s FOR UPDATE", (directive_id,))
        try:
            with pytest.raises(DirectorateError):
                engine.pause(directive_id)
        finally:
            blocker.rollback()
    # Once the lock is gone the engine carries on and answers.
    assert engine.wait(directive_id, timeout=20) in (ACTIVE, PAUSED, COMPLETED)
    engine.snapshot(directive_id)


@pytest.mark.parametrize("call", ["snapshot", "start_directive", "wait", "stop_directive"])
def test_an_id_that_is_not_a_uuid_is_a_directorate_error(engine_factory: Any, call: str) -> None:
    engine = engine_factory(runner=CallableAgent().runner())
    args: tuple[Any, ...] = ("not-a-uuid", 1.0) if call == "wait" else ("not-a-uuid",)
    with pytest.raises((NotFound, InvalidInput)):
        getattr(engine, call)(*args)


def test_shutdown_keeps_to_its_timeout_when_an_agent_ignores_its_cancel(
    engine_factory: Any, tmp_path: Path
) -> None:
    agent = StubbornAgent(tmp_path / "agent", "ignore")
    # The runner would wait 30 s after its SIGTERM before it kills the agent.
    engine = engine_factory(runner=agent.runner(kill_grace_s=30))
    try:
        directive_id = engine.submit(spec("slow"))
        engine.start_directive(directive_id)
        wait_for(agent.pids)
        started = time.monotonic()
        report = engine.shutdown(timeout=2)
        elapsed = time.monotonic() - started
        assert elapsed < 2 + 3, f"shutdown(timeout=2) took {elapsed:.1f} s"
        # What was left behind is said (the wording is the fix's; these are the likely words).
        text = report.describe().lower()
        assert any(word in text for word in ("left", "still", "did not stop", "not stopped")), (
            f"the report does not say an agent was left running: {report.describe()!r}"
        )
    finally:
        agent.kill_all()


@pytest.mark.parametrize("reported", [1e308, 10**400, float("nan"), -1, "abc"], ids=repr)
def test_an_unusable_cost_is_recorded_as_unknown_and_the_step_passes(
    engine_factory: Any, reported: Any
) -> None:
    def agent(task: Any, cancel: threading.Event) -> Any:
        return {"cost_usd": reported, "summary": "done"}

    engine = engine_factory(runner=CallableAgent(steps={"only": agent}).runner())
    directive_id = engine.submit(spec("only"))
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, timeout=30) is COMPLETED
    assert engine.db.reads.directive(directive_id).total_cost_usd == 0.0
    warnings = [
        e for e in engine.db.reads.events_after(directive_id) if e.event_type == "cost_unknown"
    ]
    assert len(warnings) == 1 and warnings[0].severity == "warning"
    assert "cost_usd" in warnings[0].data["reason"]
