"""Circuit breakers and blocked-chain detection: the pure rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from directorate.actors.core.escalation import Trip, can_progress, check_breakers, raised_limit
from directorate.persistence.errors import InvalidInput
from directorate.persistence.models import Directive, Step, StepStatus, StepType


def directive(**changes: object) -> Directive:
    return Directive(id=uuid.uuid4(), title="t", goal="g", **changes)  # type: ignore[arg-type]


def step(name: str, status: StepStatus, deps: list[Step] = ()) -> Step:  # type: ignore[assignment]
    return Step(
        id=uuid.uuid4(),
        chain_id=uuid.uuid4(),
        directive_id=uuid.uuid4(),
        name=name,
        step_type=StepType.IMPLEMENT,
        status=status,
        depends_on=[d.id for d in deps],
    )


def test_cost_breaker_trips_at_the_limit_not_below() -> None:
    assert check_breakers(directive(max_total_cost_usd=5.0, total_cost_usd=4.99)) is None
    trip = check_breakers(directive(max_total_cost_usd=5.0, total_cost_usd=5.0))
    assert trip == Trip(limit="max_total_cost_usd", figure=5.0, threshold=5.0)
    assert "$5.00 >= $5.00" in trip.describe()


def test_wall_time_breaker_counts_from_start() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    started = now - timedelta(minutes=10)
    assert check_breakers(directive(max_wall_time_minutes=11, started_at=started), now=now) is None
    trip = check_breakers(directive(max_wall_time_minutes=10, started_at=started), now=now)
    assert trip is not None and trip.limit == "max_wall_time_minutes"
    assert check_breakers(directive(max_wall_time_minutes=1), now=now) is None  # not started


def test_generation_breaker_only_when_regenerating() -> None:
    d = directive(max_chain_regenerations=1, chain_generation_count=2)
    assert check_breakers(d) is None
    trip = check_breakers(d, regenerating=True)
    assert trip is not None and trip.limit == "max_chain_regenerations"
    assert (
        check_breakers(
            directive(max_chain_regenerations=1, chain_generation_count=1), regenerating=True
        )
        is None
    )


def test_raised_limit_takes_the_approvers_figure_else_doubles() -> None:
    trip = Trip(limit="max_total_cost_usd", figure=5.0, threshold=5.0)
    assert raised_limit(trip, {"max_total_cost_usd": 20.0}, 5.0) == 20.0
    assert raised_limit(trip, None, 5.0) == 10.0
    regen = Trip(limit="max_chain_regenerations", figure=1, threshold=1)
    assert raised_limit(regen, None, 1) == 2


def test_raised_limit_is_always_above_where_the_figure_stands() -> None:
    # A $1 limit tripped by a $5 step: doubling to $2 would trip again at once.
    trip = Trip(limit="max_total_cost_usd", figure=5.0, threshold=1.0)
    assert raised_limit(trip, None, 5.0) == 7.5
    with pytest.raises(InvalidInput, match="must be above the current 5"):
        raised_limit(trip, {"max_total_cost_usd": 4.0}, 5.0)


def test_chain_can_progress_until_every_open_step_hangs_on_a_blocked_one() -> None:
    a = step("a", StepStatus.PASSED)
    b = step("b", StepStatus.BLOCKED, [a])
    c = step("c", StepStatus.PENDING, [b])
    d = step("d", StepStatus.PENDING, [c])
    assert not can_progress([a, b, c, d], set())
    e = step("e", StepStatus.RUNNING, [a])
    assert can_progress([a, b, c, d, e], set())
    waiting = step("w", StepStatus.EVALUATING, [a])
    assert can_progress([a, b, waiting], {waiting.id})
    assert not can_progress([a, step("f", StepStatus.FAILED, [a])], set())
    assert not can_progress([a], set())  # everything finished: nothing to progress
