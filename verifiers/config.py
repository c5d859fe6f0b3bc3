"""Verifiers from a directive file's ``[verifiers]`` table (or a plan step's ``verifiers``).

::

    [verifiers]
    auto_detect = true            # add the project's own checks (default true)
    pass_env = ["NPM_TOKEN"]      # optional: engine variables every check gets
    env = { CI = "1" }            # optional: set for every check (and the judge)

    [[verifiers.command]]
    name = "unit-tests"           # unique
    run = "python -m unittest"    # string (split with shlex, no shell) or argv list
    type = "test"                 # test, lint, build, typecheck, custom (default custom)
    weight = 1.0                  # >= 0 (default 1.0)
    required = true               # a failure makes the step red (default true)
    timeout_s = 600               # > 0 (default 600)
    junit_xml = "report.xml"      # optional: score by the report's test cases
    cwd = "backend"               # optional: relative to the repository
    env = { CI = "1" }            # optional: this check's own, over [verifiers] env

    [verifiers.llm]
    kind = "claude-code"          # claude-code, codex or command (the default)
    command = ["claude"]          # the judge; optional for a tool kind (its binary)
    model = "claude-sonnet-4-5"   # optional: the tool's --model
    extra_args = []               # optional: after the kind's own arguments
    timeout_s = 300
    prices = { "gpt-5" = { input = 1.25, output = 10.0 } }   # optional, as [agent.prices]

A tool kind runs the judge as it knows how (read-only, no session kept) and reads
the verdict from the tool's answer, and what the session cost from its report. The
``command`` kind runs ``command`` as written, the prompt on stdin; the verdict is the
last JSON object of its output with ``passed`` and ``score``, its cost a JSON report
line's ``cost_usd`` or ``total_cost_usd`` if it prints one.

Every check (configured or detected) and the judge command run in a clean
environment (:mod:`.environment`): the base variables (``PATH``, ``HOME``,
locale...), the engine's variables named in ``pass_env``, then ``env``; never the
engine's DSN or other secrets. Values of secret-looking passed variables are
masked in their output.

Configured commands are required by default whatever their type: whoever writes a
check down wants it to hold (auto-detected lint and type checks are not required).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from .command import DEFAULT_TIMEOUT_S, CommandVerifier
from .detect import auto_detect_verifiers
from .environment import ENGINE_PREFIX, valid_name
from .errors import InvalidVerifierConfig
from .llm import COMMAND_KIND, LlmVerifier
from .llm import DEFAULT_TIMEOUT_S as LLM_TIMEOUT_S
from .records import Verifier, VerifierType
from .tools import KINDS, parse_prices

_TOP_KEYS = {"auto_detect", "command", "llm", "pass_env", "env"}
_COMMAND_KEYS = {
    "name",
    "run",
    "type",
    "weight",
    "required",
    "timeout_s",
    "junit_xml",
    "cwd",
    "env",
}
_LLM_KEYS = {
    "kind",
    "command",
    "model",
    "extra_args",
    "prices",
    "timeout_s",
    "name",
    "weight",
    "required",
}
INF = float("inf")
_COMMAND_TYPES = [t.value for t in VerifierType if t is not VerifierType.LLM]


def build_verifiers(settings: dict[str, Any] | None, repo: Path) -> list[Verifier]:
    """The verifiers ``settings`` describe for the working copy at ``repo``.

    Raises :class:`InvalidVerifierConfig` naming the first offending key. With
    ``auto_detect`` (the default), detected checks are added unless a configured
    command has the same name.
    """
    settings = _table({} if settings is None else settings, "verifiers")
    _known(settings, _TOP_KEYS, "verifiers")
    auto = _typed(settings, "auto_detect", bool, "verifiers", True)
    pass_env = _names(settings.get("pass_env"), "verifiers.pass_env")
    shared_env = _env(settings.get("env"), "verifiers.env")
    entries = settings.get("command", [])
    if not isinstance(entries, list):
        raise InvalidVerifierConfig("verifiers.command", "must be a list of tables")
    verifiers: list[Verifier] = []
    names: set[str] = set()
    for i, entry in enumerate(entries):
        command = _command(entry, f"verifiers.command[{i}]", pass_env, shared_env)
        if command.name in names:
            raise InvalidVerifierConfig(
                f"verifiers.command[{i}].name", f"duplicate name {command.name!r}"
            )
        names.add(command.name)
        verifiers.append(command)
    if settings.get("llm") is not None:
        verifiers.append(_llm(settings["llm"], "verifiers.llm", pass_env, shared_env))
    if auto:
        for found in auto_detect_verifiers(repo).verifiers:
            if found.name not in names:
                found.pass_env = list(pass_env)
                found.env = {**shared_env, **(found.env or {})} or None
                verifiers.append(found)
    return verifiers


def _command(
    entry: Any, key: str, pass_env: list[str], shared_env: dict[str, str]
) -> CommandVerifier:
    entry = _table(entry, key)
    _known(entry, _COMMAND_KEYS, key)
    name = _typed(entry, "name", str, key, None)
    if not name or not name.strip():
        raise InvalidVerifierConfig(f"{key}.name", "required: a non-empty string")
    kind = _typed(entry, "type", str, key, VerifierType.CUSTOM.value)
    if kind not in _COMMAND_TYPES:
        hint = " (use [verifiers.llm] for a judge)" if kind == VerifierType.LLM else ""
        raise InvalidVerifierConfig(
            f"{key}.type",
            f"unknown verifier type {kind!r}; one of {', '.join(_COMMAND_TYPES)}{hint}",
        )
    env = {**shared_env, **_env(entry.get("env"), f"{key}.env")}
    return CommandVerifier(
        name,
        _argv(entry.get("run"), f"{key}.run"),
        cwd=_typed(entry, "cwd", str, key, None),
        timeout_s=_positive(entry, "timeout_s", key, DEFAULT_TIMEOUT_S),
        env=env or None,
        pass_env=pass_env,
        verifier_type=VerifierType(kind),
        weight=_weight(entry, key),
        required=_typed(entry, "required", bool, key, True),
        junit_xml=_typed(entry, "junit_xml", str, key, None),
    )


def _llm(entry: Any, key: str, pass_env: list[str], shared_env: dict[str, str]) -> LlmVerifier:
    entry = _table(entry, key)
    _known(entry, _LLM_KEYS, key)
    kind = _typed(entry, "kind", str, key, COMMAND_KIND)
    if kind not in KINDS:
        known = ", ".join(sorted(KINDS))
        raise InvalidVerifierConfig(f"{key}.kind", f"unknown kind {kind!r}; one of {known}")
    command = entry.get("command")
    if command is not None or kind == COMMAND_KIND:
        command = _argv(command, f"{key}.command")
    model = _typed(entry, "model", str, key, None)
    if model is not None and (not model.strip() or "\x00" in model):
        raise InvalidVerifierConfig(f"{key}.model", "must be a non-empty model name")
    if model is not None and kind == COMMAND_KIND:
        raise InvalidVerifierConfig(
            f"{key}.model", "only for a tool kind; a command names its model itself"
        )
    try:
        prices = parse_prices(entry.get("prices"), f"{key}.prices")
    except ValueError as exc:
        where, _, why = str(exc).partition(": ")
        raise InvalidVerifierConfig(where, why) from None
    return LlmVerifier(
        command,
        kind=kind,
        model=model,
        extra_args=_args(entry.get("extra_args"), f"{key}.extra_args"),
        prices=prices,
        name=_typed(entry, "name", str, key, "llm-judge"),
        timeout_s=_positive(entry, "timeout_s", key, LLM_TIMEOUT_S),
        weight=_weight(entry, key),
        required=_typed(entry, "required", bool, key, False),
        env=shared_env,
        pass_env=pass_env,
    )


def _args(value: Any, key: str) -> list[str]:
    """A list of arguments, passed as written (no NUL: it cannot be in an argv)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise InvalidVerifierConfig(key, "must be a list of strings")
    if any("\x00" in a for a in value):
        raise InvalidVerifierConfig(key, "contains a NUL byte")
    return list(value)


def _env(value: Any, key: str) -> dict[str, str]:
    """A table of environment variables (names checked, string values without NUL)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidVerifierConfig(key, "must be a table of strings")
    for name, item in value.items():
        _env_name(name, key)
        if not isinstance(item, str):
            raise InvalidVerifierConfig(key, "must be a table of strings")
        if "\x00" in item:
            raise InvalidVerifierConfig(f"{key}.{name}", "contains a NUL byte")
    return dict(value)


def _names(value: Any, key: str) -> list[str]:
    """A list of environment variable names."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidVerifierConfig(key, "must be a list of environment variable names")
    for i, name in enumerate(value):
        _env_name(name, f"{key}[{i}]")
    return list(value)


def _env_name(name: Any, key: str) -> None:
    if not valid_name(name):
        raise InvalidVerifierConfig(key, f"{name!r} is not an environment variable name")
    if name.startswith(ENGINE_PREFIX):
        raise InvalidVerifierConfig(key, f"{name}: DIRECTORATE_* variables are the engine's own")


def _table(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidVerifierConfig(key, f"must be a table, not {type(value).__name__}")
    return value


def _known(table: dict[str, Any], allowed: set[str], key: str) -> None:
    for name in table:
        if name not in allowed:
            raise InvalidVerifierConfig(
                f"{key}.{name}", f"unknown key; expected one of {', '.join(sorted(allowed))}"
            )


def _typed(table: dict[str, Any], name: str, kind: type, key: str, default: Any) -> Any:
    value = table.get(name)
    if value is None:
        return default
    # bool is an int: never accept one for the other
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise InvalidVerifierConfig(f"{key}.{name}", f"must be a {kind.__name__}")
    return value


def _argv(value: Any, key: str) -> str | list[str]:
    if isinstance(value, str) and value.strip():
        try:
            shlex.split(value)
        except ValueError as exc:
            raise InvalidVerifierConfig(key, f"cannot be split into arguments: {exc}") from exc
        return value
    if isinstance(value, list) and value and all(isinstance(a, str) for a in value):
        return value
    raise InvalidVerifierConfig(key, "required: a command string or a non-empty list of strings")


def _number(table: dict[str, Any], name: str, key: str, low: float, what: str) -> float | None:
    """``table[name]`` as a finite number of at least ``low`` (``what`` says so if not)."""
    value = table.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value < INF:
        raise InvalidVerifierConfig(f"{key}.{name}", f"must be {what}")
    return float(value)


def _positive(table: dict[str, Any], name: str, key: str, default: float) -> float:
    value = _number(table, name, key, 0.0, "a positive number")
    if value == 0.0:
        raise InvalidVerifierConfig(f"{key}.{name}", "must be a positive number")
    return default if value is None else value


def _weight(table: dict[str, Any], key: str) -> float:
    value = _number(table, "weight", key, 0.0, "a number >= 0")
    return 1.0 if value is None else value
