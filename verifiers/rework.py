"""Rework instructions: what the agent must fix, quoting the evidence, bounded."""

from __future__ import annotations

from .records import ConfidenceLevel, VerifierResult, VerifierType

TAIL_PER_CHECK = 2_000
MAX_TOTAL = 8_000


def rework_instructions(
    level: ConfidenceLevel,
    score: float,
    results: list[VerifierResult],
    summary: str,
) -> str | None:
    """None when green; otherwise each failing check with its output's tail, the
    judges' feedback and unmet criteria (or why a judge gave no verdict), in at most
    ``MAX_TOTAL`` characters."""
    if level is ConfidenceLevel.GREEN:
        return None
    sections = [f"The work was judged {level} (score {score:.2f}): {summary}"]
    for r in results:
        if r.unavailable:
            if r.verifier_type is VerifierType.LLM:
                sections.append(f"## Reviewer ({r.name}) gave no verdict\n{r.unavailable}")
            continue
        if r.verifier_type is VerifierType.LLM:
            sections.append(_judge_section(r))
        elif not r.passed:
            tail = _tail(r.output, TAIL_PER_CHECK).strip() or "(no output)"
            sections.append(f"## Failing check: {r.name} ({r.verifier_type})\n```\n{tail}\n```")
    if len(sections) == 1:
        sections.append(
            "No check failed outright, but the evidence is too weak to accept the work."
        )
    return _bounded("\n\n".join(s for s in sections if s), MAX_TOTAL)


def _judge_section(r: VerifierResult) -> str:
    unmet = [c for c in r.details.get("criteria", []) if not c.get("met")]
    if r.passed and not unmet:
        return ""
    lines = [
        f"## Reviewer ({r.name})",
        _bounded(r.output.strip(), TAIL_PER_CHECK) or "(no feedback)",
    ]
    if unmet:
        lines.append("Unmet acceptance criteria:")
        lines += [f"- {c['id']}: {c.get('note') or 'not met'}" for c in unmet]
    return "\n".join(lines)


def _bounded(text: str, limit: int) -> str:
    marker = "\n[... cut ...]"
    return text if len(text) <= limit else text[: limit - len(marker)] + marker


def _tail(text: str, limit: int) -> str:
    """The last ``limit`` characters, starting at a line when one starts near the cut."""
    if len(text) <= limit:
        return text
    tail = text[-limit:]
    newline = tail.find("\n", 0, 200)
    return tail[newline + 1 :] if newline >= 0 else tail
