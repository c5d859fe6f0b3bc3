"""How big, and what, a person's text may be (issue 11, hard inputs; no database).

Every text field of a directive holds at most ``MAX_INPUT_CHARS`` characters and
the directive at most ``MAX_SPEC_CHARS`` in all; a chain at most ``MAX_CHAIN_STEPS``
steps; settings tables nest at most ``MAX_TABLE_DEPTH`` deep. Past a cap, and for
text PostgreSQL cannot hold (a lone surrogate), the refusal is one line naming the
field, the same from a file, a dict or Python.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from directorate.actors.directive_file import load_directive_file
from directorate.persistence.convert import structure_spec
from directorate.persistence.errors import InvalidInput
from directorate.persistence.models import (
    AcceptanceCriterion,
    DirectiveSpec,
    Requirement,
    StepSpec,
)
from directorate.persistence.validation import (
    MAX_CHAIN_STEPS,
    MAX_INPUT_CHARS,
    MAX_SPEC_CHARS,
    MAX_TABLE_DEPTH,
    MAX_TEXT_CHARS,
    strip_nul,
)

TEN_MB = 10 * 1024 * 1024
BIG = "x" * TEN_MB
TOO_BIG = f"{TEN_MB} characters, more than the {MAX_INPUT_CHARS} allowed"

# field -> (the spec as a directive file's table, the same spec built in Python)
Build = Callable[[str], tuple[dict[str, Any], Callable[[], DirectiveSpec]]]


def _goal(text: str) -> tuple[dict[str, Any], Callable[[], DirectiveSpec]]:
    return {"title": "t", "goal": text}, lambda: DirectiveSpec(title="t", goal=text)


def _requirement(text: str) -> tuple[dict[str, Any], Callable[[], DirectiveSpec]]:
    return (
        {"title": "t", "goal": "g", "requirements": [{"id": "r1", "description": text}]},
        lambda: DirectiveSpec(
            title="t", goal="g", requirements=[Requirement(id="r1", description=text)]
        ),
    )


def _criterion(text: str) -> tuple[dict[str, Any], Callable[[], DirectiveSpec]]:
    return (
        {"title": "t", "goal": "g", "acceptance_criteria": [{"id": "c1", "criterion": text}]},
        lambda: DirectiveSpec(
            title="t",
            goal="g",
            acceptance_criteria=[AcceptanceCriterion(id="c1", criterion=text)],
        ),
    )


def _task_plan(text: str) -> tuple[dict[str, Any], Callable[[], DirectiveSpec]]:
    return (
        {"title": "t", "goal": "g", "steps": [{"name": "a"}, {"name": "b", "task_plan": text}]},
        lambda: DirectiveSpec(
            title="t", goal="g", steps=[StepSpec(name="a"), StepSpec(name="b", task_plan=text)]
        ),
    )


def _constraint(text: str) -> tuple[dict[str, Any], Callable[[], DirectiveSpec]]:
    return (
        {"title": "t", "goal": "g", "constraints": ["short", text]},
        lambda: DirectiveSpec(title="t", goal="g", constraints=["short", text]),
    )


FIELDS: dict[str, tuple[Build, str]] = {
    "goal": (_goal, "goal"),
    "requirement": (_requirement, "requirements[0].description"),
    "criterion": (_criterion, "acceptance_criteria[0].criterion"),
    "task-plan": (_task_plan, "steps[1].task_plan"),
    "constraint": (_constraint, "constraints[1]"),
}


def _refusal(build: Callable[[], Any]) -> str:
    with pytest.raises(InvalidInput) as raised:
        build()
    text = str(raised.value)
    assert "\n" not in text, text
    return text


@pytest.mark.parametrize("where", list(FIELDS))
def test_10_mb_in_a_field_is_refused_naming_it_from_a_file_and_from_python(where: str) -> None:
    make, field = FIELDS[where]
    table, python = make(BIG)
    assert _refusal(lambda: structure_spec(table)) == f"{field}: {TOO_BIG}"
    assert _refusal(lambda: python().validate()) == f"{field}: {TOO_BIG}"


@pytest.mark.parametrize("where", list(FIELDS))
def test_a_field_at_the_cap_is_accepted(where: str) -> None:
    make, _ = FIELDS[where]
    # Four bytes a character in UTF-8: the cap counts characters, not bytes.
    table, python = make("\N{MUSICAL SYMBOL G CLEF}" * MAX_INPUT_CHARS)
    structure_spec(table)
    python().validate()


def test_the_whole_directive_is_capped_too() -> None:
    part = "x" * (MAX_INPUT_CHARS - 10)
    parts = MAX_SPEC_CHARS // len(part) + 1
    table = {"title": "t", "goal": "g", "constraints": [part] * parts}
    refusal = _refusal(lambda: structure_spec(table))
    assert refusal.startswith("directive: ")
    assert refusal.endswith(f"characters of text in all, more than the {MAX_SPEC_CHARS} allowed")


def test_more_steps_than_the_cap_are_refused() -> None:
    steps = [{"name": f"s{i}"} for i in range(MAX_CHAIN_STEPS + 1)]
    assert _refusal(lambda: structure_spec({"title": "t", "goal": "g", "steps": steps})) == (
        f"steps: {MAX_CHAIN_STEPS + 1} steps, more than the {MAX_CHAIN_STEPS} allowed"
    )
    structure_spec({"title": "t", "goal": "g", "steps": steps[:MAX_CHAIN_STEPS]})


@pytest.mark.parametrize("where", list(FIELDS))
def test_a_lone_surrogate_is_refused_naming_the_field(where: str) -> None:
    """Python (or JSON's \\ud800) can hold half a UTF-16 pair; UTF-8 cannot, so the
    write would fail in the database's driver, naming no field."""
    make, field = FIELDS[where]
    table, python = make("half a pair: \ud800")
    why = "contains '\\ud800', which is not valid UTF-8 text"
    assert _refusal(lambda: structure_spec(table)) == f"{field}: {why}"
    # A nested spec refuses it when built, naming its own field.
    assert _refusal(lambda: python().validate()) == f"{field.rpartition('.')[2]}: {why}"


def test_outside_text_of_10_mb_is_kept_bounded_and_storable() -> None:
    """What agents print is cut (keeping its end) and cleaned, never refused."""
    text = "start " + "y" * TEN_MB + " half \udcff a pair\x00, the end"
    kept = strip_nul(text)
    assert len(kept) == MAX_TEXT_CHARS + 3 and kept.endswith("half \ufffd a pair, the end")
    kept.encode("utf-8")  # storable


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            'title = "t"\ngoal = "g"\nconstraints = ' + "[" * 3000 + "]" * 3000 + "\n",
            "nested too deeply to read",
            id="past-what-the-toml-parser-reads",
        ),
        pytest.param(
            'title = "t"\ngoal = "g"\n[verifiers]\nx = ' + "[" * 350 + "]" * 350 + "\n",
            f"verifiers: nested more than {MAX_TABLE_DEPTH} levels deep",
            id="deep-verifiers",
        ),
    ],
)
def test_a_deeply_nested_file_is_refused_in_one_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(text)
    assert _refusal(lambda: load_directive_file(path)) == f"{path}: {message}"


def test_deeply_nested_settings_from_python_are_refused_naming_the_field() -> None:
    deep: dict[str, Any] = {}
    inner = deep
    for _ in range(5000):
        inner["x"] = {}
        inner = inner["x"]
    assert _refusal(lambda: DirectiveSpec(title="t", goal="g", verifiers=deep)) == (
        f"verifiers: nested more than {MAX_TABLE_DEPTH} levels deep"
    )
    assert _refusal(lambda: StepSpec(name="a", verifiers=deep)) == (
        f"verifiers: nested more than {MAX_TABLE_DEPTH} levels deep"
    )
