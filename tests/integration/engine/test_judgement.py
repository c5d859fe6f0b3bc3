"""Judgement and escalation paths (issue 5), each on a real database with real agents."""

from __future__ import annotations

import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import Scripted, ScriptedJudge, pid_alive, running_task, wait_for

from directorate.actors import (
    DirectiveSpec,
    DirectiveStatus,
    InvalidTransition,
    StepSpec,
    StepStatus,
)
from directorate.persistence.models import WorkspaceSpec


def spec(**changes: Any) -> DirectiveSpec:
    # The verdict paths, in one shared folder (worktrees are test_workspaces' business).
    settings: dict[str, Any] = {
        "title": "Judged",
        "goal": "Walk a judgement path",
        "workspace": WorkspaceSpec(isolation="shared"),
    }
    settings.update(changes)
    return DirectiveSpec(**settings)


def pending(engine: Any, directive_id: uuid.UUID, kind: str | None = None) -> list[Any]:
    return [a for a in engine.db.reads.pending_approvals(directive_id)
            if kind is None or a.approval_type == kind]


def step_named(engine: Any, directive_id: uuid.UUID, name: str) -> Any:
    return next(s for s in engine.snapshot(directive_id).steps if s.name == name)


def events(engine: Any, directive_id: uuid.UUID, kind: str) -> list[Any]:
    return [e for e in engine.db.reads.events_after(directive_id, limit=100_000)
            if e.event_type == kind]


def git_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


@pytest.mark.timeout(90)
def test_failing_step_is_reworked_with_the_failing_output_and_passes(
    engine_factory: Any, scripted: Scripted, tmp_path: Path
) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / "check.py").write_text(
        "import pathlib, sys\n"
        "answer = pathlib.Path('answer.txt')\n"
        "text = answer.read_text() if answer.exists() else ''\n"
        "print('EXPECTED fixed GOT ' + text.strip())\n"
        "sys.exit(0 if text.strip() == 'fixed' else 1)\n"
    )
    scripted.write({"steps": {"fix": {"write": {"answer.txt": "wrong"},
                                      "attempts": {"2": {"write": {"answer.txt": "fixed"}}}}}})
    engine = engine_factory(runner=scripted.runner(), verifiers=[])
    directive_id = engine.submit(spec(
        local_path=str(repo), autonomy_level="full_auto", steps=[StepSpec(name="fix")],
        verifiers={"auto_detect": False,
                   "command": [{"name": "check", "run": "python check.py", "type": "test"}]},
    ))
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED
    runs = scripted.step_runs("fix")
    assert [r["attempt"] for r in runs] == [1, 2]
    second = runs[1]["instructions"]
    assert "## Rework" in second and "EXPECTED fixed GOT wrong" in second
    assert "## Rework" not in runs[0]["instructions"]
    rework = events(engine, directive_id, "step_rework")
    assert len(rework) == 1 and "check" in rework[0].data["instructions"]
    assert step_named(engine, directive_id, "fix").rework_count == 1


@pytest.mark.timeout(90)
def test_rework_exhausted_blocks_then_approved_regeneration_keeps_passed_steps(
    engine_factory: Any, scripted: Scripted
) -> None:
    scripted.write({
        "plan": {"steps": [{"name": "base"}, {"name": "retry", "depends_on": ["base"]}]},
        "steps": {"doomed": {"exit": 1}},
    })
    engine = engine_factory(runner=scripted.runner())
    directive_id = engine.submit(spec(
        max_rework_cycles=2,
        steps=[StepSpec(name="base"), StepSpec(name="doomed", depends_on=["base"])],
        autonomy_level="guardrails",
    ))
    engine.start_directive(directive_id)
    engine.wait(directive_id, timeout=60)
    [approval] = wait_for(lambda: pending(engine, directive_id, "chain_blocked"))
    assert step_named(engine, directive_id, "doomed").status is StepStatus.BLOCKED
    assert len(scripted.step_runs("doomed")) == 2
    assert len(events(engine, directive_id, "step_blocked")) == 1

    engine.approve(approval.id, responded_by="ana", note="try again")
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED
    assert len(scripted.step_runs("base")) == 1, "a passed step ran again"
    assert len(scripted.step_runs("retry")) == 1
    chains = engine.db.reads.chains(directive_id)
    assert [c.generation for c in chains] == [1, 2]
    assert [c.status for c in chains] == ["superseded", "active"]
    assert engine.db.reads.directive(directive_id).chain_generation_count == 2
    assert len(events(engine, directive_id, "chain_regenerated")) == 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("answer", ["approve", "deny"])
def test_yellow_under_guardrails_asks_a_human(
    engine_factory: Any, scripted: Scripted, answer: str, tmp_path: Path
) -> None:
    judge = ScriptedJudge(tmp_path, 0.6, 1.0)
    engine = engine_factory(runner=scripted.runner(), verifiers=[],
                            verifier_config=judge.config())
    directive_id = engine.submit(spec(local_path=judge.workdir, steps=[StepSpec(name="only")]))
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.ACTIVE
    [approval] = pending(engine, directive_id, "step_review")
    assert step_named(engine, directive_id, "only").status is StepStatus.EVALUATING
    assert step_named(engine, directive_id, "only").confidence_level == "yellow"
    assert "## Step" in judge.prompts()[0]  # the real judge process was asked
    if answer == "approve":
        engine.approve(approval.id, responded_by="ana")
        assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
    else:
        engine.deny(approval.id, responded_by="ana", note="not good enough")
        wait_for(lambda: step_named(engine, directive_id, "only").status is StepStatus.BLOCKED)
        wait_for(lambda: pending(engine, directive_id, "chain_blocked"))
    assert engine.db.reads.approval(approval.id).status == (
        "approved" if answer == "approve" else "denied")


@pytest.mark.timeout(60)
def test_yellow_under_full_auto_passes_without_approval(
    engine_factory: Any, scripted: Scripted, tmp_path: Path
) -> None:
    judge = ScriptedJudge(tmp_path, 0.6, 1.0)
    engine = engine_factory(runner=scripted.runner(), verifiers=[],
                            verifier_config=judge.config())
    directive_id = engine.submit(spec(local_path=judge.workdir, autonomy_level="full_auto",
                                      steps=[StepSpec(name="a")]))
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
    assert not events(engine, directive_id, "approval_requested")


@pytest.mark.timeout(60)
def test_manual_autonomy_asks_for_every_step(engine_factory: Any, scripted: Scripted) -> None:
    engine = engine_factory(runner=scripted.runner())
    directive_id = engine.submit(spec(
        autonomy_level="manual",
        steps=[StepSpec(name="one"), StepSpec(name="two", depends_on=["one"])],
    ))
    engine.start_directive(directive_id)
    for name in ("one", "two"):
        [approval] = wait_for(lambda: pending(engine, directive_id, "step_review"))
        assert approval.context["step_name"] == name
        assert approval.context["confidence_level"] == "green"
        engine.approve(approval.id, responded_by="ana")
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED


@pytest.mark.timeout(90)
def test_cost_breaker_trips_mid_chain_and_kills_the_running_sibling(
    engine_factory: Any, scripted: Scripted
) -> None:
    scripted.write({"steps": {"pricey": {"cost": 5.0, "sleep": 0.5},
                              "slow": {"attempts": {"1": {"sleep": 60, "sleeper": True}}}}})
    engine = engine_factory(runner=scripted.runner(kill_grace_s=0.5))
    directive_id = engine.submit(spec(
        autonomy_level="full_auto", max_total_cost_usd=3.0,
        steps=[StepSpec(name="pricey"), StepSpec(name="slow"),
               StepSpec(name="after", depends_on=["pricey", "slow"])],
    ))
    engine.start_directive(directive_id)
    slow_task = wait_for(lambda: next((t for t in engine.db.reads.tasks_of_directive(directive_id)
                                       if t.status == "running" and "slow" in (t.log_path or "")),
                                      None))
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.PAUSED
    [approval] = pending(engine, directive_id, "circuit_breaker")
    assert approval.context["limit"] == "max_total_cost_usd"
    [tripped] = events(engine, directive_id, "circuit_breaker_tripped")
    assert tripped.severity == "warning" and tripped.data["figure"] == 5.0
    wait_for(lambda: engine.db.reads.task(slow_task.id).status == "cancelled", timeout=10)
    wait_for(lambda: not any(pid_alive(r) for r in _agent_pids(scripted)), timeout=10)
    assert engine.db.reads.directive(directive_id).total_cost_usd == 5.0

    engine.approve(approval.id, responded_by="ana", max_total_cost_usd=50.0)
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
    assert engine.db.reads.directive(directive_id).max_total_cost_usd == 50.0


def _agent_pids(scripted: Scripted) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if str(scripted.path).encode() in cmd or b"time.sleep(3600)" in cmd:
                pids.append(int(proc.name))
    return pids


@pytest.mark.timeout(60)
def test_wall_time_breaker_trips_during_a_long_step(
    engine_factory: Any, scripted: Scripted
) -> None:
    scripted.write({"steps": {"*": {"sleep": 60}}})
    engine = engine_factory(runner=scripted.runner(kill_grace_s=0.5))
    directive_id = engine.submit(spec(max_wall_time_minutes=0.02, steps=[StepSpec(name="long")]))
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.PAUSED
    [approval] = pending(engine, directive_id, "circuit_breaker")
    assert approval.context["limit"] == "max_wall_time_minutes"
    wait_for(lambda: running_task(engine, directive_id) is None, timeout=10)
    engine.deny(approval.id, responded_by="ana")
    assert engine.wait(directive_id, timeout=10) is DirectiveStatus.FAILED


@pytest.mark.timeout(60)
def test_wall_time_breaker_trips_during_a_long_planning_and_approval_plans_again(
    engine_factory: Any, scripted: Scripted
) -> None:
    scripted.write({"planning_sleep": 60, "plan": {"steps": [{"name": "only"}]}})
    engine = engine_factory(runner=scripted.runner(kill_grace_s=0.5))
    directive_id = engine.submit(spec(max_wall_time_minutes=0.02))
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.PAUSED
    [approval] = pending(engine, directive_id, "circuit_breaker")
    assert approval.context["limit"] == "max_wall_time_minutes"
    wait_for(lambda: running_task(engine, directive_id) is None, timeout=10)
    scripted.write({"plan": {"steps": [{"name": "only"}]}})  # a quicker planner now
    engine.approve(approval.id, responded_by="ana", max_wall_time_minutes=10)
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
    assert [s.name for s in engine.snapshot(directive_id).steps] == ["only"]
    planning = [t for t in engine.db.reads.tasks_of_directive(directive_id) if t.kind == "planning"]
    assert [(t.attempt, t.status) for t in planning] == [(1, "cancelled"), (2, "succeeded")]


@pytest.mark.timeout(60)
def test_regeneration_limit_trips_the_generation_breaker(
    engine_factory: Any, scripted: Scripted
) -> None:
    scripted.write({"steps": {"*": {"exit": 1}}})
    engine = engine_factory(runner=scripted.runner())
    directive_id = engine.submit(spec(autonomy_level="full_auto", max_rework_cycles=1,
                                      max_chain_regenerations=0, steps=[StepSpec(name="x")]))
    engine.start_directive(directive_id)
    [blocked] = wait_for(lambda: pending(engine, directive_id, "chain_blocked"))
    engine.approve(blocked.id, responded_by="ana")
    [breaker] = wait_for(lambda: pending(engine, directive_id, "circuit_breaker"))
    assert breaker.context["limit"] == "max_chain_regenerations"
    assert engine.db.reads.directive(directive_id).status is DirectiveStatus.PAUSED
    assert len(engine.db.reads.chains(directive_id)) == 1


@pytest.mark.timeout(60)
def test_stale_duplicate_and_concurrent_answers(
    engine_factory: Any, scripted: Scripted, tmp_path: Path
) -> None:
    judge = ScriptedJudge(tmp_path, 0.6, 1.0)
    engine = engine_factory(runner=scripted.runner(), verifiers=[],
                            verifier_config=judge.config())
    directive_id = engine.submit(spec(local_path=judge.workdir,
                                      steps=[StepSpec(name="a"), StepSpec(name="b")]))
    engine.start_directive(directive_id)
    approvals = wait_for(lambda: len(pending(engine, directive_id)) == 2
                         and pending(engine, directive_id))
    first, second = approvals
    outcomes: list[str] = []

    def answer(approve: bool) -> None:
        try:
            (engine.approve if approve else engine.deny)(first.id, responded_by="x")
            outcomes.append("ok")
        except InvalidTransition:
            outcomes.append("refused")

    threads = [threading.Thread(target=answer, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "refused", "refused", "refused"]
    resolved = events(engine, directive_id, "approval_resolved")
    assert len(resolved) == 1
    with pytest.raises(InvalidTransition):
        engine.approve(first.id, responded_by="late")  # stale
    engine.stop_directive(directive_id)
    with pytest.raises(InvalidTransition):
        engine.approve(second.id, responded_by="late")  # directive stopped
    assert engine.db.reads.approval(second.id).status == "cancelled"


@pytest.mark.timeout(60)
def test_an_expired_approval_counts_as_denied(
    engine_factory: Any, scripted: Scripted, tmp_path: Path
) -> None:
    judge = ScriptedJudge(tmp_path, 0.6, 1.0)
    engine = engine_factory(runner=scripted.runner(), verifiers=[],
                            verifier_config=judge.config(),
                            approval_timeout_s=0.5)
    directive_id = engine.submit(spec(local_path=judge.workdir, steps=[StepSpec(name="a")]))
    engine.start_directive(directive_id)
    [approval] = wait_for(lambda: pending(engine, directive_id, "step_review"))
    wait_for(lambda: engine.db.reads.approval(approval.id).status == "expired")
    wait_for(lambda: step_named(engine, directive_id, "a").status is StepStatus.BLOCKED)
    with pytest.raises(InvalidTransition):
        engine.approve(approval.id, responded_by="late")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("review_score", "answer", "final"), [
    (0.6, "approve", DirectiveStatus.COMPLETED),
    (0.1, "deny", DirectiveStatus.FAILED),
])
def test_directive_review_yellow_and_red_ask_a_human(
    engine_factory: Any, scripted: Scripted, review_score: float, answer: str,
    final: DirectiveStatus, tmp_path: Path
) -> None:
    judge = ScriptedJudge(tmp_path, 1.0, review_score)
    engine = engine_factory(runner=scripted.runner(), verifiers=[],
                            verifier_config=judge.config())
    directive_id = engine.submit(spec(local_path=judge.workdir, steps=[StepSpec(name="a")]))
    engine.start_directive(directive_id)
    [approval] = wait_for(lambda: pending(engine, directive_id, "directive_review"))
    assert step_named(engine, directive_id, "a").status is StepStatus.PASSED
    level = "yellow" if review_score >= 0.5 else "red"
    assert approval.context["confidence_level"] == level
    getattr(engine, answer)(approval.id, responded_by="ana")
    assert engine.wait(directive_id, timeout=30) is final


@pytest.mark.timeout(60)
def test_red_directive_review_regenerates_under_full_auto(
    engine_factory: Any, scripted: Scripted, tmp_path: Path
) -> None:
    judge = ScriptedJudge(tmp_path, 1.0, 0.1)
    scripted.write({"plan": {"steps": [{"name": "a"}, {"name": "polish"}]}})
    engine = engine_factory(runner=scripted.runner(), verifiers=[],
                            verifier_config=judge.config())
    directive_id = engine.submit(spec(local_path=judge.workdir, autonomy_level="full_auto",
                                      max_chain_regenerations=1,
                                      steps=[StepSpec(name="a")]))
    engine.start_directive(directive_id)
    wait_for(lambda: len(engine.db.reads.chains(directive_id)) == 2)
    judge.set(step=1.0, review=1.0)
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
    assert len(scripted.step_runs("a")) == 1



@pytest.mark.timeout(60)
def test_the_judges_cost_counts_and_trips_the_cost_breaker(
    engine_factory: Any, scripted: Scripted, tmp_path: Path
) -> None:
    """Each judge session says it cost $2; the agent's costs $0.5. After the first
    step the directive has spent $2.5 of its $2: the breaker trips on the judge's
    spending before the second step starts."""
    scripted.write({"steps": {"*": {"cost": 0.5}}})
    judge = ScriptedJudge(tmp_path, 1.0, 1.0, cost=2.0)
    engine = engine_factory(runner=scripted.runner(), verifiers=[],
                            verifier_config=judge.config())
    directive_id = engine.submit(spec(
        local_path=judge.workdir, autonomy_level="full_auto", max_total_cost_usd=2.0,
        steps=[StepSpec(name="first"), StepSpec(name="second", depends_on=["first"])],
    ))
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.PAUSED
    [approval] = pending(engine, directive_id, "circuit_breaker")
    assert approval.context["limit"] == "max_total_cost_usd"
    assert engine.db.reads.directive(directive_id).total_cost_usd == pytest.approx(2.5)
    [used] = events(engine, directive_id, "judge_usage")
    assert used.data["cost_usd"] == pytest.approx(2.0)
    assert step_named(engine, directive_id, "first").status is StepStatus.PASSED
    assert step_named(engine, directive_id, "second").attempt == 0

    engine.approve(approval.id, responded_by="ana", max_total_cost_usd=50.0)
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
    # Two steps and the final review, each judged once: 2 x 0.5 + 3 x 2.0.
    assert engine.db.reads.directive(directive_id).total_cost_usd == pytest.approx(7.0)
