"""reject_nul: what PostgreSQL cannot store (NUL, a lone surrogate) is refused, named
by its place, wherever it is nested; everything else passes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from directorate.persistence.errors import InvalidInput
from directorate.persistence.validation import _has_nul, reject_nul

REFUSED: list[tuple[Any, str]] = [
    ("a\x00b", "summary: contains a NUL byte"),
    ({"a": "x\x00"}, "summary.a: contains a NUL byte"),
    ({"a": ["ok", {"b": "y\x00"}]}, "summary.a[1].b: contains a NUL byte"),
    ({"a\x00": 1}, "summary: key 'a\\x00' contains a NUL byte"),
    ({"k": "\ud800"}, "summary.k: contains '\\ud800', which is not valid UTF-8 text"),
    (("fine", "a\x00"), "summary[1]: contains a NUL byte"),
    ({"deep": [[[{"x": "\x00"}]]]}, "summary.deep[0][0][0].x: contains a NUL byte"),
    ({uuid.UUID(int=1): "\x00"}, "contains a NUL byte"),  # a value under a key not text
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
