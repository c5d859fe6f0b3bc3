"""Directive files: paths relative to the file, and one-line errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from directorate.actors.directive_file import load_directive_file
from directorate.persistence.errors import InvalidInput
from directorate.persistence.models import AutonomyLevel

REPO = Path(__file__).resolve().parents[3]
GOOD = """
title = "Fix the parser"
goal = "Accept empty input"
local_path = "work"
autonomy_level = "manual"

[[requirements]]
id = "R1"
description = "empty input parses"

[agent]
command = ["python", "./agent.py", "../tools/helper.py", "--flag"]
timeout_s = 30

[verifiers]
auto_detect = false

[[verifiers.command]]
name = "tests"
run = "python -m unittest"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sub" / "directive.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_good_file_resolves_paths_relative_to_the_file(tmp_path: Path) -> None:
    spec = load_directive_file(write(tmp_path, GOOD))
    folder = (tmp_path / "sub").resolve()
    assert spec.title == "Fix the parser"
    assert spec.autonomy_level is AutonomyLevel.MANUAL
    assert spec.local_path == str(folder / "work")
    assert spec.agent is not None
    assert spec.agent.command == [
        "python",
        str(folder / "agent.py"),
        str(tmp_path.resolve() / "tools" / "helper.py"),
        "--flag",
    ]
    assert spec.agent.timeout_s == 30
    assert spec.requirements[0].id == "R1"
    assert spec.verifiers == {
        "auto_detect": False,
        "command": [{"name": "tests", "run": "python -m unittest"}],
    }


def test_the_examples_load() -> None:
    hello = load_directive_file(REPO / "examples" / "hello" / "directive.toml")
    assert hello.local_path == str(REPO / "examples" / "hello" / "project")
    assert hello.agent is not None
    assert hello.agent.command[1] == str(REPO / "examples" / "hello" / "agent.py")
    claude = load_directive_file(REPO / "examples" / "claude-code" / "directive.toml")
    assert claude.agent is not None and claude.agent.kind == "claude-code"
    assert claude.agent.command == [] and claude.agent.extra_args[0] == "--allowedTools"
    codex = load_directive_file(REPO / "examples" / "codex" / "directive.toml")
    assert codex.agent is not None and (codex.agent.kind, codex.agent.model) == ("codex", "gpt-5.5")
    assert (claude.max_total_tokens, claude.max_agent_turns) == (2_000_000, 300)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('colour = "blue"\n', "colour: unknown key"),
        ('max_rework_cycles = "three"\n', "max_rework_cycles:"),
        ('autonomy_level = "yolo"\n', "autonomy_level:"),
    ],
)
def test_top_level_mistakes_name_the_key(tmp_path: Path, change: str, message: str) -> None:
    path = write(tmp_path, change + GOOD.replace('autonomy_level = "manual"\n', ""))
    with pytest.raises(InvalidInput) as caught:
        load_directive_file(path)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: ")
    assert message in text


def test_nested_unknown_key_names_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("timeout_s = 30", "tmeout_s = 30"))
    with pytest.raises(InvalidInput, match=r"agent\.tmeout_s: unknown key"):
        load_directive_file(path)


def test_missing_field_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('goal = "Accept empty input"\n', ""))
    with pytest.raises(InvalidInput, match="goal: missing"):
        load_directive_file(path)


def test_missing_nested_field_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('description = "empty input parses"\n', ""))
    with pytest.raises(InvalidInput, match=r"requirements\[0\]\.description: missing"):
        load_directive_file(path)


def test_toml_syntax_error_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'title = "unterminated\ngoal = "x"\n')
    with pytest.raises(InvalidInput) as caught:
        load_directive_file(path)
    assert "\n" not in str(caught.value)
    assert "not valid TOML" in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        load_directive_file(tmp_path / "nope.toml")
