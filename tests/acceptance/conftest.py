"""The ``directorate`` command as a user runs it: real subprocesses, a real database.

Each test gets a fresh database (``dsn``) through ``DIRECTORATE_DSN`` and its own
``DIRECTORATE_HOME``. Processes started with ``cli.spawn`` are killed at teardown.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from clihelp import Cli


@pytest.fixture(scope="session", autouse=True)
def interruptible_commands() -> Iterator[None]:
    """Commands start with Ctrl-C enabled, as a person's shell starts them.

    A test run started without job control (``pytest ... &`` in a script, some CI
    runners) has SIGINT ignored, and an ignored signal stays ignored across fork and
    exec: every ``directorate`` process would then ignore the SIGINT a test sends
    it. With a handler here, the children start with the default disposition again.
    """
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture
def cli(dsn: str, tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(dsn, tmp_path / "home")
    try:
        yield runner
    finally:
        runner.kill_all()
