"""How the engine keeps and hands on what agents report (issue 11): counts within
bounds, budgets in whole cents. Reading the figures is ``verifiers.tools.figures``.
"""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING

from directorate.verifiers.tools.figures import MAX_TASK_TOKENS, MAX_TASK_TURNS

if TYPE_CHECKING:  # runners imports this module
    from .runners import TaskResult


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
