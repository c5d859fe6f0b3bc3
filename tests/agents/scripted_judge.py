#!/usr/bin/env python3
"""A scripted LLM judge: reads the prompt on stdin, answers like a model would.

Usage: scripted_judge.py SCORES.json

SCORES.json is ``{"step": 0.6, "review": 1.0}``: the score given to a step, and to
the final review of the whole directive (told apart by the prompt's heading). The
file is read on every call, so a test can change its mind mid-run. With ``"cost": X``
each session also prints a report line saying it cost $X (``total_cost_usd``, as
Claude Code's JSON report does). Each prompt is
appended to ``SCORES.json.prompts`` (separated by a NUL line) for tests to inspect.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    scores_path = Path(sys.argv[1])
    prompt = sys.stdin.read()
    with open(f"{scores_path}.prompts", "a", encoding="utf-8") as log:
        log.write(prompt + "\n\0\n")
    scores = json.loads(scores_path.read_text())
    final = "## Whole directive (final review)" in prompt
    score = float(scores["review" if final else "step"])
    verdict = {
        "passed": score >= 0.5,
        "score": score,
        "feedback": f"scripted judge: {score:.2f} for the {'directive' if final else 'step'}",
        "criteria": [],
    }
    # Real models wrap their answer in prose and a fenced block.
    print(f"Here is my review.\n```json\n{json.dumps(verdict)}\n```")
    if "cost" in scores:
        print(json.dumps({"total_cost_usd": float(scores["cost"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
