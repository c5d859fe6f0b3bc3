"""cattrs converters: database rows <-> records, and directive files -> specs."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, get_origin

import attrs
import cattrs
from cattrs.cols import list_structure_factory
from cattrs.errors import (
    BaseValidationError,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)
from cattrs.gen import mapping_structure_factory
from cattrs.v import format_exception

from . import validation as check
from .errors import InvalidInput
from .models import DirectiveSpec, StepSpec, validate_steps

_Hook = Callable[[Any, Any], Any]


class _Unexpected(ValueError):
    """A value of the wrong kind, said without its field: ``_describe`` adds the path."""


def _make_converter(*, forbid_extra_keys: bool, strict: str | None = None) -> cattrs.Converter:
    """``strict`` (the word for a table: "a table", "an object") takes values as
    they are, for what people and planners write; rows come typed from psycopg."""
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
    if strict is not None:
        _register_strict_hooks(converter, strict)
    return converter


def _is_list(type_: Any) -> bool:
    return type_ is list or get_origin(type_) is list


def _is_dict(type_: Any) -> bool:
    return type_ is dict or get_origin(type_) is dict


def _register_strict_hooks(converter: cattrs.Converter, table: str) -> None:
    """cattrs by default coerces: str(5) for a string, int("3") and int(2.5) for an
    integer, float(True) for a number, list("one") == ["o", "n", "e"] for a list.
    These hooks refuse instead; each error is said relative to its field."""
    tables = table.split()[-1] + "s"

    def structure_str(value: Any, _: Any) -> str:
        if isinstance(value, str):
            return value
        raise _Unexpected(check.expected("a string", value))

    def structure_int(value: Any, _: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Unexpected(check.expected("a whole number", value))

    def structure_float(value: Any, _: Any) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise _Unexpected(f"too large, got {check.preview(value)}") from None
        raise _Unexpected(check.expected("a number", value))

    def structure_bool(value: Any, _: Any) -> bool:
        if isinstance(value, bool):
            return value
        raise _Unexpected(check.expected("true or false", value))

    def structure_enum(value: Any, cl: type[enum.Enum]) -> enum.Enum:
        if isinstance(value, cl):
            return value
        for member in cl:
            if isinstance(value, str) and value == member.value:
                return member
        raise _Unexpected(check.choice_problem(cl, value))

    def list_factory(cl: Any) -> _Hook:
        inner = list_structure_factory(cl, converter)

        def structure_list(value: Any, _: Any) -> list[Any]:
            if not isinstance(value, list):
                item = cl.__args__[0] if getattr(cl, "__args__", None) else Any
                what = "a list of " + (
                    "strings" if item is str else tables if attrs.has(item) else "values"
                )
                raise _Unexpected(check.expected(what, value))
            return inner(value, cl)  # type: ignore[no-any-return]

        return structure_list

    def dict_factory(cl: Any) -> _Hook:
        inner = mapping_structure_factory(cl, converter)

        def structure_dict(value: Any, _: Any) -> dict[Any, Any]:
            if not isinstance(value, dict):
                raise _Unexpected(check.expected(table, value))
            return inner(value, cl)  # type: ignore[no-any-return]

        return structure_dict

    def attrs_factory(cl: Any) -> _Hook:
        inner = converter.gen_structure_attrs_fromdict(cl)

        def structure_attrs(value: Any, _: Any) -> Any:
            if not isinstance(value, dict):
                raise _Unexpected(check.expected(table, value))
            return inner(value, cl)

        return structure_attrs

    converter.register_structure_hook(str, structure_str)
    converter.register_structure_hook(int, structure_int)
    converter.register_structure_hook(float, structure_float)
    converter.register_structure_hook(bool, structure_bool)
    # Enums by class too: a StrEnum is a str, and the str hook would take it first.
    for base in (enum.Enum, enum.StrEnum, enum.IntEnum):
        converter.register_structure_hook(base, structure_enum)
    converter.register_structure_hook_factory(_is_list, list_factory)
    converter.register_structure_hook_factory(_is_dict, dict_factory)
    converter.register_structure_hook_factory(attrs.has, attrs_factory)


row_converter = _make_converter(forbid_extra_keys=False)
"""Rows may carry columns a record does not name (joins, new migrations)."""

spec_converter = _make_converter(forbid_extra_keys=True, strict="a table")
"""Files must not: an unknown key is a typo the user wants to hear about."""

plan_converter = _make_converter(forbid_extra_keys=False, strict="an object")
"""Plans may carry keys of their own (a planner's notes), but the values are strict."""


def _first_error(
    exc: BaseException, path: str, type_: Any = None
) -> tuple[BaseException, str, Any]:
    """The first error cattrs collected, the path to it and the type wanted there."""
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        if with_notes:
            sub, note = with_notes[0]
            return _first_error(sub, f"{path}.{note.name}" if path else note.name, note.type)
        if without:
            return _first_error(without[0], path)
    elif isinstance(exc, IterableValidationError):
        items, rest = exc.group_exceptions()
        if items:
            sub, item = items[0]
            index = item.index
            where = check.key_path(path, index) if isinstance(index, str) else f"{path}[{index}]"
            return _first_error(sub, where, item.type)
        if rest:
            return _first_error(rest[0], path)
    return exc, path, type_


def _key_text(key: object) -> str:
    text = str(key)
    return text if text and text.isprintable() else repr(key)


def _describe(exc: BaseException, prefix: str = "") -> str:
    """cattrs' first error as one line, ``key.path: what is wrong``."""
    error, path, type_ = _first_error(exc, prefix)
    if isinstance(error, InvalidInput):
        # A spec refused a field when built: its message names the field.
        message = f"{path}.{error}" if path else str(error)
    elif isinstance(error, ForbiddenExtraKeysError):
        keys = ", ".join(sorted(_key_text(k) for k in error.extra_fields))
        message = f"{path}.{keys}: unknown key" if path else f"{keys}: unknown key"
    elif isinstance(error, KeyError):
        message = f"{path or 'directive'}: missing"
    elif isinstance(error, _Unexpected):
        message = f"{path or 'directive'}: {error}"
    else:
        message = f"{path or 'directive'}: {format_exception(error, type_)}"
    return " ".join(message.splitlines())


def structure_spec(data: dict[str, Any]) -> DirectiveSpec:
    """Build and validate a DirectiveSpec from a parsed file; InvalidInput names the key."""
    if not isinstance(data, dict):
        raise InvalidInput("directive: expected a table of keys")
    try:
        spec = spec_converter.structure(data, DirectiveSpec)
    except (BaseValidationError, ForbiddenExtraKeysError) as exc:
        raise InvalidInput(_describe(exc)) from exc
    except (ValueError, TypeError) as exc:
        raise InvalidInput(" ".join(str(exc).splitlines())) from exc
    return spec.validate()


def structure_plan(data: Any, known: set[str] | None = None) -> list[StepSpec]:
    """A planner's JSON plan -> validated steps (DESIGN §7); InvalidInput says why not."""
    if not isinstance(data, dict) or "steps" not in data:
        raise InvalidInput('plan: expected an object with a "steps" list')
    if not isinstance(data["steps"], list):
        raise InvalidInput("plan.steps: expected a list")
    try:
        steps = plan_converter.structure(data["steps"], list[StepSpec])
    except (BaseValidationError, ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(_describe(exc, "plan.steps")) from exc
    validate_steps(steps, known=known or set())
    return steps
