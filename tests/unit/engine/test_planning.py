"""Planning instructions, plan files and step instructions."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from directorate.actors.planning import (
    default_chain,
    planning_instructions,
    read_plan,
    step_instructions,
)
from directorate.persistence.errors import InvalidInput
from directorate.persistence.models import (
    AcceptanceCriterion,
    Directive,
    Requirement,
    Step,
    StepType,
)

DIRECTIVE = Directive(
    id=uuid.uuid4(),
    title="Fix calc",
    goal="Make calc add correctly",
    requirements=[Requirement(id="r1", description="add works")],
    acceptance_criteria=[AcceptanceCriterion(id="c1", criterion="tests pass")],
    constraints=["no new dependencies"],
)


def test_planning_instructions_carry_the_directive_and_the_plan_file_contract() -> None:
    text = planning_instructions(DIRECTIVE, replan_context="step x was blocked")
    for expected in (
        "## Directive: Fix calc",
        "Make calc add correctly",
        "- r1: add works",
        "- c1: tests pass",
        "- no new dependencies",
        "DIRECTORATE_PLAN_FILE",
        "step x was blocked",
    ):
        assert expected in text


def test_default_chain_is_research_implement_test() -> None:
    chain = default_chain(DIRECTIVE)
    assert [(s.name, s.depends_on) for s in chain] == [
        ("research", []),
        ("implement", ["research"]),
        ("test", ["implement"]),
    ]


def test_read_plan_accepts_dependencies_on_carried_steps(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"steps": [{"name": "b", "depends_on": ["a"]}]}))
    with pytest.raises(InvalidInput, match="unknown step 'a'"):
        read_plan(str(plan))
    assert [s.name for s in read_plan(str(plan), known={"a"})] == ["b"]


def test_read_plan_reasons(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no plan file"):
        read_plan(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(InvalidInput, match="not JSON"):
        read_plan(str(bad))


def test_step_instructions_follow_the_seed_and_append_rework() -> None:
    step = Step(
        id=uuid.uuid4(),
        chain_id=uuid.uuid4(),
        directive_id=DIRECTIVE.id,
        name="fix-add",
        step_type=StepType.IMPLEMENT,
        description="fix it",
    )
    first = step_instructions(DIRECTIVE, step)
    assert first.startswith("## Step: fix-add\n\nfix it\n\n## Directive Goal\nMake calc add")
    assert "## Rework" not in first
    again = step_instructions(DIRECTIVE, step, rework_instructions="test_add failed", attempt=2)
    assert "## Rework (attempt 2)" in again and again.endswith("test_add failed")


def test_a_plan_step_keeps_its_own_verifiers(tmp_path: Path) -> None:
    checks = {"command": [{"name": "test-add", "run": "python -m unittest tests.test_add"}]}
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"steps": [{"name": "fix-add", "verifiers": checks}]}))
    [step] = read_plan(str(plan))
    assert step.verifiers == checks


def test_a_plan_step_with_bad_verifiers_is_refused_naming_the_key(tmp_path: Path) -> None:
    bad = {"command": [{"name": "x", "run": "true", "timeout_s": -1}]}
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"steps": [{"name": "fix-add", "verifiers": bad}]}))
    with pytest.raises(InvalidInput, match=r"plan\.steps\[0\]\.verifiers\.command\[0\]\.timeout_s"):
        read_plan(str(plan))
