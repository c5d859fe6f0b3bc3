"""What the LLM judge is asked, and how its answer is read."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .gitfiles import git_diff
from .records import VerificationContext

MAX_DIFF_CHARS = 20_000
MAX_FILES = 200
MAX_TAIL_CHARS = 1_500
#: how many '{' positions to try when looking for the verdict in pathological output
MAX_JSON_ATTEMPTS = 2_000

ANSWER_FORMAT = """\
Answer with one JSON object, and nothing after it:
{"passed": true|false, "score": <number from 0 to 1>, "feedback": "<what to fix, or why it \
is fine>", "criteria": [{"id": "<criterion id>", "met": true|false, "note": "<why>"}]}"""


def build_prompt(repo_path: Path, ctx: VerificationContext, max_diff_chars: int) -> str:
    """The judge's prompt: goal, step, criteria, changes (bounded) and the checks' results."""
    lines = [
        "You are reviewing an AI coding agent's work on a repository. Judge whether the",
        "step below was done correctly and completely.",
        "",
        "## Directive goal",
        ctx.directive_goal or "(none given)",
        "",
        "## Step" if ctx.step_id is not None else "## Whole directive (final review)",
        ctx.step_description or "(no description)",
        "",
        "## Acceptance criteria",
    ]
    lines += [f"- {c.id}: {c.criterion}" for c in ctx.acceptance_criteria] or ["(none)"]
    lines += ["", "## Modified files"]
    files = ctx.modified_files[:MAX_FILES]
    lines += [f"- {f}" for f in files] or ["(none reported)"]
    if len(ctx.modified_files) > len(files):
        lines.append(f"- ... and {len(ctx.modified_files) - len(files)} more")
    diff = git_diff(repo_path, ctx.base_commit, max_diff_chars)
    lines += ["", "## Diff", "```diff", diff.rstrip() or "(no diff available)", "```"]
    lines += ["", "## Automated checks"]
    for r in ctx.prior_results:
        verdict = "passed" if r.passed else "FAILED"
        score = "n/a" if r.score is None else f"{r.score:.2f}"
        lines += [f"### {r.name} ({r.verifier_type}): {verdict}, score {score}", "```"]
        lines += [r.output[-MAX_TAIL_CHARS:].rstrip(), "```"]
    if not ctx.prior_results:
        lines.append("(none ran)")
    lines += ["", "## Your answer", ANSWER_FORMAT, ""]
    return "\n".join(lines)


def parse_verdict(text: str) -> dict[str, Any] | None:
    """The last JSON object in ``text`` with a boolean ``passed`` and a numeric ``score``
    (anywhere: bare, or in a fenced block), normalized; None if there is none."""
    decoder = json.JSONDecoder()
    start = len(text)
    for _ in range(MAX_JSON_ATTEMPTS):
        # Scanning from the end finds the last object first; objects nested inside it
        # (the criteria) lack the keys and are passed over.
        start = text.rfind("{", 0, start)
        if start < 0:
            return None
        try:
            value, _end = decoder.raw_decode(text, start)
        except ValueError:
            continue
        verdict = _normalize(value)
        if verdict is not None:
            return verdict
    return None


def _normalize(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict) or not isinstance(value.get("passed"), bool):
        return None
    score = value.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        return None
    feedback = value.get("feedback")
    criteria = []
    for item in value.get("criteria") or []:
        if isinstance(item, dict) and isinstance(item.get("met"), bool) and item.get("id"):
            note = item.get("note")
            criteria.append(
                {
                    "id": str(item["id"]),
                    "met": item["met"],
                    "note": "" if note is None else str(note),
                }
            )
    return {
        "passed": value["passed"],
        "score": min(max(float(score), 0.0), 1.0),
        "feedback": "" if feedback is None else str(feedback),
        "criteria": criteria,
    }
