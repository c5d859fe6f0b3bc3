"""Auto-detected checks really run: pytest, ruff, make and npm in small temporary projects.

Each test builds a project, lets :func:`auto_detect_verifiers` find its checks with
the real tools, and grades them with :class:`CompositeEvaluator`. The venv's bin
folder goes first on PATH, as CI runs ``.venv/bin/pytest`` without activating the
venv; a tool that is still missing skips its test with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from verifier_helpers import VENV_BIN, Stub, git

from directorate.verifiers import (
    CompositeEvaluator,
    ConfidenceLevel,
    EvaluationResult,
    VerificationContext,
    VerifierType,
    auto_detect_verifiers,
    git_changed_files,
)

GREEN, YELLOW, RED = ConfidenceLevel.GREEN, ConfidenceLevel.YELLOW, ConfidenceLevel.RED


@pytest.fixture(autouse=True)
def real_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The venv's tools first, then the system's; no outside settings for the tools."""
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    for name in ("PYTEST_ADDOPTS", "PYTHONDONTWRITEBYTECODE", "MAKEFLAGS", "MAKELEVEL", "MFLAGS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not on PATH (nor in the test's venv)")


def detect_and_evaluate(
    project: Path, ctx: VerificationContext, expected: list[str]
) -> tuple[EvaluationResult, Stub]:
    """Detect the project's checks (asserting their names), then evaluate them together
    with a judge stub that counts whether it was asked."""
    found = auto_detect_verifiers(project)
    assert [v.name for v in found.verifiers] == expected, found.skipped
    judge = Stub("judge", verifier_type=VerifierType.LLM)
    return CompositeEvaluator([*found.verifiers, judge]).evaluate(project, ctx), judge


PASS, FAIL = "def test_{}(): assert True\n", "def test_{}(): assert False, 'BROKEN-{}'\n"


@pytest.mark.parametrize(
    "failing, passed, score, level",
    [
        pytest.param(0, True, 1.0, GREEN, id="passes"),
        pytest.param(4, False, 0.0, RED, id="fails"),
        pytest.param(1, False, 0.75, RED, id="partly-passes"),
    ],
)
def test_real_pytest_suite(
    project: Path,
    ctx: VerificationContext,
    failing: int,
    passed: bool,
    score: float,
    level: ConfidenceLevel,
) -> None:
    require_tools("python", "pytest")
    (project / "tests").mkdir()
    cases = [(FAIL if i < failing else PASS).format(i, i) for i in range(4)]
    (project / "tests" / "test_suite.py").write_text("".join(cases))
    git(project, "init", "-q")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "suite")

    result, judge = detect_and_evaluate(project, ctx, ["pytest"])

    [tests] = result.verifier_results[:1]
    assert (tests.passed, tests.score) == (passed, score)
    assert tests.details["junit"] == {"passed": 4 - failing, "failed": failing, "skipped": 0}
    assert (result.confidence_level, result.composite_score) == (level, score)
    # a failing required test suite is red at once: the judge is never asked
    assert judge.calls == (1 if passed else 0)
    if failing:
        assert "required check failed: pytest" in result.summary
        assert "BROKEN-0" in (result.rework_instructions or "")
    # the run leaves no byte-code or report behind as if the agent had written it
    assert git_changed_files(project, None) == []


@pytest.mark.parametrize(
    "source, passed",
    [pytest.param("x = 1\n", True, id="clean"), pytest.param("import os\n", False, id="dirty")],
)
def test_real_ruff(project: Path, ctx: VerificationContext, source: str, passed: bool) -> None:
    require_tools("ruff")
    (project / "pyproject.toml").write_text("[tool.ruff]\nline-length = 100\n")
    (project / "module.py").write_text(source)

    found = auto_detect_verifiers(project)
    assert dict(found.skipped) == {"pytest": "no tests (no tests/ folder or test_*.py files)"}
    result, judge = detect_and_evaluate(project, ctx, ["ruff"])

    [ruff, _judge] = result.verifier_results
    assert ruff.verifier_type is VerifierType.LINT and ruff.passed is passed
    if passed:
        assert (result.confidence_level, result.composite_score) == (GREEN, 1.0)
    else:
        # lint is not required: the judge still runs, and its 1.0 weighs twice the lint's 0
        assert judge.calls == 1
        assert result.composite_score == pytest.approx(2 / 3)
        assert result.confidence_level is YELLOW
        assert "F401" in ruff.output and "F401" in (result.rework_instructions or "")


@pytest.mark.parametrize("recipe, passed", [("true", True), ("exit 3", False)])
def test_real_makefile_test_target(
    project: Path, ctx: VerificationContext, recipe: str, passed: bool
) -> None:
    require_tools("make")
    (project / "Makefile").write_text(
        f"build:\n\t@echo building\n\ntest:\n\t@echo make-ran; {recipe}\n"
    )

    result, judge = detect_and_evaluate(project, ctx, ["make-test"])

    make = result.verifier_results[0]
    assert "make-ran" in make.output and "building" not in make.output
    assert (make.passed, make.details["exit_code"]) == ((True, 0) if passed else (False, 2))
    assert result.confidence_level is (GREEN if passed else RED)
    assert judge.calls == (1 if passed else 0)


@pytest.mark.parametrize("exit_code", [0, 1])
def test_real_npm_test_script(
    project: Path,
    tmp_path: Path,
    ctx: VerificationContext,
    monkeypatch: pytest.MonkeyPatch,
    exit_code: int,
) -> None:
    require_tools("node", "npm")
    # npm is kept offline and out of the home folder
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    monkeypatch.setenv("npm_config_update_notifier", "false")
    monkeypatch.setenv("npm_config_offline", "true")
    script = f"node -e \"console.log('node-ran'); process.exit({exit_code})\""
    package = {"name": "tmp-project", "version": "1.0.0", "scripts": {"test": script}}
    (project / "package.json").write_text(json.dumps(package))

    result, judge = detect_and_evaluate(project, ctx, ["npm-test"])

    npm = result.verifier_results[0]
    assert "node-ran" in npm.output
    assert npm.passed is (exit_code == 0)
    assert npm.details["exit_code"] == exit_code
    assert result.confidence_level is (GREEN if exit_code == 0 else RED)
    assert judge.calls == (1 if exit_code == 0 else 0)
