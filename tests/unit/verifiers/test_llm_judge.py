"""LlmVerifier: judges as commands and callables, verdict parsing, unavailability."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from verifier_helpers import PY, Stub, git, process_gone

from directorate.verifiers import (
    AcceptanceCriterion,
    CompositeEvaluator,
    ConfidenceLevel,
    LlmVerifier,
    VerificationContext,
    VerifierResult,
    VerifierType,
)
from directorate.verifiers.judge_prompt import parse_verdict

VERDICT = {
    "passed": True,
    "score": 0.9,
    "feedback": "looks right",
    "criteria": [{"id": "AC1", "met": True, "note": "tests pass"}],
}


def judge_script(
    tmp_path: Path, answer: str, *, exit_code: int = 0, sleep_s: float = 0
) -> list[str]:
    """A judge command that saves its pid to judge.pid and its prompt to prompt.txt,
    waits ``sleep_s`` and prints ``answer``."""
    script = tmp_path / "judge.py"
    script.write_text(
        "import os, sys, time\n"
        f"open({str(tmp_path / 'judge.pid')!r}, 'w').write(str(os.getpid()))\n"
        f"open({str(tmp_path / 'prompt.txt')!r}, 'w').write(sys.stdin.read())\n"
        f"time.sleep({sleep_s})\n"
        f"sys.stdout.write({answer!r})\n"
        f"sys.exit({exit_code})\n"
    )
    return [PY, str(script)]


@pytest.fixture
def rich_ctx(repo: Path) -> VerificationContext:
    base = git(repo, "rev-parse", "HEAD")
    (repo / "a.txt").write_text("the new content\n")
    return VerificationContext(
        step_id=uuid.uuid4(),
        modified_files=["a.txt"],
        step_description="Change a.txt",
        acceptance_criteria=[AcceptanceCriterion(id="AC1", criterion="a.txt is new")],
        directive_goal="Improve the files",
        base_commit=base,
        prior_results=[
            VerifierResult(
                name="unit",
                verifier_type=VerifierType.TEST,
                passed=False,
                score=0.25,
                output="early\n" + "x" * 5000 + "\nTAIL-OF-UNIT",
                duration_s=1.0,
            )
        ],
    )


def test_command_judge_with_fenced_json(
    repo: Path, rich_ctx: VerificationContext, tmp_path: Path
) -> None:
    answer = f"Thinking...\n```json\n{json.dumps(VERDICT, indent=2)}\n```\nDone.\n"
    result = LlmVerifier(judge_script(tmp_path, answer)).verify(repo, rich_ctx)
    assert result.verifier_type is VerifierType.LLM
    assert (result.passed, result.score, result.output) == (True, 0.9, "looks right")
    assert result.details["criteria"] == VERDICT["criteria"]
    prompt = (tmp_path / "prompt.txt").read_text()
    for expected in (
        "Improve the files",
        "Change a.txt",
        "AC1: a.txt is new",
        "- a.txt",
        "+the new content",
        "unit (test): FAILED, score 0.25",
        "TAIL-OF-UNIT",
    ):
        assert expected in prompt
    assert "early" not in prompt  # only the tail of each check's output


@pytest.mark.parametrize(
    "answer, exit_code, reason",
    [
        ("I think it is fine.", 0, "no JSON verdict"),
        ('{"passed": "yes", "score": 0.5}', 0, "no JSON verdict"),
        ('{"feedback": "no verdict keys"}', 0, "no JSON verdict"),
        (json.dumps(VERDICT), 3, "exited with status 3"),
    ],
)
def test_unusable_answers_make_the_judge_unavailable(
    tmp_path: Path, ctx: VerificationContext, answer: str, exit_code: int, reason: str
) -> None:
    result = LlmVerifier(judge_script(tmp_path, answer, exit_code=exit_code)).verify(tmp_path, ctx)
    assert result.score is None and not result.passed
    assert reason in result.details["unavailable"]
    assert result.unavailable


def test_timeout_makes_the_judge_unavailable(tmp_path: Path, ctx: VerificationContext) -> None:
    argv = judge_script(tmp_path, json.dumps(VERDICT), sleep_s=30)
    started = time.monotonic()
    result = LlmVerifier(argv, timeout_s=0.5).verify(tmp_path, ctx)
    assert time.monotonic() - started < 2.5
    assert result.score is None and "timed out" in result.details["unavailable"]


FENCED = f"Let me look.\n```json\n{json.dumps(VERDICT, indent=2)}\n```\n"


@pytest.mark.parametrize(
    "answer, sleep_s, score, unavailable",
    [
        pytest.param(json.dumps(VERDICT), 0, 0.9, None, id="valid-json"),
        pytest.param(FENCED, 0, 0.9, None, id="json-in-a-fenced-block"),
        pytest.param("<html>502 Bad Gateway {oops", 0, None, "no JSON verdict", id="garbage"),
        pytest.param("", 0, None, "no JSON verdict", id="empty-answer"),
        pytest.param(
            json.dumps(VERDICT), 30, None, "timed out after 1 s", id="silent-until-timeout"
        ),
    ],
)
def test_scripted_judge_in_a_composite_evaluation(
    tmp_path: Path,
    ctx: VerificationContext,
    answer: str,
    sleep_s: float,
    score: float | None,
    unavailable: str | None,
) -> None:
    """A real judge process: its verdict counts, or it is left out with a warning."""
    judge = LlmVerifier(judge_script(tmp_path, answer, sleep_s=sleep_s), timeout_s=1.0)
    started = time.monotonic()
    result = CompositeEvaluator([Stub("unit", score=0.5), judge]).evaluate(tmp_path, ctx)
    assert time.monotonic() - started < 1.0 + 1.5
    verdict = result.verifier_results[1]
    assert verdict.score == score
    if unavailable is None:
        assert verdict.unavailable is None and verdict.output == "looks right"
        assert result.composite_score == pytest.approx((0.5 + 0.9) / 2)
        assert result.criteria_results == VERDICT["criteria"]
    else:
        assert unavailable in (verdict.unavailable or "")
        assert result.composite_score == 0.5  # the checks' score alone
        assert "judge llm-judge unavailable" in result.summary
    assert result.confidence_level is ConfidenceLevel.YELLOW
    assert process_gone(int((tmp_path / "judge.pid").read_text()))


def test_missing_judge_command_is_unavailable(tmp_path: Path, ctx: VerificationContext) -> None:
    result = LlmVerifier("no-such-judge-xyz -p").verify(tmp_path, ctx)
    assert "no-such-judge-xyz" in result.details["unavailable"]


def test_callable_judge(tmp_path: Path, ctx: VerificationContext) -> None:
    prompts: list[str] = []

    def judge(prompt: str) -> str:
        prompts.append(prompt)
        return json.dumps({"passed": False, "score": 0.3, "feedback": "missing edge case"})

    result = LlmVerifier(judge, name="mine").verify(tmp_path, ctx)
    assert (result.name, result.passed, result.score) == ("mine", False, 0.3)
    assert result.details == {"feedback": "missing edge case", "criteria": []}
    assert "the goal" in prompts[0] and "(no diff available)" in prompts[0]


def test_raising_callable_judge_is_unavailable(tmp_path: Path, ctx: VerificationContext) -> None:
    def judge(prompt: str) -> str:
        raise RuntimeError("rate limited")

    result = LlmVerifier(judge).verify(tmp_path, ctx)
    assert result.details["unavailable"] == "the judge raised RuntimeError: rate limited"


def test_parse_picks_the_last_valid_object() -> None:
    first = {"passed": False, "score": 0.1}
    text = f"draft: {json.dumps(first)}\nfinal: {json.dumps(VERDICT)}\ntrailing {{not json"
    assert parse_verdict(text) == VERDICT
    assert parse_verdict(f'{json.dumps(VERDICT)} then {{"passed": 1}}') == VERDICT


def test_parse_normalizes() -> None:
    verdict = parse_verdict(
        '{"passed": true, "score": 7, "criteria": [{"id": "A", "met": false}, "junk", {"met": 1}]}'
    )
    assert verdict == {
        "passed": True,
        "score": 1.0,
        "feedback": "",
        "criteria": [{"id": "A", "met": False, "note": ""}],
    }
    assert parse_verdict('{"passed": true, "score": true}') is None
    assert parse_verdict("{" * 10_000) is None
