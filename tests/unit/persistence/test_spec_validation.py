"""Specs check their own fields where data enters (no database).

Every bad value is refused with one ``InvalidInput`` line that starts with the
field's path, whether the spec comes from a directive file (``structure_spec``),
a plan (``structure_plan``) or Python (the constructors and ``validate()``),
and nothing is coerced on the way: "3" is not 3, true is not 1.0, and "one" is
not ["o", "n", "e"].
"""

from __future__ import annotations

import copy
import math
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from directorate.actors.directive_file import load_directive_file
from directorate.persistence.convert import structure_plan, structure_spec
from directorate.persistence.errors import InvalidInput
from directorate.persistence.models import (
    AcceptanceCriterion,
    AgentSpec,
    AutonomyLevel,
    Directive,
    DirectiveSpec,
    Requirement,
    StepSpec,
    StepType,
)

MINIMAL: dict[str, Any] = {"title": "Fix parser", "goal": "Make the parser accept empty input"}
STEP: dict[str, Any] = {"name": "fix"}
AGENT: dict[str, Any] = {"command": ["python", "agent.py"]}
STEP_TYPES = "research, design, implement, test, review, document"
AUTONOMY = "full_auto, guardrails, manual"
BOTH_THRESHOLDS = "confidence_threshold_yellow/confidence_threshold_green"


def assert_refused(raised: pytest.ExceptionInfo[InvalidInput], field: str, fragment: str) -> None:
    """One line, starting with ``field:``, saying ``fragment``."""
    text = str(raised.value)
    assert "\n" not in text, text
    assert text.startswith(f"{field}: "), text
    assert fragment in text, text


def step(**changes: Any) -> dict[str, Any]:
    return {"steps": [{**STEP, **changes}]}


def agent(**changes: Any) -> dict[str, Any]:
    return {"agent": {**AGENT, **changes}}


# ----------------------------------------------------------------- directive files

# (change to MINIMAL, field the message must start with, what it must say)
FILE_CASES: list[tuple[dict[str, Any], str, str]] = [
    # an unknown choice lists the allowed values
    ({"autonomy_level": "yolo"}, "autonomy_level", f"must be one of {AUTONOMY}; got 'yolo'"),
    ({"autonomy_level": "FULL_AUTO"}, "autonomy_level", AUTONOMY),
    ({"autonomy_level": 1}, "autonomy_level", AUTONOMY),
    (step(step_type="dance"), "steps[0].step_type", f"must be one of {STEP_TYPES}"),
    # whole numbers are whole numbers
    ({"max_rework_cycles": "three"}, "max_rework_cycles", "expected a whole number, got 'three'"),
    ({"max_rework_cycles": "3"}, "max_rework_cycles", "expected a whole number, got '3'"),
    ({"max_rework_cycles": 2.5}, "max_rework_cycles", "expected a whole number, got 2.5"),
    ({"max_rework_cycles": 3.0}, "max_rework_cycles", "expected a whole number, got 3.0"),
    ({"max_rework_cycles": True}, "max_rework_cycles", "expected a whole number, got true"),
    ({"max_rework_cycles": -1}, "max_rework_cycles", "must not be negative, got -1"),
    ({"max_rework_cycles": 10**6}, "max_rework_cycles", "must be at most 1000"),
    ({"max_rework_cycles": [3]}, "max_rework_cycles", "expected a whole number, got a list"),
    ({"max_chain_regenerations": False}, "max_chain_regenerations", "got false (a boolean)"),
    ({"max_chain_regenerations": -2}, "max_chain_regenerations", "must not be negative"),
    ({"max_chain_regenerations": 1.5}, "max_chain_regenerations", "expected a whole number"),
    # a string is not a list of its letters
    ({"constraints": "one"}, "constraints", "expected a list of strings, got 'one' (a string)"),
    ({"constraints": ["ok", 2]}, "constraints[1]", "expected a string, got 2 (an integer)"),
    ({"requirements": "one"}, "requirements", "expected a list of tables, got 'one'"),
    ({"acceptance_criteria": "tests pass"}, "acceptance_criteria", "expected a list of tables"),
    ({"steps": "fix"}, "steps", "expected a list of tables, got 'fix'"),
    (step(depends_on="research"), "steps[0].depends_on", "expected a list of strings"),
    (step(requirement_ids="R1"), "steps[0].requirement_ids", "expected a list of strings"),
    (agent(command="python agent.py"), "agent.command", "expected a list of strings"),
    (agent(command=["python", 3]), "agent.command[1]", "expected a string, got 3"),
    (agent(command=[]), "agent.command", "must not be empty"),
    (agent(command=["", "x"]), "agent.command[0]", "must not be empty"),
    # true is not 1.0; numbers are finite and sane
    ({"confidence_threshold_green": True}, "confidence_threshold_green", "got true (a boolean)"),
    ({"confidence_threshold_yellow": False}, "confidence_threshold_yellow", "got false"),
    ({"confidence_threshold_green": "0.9"}, "confidence_threshold_green", "expected a number"),
    ({"confidence_threshold_green": math.nan}, "confidence_threshold_green", "finite number"),
    ({"confidence_threshold_yellow": -math.inf}, "confidence_threshold_yellow", "finite"),
    ({"confidence_threshold_green": 1.5}, "confidence_threshold_green", "green <= 1"),
    ({"confidence_threshold_yellow": -0.1}, "confidence_threshold_yellow", "0 <= yellow"),
    ({"max_total_cost_usd": True}, "max_total_cost_usd", "expected a number, got true"),
    ({"max_total_cost_usd": "5"}, "max_total_cost_usd", "expected a number, got '5'"),
    ({"max_total_cost_usd": math.nan}, "max_total_cost_usd", "must be a finite number, got nan"),
    ({"max_total_cost_usd": math.inf}, "max_total_cost_usd", "must be a finite number, got inf"),
    ({"max_total_cost_usd": 1e308}, "max_total_cost_usd", "must be at most 1000000"),
    ({"max_total_cost_usd": 0}, "max_total_cost_usd", "must be positive"),
    ({"max_total_cost_usd": -1.5}, "max_total_cost_usd", "must be positive"),
    ({"max_wall_time_minutes": True}, "max_wall_time_minutes", "expected a number"),
    ({"max_wall_time_minutes": math.inf}, "max_wall_time_minutes", "finite"),
    ({"max_wall_time_minutes": 1e308}, "max_wall_time_minutes", "must be at most"),
    # token and turn limits are positive whole numbers up to a documented maximum
    ({"max_total_tokens": 0}, "max_total_tokens", "must be at least 1, got 0"),
    ({"max_total_tokens": -5}, "max_total_tokens", "must be at least 1"),
    ({"max_total_tokens": 1.5e6}, "max_total_tokens", "expected a whole number, got 1500000.0"),
    ({"max_total_tokens": True}, "max_total_tokens", "expected a whole number, got true"),
    ({"max_total_tokens": "1000"}, "max_total_tokens", "expected a whole number, got '1000'"),
    ({"max_total_tokens": 10**12 + 1}, "max_total_tokens", "must be at most 1000000000000"),
    ({"max_total_tokens": 10**400}, "max_total_tokens", "must be at most"),
    ({"max_agent_turns": 0}, "max_agent_turns", "must be at least 1, got 0"),
    ({"max_agent_turns": 2.0}, "max_agent_turns", "expected a whole number"),
    ({"max_agent_turns": math.nan}, "max_agent_turns", "expected a whole number"),
    ({"max_agent_turns": 10**6 + 1}, "max_agent_turns", "must be at most 1000000"),
    (agent(timeout_s=True), "agent.timeout_s", "expected a number, got true"),
    (agent(timeout_s="30"), "agent.timeout_s", "expected a number"),
    (agent(timeout_s=math.nan), "agent.timeout_s", "finite"),
    (agent(timeout_s=1e308), "agent.timeout_s", "must be at most"),
    (agent(timeout_s=0), "agent.timeout_s", "must be positive"),
    # wrong types, nested tables included
    ({"title": 5}, "title", "expected a string, got 5 (an integer)"),
    ({"goal": ["g"]}, "goal", "expected a string, got a list"),
    ({"local_path": 3}, "local_path", "expected a string"),
    ({"repository_url": True}, "repository_url", "expected a string"),
    ({"requirements": ["R1"]}, "requirements[0]", "expected a table, got 'R1'"),
    ({"requirements": [{"description": "d"}]}, "requirements[0].id", "missing"),
    ({"requirements": [{"id": 1, "description": "d"}]}, "requirements[0].id", "expected a string"),
    ({"requirements": [{"id": " ", "description": "d"}]}, "requirements[0].id", "must not be"),
    ({"requirements": [{"id": "R1", "description": None}]}, "requirements[0].description", "null"),
    ({"acceptance_criteria": [{"id": "c"}]}, "acceptance_criteria[0].criterion", "missing"),
    ({"acceptance_criteria": [{"id": "", "criterion": "c"}]}, "acceptance_criteria[0].id", ""),
    ({"steps": ["fix"]}, "steps[0]", "expected a table, got 'fix'"),
    ({"steps": [{"name": 5}]}, "steps[0].name", "expected a string"),
    ({"steps": [{"step_type": "test"}]}, "steps[0].name", "missing"),
    (step(description=["d"]), "steps[0].description", "expected a string"),
    (step(verifiers="pytest"), "steps[0].verifiers", "expected a table, got 'pytest'"),
    ({"verifiers": ["pytest"]}, "verifiers", "expected a table, got a list"),
    ({"agent": "python agent.py"}, "agent", "expected a table, got 'python agent.py'"),
    ({"agent": {"timeout_s": 5}}, "agent.command", "missing"),
    # a NUL byte in any string
    ({"title": "a\x00b"}, "title", "contains a NUL byte"),
    ({"goal": "a\x00b"}, "goal", "contains a NUL byte"),
    ({"constraints": ["ok", "no\x00"]}, "constraints[1]", "contains a NUL byte"),
    ({"repository_url": "git\x00"}, "repository_url", "contains a NUL byte"),
    ({"base_branch": "main\x00"}, "base_branch", "contains a NUL byte"),
    ({"local_path": "/tmp/\x00"}, "local_path", "contains a NUL byte"),
    ({"requirements": [{"id": "R\x001", "description": "d"}]}, "requirements[0].id", "NUL"),
    ({"requirements": [{"id": "R1", "description": "\x00"}]}, "requirements[0].description", "NUL"),
    (
        {"acceptance_criteria": [{"id": "c", "criterion": "\x00"}]},
        "acceptance_criteria[0].criterion",
        "contains a NUL byte",
    ),
    ({"steps": [{"name": "fix\x00"}]}, "steps[0].name", "contains a NUL byte"),
    (step(description="\x00"), "steps[0].description", "contains a NUL byte"),
    (step(task_plan="\x00"), "steps[0].task_plan", "contains a NUL byte"),
    (step(depends_on=["\x00"]), "steps[0].depends_on[0]", "contains a NUL byte"),
    (step(requirement_ids=["R\x00"]), "steps[0].requirement_ids[0]", "contains a NUL byte"),
    (step(verifiers={"run": "a\x00"}), "steps[0].verifiers.run", "contains a NUL byte"),
    ({"verifiers": {"command": [{"run": "\x00"}]}}, "verifiers.command[0].run", "NUL byte"),
    ({"verifiers": {"ke\x00y": 1}}, "verifiers", "key 'ke\\x00y' contains a NUL byte"),
    (agent(command=["python", "\x00"]), "agent.command[1]", "contains a NUL byte"),
    # the rules across fields still hold
    ({"confidence_threshold_green": 0.4}, BOTH_THRESHOLDS, "got yellow=0.5 green=0.4"),
    ({"requirements": [{"id": "r", "description": "a"}] * 2}, "requirements", "duplicate"),
    ({"steps": []}, "steps", "at least one step"),
    ({"steps": [{"name": "Fix Parser"}]}, "steps[0].name", "not kebab-case"),
    (step(depends_on=["ghost"]), "steps[0].depends_on", "unknown step 'ghost'"),
    ({"bogus": 1}, "bogus", "unknown key"),
    (step(colour="red"), "steps[0].colour", "unknown key"),
]


def _case_id(case: tuple[dict[str, Any], str, str]) -> str:
    change, field, _ = case
    value = repr(next(iter(change.values())))
    return f"{field}={value[:40]}"


@pytest.mark.parametrize(("change", "field", "fragment"), FILE_CASES, ids=map(_case_id, FILE_CASES))
def test_a_bad_file_value_is_refused_naming_the_field(
    change: dict[str, Any], field: str, fragment: str
) -> None:
    data = {**MINIMAL, **change}
    before = copy.deepcopy(data)
    with pytest.raises(InvalidInput) as raised:
        structure_spec(data)
    assert_refused(raised, field, fragment)
    assert data == before  # the file's data is left as it was


def test_good_file_values_keep_working() -> None:
    spec = structure_spec(
        {
            **MINIMAL,
            "autonomy_level": "manual",
            "confidence_threshold_green": 1,  # an integer is a number
            "confidence_threshold_yellow": 0,
            "max_total_cost_usd": 1_000_000,
            "max_total_tokens": 1_000_000_000_000,
            "max_agent_turns": 1,
            "max_wall_time_minutes": 60,
            "max_rework_cycles": 0,
            "max_chain_regenerations": 1000,
            "constraints": ["one"],
            "steps": [{"name": "fix", "depends_on": [], "task_plan": None}],
            "verifiers": {"auto_detect": False, "command": [{"run": "pytest", "timeout_s": 9}]},
            "agent": {"command": ["python"], "timeout_s": 30},
        }
    )
    assert spec.autonomy_level is AutonomyLevel.MANUAL
    assert spec.constraints == ["one"]
    assert spec.max_wall_time_minutes == 60.0 and isinstance(spec.max_wall_time_minutes, float)
    assert spec.max_rework_cycles == 0 and spec.max_chain_regenerations == 1000
    assert (spec.max_total_tokens, spec.max_agent_turns) == (10**12, 1)
    assert (spec.confidence_threshold_green, spec.confidence_threshold_yellow) == (1.0, 0.0)
    assert spec.agent == AgentSpec(command=["python"], timeout_s=30.0)
    assert spec.steps == [StepSpec(name="fix")]


# ----------------------------------------------------------------- plans

PLAN_CASES: list[tuple[Any, str, str]] = [
    ([{"name": "a", "depends_on": "b"}], "plan.steps[0].depends_on", "expected a list of strings"),
    ([{"name": "a", "requirement_ids": "R1"}], "plan.steps[0].requirement_ids", "list of strings"),
    ([{"name": "a", "step_type": "dance"}], "plan.steps[0].step_type", STEP_TYPES),
    ([{"name": "a", "step_type": None}], "plan.steps[0].step_type", STEP_TYPES),
    ([{"name": 5}], "plan.steps[0].name", "expected a string, got 5"),
    ([{"name": None}], "plan.steps[0].name", "expected a string, got null"),
    (["a"], "plan.steps[0]", "expected an object, got 'a'"),
    ([{"name": "a"}, {"name": "b", "description": 7}], "plan.steps[1].description", "a string"),
    ([{"name": "a", "task_plan": ["x"]}], "plan.steps[0].task_plan", "expected a string"),
    ([{"name": "a", "verifiers": "pytest"}], "plan.steps[0].verifiers", "expected an object"),
    ([{"name": "a", "description": "x\x00"}], "plan.steps[0].description", "NUL byte"),
    ([{"name": "a", "depends_on": ["a\x00"]}], "plan.steps[0].depends_on[0]", "NUL byte"),
    ([{"name": "Not_Kebab"}], "plan.steps[0].name", "not kebab-case"),
    ([{"name": "a"}, {"name": "a"}], "plan.steps", "duplicate name 'a'"),
]


@pytest.mark.parametrize(("steps", "field", "fragment"), PLAN_CASES)
def test_a_bad_plan_value_is_refused_naming_the_field(
    steps: Any, field: str, fragment: str
) -> None:
    plan = {"steps": steps}
    before = copy.deepcopy(plan)
    with pytest.raises(InvalidInput) as raised:
        structure_plan(plan)
    assert_refused(raised, field, fragment)
    assert plan == before


def test_a_plan_may_carry_notes_of_its_own() -> None:
    steps = structure_plan({"steps": [{"name": "a", "why": "first"}], "notes": "..."})
    assert steps == [StepSpec(name="a")]


# ----------------------------------------------------------------- Python


def _requirement() -> Requirement:
    return Requirement(id="R1", description="d")


# (DirectiveSpec keyword arguments, field, what the message must say): refused when
# the spec is built, and by validate() when it was built with validators off.
PYTHON_CASES: list[tuple[dict[str, Any], str, str]] = [
    ({"autonomy_level": "yolo"}, "autonomy_level", f"must be one of {AUTONOMY}; got 'yolo'"),
    ({"autonomy_level": None}, "autonomy_level", AUTONOMY),
    ({"max_rework_cycles": "three"}, "max_rework_cycles", "expected a whole number"),
    ({"max_rework_cycles": "3"}, "max_rework_cycles", "expected a whole number"),
    ({"max_rework_cycles": 2.5}, "max_rework_cycles", "expected a whole number, got 2.5"),
    ({"max_rework_cycles": True}, "max_rework_cycles", "expected a whole number, got true"),
    ({"max_rework_cycles": -1}, "max_rework_cycles", "must not be negative, got -1"),
    ({"max_rework_cycles": None}, "max_rework_cycles", "expected a whole number, got null"),
    ({"max_chain_regenerations": True}, "max_chain_regenerations", "expected a whole number"),
    ({"max_chain_regenerations": 10**9}, "max_chain_regenerations", "must be at most 1000"),
    ({"constraints": "one"}, "constraints", "expected a list of strings, got 'one'"),
    ({"constraints": ("one",)}, "constraints", "expected a list of strings"),
    ({"constraints": [1]}, "constraints[0]", "expected a string, got 1"),
    ({"requirements": "one"}, "requirements", "expected a list of a Requirement"),
    ({"requirements": [{"id": "R1", "description": "d"}]}, "requirements[0]", "a Requirement"),
    ({"acceptance_criteria": "ok"}, "acceptance_criteria", "expected a list"),
    ({"acceptance_criteria": [_requirement()]}, "acceptance_criteria[0]", "AcceptanceCriterion"),
    ({"steps": "fix"}, "steps", "expected a list of a StepSpec"),
    ({"steps": [{"name": "fix"}]}, "steps[0]", "expected a StepSpec, got a table"),
    ({"agent": ["python"]}, "agent", "expected an AgentSpec, got a list"),
    ({"confidence_threshold_green": True}, "confidence_threshold_green", "expected a number"),
    ({"confidence_threshold_yellow": True}, "confidence_threshold_yellow", "expected a number"),
    ({"confidence_threshold_green": math.nan}, "confidence_threshold_green", "finite"),
    ({"confidence_threshold_green": 1.01}, "confidence_threshold_green", "green <= 1"),
    ({"confidence_threshold_yellow": -0.1}, "confidence_threshold_yellow", "0 <= yellow"),
    ({"confidence_threshold_green": 0.4}, BOTH_THRESHOLDS, "yellow <= green"),
    ({"max_total_cost_usd": True}, "max_total_cost_usd", "expected a number, got true"),
    ({"max_total_cost_usd": "5"}, "max_total_cost_usd", "expected a number"),
    ({"max_total_cost_usd": math.nan}, "max_total_cost_usd", "finite number, got nan"),
    ({"max_total_cost_usd": math.inf}, "max_total_cost_usd", "finite number, got inf"),
    ({"max_total_cost_usd": 1e308}, "max_total_cost_usd", "must be at most 1000000, got 1e+308"),
    ({"max_total_cost_usd": 10**400}, "max_total_cost_usd", "must be at most"),
    ({"max_total_cost_usd": 0.0}, "max_total_cost_usd", "must be positive"),
    ({"max_wall_time_minutes": False}, "max_wall_time_minutes", "expected a number"),
    ({"max_wall_time_minutes": 1e308}, "max_wall_time_minutes", "must be at most"),
    ({"max_wall_time_minutes": -5}, "max_wall_time_minutes", "must be positive"),
    ({"max_total_tokens": 0}, "max_total_tokens", "must be at least 1"),
    ({"max_total_tokens": 1e6}, "max_total_tokens", "expected a whole number"),
    ({"max_total_tokens": False}, "max_total_tokens", "expected a whole number"),
    ({"max_total_tokens": 10**13}, "max_total_tokens", "must be at most 1000000000000"),
    ({"max_agent_turns": -1}, "max_agent_turns", "must be at least 1"),
    ({"max_agent_turns": "50"}, "max_agent_turns", "expected a whole number"),
    ({"max_agent_turns": 10**7}, "max_agent_turns", "must be at most 1000000"),
    ({"title": "  "}, "title", "must not be empty"),
    ({"title": None}, "title", "expected a string, got null"),
    ({"goal": 3}, "goal", "expected a string, got 3"),
    ({"local_path": Path("/tmp")}, "local_path", "expected a string"),
    ({"base_branch": b"main"}, "base_branch", "expected a string"),
    ({"verifiers": "pytest"}, "verifiers", "expected a table"),
    ({"verifiers": {1: "x"}}, "verifiers", "expected string keys, got 1"),
    ({"verifiers": {"when": object()}}, "verifiers.when", "expected a string, number, boolean"),
    ({"verifiers": {"limit": math.inf}}, "verifiers.limit", "finite"),
    ({"title": "t\x00"}, "title", "contains a NUL byte"),
    ({"goal": "\x00"}, "goal", "contains a NUL byte"),
    ({"constraints": ["ok", "no\x00"]}, "constraints[1]", "contains a NUL byte"),
    ({"local_path": "\x00"}, "local_path", "contains a NUL byte"),
    ({"repository_url": "\x00"}, "repository_url", "contains a NUL byte"),
    ({"verifiers": {"a": {"b": ["\x00"]}}}, "verifiers.a.b[0]", "contains a NUL byte"),
    ({"verifiers": {"a\x00": 1}}, "verifiers", "contains a NUL byte"),
]


@pytest.mark.parametrize(("changes", "field", "fragment"), PYTHON_CASES)
def test_a_bad_python_spec_is_refused_when_built(
    changes: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        DirectiveSpec(**{**MINIMAL, **changes})
    assert_refused(raised, field, fragment)


@pytest.mark.parametrize(("changes", "field", "fragment"), PYTHON_CASES)
def test_validate_refuses_it_even_when_validators_were_off(
    changes: dict[str, Any], field: str, fragment: str
) -> None:
    # Converters (autonomy_level) run even with validators off: then it is the build.
    with pytest.raises(InvalidInput) as raised:
        with attrs.validators.disabled():
            spec = DirectiveSpec(**{**MINIMAL, **changes})
        spec.validate()
    assert_refused(raised, field, fragment)


# (the class, its keyword arguments, field, what the message must say)
NESTED_CASES: list[tuple[Callable[..., Any], dict[str, Any], str, str]] = [
    (StepSpec, {"name": "fix", "depends_on": "research"}, "depends_on", "list of strings"),
    (StepSpec, {"name": "fix", "requirement_ids": "R1"}, "requirement_ids", "list of strings"),
    (StepSpec, {"name": "fix", "step_type": "dance"}, "step_type", STEP_TYPES),
    (StepSpec, {"name": "Fix It"}, "name", "not kebab-case"),
    (StepSpec, {"name": 5}, "name", "expected a string"),
    (StepSpec, {"name": "fix", "description": None}, "description", "expected a string"),
    (StepSpec, {"name": "fix", "task_plan": "\x00"}, "task_plan", "contains a NUL byte"),
    (StepSpec, {"name": "fix", "verifiers": ["pytest"]}, "verifiers", "expected a table"),
    (AgentSpec, {"command": "python agent.py"}, "command", "expected a list of strings"),
    (AgentSpec, {"command": []}, "command", "must not be empty"),
    (AgentSpec, {"command": ["python", None]}, "command[1]", "expected a string, got null"),
    (AgentSpec, {"command": ["x"], "timeout_s": True}, "timeout_s", "expected a number"),
    (AgentSpec, {"command": ["x"], "timeout_s": math.inf}, "timeout_s", "finite"),
    (AgentSpec, {"command": ["x"], "timeout_s": -1}, "timeout_s", "must be positive"),
    (Requirement, {"id": 1, "description": "d"}, "id", "expected a string"),
    (Requirement, {"id": "R1", "description": "\x00"}, "description", "contains a NUL byte"),
    (AcceptanceCriterion, {"id": "c", "criterion": ["c"]}, "criterion", "expected a string"),
]


@pytest.mark.parametrize(("cls", "kwargs", "field", "fragment"), NESTED_CASES)
def test_a_bad_nested_spec_is_refused_when_built(
    cls: Callable[..., Any], kwargs: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        cls(**kwargs)
    assert_refused(raised, field, fragment)


# (builds DirectiveSpec keyword arguments, field, what validate() must say): nested
# specs built with validators off are named under their place in the directive;
# the last cases are limits only new input must meet, so only validate() has them.
VALIDATE_CASES: list[tuple[Callable[[], dict[str, Any]], str, str]] = [
    (lambda: {"steps": [StepSpec(name="a", depends_on="b")]}, "steps[0].depends_on", "list"),
    (lambda: {"steps": [StepSpec(name="a", description=1)]}, "steps[0].description", "string"),
    (lambda: {"agent": AgentSpec(command="python")}, "agent.command", "list of strings"),
    (lambda: {"agent": AgentSpec(command=["x"], timeout_s=True)}, "agent.timeout_s", "number"),
    (
        lambda: {"requirements": [Requirement(id="R1", description=None)]},
        "requirements[0].description",
        "expected a string",
    ),
    (
        lambda: {"acceptance_criteria": [AcceptanceCriterion(id=3, criterion="c")]},
        "acceptance_criteria[0].id",
        "expected a string",
    ),
    (lambda: {"requirements": [Requirement(id="", description="d")]}, "requirements[0].id", ""),
    (lambda: {"agent": AgentSpec(command=[" "])}, "agent.command[0]", "must not be empty"),
    (
        lambda: {"agent": AgentSpec(command=["x"], timeout_s=1e9)},
        "agent.timeout_s",
        "must be at most 2592000",
    ),
    (lambda: {"steps": []}, "steps", "at least one step is needed"),
    (lambda: {"steps": [StepSpec(name="a", depends_on=["a"])]}, "steps[0].depends_on", "itself"),
]


@pytest.mark.parametrize(("build", "field", "fragment"), VALIDATE_CASES)
def test_validate_names_nested_fields_under_their_place(
    build: Callable[[], dict[str, Any]], field: str, fragment: str
) -> None:
    with attrs.validators.disabled():
        spec = DirectiveSpec(**MINIMAL, **build())
    with pytest.raises(InvalidInput) as raised:
        spec.validate()
    assert_refused(raised, field, fragment)


def test_python_specs_accept_what_they_always_did() -> None:
    spec = DirectiveSpec(
        title="t",
        goal="g",
        autonomy_level="full_auto",  # the enum's value is as good as the member
        max_wall_time_minutes=60,  # an int for a float
        max_total_cost_usd=5,
        requirements=[_requirement()],
        steps=[StepSpec(name="a", step_type="test"), StepSpec(name="b", depends_on=["a"])],
        agent=AgentSpec(command=["python"], timeout_s=30),
        verifiers={"command": [{"run": "pytest", "timeout_s": 5.5, "env": None, "on": True}]},
    ).validate()
    assert spec.autonomy_level is AutonomyLevel.FULL_AUTO
    assert spec.steps is not None and spec.steps[0].step_type is StepType.TEST


def test_stored_specs_still_load_from_rows() -> None:
    directive = Directive.from_row(
        {
            "id": uuid.uuid4(),
            "title": "t",
            "goal": "g",
            "requirements": [{"id": "", "description": ""}],  # older rows allowed blank ids
            "explicit_steps": [{"name": "a", "step_type": "test", "depends_on": []}],
            "agent": {"command": ["python"], "timeout_s": 10**7},  # above today's limit
        }
    )
    assert directive.explicit_steps == [StepSpec(name="a", step_type=StepType.TEST)]
    assert directive.agent is not None and directive.agent.timeout_s == 10**7


# ----------------------------------------------------------------- directive files on disk


@pytest.mark.parametrize(
    ("line", "field", "fragment"),
    [
        ('constraints = "one"', "constraints", "expected a list of strings"),
        ("max_rework_cycles = 2.5", "max_rework_cycles", "expected a whole number"),
        ("max_total_cost_usd = true", "max_total_cost_usd", "expected a number, got true"),
        ("max_total_cost_usd = nan", "max_total_cost_usd", "finite"),
        ("max_total_tokens = 2e6", "max_total_tokens", "expected a whole number"),
        ("max_agent_turns = 0", "max_agent_turns", "must be at least 1"),
        ('local_path = "work\\u0000"', "local_path", "contains a NUL byte"),
        ('autonomy_level = "yolo"', "autonomy_level", AUTONOMY),
    ],
)
def test_a_directive_file_names_file_and_field(
    tmp_path: Path, line: str, field: str, fragment: str
) -> None:
    path = tmp_path / "directive.toml"
    path.write_text(f'title = "t"\ngoal = "g"\n{line}\n')
    with pytest.raises(InvalidInput) as raised:
        load_directive_file(path)
    text = str(raised.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: {field}: ") and fragment in text, text


def test_a_nul_in_an_agent_path_is_refused_not_resolved(tmp_path: Path) -> None:
    path = tmp_path / "directive.toml"
    path.write_text('title = "t"\ngoal = "g"\n[agent]\ncommand = ["./run\\u0000.sh"]\n')
    with pytest.raises(InvalidInput, match=r"agent\.command\[0\]: contains a NUL byte"):
        load_directive_file(path)
