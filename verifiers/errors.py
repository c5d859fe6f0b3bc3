"""The verifiers package's own error (it imports nothing from the rest of the engine)."""

from __future__ import annotations


class InvalidVerifierConfig(ValueError):
    """The verifier configuration is not valid.

    The message starts with the offending key, e.g.
    ``verifiers.command[0].timeout_s: must be a positive number``, so the engine
    can pass it on to the person who wrote the directive file as it is.
    """

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")
