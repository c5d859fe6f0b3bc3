"""A loopback model server for the real agent CLIs: the Anthropic Messages API (Claude
Code, through ``ANTHROPIC_BASE_URL``), the OpenAI Responses API (codex, through a
``model_providers`` override), the Gemini API (Gemini CLI, through
``GOOGLE_GEMINI_BASE_URL``; see ``gemini_api``) and OpenAI Chat Completions (Aider,
through ``--openai-api-base``; see ``chat_api``), answering from a per-test ``Script``.

Started on 127.0.0.1, port 0, in a thread; every request is recorded (``requests``)
so a test can assert what the tool sent. Requests that are not the session's own
(Claude Code's side calls without tools: titles, quota probes) get a short harmless
answer and do not take a turn of the script.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

from loopback import chat_api, gemini_api
from loopback.script import Failure, FromRequest, Script, Text, ToolCalls, Turn, Usage


@attrs.frozen
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any  # the parsed JSON body, or None
    session: bool  # took a turn of the script
    answer: str  # what it was answered: text, tools, failure, side, other

    @property
    def tool_results(self) -> list[dict[str, Any]]:
        """The tool results this request carried back (Anthropic ``tool_result`` blocks,
        Responses ``function_call_output`` / ``custom_tool_call_output`` items, Gemini
        ``functionResponse`` parts, Chat Completions ``tool`` messages)."""
        found: list[dict[str, Any]] = gemini_api.tool_results(self.body)
        body = self.body if isinstance(self.body, dict) else {}
        for message in body.get("messages", []):
            content = message.get("content")
            if isinstance(content, list):
                found += [
                    b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"
                ]
            if isinstance(message, dict) and message.get("role") == "tool":
                found.append(message)
        for item in body.get("input", []) if isinstance(body.get("input"), list) else []:
            if isinstance(item, dict) and str(item.get("type", "")).endswith("call_output"):
                found.append(item)
        return found


def is_session_request(path: str, body: Any) -> bool:
    """Whether a model request belongs to the agent's session: it offers tools.
    Claude Code's side requests (session titles, quota checks) and Gemini CLI's (its
    model router's classifier) offer none. Every Responses request (codex) and Chat
    Completions request (Aider, which offers no tools: its edits are text) is one."""
    if not isinstance(body, dict):
        return False
    if path.endswith(("/responses", "/chat/completions")):
        return True
    return bool(body.get("tools"))


class LoopbackServer:
    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script([])
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="loopback", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def use(self, script: Script) -> None:
        with self._lock:
            self.script = script

    def session_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.session]

    def new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}_loop{next(self._ids):04d}"

    def choose(self, path: str, body: Any) -> tuple[Turn | None, bool]:
        """The turn for a request (None: a side request), and whether it is the session's."""
        session = is_session_request(path, body)
        with self._lock:
            if session:
                turn = self.script.take()
                return (turn.make(body) if isinstance(turn, FromRequest) else turn), True
            nxt = (
                self.script.turns[self.script.taken]
                if self.script.taken < len(self.script.turns)
                else (
                    self.script.turns[-1] if self.script.repeat_last and self.script.turns else None
                )
            )
            # A failing model fails side requests too (a refused key refuses them all).
            return (nxt if isinstance(nxt, Failure) else None), False

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


def _handler_for(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the requests are recorded; stderr stays quiet

        def do_GET(self) -> None:
            self._answer_other(None)

        def do_HEAD(self) -> None:
            self._answer_other(None)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = None
            path = self.path.split("?", 1)[0]
            if path.endswith("/v1/messages"):
                self._messages(path, body)
            elif path.endswith("/v1/messages/count_tokens"):
                self._record(path, body, False, "other")
                self._json(200, {"input_tokens": server.script.usage.input_tokens})
            elif path.endswith("/responses"):
                self._responses(path, body)
            elif path.endswith("/chat/completions"):
                self._chat(path, body)
            elif gemini_api.action(path):
                self._gemini(path, body)
            else:
                self._answer_other(body)

        # -- helpers -------------------------------------------------------------

        def _record(self, path: str, body: Any, session: bool, answer: str) -> None:
            server.record(
                Request(
                    self.command,
                    path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    session,
                    answer,
                )
            )

        def _answer_other(self, body: Any) -> None:
            path = self.path.split("?", 1)[0]
            self._record(path, body, False, "other")
            if path == "/api/hello":  # Claude Code's connectivity check (HEAD) at startup
                self._json(200, {})
            elif path.endswith("/models"):
                self._json(200, {"object": "list", "data": [], "models": []})
            else:
                self._json(
                    404,
                    {
                        "type": "error",
                        "error": {"type": "not_found_error", "message": f"no {path} here"},
                    },
                )

        def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _sse(self, events: Iterator[tuple[str | None, dict[str, Any] | str]]) -> None:
            """Server-sent events; a None name sends only ``data:`` (Gemini, Chat
            Completions), a str payload as it is (``[DONE]``)."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for name, data in events:
                payload = data if isinstance(data, str) else json.dumps(data)
                head = f"event: {name}\n" if name is not None else ""
                self.wfile.write(f"{head}data: {payload}\n\n".encode())
                self.wfile.flush()

        def _failure(self, failure: Failure, openai: bool) -> None:
            if openai:
                payload: dict[str, Any] = {
                    "error": {
                        "message": failure.message,
                        "type": failure.error_type,
                        "code": failure.error_type,
                    }
                }
            else:
                payload = {
                    "type": "error",
                    "error": {"type": failure.error_type, "message": failure.message},
                }
            retry = failure.should_retry
            headers = {} if retry is None else {"x-should-retry": "true" if retry else "false"}
            self._json(failure.status, payload, headers)

        # -- Anthropic Messages ----------------------------------------------------

        def _messages(self, path: str, body: Any) -> None:
            turn, session = server.choose(path, body)
            if isinstance(turn, Failure):
                self._record(path, body, session, "failure")
                self._failure(turn, openai=False)
                return
            if turn is None:
                turn = Text("ok")
            self._record(path, body, session, _kind(turn) if session else "side")
            model = (
                body.get("model", "claude-sonnet-4-5")
                if isinstance(body, dict)
                else "claude-sonnet-4-5"
            )
            message_id = server.new_id("msg")
            blocks = _anthropic_blocks(turn, server)
            stop = "tool_use" if isinstance(turn, ToolCalls) else "end_turn"
            usage = server.script.usage
            if isinstance(body, dict) and body.get("stream"):
                self._sse(_anthropic_events(message_id, model, blocks, stop, usage))
            else:
                self._json(
                    200,
                    {
                        "id": message_id,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": blocks,
                        "stop_reason": stop,
                        "stop_sequence": None,
                        "usage": _anthropic_usage(usage, usage.output_tokens),
                    },
                )

        # -- OpenAI Responses ------------------------------------------------------

        def _responses(self, path: str, body: Any) -> None:
            turn, session = server.choose(path, body)
            if isinstance(turn, Failure):
                self._record(path, body, session, "failure")
                self._failure(turn, openai=True)
                return
            if turn is None:
                turn = Text("ok")
            self._record(path, body, session, _kind(turn))
            model = body.get("model", "gpt-5") if isinstance(body, dict) else "gpt-5"
            self._sse(
                _responses_events(
                    server.new_id("resp"),
                    model,
                    _responses_items(turn, server, body),
                    server.script.usage,
                )
            )

        # -- Gemini API ------------------------------------------------------------

        def _gemini(self, path: str, body: Any) -> None:
            found = gemini_api.action(path)
            assert found is not None
            model, verb = found
            if verb == "countTokens":
                self._record(path, body, False, "other")
                self._json(200, {"totalTokens": server.script.usage.input_tokens})
                return
            turn, session = server.choose(path, body)
            if isinstance(turn, Failure):
                self._record(path, body, session, "failure")
                self._json(turn.status, gemini_api.error_body(turn))
                return
            if turn is None:
                turn = Text("ok")
            self._record(path, body, session, _kind(turn) if session else "side")
            usage = server.script.usage
            response_id = server.new_id("gen")
            if verb == "streamGenerateContent":
                chunks = gemini_api.stream(turn, model, usage, response_id)
                self._sse((None, chunk) for chunk in chunks)
            else:
                self._json(200, gemini_api.response(turn, model, usage, response_id))

        # -- OpenAI Chat Completions -----------------------------------------------

        def _chat(self, path: str, body: Any) -> None:
            turn, session = server.choose(path, body)
            if isinstance(turn, Failure):
                self._record(path, body, session, "failure")
                self._failure(turn, openai=True)
                return
            if turn is None:
                turn = Text("ok")
            self._record(path, body, session, _kind(turn))
            request = body if isinstance(body, dict) else {}
            model = str(request.get("model") or "gpt-4.1")
            usage = server.script.usage
            completion_id = server.new_id("chatcmpl")
            ids = iter(lambda: server.new_id("call"), None)
            if request.get("stream"):
                options = request.get("stream_options")
                include_usage = isinstance(options, dict) and options.get("include_usage") is True
                chunks = chat_api.chunks(turn, model, usage, completion_id, ids, include_usage)
                events: list[tuple[str | None, dict[str, Any] | str]] = [
                    (None, chunk) for chunk in chunks
                ]
                self._sse(iter([*events, (None, "[DONE]")]))
            else:
                self._json(200, chat_api.completion(turn, model, usage, completion_id, ids))

    return Handler


def _kind(turn: Turn) -> str:
    return (
        "tools"
        if isinstance(turn, ToolCalls)
        else "failure"
        if isinstance(turn, Failure)
        else "text"
    )


def _anthropic_usage(usage: Usage, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
    }


def _anthropic_blocks(turn: Turn, server: LoopbackServer) -> list[dict[str, Any]]:
    if isinstance(turn, Text):
        return [{"type": "text", "text": turn.text}]
    assert isinstance(turn, ToolCalls)
    blocks: list[dict[str, Any]] = [{"type": "text", "text": turn.text}] if turn.text else []
    for call in turn.calls:
        tool_input = call.input if not isinstance(call.input, str) else {"input": call.input}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.call_id or server.new_id("toolu"),
                "name": call.name,
                "input": dict(tool_input),
            }
        )
    return blocks


def _anthropic_events(
    message_id: str, model: str, blocks: list[dict[str, Any]], stop: str, usage: Usage
) -> Iterator[tuple[str, dict[str, Any]]]:
    yield (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": _anthropic_usage(usage, 1),
            },
        },
    )
    yield "ping", {"type": "ping"}
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            # Two deltas, as a real stream splits its text.
            half = len(block["text"]) // 2
            for piece in (block["text"][:half], block["text"][half:]):
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
        else:
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {
                        "type": "tool_use",
                        "id": block["id"],
                        "name": block["name"],
                        "input": {},
                    },
                },
            )
            arguments = json.dumps(block["input"])
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": usage.output_tokens},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _custom_tools(body: Any) -> set[str]:
    """The names of the freeform (``custom``) tools a Responses request offers: in
    ``tools``, or (newer codex models) in an ``additional_tools`` input item, either
    possibly grouped in ``namespace`` tools."""
    if not isinstance(body, dict):
        return set()
    offered: list[Any] = list(body.get("tools") or [])
    for item in body.get("input") or []:
        if isinstance(item, dict) and item.get("type") == "additional_tools":
            offered += item.get("tools") or []
    names: set[str] = set()
    while offered:
        tool = offered.pop()
        if isinstance(tool, dict) and tool.get("type") == "namespace":
            offered += tool.get("tools") or []
        elif isinstance(tool, dict) and tool.get("type") == "custom":
            names.add(str(tool.get("name", "")))
    return names


def _responses_items(turn: Turn, server: LoopbackServer, body: Any) -> list[dict[str, Any]]:
    if isinstance(turn, Text):
        return [
            {
                "type": "message",
                "id": server.new_id("msg"),
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": turn.text, "annotations": []}],
            }
        ]
    assert isinstance(turn, ToolCalls)
    items: list[dict[str, Any]] = []
    if turn.text:
        items += _responses_items(Text(turn.text), server, body)
    custom = _custom_tools(body)
    for call in turn.calls:
        call_id = call.call_id or server.new_id("call")
        if call.name in custom:
            items.append(
                {
                    "type": "custom_tool_call",
                    "id": server.new_id("ctc"),
                    "call_id": call_id,
                    "name": call.name,
                    "status": "completed",
                    "input": call.input
                    if isinstance(call.input, str)
                    else json.dumps(dict(call.input)),
                }
            )
        else:
            items.append(
                {
                    "type": "function_call",
                    "id": server.new_id("fc"),
                    "call_id": call_id,
                    "name": call.name,
                    "status": "completed",
                    "arguments": call.arguments_json(),
                }
            )
    return items


def _responses_events(
    response_id: str, model: str, items: list[dict[str, Any]], usage: Usage
) -> Iterator[tuple[str, dict[str, Any]]]:
    base = {"id": response_id, "object": "response", "model": model, "created_at": 0}
    yield (
        "response.created",
        {
            "type": "response.created",
            "sequence_number": 0,
            "response": {**base, "status": "in_progress", "output": []},
        },
    )
    seq = itertools.count(1)
    for index, item in enumerate(items):
        yield (
            "response.output_item.added",
            {
                "type": "response.output_item.added",
                "sequence_number": next(seq),
                "output_index": index,
                "item": {**item, "status": "in_progress"},
            },
        )
        if item["type"] == "message":
            text = item["content"][0]["text"]
            yield (
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "sequence_number": next(seq),
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "delta": text,
                },
            )
        yield (
            "response.output_item.done",
            {
                "type": "response.output_item.done",
                "sequence_number": next(seq),
                "output_index": index,
                "item": item,
            },
        )
    yield (
        "response.completed",
        {
            "type": "response.completed",
            "sequence_number": next(seq),
            "response": {
                **base,
                "status": "completed",
                "output": items,
                "usage": {
                    "input_tokens": usage.input_tokens,
                    "input_tokens_details": {"cached_tokens": usage.cache_read_input_tokens},
                    "output_tokens": usage.output_tokens,
                    "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": usage.input_tokens + usage.output_tokens,
                },
            },
        },
    )
