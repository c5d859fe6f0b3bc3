"""Directive files and plans: structure, validation, one-line errors naming the key."""

from __future__ import annotations

import pytest

from directorate.persistence.convert import structure_plan, structure_spec
from directorate.persistence.errors import InvalidInput
from directorate.persistence.models import (
    AutonomyLevel,
    StepSpec,
    StepType,
    find_cycle,
    layered_layout,
)

MINIMAL = {"title": "Fix parser", "goal": "Make the parser accept empty input"}


def test_minimal_spec_gets_defaults() -> None:
    spec = structure_spec(MINIMAL)
    assert spec.autonomy_level is AutonomyLevel.GUARDRAILS
    assert (spec.confidence_threshold_green, spec.confidence_threshold_yellow) == (0.8, 0.5)
    assert spec.max_rework_cycles == 3
    assert spec.steps is None


def test_full_spec_structures_nested_records() -> None:
    spec = structure_spec(
        {
            **MINIMAL,
            "requirements": [{"id": "r1", "description": "empty input"}],
            "acceptance_criteria": [{"id": "c1", "criterion": "tests pass"}],
            "autonomy_level": "full_auto",
            "steps": [
                {"name": "fix", "step_type": "implement"},
                {"name": "check", "step_type": "test", "depends_on": ["fix"]},
            ],
            "agent": {"command": ["python", "agent.py"], "timeout_s": 30},
        }
    )
    assert spec.requirements[0].description == "empty input"
    assert spec.steps is not None and spec.steps[1].step_type is StepType.TEST
    assert spec.agent is not None and spec.agent.command == ["python", "agent.py"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bogus": 1}, "bogus: unknown key"),
        ({"goal": None}, "goal"),
        ({"autonomy_level": "yolo"}, "autonomy_level"),
        ({"requirements": [{"id": "r1"}]}, "requirements[0].description: missing"),
        ({"max_rework_cycles": "many"}, "max_rework_cycles"),
        ({"steps": [{"name": "a", "colour": "red"}]}, "steps[0].colour: unknown key"),
        ({"agent": {"command": ["x"], "shell": True}}, "agent.shell: unknown key"),
        ({"goal": "bad\x00byte"}, "goal: contains a NUL byte"),
        ({"constraints": ["ok", "no\x00"]}, "constraints[1]: contains a NUL byte"),
        ({"confidence_threshold_green": 0.4}, "yellow <= green"),
        ({"confidence_threshold_yellow": -0.1}, "0 <= yellow"),
        ({"confidence_threshold_green": 1.5}, "green <= 1"),
        ({"max_total_cost_usd": 0}, "max_total_cost_usd: must be positive"),
        ({"max_wall_time_minutes": -5}, "max_wall_time_minutes: must be positive"),
        ({"title": "  "}, "title: must not be empty"),
        ({"steps": [{"name": "Fix Parser"}]}, "steps[0].name"),
        ({"requirements": [{"id": "r", "description": "a"}] * 2}, "requirements: duplicate"),
    ],
)
def test_bad_spec_is_one_line_naming_the_key(change: dict, message: str) -> None:
    data = {**MINIMAL, **change}
    if change.get("goal") is None and "goal" in change:
        del data["goal"]
    with pytest.raises(InvalidInput) as raised:
        structure_spec(data)
    text = str(raised.value)
    assert message in text
    assert "\n" not in text


def test_missing_goal_is_reported_as_missing() -> None:
    with pytest.raises(InvalidInput, match=r"^goal: missing$"):
        structure_spec({"title": "t"})


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ({"steps": []}, "at least one step"),
        ({}, '"steps" list'),
        ("not a plan", '"steps" list'),
        (
            {"steps": [{"name": "a", "depends_on": ["b"]}, {"name": "b", "depends_on": ["a"]}]},
            "dependency cycle",
        ),
        ({"steps": [{"name": "a", "depends_on": ["ghost"]}]}, "unknown step 'ghost'"),
        ({"steps": [{"name": "a"}, {"name": "a"}]}, "duplicate name 'a'"),
        ({"steps": [{"name": "Not_Kebab"}]}, "not kebab-case"),
        ({"steps": [{"name": "a", "step_type": "dance"}]}, "plan.steps[0].step_type"),
        ({"steps": [{"description": "nameless"}]}, "plan.steps[0].name: missing"),
        ({"steps": [{"name": "a", "depends_on": ["a"]}]}, "depends on itself"),
    ],
)
def test_invalid_plans_are_rejected_with_the_reason(plan: object, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        structure_plan(plan)
    assert message in str(raised.value)


def test_valid_plan_keeps_order_and_dependencies() -> None:
    steps = structure_plan(
        {"steps": [{"name": "a"}, {"name": "b", "depends_on": ["a"], "step_type": "test"}]}
    )
    assert [s.name for s in steps] == ["a", "b"]
    assert steps[1].depends_on == ["a"] and steps[1].step_type is StepType.TEST


def test_find_cycle_returns_the_loop() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": [], "b": ["a"]}) is None


def test_layered_layout_x_by_depth_y_by_order() -> None:
    steps = [
        StepSpec(name="root"),
        StepSpec(name="left", depends_on=["root"]),
        StepSpec(name="right", depends_on=["root"]),
        StepSpec(name="join", depends_on=["left", "right"]),
    ]
    pos = layered_layout(steps)
    assert pos["root"][0] < pos["left"][0] == pos["right"][0] < pos["join"][0]
    assert pos["left"][1] < pos["right"][1]


def test_outside_text_is_made_storable_not_refused() -> None:
    from directorate.persistence.validation import strip_nul

    value = {"fe\x00edback": ["fine\x00", {"note": "x" * 50}], "score": 0.5, "none": None}
    assert strip_nul(value, limit=10) == {
        "feedback": ["fine", {"note": "..." + "x" * 10}],
        "score": 0.5,
        "none": None,
    }
