"""Planning instructions, plan files and step instructions."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import attrs
import pytest
from decision_helpers import directive_moves, dstate, every, result, run_directive, task

from directorate.actors import messages as m
from directorate.actors.core import changes as c
from directorate.actors.planning import (
    MAX_PLAN_BYTES,
    MAX_PLAN_DEPTH,
    default_chain,
    plan_outcome,
    planning_instructions,
    read_plan,
    step_instructions,
)
from directorate.persistence.errors import InvalidInput
from directorate.persistence.models import (
    AcceptanceCriterion,
    Directive,
    DirectiveStatus,
    Requirement,
    Step,
    StepType,
    TaskKind,
    TaskStatus,
)
from directorate.persistence.validation import MAX_CHAIN_STEPS

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


# ----------------------------------------------------------------- plans that cannot be used


def _steps(*steps: dict[str, Any]) -> bytes:
    return json.dumps({"steps": list(steps)}).encode()


BAD_PLAN_FILES: dict[str, tuple[bytes, str]] = {
    "nested-100000-deep": (
        b'{"steps": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        f"nested more than {MAX_PLAN_DEPTH} levels deep",
    ),
    "nested-objects-in-a-step": (
        b'{"steps": [{"name": "a", "verifiers": '
        + b'{"x": ' * 100_000
        + b"1"
        + b"}" * 100_000
        + b"}]}",
        f"nested more than {MAX_PLAN_DEPTH} levels deep",
    ),
    "nested-just-past-the-cap": (
        b'{"steps": [{"name": "a", "verifiers": {"x": '
        + b"[" * (MAX_PLAN_DEPTH - 3)
        + b"]" * (MAX_PLAN_DEPTH - 3)
        + b"}}]}",
        f"nested more than {MAX_PLAN_DEPTH} levels deep",
    ),
    "nul-byte-raw": (b'{"steps": [{"name": "a\x00b"}]}', "plan: a NUL byte at offset 22"),
    "nul-escape-in-a-name": (_steps({"name": "a\x00b"}), "plan.steps[0].name: contains a NUL"),
    "nul-escape-in-a-task-plan": (
        _steps({"name": "a", "task_plan": "do\x00it"}),
        "plan.steps[0].task_plan: contains a NUL",
    ),
    "nul-escape-in-a-description": (
        _steps({"name": "a", "description": "\x00"}),
        "plan.steps[0].description: contains a NUL",
    ),
    "nul-escape-in-a-dependency": (
        _steps({"name": "a"}, {"name": "b", "depends_on": ["a\x00"]}),
        "plan.steps[1].depends_on[0]: contains a NUL",
    ),
    "not-utf-8": (b'{"steps": [{"name": "a", "description": "\xff\xfe"}]}', "not UTF-8"),
    "lone-surrogate-escape": (
        b'{"steps": [{"name": "a", "task_plan": "x\\ud800y"}]}',
        "plan.steps[0].task_plan: contains '\\ud800', which is not valid UTF-8",
    ),
    "name-not-a-string": (_steps({"name": 5}), "plan.steps[0].name: expected a string"),
    "name-null": (_steps({"name": None}), "plan.steps[0].name: expected a string"),
    "dependency-not-a-string": (
        _steps({"name": "a"}, {"name": "b", "depends_on": [1]}),
        "plan.steps[1].depends_on[0]: expected a string",
    ),
    "dependencies-a-string": (
        _steps({"name": "a"}, {"name": "b", "depends_on": "a"}),
        "plan.steps[1].depends_on: expected a list of strings",
    ),
    "too-many-steps": (
        _steps(*({"name": f"s{i}"} for i in range(MAX_CHAIN_STEPS + 1))),
        f"plan.steps: {MAX_CHAIN_STEPS + 1} steps, more than the {MAX_CHAIN_STEPS} allowed",
    ),
    "a-long-dependency-chain": (  # each on the next: deep recursion for a naive cycle check
        _steps(*({"name": f"s{i}", "depends_on": [f"s{i + 1}"]} for i in range(20_000))),
        "20000 steps, more than the",
    ),
    "duplicate-names": (_steps({"name": "a"}, {"name": "a"}), "duplicate name 'a'"),
    "cycle": (
        _steps({"name": "a", "depends_on": ["b"]}, {"name": "b", "depends_on": ["a"]}),
        "dependency cycle a -> b -> a",
    ),
    "unknown-dependency": (_steps({"name": "a", "depends_on": ["z"]}), "unknown step 'z'"),
    "no-steps": (_steps(), "at least one step"),
    "empty-file": (b"", "not JSON"),
    "a-list": (b'[{"name": "a"}]', 'expected an object with a "steps" list'),
    "a-string": (b'"steps"', 'expected an object with a "steps" list'),
    "steps-not-a-list": (b'{"steps": {"name": "a"}}', "plan.steps: expected a list"),
    "an-integer-of-5000-digits": (
        b'{"steps": [{"name": "a", "verifiers": {"x": ' + b"9" * 5000 + b"}}]}",
        "plan: not usable JSON (Exceeds the limit",
    ),
    "larger-than-the-cap": (
        _steps({"name": "a", "task_plan": "x" * MAX_PLAN_BYTES}),
        f"larger than {MAX_PLAN_BYTES} bytes",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_PLAN_FILES))
def test_an_unusable_plan_gives_the_default_chain_and_a_one_line_reason(
    tmp_path: Path, kind: str
) -> None:
    raw, reason = BAD_PLAN_FILES[kind]
    plan = tmp_path / "plan.json"
    plan.write_bytes(raw)
    planning = task(DIRECTIVE, kind=TaskKind.PLANNING, plan_file=str(plan))

    outcome = plan_outcome(DIRECTIVE, planning, TaskStatus.SUCCEEDED, {})

    assert [s.name for s in outcome.steps] == ["research", "implement", "test"]
    assert outcome.rejected is not None and reason in outcome.rejected
    assert "\n" not in outcome.rejected and len(outcome.rejected) < 300
    # Through the decision core: the default chain, a plan_rejected event saying why,
    # and a write PostgreSQL takes (run_directive builds it).
    state = dstate(
        attrs.evolve(DIRECTIVE, status=DirectiveStatus.PLANNING),
        planning=attrs.evolve(planning, status=TaskStatus.SUCCEEDED),
        plan=outcome,
    )
    decision = run_directive(state, m.PlanningFinished(planning.id, result()))
    assert directive_moves(decision) == [(DirectiveStatus.PLANNING, DirectiveStatus.ACTIVE)]
    [rejected] = [n for n in every(decision, c.Note) if n.event_type == "plan_rejected"]
    assert rejected.data["reason"] == outcome.rejected


def test_a_plan_at_the_caps_is_used(tmp_path: Path) -> None:
    # MAX_CHAIN_STEPS steps, each depending on the next; nested exactly MAX_PLAN_DEPTH
    # deep (object, steps list, step object, then lists; an unknown key is ignored).
    steps: list[dict[str, Any]] = [
        {"name": f"s{i}", "depends_on": [f"s{i + 1}"]} for i in range(MAX_CHAIN_STEPS - 1)
    ]
    steps.append({"name": f"s{MAX_CHAIN_STEPS - 1}", "task_plan": "\N{SNOWMAN} works"})
    steps[0]["notes"] = json.loads("[" * (MAX_PLAN_DEPTH - 3) + "]" * (MAX_PLAN_DEPTH - 3))
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"steps": steps}), encoding="utf-8")
    planning = task(DIRECTIVE, kind=TaskKind.PLANNING, plan_file=str(plan))

    outcome = plan_outcome(DIRECTIVE, planning, TaskStatus.SUCCEEDED, {})

    assert outcome.rejected is None
    assert len(outcome.steps) == MAX_CHAIN_STEPS
    assert outcome.steps[-1].task_plan == "\N{SNOWMAN} works"
