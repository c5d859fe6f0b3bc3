"""Checks applied where data enters: directive files, plans, engine calls.

Each failure is an ``InvalidInput`` whose message starts with the field name,
so a one-line error tells the user exactly what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .errors import InvalidInput

STEP_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


MAX_TEXT_CHARS = 20_000
"""Longest string of outside text (agent and verifier output) kept in a row."""


def strip_nul(value: Any, limit: int = MAX_TEXT_CHARS) -> Any:
    """Outside text made storable: NUL bytes removed from every string in ``value``
    (keys too) and each string cut to ``limit`` characters, keeping its end.

    For what programs print, which is kept as well as it can be; what a person
    types goes through ``reject_nul`` instead, so they hear of the mistake.
    """
    if isinstance(value, str):
        text = value.replace("\x00", "")
        return text if len(text) <= limit else "..." + text[-limit:]
    if isinstance(value, dict):
        return {strip_nul(k, limit): strip_nul(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strip_nul(v, limit) for v in value]
    return value


def reject_nul(field: str, value: Any) -> None:
    """PostgreSQL refuses NUL in text and jsonb: refuse it here, naming the field."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput(f"{field}: contains a NUL byte")
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_nul(f"{field}.{key}", key)
            reject_nul(f"{field}.{key}", item)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            reject_nul(f"{field}[{index}]", item)


def check_step_name(field: str, name: str) -> None:
    if not STEP_NAME.match(name or ""):
        raise InvalidInput(f"{field}: {name!r} is not kebab-case (like 'fix-parser')")


def check_unique(field: str, names: Iterable[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidInput(f"{field}: duplicate name {name!r}")
        seen.add(name)


def check_thresholds(green: float, yellow: float) -> None:
    if not 0.0 <= yellow <= green <= 1.0:
        raise InvalidInput(
            "confidence_threshold_yellow/confidence_threshold_green: need "
            f"0 <= yellow <= green <= 1, got yellow={yellow} green={green}"
        )


def check_positive(field: str, value: float | int | None) -> None:
    if value is not None and not value > 0:
        raise InvalidInput(f"{field}: must be positive, got {value}")


def check_non_negative(field: str, value: float | int | None) -> None:
    if value is not None and value < 0:
        raise InvalidInput(f"{field}: must not be negative, got {value}")


def check_not_blank(field: str, value: str) -> None:
    if not value or not value.strip():
        raise InvalidInput(f"{field}: must not be empty")
