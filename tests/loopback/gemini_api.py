"""The Gemini API as the loopback server speaks it to Gemini CLI (``GOOGLE_GEMINI_BASE_URL``):
``POST /v1beta/models/<model>:generateContent``, ``:streamGenerateContent?alt=sse`` and
``:countTokens``. Pure functions from a script's turn to the API's JSON.

A session request offers ``tools`` (``functionDeclarations``); Gemini CLI's side
requests (its model router's classifier, next-speaker checks) offer none.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from loopback.script import Failure, Text, ToolCalls, Turn, Usage

# Google's RPC status for an HTTP error code, as the real API names it.
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}

ACTIONS = (":streamGenerateContent", ":generateContent", ":countTokens")


def action(path: str) -> tuple[str, str] | None:
    """(model, action) of a Gemini API path such as
    ``/v1beta/models/gemini-2.5-flash:streamGenerateContent``; None for other paths."""
    for name in ACTIONS:
        if path.endswith(name) and "/models/" in path:
            model = path[: -len(name)].rsplit("/models/", 1)[1]
            return model, name.lstrip(":")
    return None


def error_body(failure: Failure) -> dict[str, Any]:
    """Google's error shape: ``{"error": {"code", "message", "status"}}``."""
    return {
        "error": {
            "code": failure.status,
            "message": failure.message,
            "status": _STATUS.get(failure.status, "UNKNOWN"),
        }
    }


def parts(turn: Turn) -> list[dict[str, Any]]:
    """The model's ``content.parts`` for a text answer or tool calls."""
    if isinstance(turn, Text):
        return [{"text": turn.text}]
    assert isinstance(turn, ToolCalls)
    found: list[dict[str, Any]] = [{"text": turn.text}] if turn.text else []
    for call in turn.calls:
        args = call.input if not isinstance(call.input, str) else {"input": call.input}
        function_call: dict[str, Any] = {"name": call.name, "args": dict(args)}
        if call.call_id:  # the real API sends none; Gemini CLI makes its own
            function_call["id"] = call.call_id
        found.append({"functionCall": function_call})
    return found


def usage_metadata(usage: Usage) -> dict[str, int]:
    metadata = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": usage.output_tokens,
        "totalTokenCount": usage.input_tokens + usage.output_tokens,
    }
    if usage.cache_read_input_tokens:
        metadata["cachedContentTokenCount"] = usage.cache_read_input_tokens
    return metadata


def response(turn: Turn, model: str, usage: Usage, response_id: str) -> dict[str, Any]:
    """One ``GenerateContentResponse`` holding the whole turn."""
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": parts(turn)},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": usage_metadata(usage),
        "modelVersion": model,
        "responseId": response_id,
    }


def stream(turn: Turn, model: str, usage: Usage, response_id: str) -> Iterator[dict[str, Any]]:
    """The turn as ``streamGenerateContent?alt=sse`` chunks: a text split in two, as a
    real stream splits it, then the rest with ``finishReason`` and the usage."""
    whole = parts(turn)
    first = whole[0]
    rest = whole[1:]
    if "text" in first and len(first["text"]) > 1:
        half = len(first["text"]) // 2
        yield {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": first["text"][:half]}]},
                    "index": 0,
                }
            ],
            "modelVersion": model,
            "responseId": response_id,
        }
        first = {"text": first["text"][half:]}
    final = response(turn, model, usage, response_id)
    final["candidates"][0]["content"]["parts"] = [first, *rest]
    yield final


def tool_results(body: Any) -> list[dict[str, Any]]:
    """The ``functionResponse`` parts a request carries back."""
    found: list[dict[str, Any]] = []
    contents = body.get("contents") if isinstance(body, dict) else None
    for content in contents if isinstance(contents, list) else []:
        for part in content.get("parts", []) if isinstance(content, dict) else []:
            if isinstance(part, dict) and isinstance(part.get("functionResponse"), dict):
                found.append(part["functionResponse"])
    return found
