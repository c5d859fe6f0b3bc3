"""Finding a project's own checks from its configuration files.

A check is proposed only when its configuration is present *and* its tool is on
PATH. Everything that was configured but not proposed is reported in
``Detection.skipped`` with the reason, so "why did nothing run?" has an answer;
ecosystems with no configuration at all (no Cargo.toml, ...) are not mentioned.
"""

from __future__ import annotations

import configparser
import json
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any, NamedTuple

import attrs

from .command import CommandVerifier
from .records import VerifierType

T = VerifierType
#: tests and builds decide; lint and type checks inform, with half the weight
_WEIGHT = {T.TEST: 1.0, T.BUILD: 1.0, T.LINT: 0.5, T.TYPECHECK: 0.5}
_REQUIRED = {T.TEST: True, T.BUILD: True, T.LINT: False, T.TYPECHECK: False}
NPM_PLACEHOLDER = "no test specified"
_SKIP_DIRS = {"node_modules", "venv", "__pycache__", "target", "build", "dist", "vendor"}


class Skip(NamedTuple):
    """A check that was configured but not proposed."""

    name: str
    reason: str


@attrs.frozen(kw_only=True)
class Detection:
    """What :func:`auto_detect_verifiers` found (``verifiers``) and left out (``skipped``)."""

    verifiers: list[CommandVerifier] = attrs.field(factory=list)
    skipped: list[Skip] = attrs.field(factory=list)


class _Finder:
    def __init__(self) -> None:
        self.found = Detection()

    def propose(self, name: str, tool: str, argv: list[str], kind: T, **options: Any) -> None:
        """Propose ``argv`` if ``tool`` is on PATH; otherwise record why not."""
        executable = shutil.which(tool)
        if executable is None:
            self.skip(name, f"{tool} not on PATH")
            return
        self.found.verifiers.append(
            CommandVerifier(
                name,
                argv,
                verifier_type=kind,
                weight=_WEIGHT[kind],
                required=_REQUIRED[kind],
                **options,
            )
        )

    def skip(self, name: str, reason: str) -> None:
        self.found.skipped.append(Skip(name, reason))


def auto_detect_verifiers(path: str | Path) -> Detection:
    """The checks the project at ``path`` configures for itself (see the module doc).

    Python: pytest (when there are tests), ruff, mypy (when configured). Node: ``npm run
    X`` for the scripts test, lint, typecheck and build. Rust: cargo build, test, clippy.
    Go: go build, vet, test. Make: ``make test`` when the Makefile has a test target.
    """
    root = Path(path)
    finder = _Finder()
    if not root.is_dir():
        return finder.found
    _python(root, finder)
    _node(root, finder)
    _rust(root, finder)
    _go(root, finder)
    _make(root, finder)
    return finder.found


def _python(root: Path, finder: _Finder) -> None:
    pyproject = _read_toml(root / "pyproject.toml")
    setup_cfg = _read_ini(root / "setup.cfg")
    if _has_python_tests(root):
        # ``python -m pytest`` with the ``python`` on PATH (the project's environment, when
        # activated, or the engine's own bin folder first): it puts the repository on
        # sys.path like the project's developers run it, and the engine's interpreter may
        # lack the project's dependencies. ``pytest`` on PATH is checked as the evidence
        # that pytest is installed at all.
        python = next((p for p in ("python", "python3") if shutil.which(p)), None)
        if python is None:
            finder.skip("pytest", "python not on PATH")
        else:
            argv = [python, "-m", "pytest", "-q"]
            # No __pycache__ folders left in the working copy: they would show up as the
            # agent's changes (pytest's own cache folder ignores itself).
            env = {"PYTHONDONTWRITEBYTECODE": "1"}
            finder.propose("pytest", "pytest", argv, T.TEST, junit_option="--junitxml", env=env)
    elif pyproject is not None or (root / "setup.py").exists():
        finder.skip("pytest", "no tests (no tests/ folder or test_*.py files)")
    ruff = [f for f in ("ruff.toml", ".ruff.toml") if (root / f).is_file()]
    if ruff or "ruff" in _tool(pyproject):
        finder.propose("ruff", "ruff", ["ruff", "check", "."], T.LINT)
    mypy = _tool(pyproject).get("mypy")
    for ini in ("mypy.ini", ".mypy.ini"):
        parsed = _read_ini(root / ini)
        if parsed is not None and parsed.has_section("mypy"):
            mypy = dict(parsed["mypy"])
    if mypy is None and setup_cfg is not None and setup_cfg.has_section("mypy"):
        mypy = dict(setup_cfg["mypy"])
    if isinstance(mypy, dict):
        # With ``files`` configured, mypy knows what to check; ``mypy .`` would override it.
        argv = ["mypy"] if mypy.get("files") else ["mypy", "."]
        finder.propose("mypy", "mypy", argv, T.TYPECHECK)


def _has_python_tests(root: Path) -> bool:
    for folder in ("tests", "test"):
        if (root / folder).is_dir() and _any_file(root / folder, "*.py", depth=3):
            return True
    return _any_file(root, "test_*.py", depth=2) or _any_file(root, "*_test.py", depth=2)


def _any_file(folder: Path, pattern: str, depth: int) -> bool:
    """Whether a file matching ``pattern`` is within ``depth`` levels, bounded so that a
    big repository (or a virtualenv inside it) does not make detection slow."""
    if any(p.is_file() for p in folder.glob(pattern)):
        return True
    if depth <= 1:
        return False
    try:
        children = [c for c in folder.iterdir() if c.is_dir()]
    except OSError:
        return False
    return any(
        _any_file(child, pattern, depth - 1)
        for child in children
        if not child.name.startswith(".") and child.name not in _SKIP_DIRS
    )


def _node(root: Path, finder: _Finder) -> None:
    try:
        package = json.loads((root / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    scripts = package.get("scripts") if isinstance(package, dict) else None
    if not isinstance(scripts, dict):
        return
    kinds = {"build": T.BUILD, "test": T.TEST, "lint": T.LINT, "typecheck": T.TYPECHECK}
    for script, kind in kinds.items():
        body = scripts.get(script)
        if not isinstance(body, str) or not body.strip():
            continue
        if script == "test" and NPM_PLACEHOLDER in body:
            finder.skip("npm-test", "placeholder test script (npm init's default)")
            continue
        finder.propose(f"npm-{script}", "npm", ["npm", "run", script], kind)


def _rust(root: Path, finder: _Finder) -> None:
    if not (root / "Cargo.toml").is_file():
        return
    finder.propose("cargo-build", "cargo", ["cargo", "build"], T.BUILD)
    finder.propose("cargo-test", "cargo", ["cargo", "test"], T.TEST)
    if shutil.which("cargo") is None:
        finder.skip("cargo-clippy", "cargo not on PATH")
    else:  # clippy is a separate component; cargo without it fails with "no such command"
        finder.propose("cargo-clippy", "cargo-clippy", ["cargo", "clippy"], T.LINT)


def _go(root: Path, finder: _Finder) -> None:
    if not (root / "go.mod").is_file():
        return
    finder.propose("go-build", "go", ["go", "build", "./..."], T.BUILD)
    finder.propose("go-vet", "go", ["go", "vet", "./..."], T.LINT)
    finder.propose("go-test", "go", ["go", "test", "./..."], T.TEST)


_MAKE_TEST_TARGET = re.compile(r"^test\s*:(?!=)", re.MULTILINE)


def _make(root: Path, finder: _Finder) -> None:
    for name in ("GNUmakefile", "makefile", "Makefile"):
        try:
            text = (root / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if _MAKE_TEST_TARGET.search(text):
            finder.propose("make-test", "make", ["make", "test"], T.TEST)
        return  # make reads the first of these that exists, and only that one


def _read_toml(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return None


def _tool(pyproject: dict[str, Any] | None) -> dict[str, Any]:
    tool = (pyproject or {}).get("tool")
    return tool if isinstance(tool, dict) else {}


def _read_ini(path: Path) -> configparser.ConfigParser | None:
    if not path.is_file():
        return None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    return parser
