"""An in-process agent and verifier for tests about the engine's own decisions
(races, recovery, escalation), where the timing must be steered precisely."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from directorate.actors import CallableRunner, Task
from directorate.verifiers import VerificationContext, VerifierResult, VerifierType

StepFn = Callable[[Task, threading.Event], Any]


def step_name(task: Task) -> str:
    first = task.instructions.splitlines()[0] if task.instructions else ""
    return first.removeprefix("## Step: ").strip()


class CallableAgent:
    """Plans ``plan`` (written to the plan file) and runs ``steps[name]`` (or
    ``steps["*"]``) for each step; records every run."""

    def __init__(
        self,
        plan: dict[str, Any] | None = None,
        steps: dict[str, StepFn] | None = None,
        planning: StepFn | None = None,
    ) -> None:
        self.plan = plan
        self.steps = steps or {}
        self.planning = planning
        self.runs: list[tuple[str, str, int, str]] = []
        self._lock = threading.Lock()

    def __call__(self, task: Task, cancel: threading.Event) -> Any:
        planning = str(task.kind) == "planning"
        with self._lock:
            name = "plan" if planning else step_name(task)
            self.runs.append((str(task.kind), name, task.attempt, task.instructions))
        if planning:
            if self.planning is not None:
                answer = self.planning(task, cancel)
                if answer is not None:
                    return answer
            if self.plan is not None and task.plan_file:
                Path(task.plan_file).parent.mkdir(parents=True, exist_ok=True)
                Path(task.plan_file).write_text(json.dumps(self.plan))
            return {"cost_usd": 0.0}
        fn = self.steps.get(step_name(task)) or self.steps.get("*")
        return fn(task, cancel) if fn else {"cost_usd": 0.0}

    def runner(self) -> CallableRunner:
        return CallableRunner(self)

    def step_runs(self, name: str) -> list[tuple[str, str, int, str]]:
        return [r for r in self.runs if r[0] == "step" and r[1] == name]


def until_cancelled(seconds: float = 30.0) -> StepFn:
    """A step that works until it is cancelled (or ``seconds`` pass)."""

    def work(task: Task, cancel: threading.Event) -> Any:
        cancel.wait(seconds)
        return {"cost_usd": 0.0}

    return work


class SteeredVerifier:
    """Scores steps ``step_score`` and the directive review ``review_score`` (after
    ``review_sleep`` seconds; or, given ``review_gate``, once the test opens it, with
    ``review_started`` set as a review begins), to steer the engine down a chosen path."""

    name = "steered"
    verifier_type = VerifierType.CUSTOM
    weight = 1.0
    required = False

    def __init__(
        self,
        step_score: float = 1.0,
        review_score: float = 1.0,
        review_sleep: float = 0.0,
        *,
        review_gate: threading.Event | None = None,
        review_started: threading.Event | None = None,
    ) -> None:
        self.step_score = step_score
        self.review_score = review_score
        self.review_sleep = review_sleep
        self.review_gate = review_gate
        self.review_started = review_started

    def verify(self, repo_path: Path, ctx: VerificationContext) -> VerifierResult:
        if ctx.step_id is None:
            if self.review_started is not None:
                self.review_started.set()
            if self.review_gate is not None:
                self.review_gate.wait(30)
            else:
                time.sleep(self.review_sleep)
        score = self.review_score if ctx.step_id is None else self.step_score
        return VerifierResult(
            name=self.name,
            verifier_type=self.verifier_type,
            passed=score >= 0.5,
            score=score,
            output=f"score {score}",
            duration_s=0.0,
        )
