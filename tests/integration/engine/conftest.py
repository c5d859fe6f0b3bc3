"""Helpers for engine tests: scripted agents as real subprocesses, verifier stand-ins."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from directorate.actors import CommandRunner, Engine, EngineConfig

AGENTS = Path(__file__).resolve().parents[2] / "agents"
sys.path.insert(0, str(AGENTS))
from green import GreenVerifier  # noqa: E402
from scripted import scripted_runner  # noqa: E402


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


@pytest.fixture
def scripted(tmp_path: Path) -> Scripted:
    return Scripted(tmp_path / "agent")


@pytest.fixture
def engine_factory(dsn: str, tmp_path: Path) -> Iterator[Any]:
    engines: list[Engine] = []

    def make(**overrides: Any) -> Engine:
        settings: dict[str, Any] = {
            "dsn": dsn,
            "log_dir": tmp_path / "logs",
            "verifiers": [GreenVerifier()],
            "verifier_config": {"auto_detect": False},
            "tick_interval_s": 0.2,
        }
        settings.update(overrides)
        engine = Engine.start(EngineConfig(**settings))
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.shutdown()


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
