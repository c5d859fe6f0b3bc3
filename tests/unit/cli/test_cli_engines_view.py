"""How ``directorate engines`` shows an engine: its state, ages and directives."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from directorate.actors.cli import views
from directorate.persistence.models import EngineRecord

NOW = datetime(2026, 5, 4, 12, 0, 0, tzinfo=UTC)


def engine(*, stopped: bool = False, takes_over: bool = True) -> EngineRecord:
    return EngineRecord(
        id=uuid.UUID("3f2a91c0-0000-4000-8000-000000000000"),
        host="build-7",
        pid=4242,
        version="0.1.0",
        started_at=NOW - timedelta(minutes=5),
        heartbeat_at=NOW - timedelta(seconds=1.25),
        expires_at=NOW + timedelta(seconds=4),
        stopped_at=NOW if stopped else None,
        takes_over=takes_over,
    )


def extra(*, alive: bool = True, directives: int = 0, age: float = 1.25) -> dict[str, Any]:
    ids = [uuid.UUID(f"{i + 1:08x}-0000-4000-8000-000000000000") for i in range(directives)]
    return {"heartbeat_age_s": age, "alive": alive, "directives": ids}


@pytest.mark.parametrize(
    ("stopped", "alive", "state"),
    [(False, True, "alive"), (False, False, "expired"), (True, False, "stopped")],
)
def test_the_state_is_alive_expired_or_stopped(stopped: bool, alive: bool, state: str) -> None:
    record = views.engine_record(engine(stopped=stopped), extra(alive=alive))
    assert record["state"] == state
    assert views.engine_line(record, NOW).split()[1] == state


def test_a_daemon_owning_directives_in_one_line() -> None:
    record = views.engine_record(engine(), extra(directives=2))
    assert record["directives"] == [
        "00000001-0000-4000-8000-000000000000",
        "00000002-0000-4000-8000-000000000000",
    ]
    started = views.local_time(NOW - timedelta(minutes=5), NOW)
    assert views.engine_line(record, NOW) == (
        f"3f2a91c0  alive    build-7  pid 4242  0.1.0  started {started}"
        "  heartbeat 1.2 s ago  daemon  owns 2: 00000001, 00000002"
    )


def test_only_the_first_directives_are_named() -> None:
    line = views.engine_line(views.engine_record(engine(), extra(directives=5)), NOW)
    assert line.endswith("owns 5: 00000001, 00000002, 00000003 and 2 more")


def test_an_engine_that_does_not_take_over_owning_nothing() -> None:
    record = views.engine_record(engine(stopped=True, takes_over=False), extra(alive=False))
    assert views.engine_line(record, NOW).endswith("  run     owns nothing")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-0.2, "0.0 s ago"),  # the database's clock and ours may differ a little
        (0.04, "0.0 s ago"),
        (59.94, "59.9 s ago"),
        (59.96, "1m00s ago"),
        (185, "3m05s ago"),
        (2 * 3600 + 600, "2h10m ago"),
        (3 * 86400 + 4 * 3600, "3d04h ago"),
    ],
)
def test_ages_read_as_a_person_says_them(seconds: float, text: str) -> None:
    assert views.ago(seconds) == text


def test_a_start_today_is_a_time_of_day_else_a_date() -> None:
    now = datetime.now(UTC)
    today = views.local_time(now, now)
    assert len(today) == 8 and today.count(":") == 2
    earlier = views.local_time(now - timedelta(days=3), now)
    assert earlier == (now - timedelta(days=3)).astimezone().strftime("%Y-%m-%d %H:%M")
