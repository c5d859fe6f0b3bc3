"""Helpers for the HTTP tests: agents whose timing the test steers, and waiting."""

from __future__ import annotations

import sys
import threading
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from callable_agent import CallableAgent, step_name
from engine_helpers import GreenVerifier, wait_for

from directorate.actors import DirectiveSpec, Engine, StepSpec, Task
from directorate.actors.web import WebSettings
from directorate.actors.web.auth import Keys

__all__ = [
    "TOKEN",
    "CallableAgent",
    "Gate",
    "GreenVerifier",
    "diamond",
    "settings_for",
    "step_name",
    "wait_for",
]


TOKEN = "test-token-0123456789"


def settings_for(engine: Engine) -> WebSettings:
    return WebSettings(
        db=engine.db,
        submit=engine.submit,
        keys=Keys(TOKEN),
        answer_within_s=15.0,
        writer_stats=engine.db.writer.stats,
    )


class Gate:
    """Step agents that wait until the test opens their step's gate (or are cancelled)."""

    def __init__(self, cost_usd: float = 0.0) -> None:
        self.cost_usd = cost_usd
        self._gates: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def gate(self, name: str) -> threading.Event:
        with self._lock:
            return self._gates.setdefault(name, threading.Event())

    def open(self, name: str) -> None:
        self.gate(name).set()

    def __call__(self, task: Task, cancel: threading.Event) -> Any:
        gate = self.gate(step_name(task))
        while not gate.wait(0.05):
            if cancel.is_set():
                return {"cost_usd": 0.0}
        return {"cost_usd": self.cost_usd}


def diamond(title: str = "Diamond", **fields: Any) -> DirectiveSpec:
    return DirectiveSpec(
        title=title,
        goal="Four steps: a, then b and c, then d",
        autonomy_level=fields.pop("autonomy_level", "full_auto"),
        steps=[
            StepSpec(name="a"),
            StepSpec(name="b", depends_on=["a"]),
            StepSpec(name="c", depends_on=["a"]),
            StepSpec(name="d", depends_on=["b", "c"]),
        ],
        **fields,
    )


def statuses(engine: Any, directive_id: uuid.UUID) -> dict[str, str]:
    return {s.name: str(s.status) for s in engine.snapshot(directive_id).steps}
