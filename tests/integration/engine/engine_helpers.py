"""Helpers for engine tests: scripted agents as real subprocesses, verifier stand-ins.

A plain module (not conftest) so that test modules can import it by name.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from directorate.actors import CommandRunner

AGENTS = Path(__file__).resolve().parents[2] / "agents"
sys.path.insert(0, str(AGENTS))
from green import GreenVerifier  # noqa: E402
from scripted import scripted_runner  # noqa: E402

__all__ = [
    "AGENTS",
    "GreenVerifier",
    "Scripted",
    "ScriptedJudge",
    "pid_alive",
    "running_task",
    "wait_for",
]


class Scripted:
    """A scripted agent's script file and what its runs recorded."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.records = root / "records"
        self.records.mkdir(parents=True, exist_ok=True)
        self.path = root / "script.json"
        self.write({})

    def write(self, script: dict[str, Any]) -> None:
        self.path.write_text(json.dumps({"record_dir": str(self.records), **script}))

    def runner(self, **kwargs: Any) -> CommandRunner:
        return scripted_runner(self.path, **kwargs)

    def runs(self, kind: str | None = None) -> list[dict[str, Any]]:
        found = [json.loads(p.read_text()) for p in self.records.glob("*.json")]
        return sorted(
            (r for r in found if kind is None or r["kind"] == kind), key=lambda r: r["started"]
        )

    def step_runs(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.runs("step") if r["step"] == name]


class ScriptedJudge:
    """An LLM judge run as a real subprocess (``tests/agents/scripted_judge.py``)
    that scores steps and the final directive review as told."""

    def __init__(
        self, root: Path, step: float = 1.0, review: float = 1.0, cost: float | None = None
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / "judge-scores.json"
        self.workdir = str(root / "work")
        """A repository folder for the directive (verifiers run only where there is one)."""
        Path(self.workdir).mkdir(exist_ok=True)
        self.set(step=step, review=review, cost=cost)

    def set(self, *, step: float, review: float, cost: float | None = None) -> None:
        """The scores to give, and what each judge session says it cost (None: nothing)."""
        scores = {"step": step, "review": review}
        self.path.write_text(json.dumps(scores if cost is None else {**scores, "cost": cost}))

    def prompts(self) -> list[str]:
        log = Path(f"{self.path}.prompts")
        return [p for p in log.read_text().split("\n\0\n") if p] if log.exists() else []

    def config(self) -> dict[str, Any]:
        """``[verifiers]`` settings with this judge as the only verifier."""
        command = [sys.executable, str(AGENTS / "scripted_judge.py"), str(self.path)]
        return {"auto_detect": False, "llm": {"command": command, "timeout_s": 30}}


def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def pid_alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def running_task(engine: Any, directive_id: uuid.UUID) -> Any:
    running = [t for t in engine.db.reads.tasks_of_directive(directive_id) if t.status == "running"]
    return running[0] if running else None
