"""No import cycle among directorate's modules (issue 14: front ends in their own house).

Module-level imports only (those under ``if TYPE_CHECKING:`` and inside functions
run later, so they cannot leave a module half-initialised), and not a module's
imports of its own enclosing packages, which Python has loaded first anyway.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "actors": "directorate.actors",
    "persistence": "directorate.persistence",
    "verifiers": "directorate.verifiers",
}


def modules() -> dict[str, tuple[Path, bool]]:
    """Every module's dotted name: its file, and whether it is a package."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            found[".".join([package, *parts[: -1 if is_package else None]])] = (path, is_package)
    return found


def imported(name: str, path: Path, is_package: bool, known: Mapping[str, object]) -> set[str]:
    """The directorate modules ``name`` imports when it is loaded."""
    targets: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".")[: None if is_package else -1]
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in known else base)
    return {t for t in targets if t in known and t != name and not name.startswith(t + ".")}


def cycles(graph: Mapping[str, set[str]]) -> Iterator[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> Iterator[list[str]]:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                yield from visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while (top := stack.pop()) != node:
                component.append(top)
            if component:
                yield sorted([node, *component])

    for node in sorted(graph):
        if node not in index:
            yield from visit(node)


def test_the_checker_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert list(cycles(graph)) == [["a", "b", "c"]]


def test_no_module_imports_itself_through_others() -> None:
    known = modules()
    graph = {
        name: imported(name, path, is_package, known) for name, (path, is_package) in known.items()
    }
    assert "directorate.actors.cli.app" in graph  # the walk found the sources
    assert list(cycles(graph)) == []


def test_the_command_client_needs_no_engine() -> None:
    known = modules()
    path, is_package = known["directorate.actors.commands.client"]
    assert imported("directorate.actors.commands.client", path, is_package, known) <= {
        name for name in known if name.startswith("directorate.persistence")
    }
