"""Directive files (TOML): the structure of ``DirectiveSpec``, loaded with cattrs.

Paths in a file are relative to the file: ``local_path``, and agent command
entries that start with ``./`` or ``../`` (a script shipped next to the file).
Every problem is one ``InvalidInput`` line that names the file and the key.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeGuard

from directorate.persistence.convert import structure_spec
from directorate.persistence.errors import InvalidInput
from directorate.persistence.models import DirectiveSpec
from directorate.persistence.validation import check_directory


def load_directive_file(path: str | Path) -> DirectiveSpec:
    """Read, resolve and validate a directive file; ``InvalidInput`` names the key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path}: not valid TOML: {exc}") from exc
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise InvalidInput(f"{path}: nested too deeply to read") from None
    try:
        return structure_spec(resolve_paths(data, path.resolve().parent))
    except InvalidInput as exc:
        raise InvalidInput(f"{path}: {exc}") from exc


def check_local_path(path: str | Path, spec: DirectiveSpec) -> None:
    """The file's ``local_path`` is a folder on this machine (``Engine.submit`` checks
    it too; here first, so that nothing is copied and the file is named)."""
    try:
        check_directory("local_path", spec.local_path)
    except InvalidInput as exc:
        raise InvalidInput(f"{path}: {exc}") from None


def resolve_paths(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A copy of ``data`` with its file-relative paths made absolute.

    Only strings that can be paths are touched: anything else (a number, a list,
    a NUL byte, which ``Path.resolve`` would raise on) is left for
    ``structure_spec`` to refuse, naming the key.
    """
    data = dict(data)
    local_path = data.get("local_path")
    if _is_path(local_path):
        try:
            data["local_path"] = str((folder / Path(local_path).expanduser()).resolve())
        except (OSError, RuntimeError) as exc:  # no home directory for "~", a symlink loop
            raise InvalidInput(f"local_path: cannot resolve {local_path!r}: {exc}") from exc
    agent = data.get("agent")
    if isinstance(agent, dict) and isinstance(agent.get("command"), list):
        agent = dict(agent)
        agent["command"] = [_resolve_arg(arg, folder) for arg in agent["command"]]
        data["agent"] = agent
    return data


def _resolve_arg(arg: Any, folder: Path) -> Any:
    if _is_path(arg) and arg.startswith(("./", "../")):
        return str((folder / arg).resolve())
    return arg


def _is_path(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value) and "\x00" not in value
