"""Named SQL queries from ``sql/queries.sql``, loaded once."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- name: ([a-z_]+)\s*$", re.MULTILINE)


@cache
def _all() -> dict[str, str]:
    text = resources.files(__package__).joinpath("sql/queries.sql").read_text(encoding="utf-8")
    parts = _HEADER.split(text)[1:]
    return {
        name: body.strip().rstrip(";") for name, body in zip(parts[::2], parts[1::2], strict=True)
    }


def query(name: str) -> str:
    try:
        return _all()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in sql/queries.sql") from None
