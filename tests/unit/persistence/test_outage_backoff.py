"""Outage: the backoff between attempts and one log line per interval."""

from __future__ import annotations

import logging

import pytest

from directorate.persistence.outage import FIRST_DELAY_S, Outage


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def outage(clock: Clock, **kwargs: float) -> Outage:
    return Outage(
        "the writer",
        logger=logging.getLogger("test.outage"),
        clock=clock,
        jitter=lambda: 1.0,
        **kwargs,
    )


def test_pauses_double_from_the_first_delay_up_to_the_cap() -> None:
    clock = Clock()
    o = outage(clock, max_delay_s=1.0)
    pauses = [o.failed(OSError("refused")) for _ in range(8)]
    assert pauses[0] == pytest.approx(FIRST_DELAY_S)
    assert pauses[:5] == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8])
    assert pauses[5:] == pytest.approx([1.0, 1.0, 1.0])
    assert o.attempts == 8


def test_jitter_scales_each_pause() -> None:
    o = Outage("x", logger=logging.getLogger("t"), clock=Clock(), jitter=lambda: 1.5)
    assert o.failed(OSError()) == pytest.approx(FIRST_DELAY_S * 1.5)


def test_one_log_line_per_interval_however_many_attempts(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    o = outage(clock, log_interval_s=30.0)
    with caplog.at_level(logging.WARNING, logger="test.outage"):
        for _ in range(100):  # 100 attempts over 99 s: lines at 0, 30, 60 and 90 s
            o.failed(OSError("connection refused\nmore detail"), "12 writes waiting")
            clock.now += 1.0
        o.over()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5, lines
    assert "unavailable for 0 s (1 attempts; connection refused); 12 writes waiting" in lines[0]
    assert "unavailable for 90 s (91 attempts" in lines[3]
    assert lines[4] == "the writer: the database is back after 100 s"
