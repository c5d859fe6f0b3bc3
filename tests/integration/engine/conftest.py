"""Fixtures for engine tests: a scripted agent and engines on a fresh database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import GreenVerifier, Scripted

from directorate.actors import Engine, EngineConfig


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
