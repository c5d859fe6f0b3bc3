"""Checks applied where data enters: directive files, plans, engine calls.

Each failure is an ``InvalidInput`` whose message starts with the field name,
so a one-line error tells the user exactly what to fix.
"""

from __future__ import annotations

import enum
import math
import re
import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from .errors import InvalidInput

STEP_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENGINE_ENV_PREFIX = "DIRECTORATE_"
"""The engine's own variables (its DSN, its home, the task variables): not an agent's to set."""

E = TypeVar("E", bound=enum.Enum)

MAX_COUNT = 1_000
"""Most rework cycles or chain regenerations a directive may allow."""
MAX_COST_USD = 1_000_000.0
MAX_TOTAL_TOKENS = 10**12
MAX_AGENT_TURNS = 10**6
MAX_WALL_TIME_MINUTES = 365 * 24 * 60.0
MAX_TIMEOUT_S = 30 * 24 * 3600.0
"""Limits above these are typing mistakes (1e308), not budgets."""


MAX_TEXT_CHARS = 20_000
"""Longest string of outside text (agent and verifier output) kept in a row."""

MAX_INPUT_CHARS = 1_000_000
"""Longest text a person may give in one field (a goal, a requirement, a task
plan): more than an agent reads in one session, and each task's instructions
repeat the goal."""
MAX_SPEC_CHARS = 4_000_000
"""Most text one directive may hold in all: the planning task's instructions
carry every goal, requirement, criterion and constraint."""
MAX_CHAIN_STEPS = 100
"""Most steps in one chain, given or planned: each is an actor and an agent session."""
MAX_TABLE_DEPTH = 20
"""Deepest nesting of lists and tables in a settings table (``[verifiers]`` needs 4);
deeper ones would exhaust the recursion of every check and copy made of them."""

_SURROGATE = re.compile(r"[\ud800-\udfff]")
"""Half of a UTF-16 pair: a Python string can hold one alone (JSON's ``"\\ud800"``),
UTF-8 cannot, so PostgreSQL would never get the text."""


def strip_nul(value: Any, limit: int = MAX_TEXT_CHARS) -> Any:
    """Outside text made storable: NUL bytes removed from every string in ``value``
    (keys too), lone surrogates replaced by U+FFFD, and each string cut to
    ``limit`` characters, keeping its end.

    For what programs print, which is kept as well as it can be; what a person
    types goes through ``reject_nul`` instead, so they hear of the mistake.
    """
    if isinstance(value, str):
        text = value.replace("\x00", "")
        text = text if len(text) <= limit else "..." + text[-limit:]
        return text if text.isascii() else _SURROGATE.sub("\ufffd", text)
    if isinstance(value, dict):
        return {strip_nul(k, limit): strip_nul(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strip_nul(v, limit) for v in value]
    return value


def reject_nul(field: str, value: Any) -> None:
    """PostgreSQL refuses NUL in text and jsonb, and text that is not UTF-8 (a lone
    surrogate): refuse them here, naming the field."""
    if _has_nul(value):  # every write passes here: name the path only when needed
        _name_nul(field, value)


def _unstorable(text: str) -> str | None:
    """Why PostgreSQL cannot store ``text``, or None."""
    if "\x00" in text:
        return "contains a NUL byte"
    if not text.isascii() and (found := _SURROGATE.search(text)):
        return f"contains {found.group()!r}, which is not valid UTF-8 text"
    return None


_PLAIN = frozenset({int, float, bool, type(None), uuid.UUID, datetime})
"""Types that hold no text: nothing to look into."""


def _bad_text(text: str) -> bool:
    return "\x00" in text or (not text.isascii() and _SURROGATE.search(text) is not None)


def _has_nul(value: Any) -> bool:
    # Every write's values and events pass here (a dozen small dicts a step): exact
    # types first, and strings in a dict looked at in place, without a call each.
    kind = type(value)
    if kind is str:
        return _bad_text(value)
    if kind in _PLAIN:
        return False
    if isinstance(value, str):  # an enum's value, say
        return _bad_text(value)
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _bad_text(key):
                return True
            if type(item) is str:
                if "\x00" in item or (not item.isascii() and _SURROGATE.search(item)):
                    return True
            elif type(item) not in _PLAIN and _has_nul(item):
                return True
        return False
    if isinstance(value, list | tuple):
        return any(type(item) not in _PLAIN and _has_nul(item) for item in value)
    return False


def _name_nul(field: str, value: Any) -> None:
    if isinstance(value, str):
        if why := _unstorable(value):
            raise InvalidInput(f"{field}: {why}")
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and (why := _unstorable(key)):
                raise InvalidInput(f"{field}: key {key!r} {why}")
            _name_nul(key_path(field, key), item)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _name_nul(f"{field}[{index}]", item)


def text_size(field: str, value: Any) -> int:
    """The characters of text in ``value`` (keys too); ``InvalidInput`` naming the
    first string longer than ``MAX_INPUT_CHARS``."""
    if isinstance(value, str):
        if len(value) > MAX_INPUT_CHARS:
            raise InvalidInput(
                f"{field}: {len(value)} characters, more than the {MAX_INPUT_CHARS} allowed"
            )
        return len(value)
    if isinstance(value, dict):
        return sum(
            text_size(f"{field} (a key)", k) + text_size(key_path(field, k), v)
            for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        return sum(text_size(f"{field}[{i}]", v) for i, v in enumerate(value))
    return 0


def check_total_size(field: str, size: int) -> None:
    if size > MAX_SPEC_CHARS:
        raise InvalidInput(
            f"{field}: {size} characters of text in all, more than the {MAX_SPEC_CHARS} allowed"
        )


def check_step_count(field: str, count: int) -> None:
    if count > MAX_CHAIN_STEPS:
        raise InvalidInput(f"{field}: {count} steps, more than the {MAX_CHAIN_STEPS} allowed")


def check_directory(field: str, value: str | None) -> None:
    """A folder that exists (a directive's ``local_path``: agents work in it)."""
    if value is None:
        return
    path = Path(value)
    if not path.exists():
        raise InvalidInput(f"{field}: {value} does not exist")
    if not path.is_dir():
        raise InvalidInput(f"{field}: {value} is not a directory")


def check_step_name(field: str, name: Any) -> None:
    check_text(field, name)
    if not STEP_NAME.match(name):
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


# ----------------------------------------------------------------- types and ranges
#
# What a person types may come from TOML, JSON or Python: each check below takes
# the value as it is, names the field, and never coerces ("3" is not 3, True is
# not 1, "one" is not ["o", "n", "e"]).


def key_path(field: str, key: object) -> str:
    """``field.key``, the key quoted when printing it bare would mislead."""
    text = str(key)
    if isinstance(key, str) and text and text.isprintable() and "." not in text:
        return f"{field}.{text}" if field else text
    return f"{field}[{key!r}]"


def preview(value: Any, limit: int = 60) -> str:
    """A value as a short one-line text: ``'three'``, ``true``, ``2.5``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def number(value: float | int) -> str:
    """``1000000`` rather than ``1e+06``; ``1e+308`` stays as it is."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return preview(value)


def kind(value: Any) -> str:
    """What a value is, in the words of a directive file."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if value is None:
        return "null"
    name = type(value).__name__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def expected(what: str, value: Any) -> str:
    """``expected <what>, got <value> (<kind>)``: the text after ``field:``."""
    if value is None:
        return f"expected {what}, got null"
    if isinstance(value, list | tuple | dict):
        return f"expected {what}, got {kind(value)} {preview(value)}"
    return f"expected {what}, got {preview(value)} ({kind(value)})"


def choice_problem(choices: type[E], value: Any) -> str:
    allowed = ", ".join(str(member.value) for member in choices)
    return f"must be one of {allowed}; got {preview(value)}"


def to_choice(field: str, value: Any, choices: type[E]) -> E:
    """``value`` as a member of the enum ``choices``; only its exact values are accepted."""
    if isinstance(value, choices):
        return value
    for member in choices:
        if isinstance(value, str) and value == member.value:
            return member
    raise InvalidInput(f"{field}: {choice_problem(choices, value)}")


def check_text(field: str, value: Any) -> None:
    """A string without NUL bytes."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: {expected('a string', value)}")
    reject_nul(field, value)


def check_optional_text(field: str, value: Any) -> None:
    if value is not None:
        check_text(field, value)


def check_required_text(field: str, value: Any) -> None:
    """A string with something in it besides spaces."""
    check_text(field, value)
    check_not_blank(field, value)


def check_text_list(field: str, value: Any) -> None:
    """A list of strings; a bare string is refused, not taken letter by letter."""
    if not isinstance(value, list):
        raise InvalidInput(f"{field}: {expected('a list of strings', value)}")
    for index, item in enumerate(value):
        check_text(f"{field}[{index}]", item)


def check_env_name(field: str, name: Any) -> None:
    """An environment variable's name (letters, digits, ``_``), not a ``DIRECTORATE_*`` one."""
    check_text(field, name)
    if not ENV_NAME.match(name):
        raise InvalidInput(f"{field}: {name!r} is not an environment variable name")
    if name.startswith(ENGINE_ENV_PREFIX):
        raise InvalidInput(f"{field}: DIRECTORATE_* variables are the engine's own")


def check_env_names(field: str, value: Any) -> None:
    """A list of environment variable names."""
    check_text_list(field, value)
    for index, name in enumerate(value):
        check_env_name(f"{field}[{index}]", name)


def check_env_table(field: str, value: Any) -> None:
    """A table of environment variables: valid names, string values without NUL."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{field}: {expected('a table of strings', value)}")
    for name, item in value.items():
        if not isinstance(name, str):
            raise InvalidInput(f"{field}: {expected('string keys', name)}")
        check_env_name(key_path(field, name) if name else field, name)
        check_text(key_path(field, name), item)


def check_list_of(
    field: str, value: Any, cls: type[Any], what: str, *, optional: bool = False
) -> None:
    """A list whose every item is an instance of ``cls`` (``what`` names it)."""
    if value is None and optional:
        return
    if not isinstance(value, list):
        raise InvalidInput(f"{field}: {expected(f'a list of {what}', value)}")
    for index, item in enumerate(value):
        if not isinstance(item, cls):
            raise InvalidInput(f"{field}[{index}]: {expected(what, item)}")


def check_instance(
    field: str, value: Any, cls: type[Any], what: str, *, optional: bool = False
) -> None:
    if value is None and optional:
        return
    if not isinstance(value, cls):
        raise InvalidInput(f"{field}: {expected(what, value)}")


def check_integer(
    field: str, value: Any, *, minimum: int = 0, maximum: int = MAX_COUNT, optional: bool = False
) -> None:
    """A whole number (not a bool, not 2.5, not "3") in ``minimum..maximum``."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field}: {expected('a whole number', value)}")
    if value < minimum:
        if minimum == 0:
            raise InvalidInput(f"{field}: must not be negative, got {value}")
        raise InvalidInput(f"{field}: must be at least {minimum}, got {value}")
    if value > maximum:
        raise InvalidInput(f"{field}: must be at most {maximum}, got {value}")


def check_number(field: str, value: Any, *, optional: bool = False) -> None:
    """A finite int or float; a bool is not a number here (``true`` is not 1.0)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{field}: {expected('a number', value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{field}: must be a finite number, got {value}")


def check_limit(field: str, value: Any, maximum: float, *, optional: bool = True) -> None:
    """A finite number above 0 and at most ``maximum`` (or None when ``optional``)."""
    if value is None and optional:
        return
    check_number(field, value)
    check_positive(field, value)
    check_at_most(field, value, maximum)


def check_at_most(field: str, value: float | int | None, maximum: float) -> None:
    if value is not None and value > maximum:
        raise InvalidInput(f"{field}: must be at most {number(maximum)}, got {number(value)}")


def check_threshold(field: str, value: Any) -> None:
    """A confidence threshold: a finite number in 0..1."""
    check_number(field, value)
    if not 0.0 <= value <= 1.0:
        which = field.rpartition("_")[2]
        raise InvalidInput(f"{field}: need 0 <= yellow <= green <= 1, got {which}={value}")


def check_json_value(field: str, value: Any) -> None:
    """What jsonb can keep: tables with string keys, lists, strings without NUL,
    finite numbers, booleans and null."""
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        check_number(field, value)
    elif isinstance(value, str):
        reject_nul(field, value)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_json_value(f"{field}[{index}]", item)
    elif isinstance(value, dict):
        check_table(field, value)
    else:
        raise InvalidInput(
            f"{field}: expected a string, number, boolean, list or table, got {kind(value)}"
        )


def check_optional_table(field: str, value: Any) -> None:
    if nested_deeper_than(value, MAX_TABLE_DEPTH):
        raise InvalidInput(f"{field}: nested more than {MAX_TABLE_DEPTH} levels deep")
    check_table(field, value, optional=True)


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and tables in ``value`` nest more than ``limit`` deep; without
    recursion, so that it can be asked of any value."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list | tuple):
            children = list(item)
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def check_table(field: str, value: Any, *, optional: bool = False) -> None:
    """A table (dict) with string keys whose values jsonb can keep."""
    if value is None and optional:
        return
    if not isinstance(value, dict):
        raise InvalidInput(f"{field}: {expected('a table', value)}")
    for key, item in value.items():
        if not isinstance(key, str):
            raise InvalidInput(f"{field}: {expected('string keys', key)}")
        if why := _unstorable(key):
            raise InvalidInput(f"{field}: key {key!r} {why}")
        check_json_value(key_path(field, key), item)
