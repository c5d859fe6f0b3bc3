"""What an agent's JSON report says it spent: dollars, tokens and turns (issue 11).

A cost or a count an agent reports is outside input: one that is not a whole
number, not finite, negative or absurdly large is recorded as unknown, with a note
saying why (the engine turns it into a warning event), and never fails the task.

Tokens, from the agent's last JSON line, the first of these present:

- ``tokens`` or ``total_tokens``: one figure, taken as the agent counts it;
- ``usage``: Claude Code's (and the Anthropic API's) breakdown. ``input_tokens``
  (uncached input), ``cache_creation_input_tokens`` (input written to the prompt
  cache) and ``output_tokens`` count; ``cache_read_input_tokens`` does not. A cache
  read is the conversation so far read again on every turn: counting it would make
  the total grow with the square of a task's turns rather than with its work (a
  one-line answer reads some 15,000 cached tokens of system prompt), and it is
  billed at a tenth of the input price and left out of Anthropic's input rate
  limits. A ``usage`` holding ``total_tokens`` (OpenAI's shape) gives that figure.

Turns: ``num_turns`` (Claude Code) or ``turns``. Dollars: ``cost_usd`` or
``total_cost_usd`` (Claude Code).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, TypedDict

MAX_TASK_TOKENS = 10**10
"""A task reporting more tokens than this reports a bug, not a figure (it would
swamp every limit, and a directive's total must stay within a bigint)."""
MAX_TASK_TURNS = 10**6
"""Likewise for turns."""

COUNTED_USAGE = ("input_tokens", "cache_creation_input_tokens", "output_tokens")
"""The parts of Claude Code's ``usage`` that count toward a task's tokens."""


class Counts(TypedDict):
    """The counts of one report, as ``TaskResult`` fields."""

    tokens: int | None
    tokens_note: str | None
    turns: int | None
    turns_note: str | None


def read_counts(report: Mapping[str, Any]) -> Counts:
    """Tokens and turns of a report, each with why it is unknown (or None)."""
    tokens, tokens_note = read_tokens(report)
    turns, turns_note = read_turns(report)
    return Counts(tokens=tokens, tokens_note=tokens_note, turns=turns, turns_note=turns_note)


def read_tokens(report: Mapping[str, Any]) -> tuple[int | None, str | None]:
    """(tokens, why unknown): the first of ``tokens``, ``total_tokens``, ``usage``
    present decides; (None, None) when none is."""
    for key in ("tokens", "total_tokens"):
        if key in report:
            return _count(key, report[key], MAX_TASK_TOKENS)
    if "usage" not in report:
        return None, None
    usage = report["usage"]
    if not isinstance(usage, Mapping):
        return None, f"usage {_shown(usage)} is not an object"
    if "total_tokens" in usage:
        return _count("usage.total_tokens", usage["total_tokens"], MAX_TASK_TOKENS)
    present = [key for key in COUNTED_USAGE if key in usage]
    if not present:
        return None, "usage has no input_tokens, output_tokens or total_tokens"
    total = 0
    for key in present:
        part, note = _count(f"usage.{key}", usage[key], MAX_TASK_TOKENS)
        if part is None:
            return None, note
        total += part
    if total > MAX_TASK_TOKENS:
        return None, f"usage adds up to {total} tokens, absurdly large"
    return total, None


def read_turns(report: Mapping[str, Any]) -> tuple[int | None, str | None]:
    """(turns, why unknown): ``num_turns`` or else ``turns``; (None, None) when neither."""
    for key in ("num_turns", "turns"):
        if key in report:
            return _count(key, report[key], MAX_TASK_TURNS)
    return None, None


def _count(key: str, value: Any, maximum: int) -> tuple[int | None, str | None]:
    """A whole, non-negative number up to ``maximum`` (2.0 is 2; 2.5, NaN, "3" and
    true are not counts)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"{key} {_shown(value)} is not a number"
    if isinstance(value, float) and not math.isfinite(value):
        return None, f"{key} {_shown(value)} is not a finite figure"
    if value < 0:
        return None, f"{key} {_shown(value)} is negative"
    if value > maximum:  # before int(): no float of this size is a count either
        return None, f"{key} {_shown(value)} is absurdly large"
    if isinstance(value, float) and not value.is_integer():
        return None, f"{key} {_shown(value)} is not a whole number"
    return int(value), None


def _shown(value: Any) -> str:
    """The value for a one-line note (a 401-digit integer is not shown whole)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return "a huge number"
    return repr(value)[:60]


MAX_TASK_COST_USD = 1_000_000.0
"""A reported cost above this is not a figure but a bug (it would swamp every limit)."""


def read_cost(report: Mapping[str, Any]) -> tuple[float | None, str | None]:
    """(cost, why it is unknown): a cost that is not a number, not finite, negative
    or absurdly large is unknown, said in the second element, never an error."""
    for key in ("cost_usd", "total_cost_usd"):
        if key not in report:
            continue
        value = report[key]
        shown = (
            repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge number"
        )
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"{key} {shown[:60]} is not a number"
        if isinstance(value, int) and value > MAX_TASK_COST_USD:  # may not fit a float
            return None, f"{key} {shown} is absurdly large"
        cost = float(value)
        if not math.isfinite(cost) or cost < 0:
            return None, f"{key} {shown} is not a finite, non-negative figure"
        if cost > MAX_TASK_COST_USD:
            return None, f"{key} {shown} is absurdly large"
        return cost, None
    return None, None


def last_json_object(text: str) -> dict[str, Any]:
    """The last line of ``text`` that is a JSON object (agents print their report last)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if not (line.startswith("{") and line.endswith("}")):
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}
