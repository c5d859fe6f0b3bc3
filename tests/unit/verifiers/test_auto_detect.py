"""auto_detect_verifiers in small project folders, with a fake PATH of stand-in tools."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from verifier_helpers import VENV_BIN, write_tool

from directorate.verifiers import (
    Detection,
    VerificationContext,
    VerifierType,
    auto_detect_verifiers,
)


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder that is the whole PATH: put stand-in tools in it."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    return folder


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


def names(found: Detection) -> list[str]:
    return [v.name for v in found.verifiers]


def skipped(found: Detection) -> dict[str, str]:
    return dict(found.skipped)


def test_empty_or_missing_folder_finds_nothing(project: Path, fake_bin: Path) -> None:
    assert auto_detect_verifiers(project) == Detection()
    assert auto_detect_verifiers(project / "missing") == Detection()


def test_python_with_tests_ruff_and_mypy(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "tests").mkdir()
    (project / "tests" / "test_x.py").write_text("def test_x(): pass\n")
    (project / "pyproject.toml").write_text("[tool.ruff]\nline-length = 100\n")
    (project / "setup.cfg").write_text("[mypy]\nstrict = True\n")
    tools = tmp_path / "bin"
    for tool in ("ruff", "mypy"):
        write_tool(tools, tool)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{VENV_BIN}")  # python and pytest
    found = auto_detect_verifiers(project)
    assert names(found) == ["pytest", "ruff", "mypy"]
    pytest_v, ruff_v, mypy_v = found.verifiers
    assert pytest_v.argv[1:] == ["-m", "pytest", "-q"] and pytest_v.junit_option
    assert (pytest_v.verifier_type, pytest_v.required) == (VerifierType.TEST, True)
    assert (ruff_v.verifier_type, ruff_v.required) == (VerifierType.LINT, False)
    assert ruff_v.weight < pytest_v.weight
    assert mypy_v.argv == ["mypy", "."] and mypy_v.verifier_type is VerifierType.TYPECHECK
    assert found.skipped == []


def test_mypy_files_setting_is_respected(project: Path, fake_bin: Path) -> None:
    (project / "mypy.ini").write_text("[mypy]\nfiles = src\n")
    write_tool(fake_bin, "mypy")
    assert auto_detect_verifiers(project).verifiers[0].argv == ["mypy"]


def test_python_without_tools_reports_not_on_path(project: Path, fake_bin: Path) -> None:
    (project / "test_thing.py").write_text("def test_x(): pass\n")
    (project / "ruff.toml").write_text("")
    (project / "pyproject.toml").write_text("[tool.mypy]\n")
    found = auto_detect_verifiers(project)
    assert found.verifiers == []
    assert skipped(found) == {
        "pytest": "python not on PATH",
        "ruff": "ruff not on PATH",
        "mypy": "mypy not on PATH",
    }


def test_python_project_without_tests_says_so(project: Path, fake_bin: Path) -> None:
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert "no tests" in skipped(auto_detect_verifiers(project))["pytest"]


def test_detected_pytest_scores_by_junit(
    project: Path, ctx: VerificationContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    (project / "tests").mkdir()
    (project / "tests" / "test_a.py").write_text(
        "def test_1(): pass\ndef test_2(): pass\ndef test_3(): pass\ndef test_4(): assert 0\n"
    )
    [verifier] = auto_detect_verifiers(project).verifiers
    result = verifier.verify(project, ctx)
    assert (result.passed, result.score) == (False, 0.75)


def test_node_scripts_and_placeholder(
    project: Path, fake_bin: Path, ctx: VerificationContext
) -> None:
    scripts = {
        "test": 'echo "Error: no test specified" && exit 1',
        "lint": "eslint .",
        "typecheck": "tsc --noEmit",
        "build": "tsc",
        "start": "node index.js",
    }
    (project / "package.json").write_text(json.dumps({"scripts": scripts}))
    write_tool(fake_bin, "npm")
    found = auto_detect_verifiers(project)
    assert names(found) == ["npm-build", "npm-lint", "npm-typecheck"]
    assert [v.verifier_type for v in found.verifiers] == ["build", "lint", "typecheck"]
    assert "placeholder" in skipped(found)["npm-test"]
    result = found.verifiers[0].verify(project, ctx)
    assert result.passed and result.output.strip().endswith("npm run build")


def test_node_real_test_script(project: Path, fake_bin: Path) -> None:
    (project / "package.json").write_text(json.dumps({"scripts": {"test": "jest"}}))
    assert skipped(auto_detect_verifiers(project)) == {"npm-test": "npm not on PATH"}
    write_tool(fake_bin, "npm")
    found = auto_detect_verifiers(project)
    assert names(found) == ["npm-test"] and found.verifiers[0].argv == ["npm", "run", "test"]


def test_rust(project: Path, fake_bin: Path) -> None:
    (project / "Cargo.toml").write_text("[package]\nname = 'x'\n")
    assert skipped(auto_detect_verifiers(project)) == {
        "cargo-build": "cargo not on PATH",
        "cargo-test": "cargo not on PATH",
        "cargo-clippy": "cargo not on PATH",
    }
    write_tool(fake_bin, "cargo")
    found = auto_detect_verifiers(project)
    assert names(found) == ["cargo-build", "cargo-test"]
    assert skipped(found) == {"cargo-clippy": "cargo-clippy not on PATH"}
    write_tool(fake_bin, "cargo-clippy")
    found = auto_detect_verifiers(project)
    assert names(found) == ["cargo-build", "cargo-test", "cargo-clippy"]
    assert [v.required for v in found.verifiers] == [True, True, False]


def test_go(project: Path, fake_bin: Path) -> None:
    (project / "go.mod").write_text("module x\n")
    assert set(skipped(auto_detect_verifiers(project)).values()) == {"go not on PATH"}
    write_tool(fake_bin, "go")
    found = auto_detect_verifiers(project)
    assert [v.argv for v in found.verifiers] == [
        ["go", "build", "./..."],
        ["go", "vet", "./..."],
        ["go", "test", "./..."],
    ]


@pytest.mark.parametrize(
    "makefile, detected",
    [("test:\n\techo ok\n", True), ("all:\n\techo\ntest := 1\n", False), ("build:\n", False)],
)
def test_make_test_target(project: Path, fake_bin: Path, makefile: str, detected: bool) -> None:
    (project / "Makefile").write_text(makefile)
    write_tool(fake_bin, "make")
    assert names(auto_detect_verifiers(project)) == (["make-test"] if detected else [])


def test_make_not_on_path(project: Path, fake_bin: Path) -> None:
    (project / "Makefile").write_text("test:\n\ttrue\n")
    assert skipped(auto_detect_verifiers(project)) == {"make-test": "make not on PATH"}
