"""The ``directorate`` command as a user runs it: real subprocesses, a real database.

Each test gets a fresh database (``dsn``) through ``DIRECTORATE_DSN`` and its own
``DIRECTORATE_HOME``. Processes started with ``cli.spawn`` are killed at teardown.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from clihelp import Cli


@pytest.fixture
def cli(dsn: str, tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(dsn, tmp_path / "home")
    try:
        yield runner
    finally:
        runner.kill_all()
