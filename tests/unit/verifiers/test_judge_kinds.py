"""The judge run as a tool kind: the recorded Claude Code judge session read into a
verdict and a cost; a command judge's JSON report line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from verifier_helpers import PY

from directorate.verifiers import LlmVerifier, VerificationContext
from directorate.verifiers.judge_prompt import parse_verdict
from directorate.verifiers.tools import DEFAULT_TABLE, Purpose, RunSettings, kind_named

RECORDED = Path(__file__).parents[2] / "agents" / "recorded" / "claude"


def test_the_recorded_claude_judge_session_gives_a_verdict_and_a_cost() -> None:
    stdout = (RECORDED / "judge.stdout").read_text()
    settings = RunSettings(purpose=Purpose.JUDGE, keep_session=False)
    report = kind_named("claude-code").read(stdout, "", 0, settings, DEFAULT_TABLE)
    verdict = parse_verdict(report.result or "")
    assert verdict is not None and (verdict["passed"], verdict["score"]) == (True, 0.9)
    assert report.cost_usd == pytest.approx(0.0064)
    assert (report.tokens, report.turns, report.failure) == (1280, 1, None)


@pytest.mark.parametrize("kind", ["claude-code", "command"])
def test_a_claude_shaped_judge_process_reports_its_cost(
    tmp_path: Path, ctx: VerificationContext, kind: str
) -> None:
    """A real process printing the recorded session: the claude-code kind reads it,
    and so does a generic command (the verdict from its report's ``result``)."""
    script = tmp_path / "claude"
    script.write_text(
        f"#!{PY}\nimport sys\nsys.stdin.read()\n"
        f"sys.stdout.write(open({str(RECORDED / 'judge.stdout')!r}).read())\n"
    )
    script.chmod(0o755)
    judge = LlmVerifier([str(script)], kind=kind, timeout_s=30)
    result = judge.verify(tmp_path, ctx)
    assert result.unavailable is None and (result.passed, result.score) == (True, 0.9)
    assert result.cost_usd == pytest.approx(0.0064) and result.tokens == 1280


def test_a_judge_reporting_an_error_is_unavailable_with_its_cost(
    tmp_path: Path, ctx: VerificationContext
) -> None:
    report = {"is_error": True, "result": "Not logged in", "total_cost_usd": 0.0}
    script = tmp_path / "j.py"
    script.write_text(f"import sys\nsys.stdin.read()\nprint({json.dumps(report)!r})\n")
    result = LlmVerifier([PY, str(script)], timeout_s=30).verify(tmp_path, ctx)
    assert result.unavailable is not None and "Not logged in" in result.unavailable
    assert result.cost_usd == 0.0
