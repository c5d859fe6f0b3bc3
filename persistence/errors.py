"""The one exception hierarchy of directorate.

Each class's docstring is its default message, so ``raise NotFound()`` still
says something useful; pass a message to be precise.
"""

from __future__ import annotations


class DirectorateError(Exception):
    """Something went wrong in directorate."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip().splitlines()[0])


class NotFound(DirectorateError):
    """No such record."""


class InvalidTransition(DirectorateError):
    """That status change is not allowed."""

    def __init__(self, from_status: str, to_status: str, what: str = "status") -> None:
        self.from_status = str(from_status)
        self.to_status = str(to_status)
        super().__init__(f"invalid {what} transition: {self.from_status} -> {self.to_status}")


class InvalidInput(DirectorateError):
    """The input is not valid."""


class CircuitBreakerTripped(DirectorateError):
    """A circuit breaker tripped."""


class PersistenceUnavailable(DirectorateError):
    """PostgreSQL is not reachable."""


class RunnerError(DirectorateError):
    """The task runner failed."""


class VerifierError(DirectorateError):
    """A verifier failed to run."""


class EngineTimeout(DirectorateError):
    """The engine did not answer in time."""


class LeaseLost(DirectorateError):
    """This engine no longer holds the directive's lease: another engine drives it."""
