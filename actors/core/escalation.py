"""Pure rules of escalation (DESIGN §8): circuit breakers and blocked chains."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import attrs

from directorate.persistence import validation as check
from directorate.persistence.errors import InvalidInput
from directorate.persistence.models import Directive, Step, StepStatus

from ..runners import TaskResult
from ..usage import floor_cents, kept_tokens, kept_turns

SPENT_LIMITS: dict[str, str] = {
    "max_total_cost_usd": "total_cost_usd",
    "max_total_tokens": "total_tokens",
    "max_agent_turns": "total_agent_turns",
}
"""The breakers on what the agents' reports add up, in the order they are checked:
each limit's directive field and the field of the total it caps."""

COUNT_LIMITS: dict[str, int] = {
    "max_total_tokens": check.MAX_TOTAL_TOKENS,
    "max_agent_turns": check.MAX_AGENT_TURNS,
}
"""Limits that are whole numbers, with the most an approver may raise them to."""

BREAKER_LIMITS = (*SPENT_LIMITS, "max_wall_time_minutes", "max_chain_regenerations")
"""Every limit a circuit breaker trips on, so every one an approval may raise."""


@attrs.frozen(kw_only=True)
class Trip:
    """A circuit breaker that tripped: which limit, the figure, the limit's value."""

    limit: str
    """The directive field that holds the limit, e.g. ``max_total_cost_usd``."""
    figure: float
    threshold: float

    def describe(self) -> str:
        if self.limit == "max_total_cost_usd":
            return f"Cost limit exceeded: ${self.figure:.2f} >= ${self.threshold:.2f}"
        if self.limit == "max_total_tokens":
            return f"Token limit exceeded: {self.figure:,.0f} tokens >= {self.threshold:,.0f}"
        if self.limit == "max_agent_turns":
            return f"Agent turn limit exceeded: {self.figure:,.0f} turns >= {self.threshold:,.0f}"
        if self.limit == "max_wall_time_minutes":
            return f"Time limit exceeded: {self.figure:.1f} min >= {self.threshold:g} min"
        return (
            f"Chain generation limit exceeded: {self.figure:g} regenerations >= {self.threshold:g}"
        )


DEFAULT_MAX_CHAIN_REGENERATIONS = 3
"""Regenerations allowed when a directive sets none: autonomy is always bounded, so
an unset limit never means "regenerate forever" (DESIGN §8)."""


def regeneration_limit(directive: Directive) -> int:
    limit = directive.max_chain_regenerations
    return DEFAULT_MAX_CHAIN_REGENERATIONS if limit is None else limit


def regenerations_used(directive: Directive) -> int:
    return max(0, directive.chain_generation_count - 1)


def regenerations_left(directive: Directive) -> bool:
    return regenerations_used(directive) < regeneration_limit(directive)


def check_breakers(
    directive: Directive, *, now: datetime | None = None, regenerating: bool = False
) -> Trip | None:
    """The seed's ``check_circuit_breakers`` (cost, wall time, chain generations),
    with tokens and agent turns beside cost: the first limit reached, else None.

    ``regenerating`` asks whether one more regeneration is allowed.
    """
    for limit, total in SPENT_LIMITS.items():
        threshold: float | None = getattr(directive, limit)
        figure: float = getattr(directive, total)
        if threshold is not None and figure >= threshold:
            return Trip(limit=limit, figure=figure, threshold=threshold)
    time_limit = directive.max_wall_time_minutes
    if time_limit is not None and directive.started_at is not None:
        elapsed = ((now or datetime.now(UTC)) - directive.started_at).total_seconds() / 60
        if elapsed >= time_limit:
            return Trip(limit="max_wall_time_minutes", figure=elapsed, threshold=time_limit)
    return regeneration_trip(directive) if regenerating else None


def regeneration_trip(directive: Directive) -> Trip | None:
    """Whether one more regeneration would pass ``max_chain_regenerations``."""
    regen_limit = regeneration_limit(directive)
    if regenerations_used(directive) >= regen_limit:
        return Trip(
            limit="max_chain_regenerations",
            figure=regenerations_used(directive),
            threshold=regen_limit,
        )
    return None


def current_figure(trip: Trip, directive: Directive, now: datetime | None = None) -> float:
    """The tripped quantity as it stands now (wall time keeps growing while a human
    thinks about the approval)."""
    if trip.limit in SPENT_LIMITS:
        figure: float = getattr(directive, SPENT_LIMITS[trip.limit])
        return figure
    if trip.limit == "max_wall_time_minutes" and directive.started_at is not None:
        return ((now or datetime.now(UTC)) - directive.started_at).total_seconds() / 60
    if trip.limit == "max_chain_regenerations":
        return regenerations_used(directive)
    return trip.figure


def raised_limit(trip: Trip, requested: Mapping[str, float] | None, figure: float) -> float:
    """The new limit after an approval: the approver's figure, else twice the old one,
    and in any case above ``figure`` (where the quantity stands now), so the breaker
    does not trip again the moment the directive resumes. Token and turn limits are
    whole numbers, at most what a directive may set."""
    if requested and trip.limit in requested:
        new = _requested(trip.limit, requested[trip.limit])
        if not new > figure:
            raise InvalidInput(
                f"{trip.limit}: the new limit {check.number(new)} must be above the current "
                f"{check.number(figure)}"
            )
        return new
    if trip.limit == "max_chain_regenerations":
        return max(trip.threshold, figure) + 1
    doubled = max(trip.threshold * 2, figure * 1.5)
    return math.ceil(doubled) if trip.limit in COUNT_LIMITS else doubled


def _requested(limit: str, value: object) -> float:
    """An approver's new limit: a number; for tokens or turns a whole one, no larger
    than a directive may set (the command line sends every figure as a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{limit}: {check.expected('a number', value)}")
    if limit not in COUNT_LIMITS:
        return float(value)
    if isinstance(value, float) and not value.is_integer():  # NaN and inf are not either
        raise InvalidInput(f"{limit}: the new limit must be a whole number, got {value}")
    check.check_at_most(limit, value, COUNT_LIMITS[limit])
    return int(value)


def unknown_limits(requested: Mapping[str, object] | None) -> list[str]:
    """Names in an approval's raised limits that no breaker has (a typo, most likely)."""
    return sorted(set(requested or ()) - set(BREAKER_LIMITS))


def with_spent(directive: Directive, result: TaskResult) -> Directive:
    """The directive with a report's cost, tokens and turns added to its totals, as
    ``record_task_result`` adds them (an unknown figure adds nothing)."""
    return attrs.evolve(
        directive,
        total_cost_usd=directive.total_cost_usd + max(0.0, result.cost_usd or 0.0),
        total_tokens=directive.total_tokens + (kept_tokens(result) or 0),
        total_agent_turns=directive.total_agent_turns + (kept_turns(result) or 0),
    )


def remaining_budget(directive: Directive) -> float | None:
    """The dollars the directive has left, rounded down to a cent (what a task is
    given as ``DIRECTORATE_BUDGET_USD``); None when it has no (finite) dollar limit."""
    limit = directive.max_total_cost_usd
    if limit is None or not math.isfinite(limit):
        return None
    return floor_cents(limit - directive.total_cost_usd)


def can_progress(steps: Iterable[Step], waiting_on_human: set[uuid.UUID]) -> bool:
    """Whether any unfinished step may still pass without a new chain.

    A step can progress unless it is blocked or failed, or depends (at any
    depth) on one that is. A step waiting for a review counts as progressing:
    a human may pass it.
    """
    by_id = {s.id: s for s in steps}
    dead: dict[uuid.UUID, bool] = {}

    def is_dead(step_id: uuid.UUID, trail: frozenset[uuid.UUID] = frozenset()) -> bool:
        if step_id in dead:
            return dead[step_id]
        step = by_id.get(step_id)
        if step is None or step_id in trail:
            return False
        result = step.status in (StepStatus.BLOCKED, StepStatus.FAILED) or any(
            is_dead(d, trail | {step_id}) for d in step.depends_on
        )
        dead[step_id] = result
        return result

    for step in by_id.values():
        if step.status.finished:
            continue
        if step.id in waiting_on_human or not is_dead(step.id):
            return True
    return False
