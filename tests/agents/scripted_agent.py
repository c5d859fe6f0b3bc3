#!/usr/bin/env python3
"""A scripted coding agent: behaves as its script file says, like a real agent CLI.

Usage: scripted_agent.py SCRIPT.json   (instructions arrive on stdin)

The script is JSON:
  {"record_dir": "...",                  # one JSON record per run is written here
   "log": "/path/runs.jsonl",            # a line appended when it starts and when it ends
                                         # (also on SIGTERM): when, pid, directive, step
   "plan": {...} | "raw text" | null,    # planning: written to $DIRECTORATE_PLAN_FILE
   "planning_sleep": 0.0,
   "steps": {"<step name or *>": {"sleep": 0.2, "cost": 0.0, "exit": 0,
             "write": {"relative/path": "content"},   # files written in the workdir
             "sleeper": false,                        # leave a grandchild sleeping
             "commands": [["git", "commit", ...]],    # run after "write"
             "write_after": {"path": "content"},      # written after "commands"
             "gate": "/path",                         # wait until this file exists
             "session_id": "...",                     # named in the report
             "output_chars": 0,                       # print this much output first
             "summary": "...", "summary_chars": 0,    # the report's summary (or N x "s")
             "changes": true,                         # false: leave the workdir as it was
             "attempts": {"2": {...overrides for attempt 2...}},
             "replay": "/path/x.stdout",                # print a real tool's recorded
             "replay_stderr": "/path/x.stderr",         # output instead (and do nothing,
             "replay_exit": 1,                          # exit with its status), as long
             "until": "/path"}},                        # as this file does not exist
   "planning": {"replay": ..., "until": ...}}          # the same for the planning agent
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def log_line(path: str, what: str, **extra: object) -> None:
    """Append one line to the shared run log (one write: lines of agents running at
    once do not interleave)."""
    line = {
        "what": what,
        "time": time.time(),
        "pid": os.getpid(),
        "directive_id": os.environ.get("DIRECTORATE_DIRECTIVE_ID", ""),
        "step_id": os.environ.get("DIRECTORATE_STEP_ID", ""),
        "task_id": os.environ.get("DIRECTORATE_TASK_ID", ""),
        "kind": os.environ.get("DIRECTORATE_TASK_KIND", ""),
        "attempt": int(os.environ.get("DIRECTORATE_ATTEMPT", "0")),
        **extra,
    }
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def log_runs(path: str) -> None:
    """Say that this run starts, and that it ends when SIGTERM ends it."""
    log_line(path, "start")

    def on_term(signum: int, frame: object) -> None:
        log_line(path, "end", signal="SIGTERM")
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # die of it, as without the log
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)


def replaying(behaviour: dict) -> bool:
    """Replay a recorded output (the tool could not work) until the file ``until``
    names exists (then it works again)."""
    until = behaviour.get("until")
    return bool(behaviour.get("replay")) and not (until and Path(until).exists())


def _file_name(step_name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in step_name) or "step"


def main() -> int:
    script = json.loads(Path(sys.argv[1]).read_text())
    if script.get("log"):
        log_runs(script["log"])
    instructions = sys.stdin.read()
    started = time.time()
    kind = os.environ["DIRECTORATE_TASK_KIND"]
    attempt = os.environ["DIRECTORATE_ATTEMPT"]
    step_name = ""
    behaviour: dict = {}
    replay = False
    if kind == "planning":
        time.sleep(script.get("planning_sleep", 0.0))
        behaviour = script.get("planning", {})
        replay = replaying(behaviour)
        plan = script.get("plan")
        if plan is not None and not replay:
            text = plan if isinstance(plan, str) else json.dumps(plan)
            Path(os.environ["DIRECTORATE_PLAN_FILE"]).write_text(text)
    else:
        first = instructions.splitlines()[0] if instructions else ""
        step_name = first.removeprefix("## Step: ").strip()
        steps = script.get("steps", {})
        behaviour = dict(steps.get(step_name) or steps.get("*") or {})
        behaviour.update(behaviour.pop("attempts", {}).get(attempt, {}))
        replay = replaying(behaviour)
    if kind != "planning" and not replay:
        for relative, content in behaviour.get("write", {}).items():
            target = Path.cwd() / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        if behaviour.get("sleeper"):
            subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(3600)"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        for argv in behaviour.get("commands", []):  # e.g. the agent's own git commit
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        for relative, content in behaviour.get("write_after", {}).items():
            (Path.cwd() / relative).write_text(content)
        if behaviour.get("changes", True) and not any(
            behaviour.get(key) for key in ("write", "commands", "write_after")
        ):
            note = Path.cwd() / ".agent-work" / f"{_file_name(step_name)}-{attempt}.txt"
            note.parent.mkdir(parents=True, exist_ok=True)
            note.write_text(f"{step_name} attempt {attempt}\n")
    gate = behaviour.get("gate")
    while gate and not Path(gate).exists():  # held until the test opens the gate
        time.sleep(0.02)
    if not replay:
        time.sleep(behaviour.get("sleep", 0.0))
    record = {
        "kind": kind,
        "step": step_name,
        "attempt": int(attempt),
        "task_id": os.environ["DIRECTORATE_TASK_ID"],
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "started": started,
        "finished": time.time(),
        "instructions": instructions,
        "workdir": str(Path.cwd()),
        "argv": sys.argv,
        "listing": sorted(p.name for p in Path.cwd().iterdir()),
        "replayed": replay,
    }
    record_dir = script.get("record_dir")
    if record_dir:
        name = f"{kind}-{step_name or 'plan'}-{attempt}-{os.environ['DIRECTORATE_TASK_ID']}.json"
        (Path(record_dir) / name).write_text(json.dumps(record))
    if replay:  # the real tool's own output, byte for byte
        sys.stdout.write(Path(behaviour["replay"]).read_text())
        if behaviour.get("replay_stderr"):
            sys.stderr.write(Path(behaviour["replay_stderr"]).read_text())
        return int(behaviour.get("replay_exit", 1))
    print(f"working on {step_name or 'the plan'} (attempt {attempt})")
    output = behaviour.get("output_chars", 0)
    for start in range(0, output, 1000):
        print("o" * min(1000, output - start))
    summary = behaviour.get("summary", f"did {step_name}")
    if behaviour.get("summary_chars"):
        summary = "s" * behaviour["summary_chars"]
    report = {"cost_usd": behaviour.get("cost", 0.0), "summary": summary}
    if behaviour.get("session_id"):  # as Claude Code names its conversation
        report["session_id"] = behaviour["session_id"]
    print(json.dumps(report))
    if script.get("log"):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        log_line(script["log"], "end", step=step_name)
    return int(behaviour.get("exit", 0))


if __name__ == "__main__":
    sys.exit(main())
