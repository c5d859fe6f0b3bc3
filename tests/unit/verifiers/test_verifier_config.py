"""build_verifiers: the [verifiers] table of directive files and plan steps."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
from verifier_helpers import write_tool

from directorate.verifiers import (
    CommandVerifier,
    InvalidVerifierConfig,
    LlmVerifier,
    VerifierType,
    build_verifiers,
)
from directorate.verifiers.tools import DEFAULT_TABLE, Price

EXAMPLE = Path(__file__).parents[3] / "examples" / "hello" / "directive.toml"


def test_example_directive_file(tmp_path: Path) -> None:
    settings = tomllib.loads(EXAMPLE.read_text())["verifiers"]
    [verifier] = build_verifiers(settings, tmp_path)
    assert isinstance(verifier, CommandVerifier)
    assert verifier.argv == ["python", "-m", "unittest"]
    assert (verifier.name, verifier.verifier_type, verifier.required) == (
        "unit-tests",
        "test",
        True,
    )
    assert verifier.timeout_s == 60


def test_full_configuration(tmp_path: Path) -> None:
    settings: dict[str, Any] = {
        "auto_detect": False,
        "command": [
            {
                "name": "t",
                "run": ["pytest", "-x"],
                "type": "test",
                "weight": 2,
                "junit_xml": "r.xml",
            },
            {
                "name": "l",
                "run": "ruff check .",
                "type": "lint",
                "required": False,
                "cwd": "src",
                "env": {"CI": "1"},
                "timeout_s": 30.5,
            },
        ],
        "llm": {"command": "claude -p", "timeout_s": 120},
    }
    t, lint, judge = build_verifiers(settings, tmp_path)
    assert isinstance(t, CommandVerifier) and isinstance(lint, CommandVerifier)
    assert (t.weight, t.required, t.junit_xml, t.timeout_s) == (2.0, True, Path("r.xml"), 600.0)
    assert (lint.verifier_type, lint.required, lint.cwd, lint.env) == (
        VerifierType.LINT,
        False,
        Path("src"),
        {"CI": "1"},
    )
    assert isinstance(judge, LlmVerifier)
    assert (judge.argv, judge.timeout_s, judge.verifier_type) == (["claude", "-p"], 120.0, "llm")


@pytest.mark.parametrize(
    "llm, kind, argv, model, extra",
    [
        ({"command": "claude -p"}, "command", ["claude", "-p"], None, ()),
        ({"kind": "claude-code"}, "claude-code", [], None, ()),
        (
            {"kind": "claude-code", "command": ["/opt/claude"], "model": "claude-sonnet-4-5"},
            "claude-code",
            ["/opt/claude"],
            "claude-sonnet-4-5",
            (),
        ),
        (
            {"kind": "codex", "model": "gpt-5.5", "extra_args": ["-c", "x=1"]},
            "codex",
            [],
            "gpt-5.5",
            ("-c", "x=1"),
        ),
    ],
)
def test_judge_kinds(
    tmp_path: Path,
    llm: dict[str, Any],
    kind: str,
    argv: list[str],
    model: str | None,
    extra: tuple[str, ...],
) -> None:
    """A tool kind's judge needs no command (its binary); the model and extra
    arguments go to the kind's run settings, as a judge's: no session kept."""
    [judge] = build_verifiers({"auto_detect": False, "llm": llm}, tmp_path)
    assert isinstance(judge, LlmVerifier)
    assert (judge.kind.name, judge.argv) == (kind, argv)
    assert (judge.settings.model, judge.settings.extra_args) == (model, extra)
    assert judge.settings.purpose == "judge" and judge.settings.keep_session is False


def test_judge_prices_override_the_default_table(tmp_path: Path) -> None:
    llm = {"kind": "codex", "prices": {"gpt-5.5": {"input": 2, "output": 20}}}
    [judge] = build_verifiers({"auto_detect": False, "llm": llm}, tmp_path)
    assert isinstance(judge, LlmVerifier)
    assert judge.prices.price_for("gpt-5.5") == Price(input=2.0, output=20.0)
    assert judge.prices.price_for("gpt-5") == DEFAULT_TABLE.price_for("gpt-5")


def test_defaults(tmp_path: Path) -> None:
    [v] = build_verifiers({"command": [{"name": "x", "run": "true"}]}, tmp_path)
    assert isinstance(v, CommandVerifier)
    assert (v.verifier_type, v.weight, v.required, v.timeout_s) == ("custom", 1.0, True, 600.0)
    assert build_verifiers({}, tmp_path) == [] and build_verifiers(None, tmp_path) == []


def test_auto_detect_adds_checks_unless_named_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "Makefile").write_text("test:\n\ttrue\n")
    (tmp_path / "go.mod").write_text("module x\n")
    bin_dir = tmp_path / "bin"
    for tool in ("make", "go"):
        write_tool(bin_dir, tool)
    monkeypatch.setenv("PATH", str(bin_dir))
    mine = {"name": "make-test", "run": "make check"}
    names = [v.name for v in build_verifiers({"command": [mine]}, tmp_path)]
    assert names == ["make-test", "go-build", "go-vet", "go-test"]
    assert [v.name for v in build_verifiers({"auto_detect": False}, tmp_path)] == []
    assert os.environ["PATH"] == str(bin_dir)


@pytest.mark.parametrize(
    "settings, message",
    [
        ([], "verifiers: must be a table"),
        ({"autodetect": True}, "verifiers.autodetect: unknown key"),
        ({"auto_detect": "yes"}, "verifiers.auto_detect: must be a bool"),
        ({"command": {"name": "x"}}, "verifiers.command: must be a list of tables"),
        ({"command": ["pytest"]}, "verifiers.command[0]: must be a table"),
        ({"command": [{"run": "x"}]}, "verifiers.command[0].name: required"),
        ({"command": [{"name": "x"}]}, "verifiers.command[0].run: required"),
        ({"command": [{"name": "x", "run": []}]}, "verifiers.command[0].run: required"),
        ({"command": [{"name": "x", "run": "a 'b"}]}, "verifiers.command[0].run: cannot be split"),
        (
            {"command": [{"name": "x", "run": "a", "timeout_s": 0}]},
            "verifiers.command[0].timeout_s: must be a positive number",
        ),
        (
            {"command": [{"name": "x", "run": "a", "timeout_s": "60"}]},
            "verifiers.command[0].timeout_s: must be a positive number",
        ),
        (
            {"command": [{"name": "x", "run": "a", "timeout_s": True}]},
            "verifiers.command[0].timeout_s: must be a positive number",
        ),
        (
            {"command": [{"name": "x", "run": "a"}, {"name": "y", "run": "b", "type": "tst"}]},
            "verifiers.command[1].type: unknown verifier type 'tst'",
        ),
        (
            {"command": [{"name": "x", "run": "a", "type": "llm"}]},
            "verifiers.command[0].type: unknown verifier type 'llm'",
        ),
        (
            {"command": [{"name": "x", "run": "a", "weight": -1}]},
            "verifiers.command[0].weight: must be a number >= 0",
        ),
        (
            {"command": [{"name": "x", "run": "a", "required": 1}]},
            "verifiers.command[0].required: must be a bool",
        ),
        (
            {"command": [{"name": "x", "run": "a", "env": {"A": 1}}]},
            "verifiers.command[0].env: must be a table of strings",
        ),
        (
            {"command": [{"name": "x", "run": "a", "shell": True}]},
            "verifiers.command[0].shell: unknown key",
        ),
        (
            {"command": [{"name": "x", "run": "a"}, {"name": "x", "run": "b"}]},
            "verifiers.command[1].name: duplicate name 'x'",
        ),
        ({"llm": "claude"}, "verifiers.llm: must be a table"),
        ({"llm": {"timeout_s": 5}}, "verifiers.llm.command: required"),
        ({"llm": {"command": "c", "timeout_s": -5}}, "verifiers.llm.timeout_s: must be a positive"),
        ({"llm": {"command": "c", "modle": "x"}}, "verifiers.llm.modle: unknown key"),
        ({"llm": {"command": "c", "model": "x"}}, "verifiers.llm.model: only for a tool kind"),
        ({"llm": {"kind": "gpt-pilot"}}, "verifiers.llm.kind: unknown kind 'gpt-pilot'"),
        ({"llm": {"kind": 3}}, "verifiers.llm.kind: must be a str"),
        ({"llm": {"kind": "codex", "model": ""}}, "verifiers.llm.model: must be a non-empty"),
        ({"llm": {"kind": "codex", "command": []}}, "verifiers.llm.command: required"),
        ({"llm": {"kind": "codex", "extra_args": "-q"}}, "verifiers.llm.extra_args: must be"),
        ({"llm": {"kind": "codex", "extra_args": ["a\x00"]}}, "verifiers.llm.extra_args: contains"),
        (
            {"llm": {"kind": "codex", "prices": {"m": {"input": 1}}}},
            "verifiers.llm.prices.m: output is missing",
        ),
        (
            {"llm": {"kind": "codex", "prices": {"m": {"input": -1, "output": 1}}}},
            "verifiers.llm.prices.m.input: must be between",
        ),
        ({"llm": {"kind": "codex", "prices": []}}, "verifiers.llm.prices: must be a table"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, settings: Any, message: str) -> None:
    with pytest.raises(InvalidVerifierConfig) as caught:
        build_verifiers(settings, tmp_path)
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, ValueError)
