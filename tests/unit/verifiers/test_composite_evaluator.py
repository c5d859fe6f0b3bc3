"""CompositeEvaluator: tiers, weighted mean, thresholds, rework instructions."""

from __future__ import annotations

import copy
import json
import threading
import time
from pathlib import Path

import pytest
from verifier_helpers import PY, Stub

from directorate.verifiers import (
    CommandVerifier,
    CompositeEvaluator,
    ConfidenceLevel,
    LlmVerifier,
    VerificationContext,
    VerifierResult,
    VerifierType,
    result_to_json,
)
from directorate.verifiers.composite import capped_level

LLM = VerifierType.LLM


class RecordingJudge:
    """A callable judge that answers ``verdict`` and remembers the prompts."""

    def __init__(self, verdict: dict[str, object] | None = None) -> None:
        self.verdict = verdict or {"passed": True, "score": 1.0, "feedback": "fine"}
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return json.dumps(self.verdict)


def test_required_failure_is_red_and_skips_the_judge(
    tmp_path: Path, ctx: VerificationContext
) -> None:
    judge = RecordingJudge()
    verifiers = [
        Stub("tests", passed=False, score=0.0, required=True, output="FAILED test_x"),
        Stub("lint", score=1.0, weight=9),
        LlmVerifier(judge),
    ]
    result = CompositeEvaluator(verifiers).evaluate(tmp_path, ctx)
    assert judge.prompts == []
    assert (result.passed, result.confidence_level) == (False, ConfidenceLevel.RED)
    assert "required check failed: tests" in result.summary
    assert "LLM review skipped" in result.summary
    assert [r.name for r in result.verifier_results] == ["tests", "lint"]
    assert result.rework_instructions is not None
    assert "FAILED test_x" in result.rework_instructions


def test_judge_sees_programmatic_results(tmp_path: Path, ctx: VerificationContext) -> None:
    judge = RecordingJudge(
        {
            "passed": True,
            "score": 1.0,
            "feedback": "ok",
            "criteria": [{"id": "AC1", "met": True, "note": "yes"}],
        }
    )
    result = CompositeEvaluator([Stub("unit", output="12 passed"), LlmVerifier(judge)]).evaluate(
        tmp_path, ctx
    )
    assert "12 passed" in judge.prompts[0]
    assert result.criteria_results == [{"id": "AC1", "met": True, "note": "yes"}]
    assert result.confidence_level is ConfidenceLevel.GREEN and result.rework_instructions is None


def test_weighted_mean(tmp_path: Path, ctx: VerificationContext) -> None:
    verifiers = [
        Stub("a", score=1.0, weight=3.0),
        Stub("b", passed=False, score=0.0, weight=1.0),
        Stub("c", score=None, weight=2.0),  # pass/fail only: counts 1.0
        Stub("d", passed=False, score=None, weight=2.0),  # counts 0.0
    ]
    result = CompositeEvaluator(verifiers).evaluate(tmp_path, ctx)
    assert result.composite_score == pytest.approx(5 / 8)
    assert result.confidence_level is ConfidenceLevel.YELLOW and result.passed


@pytest.mark.parametrize(
    "score, level",
    [
        (1.0, "green"),
        (0.8, "green"),
        (0.79, "yellow"),
        (0.5, "yellow"),
        (0.49, "red"),
        (0.0, "red"),
    ],
)
def test_thresholds(tmp_path: Path, ctx: VerificationContext, score: float, level: str) -> None:
    result = CompositeEvaluator([Stub("s", score=score)], green=0.8, yellow=0.5).evaluate(
        tmp_path, ctx
    )
    assert result.confidence_level == level
    assert result.passed is (level != "red")
    assert (result.rework_instructions is None) is (level == "green")


RED, YELLOW, GREEN = ConfidenceLevel.RED, ConfidenceLevel.YELLOW, ConfidenceLevel.GREEN
#: the default thresholds, (green, yellow)
STD = (0.8, 0.5)


def check(
    score: float, weight: float = 1.0, *, passed: bool = True, required: bool = False
) -> Stub:
    return Stub("check", score=score, weight=weight, passed=passed, required=required)


# One case a line or two, aligned by hand: the formatter would spread each over ten.
# fmt: off
COMPOSITE_CASES = [
    # (id, checks, the judge's score or None for no judge, (green, yellow),
    #  expected level, expected score, whether the judge runs)
    # A failing required check is red at once, however well the rest did; no judge.
    ("required-failure-short-circuits",
     [check(0.0, passed=False, required=True), check(1.0, 99)], 1.0, STD, RED, 0.99, False),
    ("required-partial-failure-is-red",
     [check(0.9, passed=False, required=True)], 1.0, (0.0, 0.0), RED, 0.9, False),
    # A failing check that is not required only weighs in, and the judge runs.
    ("optional-failure-weighs-in",
     [check(1.0), check(0.0, 0.5, passed=False)], 1.0, STD, GREEN, 0.8, True),
    # Weights: (3 * 1 + 1 * 0) / 4; with the judge's 0.2 at weight 1, 3.2 / 5.
    ("weighted-mean", [check(1.0, 3), check(0.0, passed=False)], None, STD, YELLOW, 0.75, False),
    ("weighted-mean-with-judge",
     [check(1.0, 3), check(0.0, passed=False)], 0.2, STD, YELLOW, 0.64, True),
    ("all-weights-zero-count-alike", [check(1.0, 0), check(0.0, 0)], None, STD, YELLOW, 0.5, False),
    # Thresholds at their edges: at a threshold is that level, just below it the next.
    ("at-green", [check(0.8)], None, STD, GREEN, 0.8, False),
    ("just-below-green", [check(0.7999)], None, STD, YELLOW, 0.7999, False),
    ("at-yellow", [check(0.5)], None, STD, YELLOW, 0.5, False),
    ("just-below-yellow", [check(0.4999)], None, STD, RED, 0.4999, False),
    ("at-green-of-one", [check(1.0)], None, (1.0, 1.0), GREEN, 1.0, False),
    ("at-green-of-zero", [check(0.0, passed=False)], None, (0.0, 0.0), GREEN, 0.0, False),
    # (1 + 1 + 0.4) / 3 is 0.7999999999999999 in floats: still exactly green.
    ("at-green-through-a-mean", [check(1.0), check(1.0), check(0.4)], None, STD, GREEN, 0.8, False),
    ("at-green-with-the-judge", [check(0.6)], 1.0, STD, GREEN, 0.8, True),
    # No evidence at all is yellow with score 0; a judge alone is evidence.
    ("no-verifiers", [], None, STD, YELLOW, 0.0, False),
    ("only-a-judge", [], 0.2, STD, RED, 0.2, True),
]
# fmt: on


@pytest.mark.parametrize(
    "checks, judge_score, thresholds, level, score, judge_runs",
    [pytest.param(*case[1:], id=case[0]) for case in COMPOSITE_CASES],
)
def test_composite_table(
    tmp_path: Path,
    ctx: VerificationContext,
    checks: list[Stub],
    judge_score: float | None,
    thresholds: tuple[float, float],
    level: ConfidenceLevel,
    score: float,
    judge_runs: bool,
) -> None:
    checks = [copy.copy(c) for c in checks]  # fresh call counts, should the case run again
    judges = []
    if judge_score is not None:
        judges.append(
            Stub("judge", score=judge_score, passed=judge_score >= 0.5, verifier_type=LLM)
        )
    green, yellow = thresholds
    result = CompositeEvaluator([*checks, *judges], green=green, yellow=yellow).evaluate(
        tmp_path, ctx
    )
    assert (result.confidence_level, result.composite_score) == (level, pytest.approx(score))
    assert result.passed is (level is not RED)
    assert [c.calls for c in checks] == [1] * len(checks)
    assert [j.calls for j in judges] == [1 if judge_runs else 0] * len(judges)
    assert (result.rework_instructions is None) is (level is GREEN)
    if not checks and not judges:
        assert "no evidence" in result.summary


def test_custom_thresholds(tmp_path: Path, ctx: VerificationContext) -> None:
    stub = Stub("s", score=0.6)
    assert (
        CompositeEvaluator([stub], green=0.6, yellow=0.3).evaluate(tmp_path, ctx).confidence_level
        == "green"
    )
    assert (
        CompositeEvaluator([stub], green=0.9, yellow=0.7).evaluate(tmp_path, ctx).confidence_level
        == "red"
    )
    with pytest.raises(ValueError):
        CompositeEvaluator([], green=0.4, yellow=0.6)


def test_no_verifiers_is_yellow_no_evidence(tmp_path: Path, ctx: VerificationContext) -> None:
    result = CompositeEvaluator([]).evaluate(tmp_path, ctx)
    assert (result.confidence_level, result.composite_score, result.passed) == ("yellow", 0.0, True)
    assert "no evidence" in result.summary
    assert result.rework_instructions is not None


def test_only_an_unavailable_judge_is_no_evidence(tmp_path: Path, ctx: VerificationContext) -> None:
    result = CompositeEvaluator([LlmVerifier(lambda p: "garbage")]).evaluate(tmp_path, ctx)
    assert result.confidence_level is ConfidenceLevel.YELLOW and "no evidence" in result.summary


class SilentJudge:
    """A judge that gives no verdict, for ``reason`` (what LlmVerifier reports then)."""

    verifier_type = LLM

    def __init__(self, reason: str, *, name: str = "judge", required: bool = False) -> None:
        self.name, self.reason, self.required, self.weight = name, reason, required, 1.0

    def verify(self, repo_path: Path, ctx: VerificationContext) -> VerifierResult:
        return VerifierResult(
            name=self.name,
            verifier_type=LLM,
            passed=False,
            score=None,
            output="",
            duration_s=0.0,
            details={"unavailable": self.reason},
        )


def _verdict(score: float) -> LlmVerifier:
    return LlmVerifier(
        lambda p: json.dumps({"passed": score >= 0.5, "score": score}), name="second-judge"
    )


@pytest.mark.parametrize(
    "verifiers, level, score, says",
    [
        pytest.param(
            [Stub("unit", score=1.0), LlmVerifier(lambda p: "no json here", name="judge")],
            "yellow",
            1.0,
            "judge judge unavailable: no JSON verdict",
            id="no-verdict-caps-green",
        ),
        pytest.param(
            [Stub("unit", score=1.0), SilentJudge("the judge timed out after 300 s")],
            "yellow",
            1.0,
            "judge judge unavailable: the judge timed out after 300 s",
            id="timeout-caps-green",
        ),
        pytest.param(
            [Stub("unit", score=1.0), SilentJudge("the judge could not reach its model: 401")],
            "yellow",
            1.0,
            "could not reach its model: 401",
            id="unreachable-model-caps-green",
        ),
        pytest.param(
            [Stub("unit", score=1.0), SilentJudge("timed out", required=True)],
            "yellow",
            1.0,
            "capped at yellow",
            id="required-judge-unavailable-is-yellow-not-red",
        ),
        pytest.param(
            [Stub("unit", score=1.0), SilentJudge("no verdict"), _verdict(1.0)],
            "yellow",
            1.0,
            "capped at yellow",
            id="one-of-two-judges-silent",
        ),
        pytest.param(
            [Stub("unit", score=0.6), SilentJudge("no verdict")],
            "yellow",
            0.6,
            "judge judge unavailable: no verdict",
            id="yellow-stays-yellow",
        ),
        pytest.param(
            [Stub("unit", passed=False, score=0.2), SilentJudge("no verdict")],
            "red",
            0.2,
            "judge judge unavailable: no verdict",
            id="red-stays-red",
        ),
        pytest.param(
            [SilentJudge("no verdict")],
            "yellow",
            0.0,
            "no evidence",
            id="only-judge-silent-is-no-evidence",
        ),
        pytest.param(
            [Stub("unit", score=1.0), _verdict(0.9)],
            "green",
            0.95,
            "2 of 2 verifiers passed",
            id="judge-answers-green",
        ),
    ],
)
def test_a_judge_without_a_verdict_caps_at_yellow(
    tmp_path: Path,
    ctx: VerificationContext,
    verifiers: list[object],
    level: str,
    score: float,
    says: str,
) -> None:
    """A configured judge that gave no verdict never leaves the step green: it is
    left out of the score, and the level is capped at yellow with its reason."""
    result = CompositeEvaluator(verifiers).evaluate(tmp_path, ctx)  # type: ignore[arg-type]
    assert (result.confidence_level, result.composite_score) == (level, pytest.approx(score))
    assert says in result.summary
    if level != "green":
        assert result.rework_instructions is not None
    silent = [r for r in result.verifier_results if r.unavailable]
    for r in silent:
        assert r.score is None
        assert f"Reviewer ({r.name}) gave no verdict" in (result.rework_instructions or "")


@pytest.mark.parametrize(
    "level, unreviewed, capped",
    [
        (ConfidenceLevel.GREEN, True, ConfidenceLevel.YELLOW),
        (ConfidenceLevel.GREEN, False, ConfidenceLevel.GREEN),
        (ConfidenceLevel.YELLOW, True, ConfidenceLevel.YELLOW),
        (ConfidenceLevel.YELLOW, False, ConfidenceLevel.YELLOW),
        (ConfidenceLevel.RED, True, ConfidenceLevel.RED),
        (ConfidenceLevel.RED, False, ConfidenceLevel.RED),
    ],
)
def test_capped_level(level: ConfidenceLevel, unreviewed: bool, capped: ConfidenceLevel) -> None:
    assert capped_level(level, unreviewed=unreviewed) is capped


def test_low_judge_score_pulls_the_mean_and_its_feedback_is_quoted(
    tmp_path: Path, ctx: VerificationContext
) -> None:
    judge = RecordingJudge(
        {
            "passed": False,
            "score": 0.2,
            "feedback": "handles no negative numbers",
            "criteria": [
                {"id": "AC2", "met": False, "note": "negative input wrong"},
                {"id": "AC1", "met": True, "note": "ok"},
            ],
        }
    )
    result = CompositeEvaluator([Stub("unit", score=1.0), LlmVerifier(judge)]).evaluate(
        tmp_path, ctx
    )
    assert result.composite_score == pytest.approx(0.6)
    assert result.confidence_level is ConfidenceLevel.YELLOW
    text = result.rework_instructions or ""
    assert "handles no negative numbers" in text and "AC2: negative input wrong" in text
    assert "AC1" not in text


def test_required_judge_failure_is_red(tmp_path: Path, ctx: VerificationContext) -> None:
    judge = LlmVerifier(RecordingJudge({"passed": False, "score": 0.9}), required=True)
    result = CompositeEvaluator([Stub("unit"), judge]).evaluate(tmp_path, ctx)
    assert result.confidence_level is ConfidenceLevel.RED and not result.passed


class Raising:
    name = "broken"
    verifier_type = VerifierType.BUILD
    weight = 1.0
    required = True

    def verify(self, repo_path: Path, ctx: VerificationContext) -> VerifierResult:
        raise OSError("disk on fire")


def test_raising_verifier_is_a_failed_result(tmp_path: Path, ctx: VerificationContext) -> None:
    result = CompositeEvaluator([Raising(), Stub("ok")]).evaluate(tmp_path, ctx)
    [broken, ok] = result.verifier_results
    assert (broken.name, broken.passed, broken.verifier_type) == ("broken", False, "build")
    assert "OSError: disk on fire" in broken.output
    assert ok.passed and result.confidence_level is ConfidenceLevel.RED


def test_rework_quotes_tails_and_is_bounded(tmp_path: Path, ctx: VerificationContext) -> None:
    code = (
        "print('HEAD-OF-OUTPUT'); print('x' * 20000); print('TAIL-OF-OUTPUT'); raise SystemExit(1)"
    )
    verifiers = [CommandVerifier(f"check-{i}", [PY, "-c", code], required=False) for i in range(8)]
    result = CompositeEvaluator(verifiers).evaluate(tmp_path, ctx)
    text = result.rework_instructions or ""
    assert "## Failing check: check-0 (custom)" in text
    assert "TAIL-OF-OUTPUT" in text and "HEAD-OF-OUTPUT" not in text
    assert len(text) <= 8_000
    assert text.endswith("[... cut ...]")
    assert all(len(r.output) <= 64 * 1024 + 100 for r in result.verifier_results)


def test_parallel_with_a_bound(tmp_path: Path, ctx: VerificationContext) -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    class Counting(Stub):
        def verify(self, repo_path: Path, ctx: VerificationContext) -> VerifierResult:
            nonlocal active, peak
            with lock:
                active += 1
                peak = max(peak, active)
            try:
                return super().verify(repo_path, ctx)
            finally:
                with lock:
                    active -= 1

    verifiers = [Counting(f"v{i}", delay_s=0.2) for i in range(6)]
    started = time.monotonic()
    result = CompositeEvaluator(verifiers, max_parallel=3).evaluate(tmp_path, ctx)
    assert peak == 3
    assert time.monotonic() - started < 1.0
    assert [r.name for r in result.verifier_results] == [f"v{i}" for i in range(6)]


def test_result_to_json_is_json_safe(tmp_path: Path, ctx: VerificationContext) -> None:
    result = CompositeEvaluator([Stub("unit", score=0.4), Stub("j", verifier_type=LLM)]).evaluate(
        tmp_path, ctx
    )
    data = json.loads(json.dumps(result_to_json(result)))
    assert data["id"] == str(result.id)
    assert data["confidence_level"] == "yellow"
    assert data["verifier_results"][1] == {
        "name": "j",
        "verifier_type": "llm",
        "passed": True,
        "score": 1.0,
        "output": "j output",
        "duration_s": 0.0,
        "details": {},
    }
    assert set(data) == {
        "id",
        "passed",
        "composite_score",
        "confidence_level",
        "summary",
        "rework_instructions",
        "criteria_results",
        "verifier_results",
    }


def test_verifier_result_validates_score() -> None:
    with pytest.raises(ValueError):
        VerifierResult(
            name="x", verifier_type="test", passed=True, score=1.5, output="", duration_s=0
        )
