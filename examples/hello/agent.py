#!/usr/bin/env python3
"""A scripted demo agent: acts like a coding agent, without a network or a model.

directorate runs it the way it runs a real agent CLI: in the working copy, with
the task's instructions on stdin and DIRECTORATE_* variables in the environment.
It reports like Claude Code's JSON output: a last line with cost and summary.

- Planning: writes a plan with two parallel fixes and a test step depending on both.
- fix-add: fixes calc/add.py.
- fix-multiply: its first attempt is a plausible but wrong fix (it forgets negative
  numbers); the verifier catches it, and when the instructions come back with a
  "## Rework" section it writes the real fix.
- run-tests: runs the whole test suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

PLAN = {
    "steps": [
        {
            "name": "fix-add",
            "step_type": "implement",
            "description": "Fix add() in calc/add.py",
            "task_plan": "add(a, b) subtracts. Make it return the sum (tests/test_add.py).",
            "depends_on": [],
            "verifiers": {
                "command": [
                    {"name": "test-add", "run": "python -m unittest tests.test_add", "type": "test"}
                ]
            },
        },
        {
            "name": "fix-multiply",
            "step_type": "implement",
            "description": "Fix multiply() in calc/multiply.py",
            "task_plan": (
                "multiply(a, b) adds a once too often. Make it return the product for every "
                "integer; tests/test_multiply.py checks it."
            ),
            "depends_on": [],
            "verifiers": {
                "command": [
                    {
                        "name": "test-multiply",
                        "run": "python -m unittest tests.test_multiply",
                        "type": "test",
                    }
                ]
            },
        },
        {
            "name": "run-tests",
            "step_type": "test",
            "description": "Run the whole test suite",
            "task_plan": "Run `python -m unittest` and report the result.",
            "depends_on": ["fix-add", "fix-multiply"],
        },
    ]
}

WRONG_MULTIPLY = '''def multiply(a: int, b: int) -> int:
    """The product of a and b, by repeated addition."""
    result = 0
    for _ in range(b):
        result += a
    return result
'''

RIGHT_MULTIPLY = '''def multiply(a: int, b: int) -> int:
    """The product of a and b."""
    return a * b
'''


def say(text: str) -> None:
    print(text, flush=True)


def plan() -> str:
    say("reading the repository: calc/add.py, calc/multiply.py, tests/")
    time.sleep(0.5)
    Path(os.environ["DIRECTORATE_PLAN_FILE"]).write_text(json.dumps(PLAN, indent=2))
    return "planned 3 steps: fix-add and fix-multiply in parallel, then run-tests"


def fix_add() -> str:
    path = Path("calc/add.py")
    time.sleep(0.8)
    path.write_text(path.read_text().replace("return a - b", "return a + b"))
    return "add() now returns a + b"


def fix_multiply(rework: bool) -> str:
    time.sleep(1.2)
    if not rework:
        Path("calc/multiply.py").write_text(WRONG_MULTIPLY)
        return "multiply() no longer adds a once too often (range(b))"
    Path("calc/multiply.py").write_text(RIGHT_MULTIPLY)
    return "rework: range(b) is empty for negative b; multiply() now returns a * b"


def run_tests() -> tuple[str, int]:
    result = subprocess.run(
        [sys.executable, "-m", "unittest"], capture_output=True, text=True, check=False
    )
    say(result.stderr.strip())
    last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no output"
    return f"python -m unittest: {last}", result.returncode


def main() -> int:
    instructions = sys.stdin.read()
    status = 0
    if os.environ.get("DIRECTORATE_TASK_KIND") == "planning":
        summary = plan()
    else:
        step = instructions.splitlines()[0].removeprefix("## Step: ").strip()
        rework = "## Rework" in instructions
        say(f"working on {step} (attempt {os.environ.get('DIRECTORATE_ATTEMPT')})")
        if step == "fix-add":
            summary = fix_add()
        elif step == "fix-multiply":
            summary = fix_multiply(rework)
        elif step == "run-tests":
            summary, status = run_tests()
        else:
            summary = f"nothing to do for {step}"
    say(json.dumps({"cost_usd": 0.01, "summary": summary}))
    return status


if __name__ == "__main__":
    sys.exit(main())
