"""Fixtures for engine tests: a scripted agent (``engine_factory`` is the root conftest's)."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_helpers import Scripted


@pytest.fixture
def scripted(tmp_path: Path) -> Scripted:
    return Scripted(tmp_path / "agent")
