"""Riding out a database outage: backoff with jitter, and one log line per interval.

Whoever waits for the database (the writer, an engine's reads, the command
listener) keeps one ``Outage`` while it is away. It says how long to pause before
the next attempt (exponential, capped, with jitter so that many waiters do not
knock at once) and logs what is waiting once per interval instead of once per
attempt, so a five-minute outage is a handful of lines, not thousands.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

FIRST_DELAY_S = 0.05
MAX_DELAY_S = 5.0
"""The longest pause between attempts: the database is found again within this."""
LOG_INTERVAL_S = 30.0


class Outage:
    """One waiter's view of one stretch of time without the database."""

    def __init__(
        self,
        what: str,
        *,
        logger: logging.Logger,
        max_delay_s: float = MAX_DELAY_S,
        log_interval_s: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = lambda: random.uniform(0.5, 1.5),
    ) -> None:
        self.what = what
        self.logger = logger
        self.max_delay_s = max_delay_s
        self.log_interval_s = log_interval_s
        self.clock = clock
        self.jitter = jitter
        self.started = clock()
        self.attempts = 0
        self._delay = FIRST_DELAY_S
        self._next_log = self.started
        self._logged = False

    @property
    def elapsed_s(self) -> float:
        return self.clock() - self.started

    def failed(self, error: BaseException, waiting: str = "") -> float:
        """Count a failed attempt; returns the seconds to pause before the next one."""
        self.attempts += 1
        now = self.clock()
        if now >= self._next_log:
            self._next_log = now + self.log_interval_s
            self._logged = True
            self.logger.warning(
                "%s: the database has been unavailable for %.0f s (%d attempts; %s)%s;"
                " retrying every %.0f s at most",
                self.what,
                now - self.started,
                self.attempts,
                _one_line(error),
                f"; {waiting}" if waiting else "",
                self.max_delay_s,
            )
        pause = self._delay * self.jitter()
        self._delay = min(self._delay * 2, self.max_delay_s)
        return pause

    def over(self) -> None:
        """The database answered again."""
        if self._logged:
            self.logger.warning(
                "%s: the database is back after %.0f s", self.what, self.clock() - self.started
            )


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__
