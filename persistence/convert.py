"""cattrs converters: database rows <-> records, and directive files -> specs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import cattrs
from cattrs import transform_error
from cattrs.errors import BaseValidationError, ForbiddenExtraKeysError

from .errors import InvalidInput
from .models import DirectiveSpec, StepSpec, validate_steps


def _make_converter(*, forbid_extra_keys: bool) -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=forbid_extra_keys)
    # psycopg already returns UUID and datetime objects; JSON brings strings.
    converter.register_structure_hook(
        uuid.UUID, lambda v, _: v if isinstance(v, uuid.UUID) else uuid.UUID(str(v))
    )
    converter.register_unstructure_hook(uuid.UUID, str)
    converter.register_structure_hook(
        datetime, lambda v, _: v if isinstance(v, datetime) else datetime.fromisoformat(v)
    )
    converter.register_unstructure_hook(datetime, lambda v: v.isoformat())
    return converter


row_converter = _make_converter(forbid_extra_keys=False)
"""Rows may carry columns a record does not name (joins, new migrations)."""

spec_converter = _make_converter(forbid_extra_keys=True)
"""Files must not: an unknown key is a typo the user wants to hear about."""


def _describe(exc: BaseException, prefix: str = "") -> str:
    """cattrs' first error as one line, ``key.path: what is wrong``."""
    if isinstance(exc, ForbiddenExtraKeysError):
        keys = ", ".join(sorted(exc.extra_fields))
        return f"{prefix}{keys}: unknown key"
    messages = transform_error(exc, path=prefix.rstrip(".") or "$")
    message, _, path = messages[0].rpartition(" @ ")
    path = path.removeprefix("$").lstrip(".") or "directive"
    if message.startswith("extra fields found"):
        extra = message[message.find("(") + 1 : message.rfind(")")]
        joined = f"{path}." if path != "directive" else ""
        return f"{joined}{extra}: unknown key"
    if message == "required field missing":
        message = "missing"
    return f"{path}: {message}"


def structure_spec(data: dict[str, Any]) -> DirectiveSpec:
    """Build and validate a DirectiveSpec from a parsed file; InvalidInput names the key."""
    if not isinstance(data, dict):
        raise InvalidInput("directive: expected a table of keys")
    try:
        spec = spec_converter.structure(data, DirectiveSpec)
    except (BaseValidationError, ForbiddenExtraKeysError) as exc:
        raise InvalidInput(_describe(exc)) from exc
    except (ValueError, TypeError) as exc:
        raise InvalidInput(str(exc)) from exc
    return spec.validate()


def structure_plan(data: Any, known: set[str] | None = None) -> list[StepSpec]:
    """A planner's JSON plan -> validated steps (DESIGN §7); InvalidInput says why not."""
    if not isinstance(data, dict) or "steps" not in data:
        raise InvalidInput('plan: expected an object with a "steps" list')
    if not isinstance(data["steps"], list):
        raise InvalidInput("plan.steps: expected a list")
    lenient = cattrs.Converter()
    try:
        steps = lenient.structure(data["steps"], list[StepSpec])
    except (BaseValidationError, ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(_describe(exc, "plan.steps")) from exc
    validate_steps(steps, known=known or set())
    return steps
