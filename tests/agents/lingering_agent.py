#!/usr/bin/env python3
"""An agent that outlives its engine if it can.

Usage: lingering_agent.py FOLDER [--cooperative] [--linger-in planning|step]

Attempt 1 of a task of the kind it lingers in (default: step) starts a grandchild
in a session of its own (out of the agent's process group), ignores SIGTERM (so
does the grandchild; ``--cooperative``: neither does), writes both processes' pid
and start time to FOLDER/attempt-1.json and works until killed. A later attempt
writes, to FOLDER/attempt-N.json, which of attempt 1's processes still run as it
starts (the same pid with the same start time), then succeeds. Tasks of the other
kind succeed at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
PLAIN = "import time; time.sleep(600)"


def identity(pid: int) -> dict[str, float]:
    return {"pid": pid, "started": psutil.Process(pid).create_time()}


def running(who: dict[str, float]) -> bool:
    try:
        proc = psutil.Process(int(who["pid"]))
        same = abs(proc.create_time() - who["started"]) < 0.01
        return same and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def write(path: Path, value: object) -> None:
    path.with_suffix(".tmp").write_text(json.dumps(value))
    path.with_suffix(".tmp").rename(path)


def main() -> int:
    folder = Path(sys.argv[1])
    cooperative = "--cooperative" in sys.argv[2:]
    linger_in = sys.argv[sys.argv.index("--linger-in") + 1] if "--linger-in" in sys.argv else "step"
    attempt = int(os.environ["DIRECTORATE_ATTEMPT"])
    if os.environ["DIRECTORATE_TASK_KIND"] != linger_in:
        print(json.dumps({"summary": "nothing to linger over"}))
        return 0
    if attempt == 1:
        if not cooperative:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        code = PLAIN if cooperative else STUBBORN
        escapee = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
        write(
            folder / "attempt-1.json",
            {"agent": identity(os.getpid()), "escapee": identity(escapee.pid)},
        )
        time.sleep(600)
        return 1
    first = json.loads((folder / "attempt-1.json").read_text())
    still = sorted(name for name, who in first.items() if running(who))
    write(folder / f"attempt-{attempt}.json", {"first_still_running": still})
    print(json.dumps({"summary": f"attempt {attempt} done"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
