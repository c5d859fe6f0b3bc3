#!/usr/bin/env python3
"""A coding agent that reports what it used as Claude Code does (``usage``,
``num_turns``, ``total_cost_usd`` on its last JSON line), for the breakers beside
dollars and for ``DIRECTORATE_BUDGET_USD``.

Usage: usage_agent.py SCRIPT.json   (instructions arrive on stdin)

The script is JSON:
  {"record_dir": "...",                # one record per run: <task id>.json
   "plan": {...} | null,               # planning: written to $DIRECTORATE_PLAN_FILE
   "planning": {...behaviour...},
   "steps": {"<step name or *>": {
       "report": {...},                # merged into the report line
       "started": "path",              # touched as the agent starts
       "after": "path",                # report only once this file exists (30 s at most)
       "hang": false,                  # work until stopped; on SIGTERM report, exit 143
       "changes": true,                # false: leave the workdir as it was
       "attempts": {"2": {...overrides for attempt 2...}}}}}

Every run first prints its DIRECTORATE_* environment as a JSON line. A step run
leaves a note of its work at .agent-work/<step>-<attempt>.txt (the engine fails a
step whose agent changed nothing), unless "changes" is false.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any


def report(behaviour: dict[str, Any], name: str) -> None:
    print(json.dumps({"type": "result", "result": f"did {name}", **behaviour.get("report", {})}))
    sys.stdout.flush()


def main() -> int:
    script = json.loads(Path(sys.argv[1]).read_text())
    instructions = sys.stdin.read()
    env = {k: v for k, v in os.environ.items() if k.startswith("DIRECTORATE_")}
    print(json.dumps({"environment": env}))
    kind, attempt = env["DIRECTORATE_TASK_KIND"], env["DIRECTORATE_ATTEMPT"]
    if kind == "planning":
        name, behaviour = "the plan", dict(script.get("planning") or {})
        if script.get("plan") is not None:
            Path(env["DIRECTORATE_PLAN_FILE"]).write_text(json.dumps(script["plan"]))
    else:
        first = instructions.splitlines()[0] if instructions else ""
        name = first.removeprefix("## Step: ").strip()
        steps = script.get("steps", {})
        behaviour = dict(steps.get(name) or steps.get("*") or {})
        behaviour.update(behaviour.pop("attempts", {}).get(attempt, {}))
        if behaviour.get("changes", True):
            safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name) or "step"
            note = Path.cwd() / ".agent-work" / f"{safe}-{attempt}.txt"
            note.parent.mkdir(parents=True, exist_ok=True)
            note.write_text(f"{name} attempt {attempt}\n")
    record = {"kind": kind, "step": name, "attempt": int(attempt), "pid": os.getpid(), **env}
    (Path(script["record_dir"]) / f"{env['DIRECTORATE_TASK_ID']}.json").write_text(
        json.dumps(record)
    )
    if behaviour.get("hang"):
        # Stopped: say what was used so far, as an agent saving its work would. Set
        # before "started" is touched, so no stop can come before it.
        signal.signal(signal.SIGTERM, lambda *_: (report(behaviour, name), os._exit(143)))
    if behaviour.get("started"):
        Path(behaviour["started"]).touch()
    while behaviour.get("hang"):
        signal.pause()
    if behaviour.get("after"):
        deadline = time.monotonic() + 30
        while not Path(behaviour["after"]).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    report(behaviour, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
