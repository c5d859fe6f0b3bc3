"""What a scripted model says, turn by turn: the data a test hands the loopback server.

A script is a list of turns. Each model request that belongs to the session under
test (see ``server.is_session_request``) takes the next turn; a turn is a text
answer, one or more tool calls, or a failure (an HTTP error). When the script runs
out, the last turn repeats if the script says so (``repeat_last``: a model that
keeps calling tools, for max-turns and budget cases), else the model answers
``exhausted_text``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs


@attrs.frozen
class Text:
    """A final text answer (Anthropic ``end_turn``; a Responses ``message`` item)."""

    text: str


@attrs.frozen
class ToolCall:
    """One tool call. ``input`` is the tool's JSON arguments, or a string for a custom
    (freeform) tool such as codex's ``apply_patch``."""

    name: str
    input: Mapping[str, Any] | str
    call_id: str | None = None

    def arguments_json(self) -> str:
        return self.input if isinstance(self.input, str) else json.dumps(dict(self.input))


@attrs.frozen
class ToolCalls:
    """One assistant turn made of tool calls (optionally preceded by some text)."""

    calls: Sequence[ToolCall]
    text: str = ""


@attrs.frozen
class Failure:
    """An HTTP error answer. ``error_type`` is Anthropic's ``error.type``
    (``authentication_error``, ``permission_error``, ``overloaded_error``...)."""

    status: int = 401
    error_type: str = "authentication_error"
    message: str = "invalid x-api-key"
    # The ``x-should-retry`` header the SDKs obey; None sends none (as the real API
    # does on a refused key, where Claude Code then retries for minutes).
    should_retry: bool | None = None


Turn = Text | ToolCalls | Failure


@attrs.frozen
class FromRequest:
    """A turn made from the request it answers (its JSON body): for a path the test
    cannot know in advance, such as the plan file the planning instructions name."""

    make: Callable[[Any], Turn]


def unauthorized() -> Failure:
    return Failure(401, "authentication_error", "invalid x-api-key")


@attrs.frozen
class Usage:
    """The token counts every answer reports (Claude Code prices them itself)."""

    input_tokens: int = 1200
    output_tokens: int = 80
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0


@attrs.define
class Script:
    turns: Sequence[Turn | FromRequest]
    repeat_last: bool = False
    exhausted_text: str = "Nothing more to do."
    usage: Usage = attrs.field(factory=Usage)
    _next: int = 0

    def take(self) -> Turn | FromRequest:
        """The turn for the next session request (not thread-safe: the server locks)."""
        if self._next < len(self.turns):
            turn = self.turns[self._next]
            self._next += 1
            return turn
        if self.repeat_last and self.turns:
            return self.turns[-1]
        return Text(self.exhausted_text)

    @property
    def taken(self) -> int:
        return self._next


def write_file(path: str, content: str) -> ToolCalls:
    """Claude Code's Write tool."""
    return ToolCalls([ToolCall("Write", {"file_path": path, "content": content})])


def bash(command: str, description: str = "run a command") -> ToolCalls:
    """Claude Code's Bash tool."""
    return ToolCalls([ToolCall("Bash", {"command": command, "description": description})])


def verdict(score: float, feedback: str, **extra: Any) -> Text:
    """A judge's answer as verifiers/judge_prompt.py reads it: a JSON object with
    ``passed`` and ``score``, wrapped in prose and a fenced block as models do."""
    body = {"passed": score >= 0.5, "score": score, "feedback": feedback, "criteria": [], **extra}
    return Text(f"Here is my review.\n```json\n{json.dumps(body)}\n```")
