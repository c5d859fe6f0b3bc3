"""What an agent's report says it used, beside dollars: tokens and turns (issue 11).

Like a cost, a count an agent reports is outside input: one that is not a whole
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

Turns: ``num_turns`` (Claude Code) or ``turns``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:  # runners imports this module
    from .runners import TaskResult

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


def kept_tokens(result: TaskResult) -> int | None:
    """A result's tokens as the engine stores and adds them up."""
    return _kept(result.tokens, MAX_TASK_TOKENS)


def kept_turns(result: TaskResult) -> int | None:
    """A result's turns as the engine stores and adds them up."""
    return _kept(result.turns, MAX_TASK_TURNS)


def _kept(value: object, maximum: int) -> int | None:
    """The runners check what agents report, but a ``TaskResult`` may be built by hand
    (a ``CallableRunner``'s callable may return one): what is not a count within
    bounds is unknown here too, never a failed write or a negative total."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        return None
    return value


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


def floor_cents(dollars: float) -> float:
    """``dollars`` rounded down to a cent, so that a budget handed on never exceeds
    what is left (through the decimal text of the float: 0.29 stays 0.29)."""
    return float(Decimal(repr(max(0.0, dollars))).quantize(Decimal("0.01"), ROUND_DOWN))


def budget_text(budget: float | None) -> str:
    """``DIRECTORATE_BUDGET_USD``: dollars with two decimals, rounded down; empty when
    there is no dollar limit (None, or a limit raised to infinity)."""
    if budget is None or not math.isfinite(budget):
        return ""
    return f"{floor_cents(budget):.2f}"
