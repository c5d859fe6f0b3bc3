"""Helpers shared by test folders: stand-in tools and waiting for a process to die.

Importable by name from any test (``tests/`` holds the root conftest, so pytest puts
it on ``sys.path``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def write_tool(folder: Path, name: str, body: str = 'echo "$0 $*"') -> Path:
    """An executable shell script ``folder/name`` (a stand-in for npm, gh, ssh, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    tool = folder / name
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(0o755)
    return tool


def process_gone(pid: int, within_s: float = 3.0) -> bool:
    """Whether ``pid`` is dead (a zombie counts: a container's init may not reap it)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (ProcessLookupError, FileNotFoundError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False
