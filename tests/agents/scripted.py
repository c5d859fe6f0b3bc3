"""The command line that runs the scripted agent with a script file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from directorate.actors import CommandRunner

AGENT = Path(__file__).with_name("scripted_agent.py")


def scripted_runner(script: str | Path, **kwargs: Any) -> CommandRunner:
    return CommandRunner([sys.executable, str(AGENT), str(script)], **kwargs)
