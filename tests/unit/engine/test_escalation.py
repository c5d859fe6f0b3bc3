"""Circuit breakers and blocked-chain detection: the pure rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from directorate.actors.core.escalation import (
    Trip,
    can_progress,
    check_breakers,
    raised_limit,
    remaining_budget,
)
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


@pytest.mark.parametrize(
    ("limit", "total", "below", "at", "shown"),
    [
        ("max_total_tokens", "total_tokens", 999_999, 1_000_000, "1,000,000 tokens >= 1,000,000"),
        ("max_agent_turns", "total_agent_turns", 49, 50, "50 turns >= 50"),
    ],
)
def test_token_and_turn_breakers_trip_at_the_limit_not_below(
    limit: str, total: str, below: int, at: int, shown: str
) -> None:
    threshold = at
    assert check_breakers(directive(**{limit: threshold, total: below})) is None
    trip = check_breakers(directive(**{limit: threshold, total: at + 5}))
    assert trip == Trip(limit=limit, figure=at + 5, threshold=threshold)
    assert check_breakers(directive(**{total: 10**9})) is None  # no limit set: no breaker
    exact = check_breakers(directive(**{limit: threshold, total: at}))
    assert exact is not None and shown in exact.describe()


def test_breakers_are_checked_cost_then_tokens_then_turns() -> None:
    """One trip at a time: approving it raises its limit, the next one then trips."""
    over = {"max_total_tokens": 10, "total_tokens": 10}
    over |= {"max_agent_turns": 1, "total_agent_turns": 1}
    cost = check_breakers(directive(**over, max_total_cost_usd=1.0, total_cost_usd=1.0))
    assert cost is not None and cost.limit == "max_total_cost_usd"
    tokens = check_breakers(directive(**over))
    assert tokens == Trip(limit="max_total_tokens", figure=10, threshold=10)
    turns = check_breakers(directive(**(over | {"max_total_tokens": 11})))
    assert turns == Trip(limit="max_agent_turns", figure=1, threshold=1)


@pytest.mark.parametrize(
    ("limit", "figure", "threshold", "requested", "new"),
    [
        pytest.param("max_total_tokens", 1000, 1000, None, 2000, id="tokens-doubled"),
        pytest.param("max_total_tokens", 1901, 1000, None, 2852, id="tokens-above-the-figure"),
        pytest.param("max_total_tokens", 1000, 1000, 5000.0, 5000, id="tokens-as-asked"),
        pytest.param("max_agent_turns", 7, 5, None, 11, id="turns-rounded-up"),
        pytest.param("max_agent_turns", 5, 5, 8, 8, id="turns-as-asked"),
    ],
)
def test_raised_token_and_turn_limits_are_whole_numbers_above_the_figure(
    limit: str, figure: int, threshold: int, requested: float | None, new: int
) -> None:
    trip = Trip(limit=limit, figure=figure, threshold=threshold)
    raised = raised_limit(trip, {limit: requested} if requested is not None else None, figure)
    assert raised == new and isinstance(raised, int)


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        pytest.param(1000, "must be above the current 1000", id="equal-to-the-figure"),
        pytest.param(999, "must be above the current 1000", id="below-the-figure"),
        pytest.param(1500.5, "must be a whole number, got 1500.5", id="fractional"),
        pytest.param(float("nan"), "must be a whole number, got nan", id="nan"),
        pytest.param(float("inf"), "must be a whole number, got inf", id="infinity"),
        pytest.param(10**13, "must be at most 1000000000000", id="above-the-maximum"),
        pytest.param(True, "expected a number, got true", id="a-bool"),
        pytest.param("2000", "expected a number, got '2000'", id="a-string"),
    ],
)
def test_a_bad_raised_token_limit_is_refused_naming_the_limit(
    requested: object, message: str
) -> None:
    trip = Trip(limit="max_total_tokens", figure=1000, threshold=1000)
    with pytest.raises(InvalidInput, match=f"^max_total_tokens: .*{message}"):
        raised_limit(trip, {"max_total_tokens": requested}, 1000)  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("limit", "spent", "remaining"),
    [
        pytest.param(None, 3.0, None, id="no-dollar-limit"),
        pytest.param(5.0, 1.25, 3.75, id="what-is-left"),
        pytest.param(5.0, 4.71, 0.29, id="no-float-artefact"),
        pytest.param(1.0, 0.996, 0.0, id="rounded-down-to-a-cent"),
        pytest.param(1.0, 2.5, 0.0, id="overspent-is-nothing-left"),
        pytest.param(float("inf"), 2.5, None, id="raised-to-infinity"),
    ],
)
def test_remaining_budget_is_the_dollars_left_rounded_down(
    limit: float | None, spent: float, remaining: float | None
) -> None:
    assert remaining_budget(directive(max_total_cost_usd=limit, total_cost_usd=spent)) == remaining
