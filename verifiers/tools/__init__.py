"""Agent kinds: the command-line tools directorate knows how to run and read.

``kind_named("claude-code")`` gives the kind; ``KINDS`` lists them. See
``base.AgentKind`` for what a kind does, and each module for its tool's argv,
permissions, output and sessions.
"""

from __future__ import annotations

from .aider import Aider
from .base import AgentKind, Invocation, Purpose, RunSettings, ToolReport
from .claude import ClaudeCode
from .codex import Codex
from .command import Command
from .gemini import Gemini
from .prices import DEFAULT_TABLE, Price, PriceTable, parse_prices

KINDS: dict[str, AgentKind] = {
    kind.name: kind for kind in (Command(), ClaudeCode(), Codex(), Gemini(), Aider())
}


def kind_named(name: str) -> AgentKind:
    """The kind called ``name``; ValueError naming the known ones otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise ValueError(f"unknown agent kind {name!r} (known: {known})") from None


__all__ = [
    "DEFAULT_TABLE",
    "KINDS",
    "AgentKind",
    "Invocation",
    "Price",
    "PriceTable",
    "Purpose",
    "RunSettings",
    "ToolReport",
    "kind_named",
    "parse_prices",
]
