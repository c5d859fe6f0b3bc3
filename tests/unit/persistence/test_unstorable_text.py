"""reject_nul: what PostgreSQL cannot store (NUL, a lone surrogate) is refused, named
by its place, wherever it is nested; everything else passes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from directorate.persistence.errors import InvalidInput
from directorate.persistence.validation import _has_nul, reject_nul


class Kind(str):
    """A str subclass, as an enum's value is."""


class Table(dict[str, Any]):
    pass


REFUSED: list[tuple[Any, str]] = [
    ("a\x00b", "summary: contains a NUL byte"),
    ({"a": "x\x00"}, "summary.a: contains a NUL byte"),
    ({"a": ["ok", {"b": "y\x00"}]}, "summary.a[1].b: contains a NUL byte"),
    ({"a\x00": 1}, "summary: key 'a\\x00' contains a NUL byte"),
    ({"k": "\ud800"}, "summary.k: contains '\\ud800', which is not valid UTF-8 text"),
    (("fine", "a\x00"), "summary[1]: contains a NUL byte"),
    ({"deep": [[[{"x": "\x00"}]]]}, "summary.deep[0][0][0].x: contains a NUL byte"),
    ({uuid.UUID(int=1): "\x00"}, "contains a NUL byte"),  # a value under a key not text
    (Kind("a\x00"), "summary: contains a NUL byte"),  # a str subclass
    ({"k": Kind("\ud800")}, "summary.k: contains '\\ud800'"),
    ([1, None, {"x": ("ok", "\udfff")}], "summary[2].x[1]: contains '\\udfff'"),
    ({"a": 1, "b": 2.0, "c": None, "d": "ok", "e": "\x00"}, "summary.e: contains a NUL"),
    (Table({"k": "\x00"}), "summary.k: contains a NUL byte"),  # a dict subclass
]

ACCEPTED: list[Any] = [
    "plain",
    {"k": "\\u0000"},  # the six characters, as text: storable
    {"k": "café ✓ 𝄞"},  # not ASCII, valid UTF-8
    {1: "x", uuid.UUID(int=2): "y", None: "z"},  # keys that are not text
    {"u": uuid.UUID(int=3), "t": datetime(2026, 1, 1, tzinfo=UTC), "s": {1, 2}},
    [],
    {},
    3.5,
    None,
    {"n": float("nan")},
    Kind("plain"),
    {"a": True, "b": [1, 2.5, None, uuid.UUID(int=4)], "c": ("x", "é")},
]


@pytest.mark.parametrize(("value", "message"), REFUSED)
def test_unstorable_text_is_refused_by_its_place(value: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        reject_nul("summary", value)
    assert message in str(raised.value)
    assert _has_nul(value)


@pytest.mark.parametrize("value", ACCEPTED)
def test_storable_values_pass(value: Any) -> None:
    reject_nul("summary", value)
    assert not _has_nul(value)
