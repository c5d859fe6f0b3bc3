"""The OpenAI Chat Completions API as the loopback server speaks it to Aider (through
litellm, ``--openai-api-base http://127.0.0.1:PORT/v1``): ``POST /v1/chat/completions``,
streamed (``"stream": true``, ``data:`` chunks then ``data: [DONE]``) or not. Pure
functions from a script's turn to the API's JSON.

Aider offers no tools: its edits are text (SEARCH/REPLACE blocks) in the answer, so a
``Text`` turn is the usual one; ``ToolCalls`` become ``tool_calls`` for completeness.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from loopback.script import Text, ToolCalls, Turn, Usage


def _message(turn: Turn, ids: Iterator[str]) -> dict[str, Any]:
    if isinstance(turn, Text):
        return {"role": "assistant", "content": turn.text}
    assert isinstance(turn, ToolCalls)
    calls = [
        {
            "id": call.call_id or next(ids),
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments_json()},
        }
        for call in turn.calls
    ]
    return {"role": "assistant", "content": turn.text or None, "tool_calls": calls}


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_input_tokens},
    }


def _finish(turn: Turn) -> str:
    return "tool_calls" if isinstance(turn, ToolCalls) else "stop"


def completion(
    turn: Turn, model: str, usage: Usage, completion_id: str, ids: Iterator[str]
) -> dict[str, Any]:
    """A non-streamed ``chat.completion``."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": _message(turn, ids), "finish_reason": _finish(turn)}],
        "usage": _usage(usage),
    }


def chunks(
    turn: Turn,
    model: str,
    usage: Usage,
    completion_id: str,
    ids: Iterator[str],
    include_usage: bool,
) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed answer: the role, the text in
    two pieces, the finish reason, and the usage when ``stream_options.include_usage``."""
    base = {"id": completion_id, "object": "chat.completion.chunk", "created": 0, "model": model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    message = _message(turn, ids)
    yield chunk({"role": "assistant", "content": ""})
    text = message.get("content") or ""
    half = len(text) // 2
    for piece in (text[:half], text[half:]):
        if piece:
            yield chunk({"content": piece})
    for index, call in enumerate(message.get("tool_calls", [])):
        yield chunk({"tool_calls": [{"index": index, **call}]})
    yield chunk({}, _finish(turn))
    if include_usage:
        yield {**base, "choices": [], "usage": _usage(usage)}
