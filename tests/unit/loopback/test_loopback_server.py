"""The loopback model server over real HTTP, without the agent CLIs: the protocol
events it sends, the turns it takes, what it records."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from loopback.script import (
    Failure,
    FromRequest,
    Script,
    Text,
    ToolCall,
    ToolCalls,
    unauthorized,
    verdict,
)
from loopback.server import LoopbackServer


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


def _post(server: LoopbackServer, path: str, body: dict[str, Any]) -> tuple[int, str, str]:
    request = urllib.request.Request(
        server.url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Api-Key": "k"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers.get("Content-Type", ""), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()


def _events(stream: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for chunk in stream.strip().split("\n\n"):
        name, data = chunk.split("\n")
        events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


TOOLS = {"tools": [{"name": "Write", "input_schema": {"type": "object"}}]}


def test_a_streamed_tool_call_then_text_in_anthropic_events(server: LoopbackServer) -> None:
    call = ToolCall("Write", {"file_path": "/x/a.txt", "content": "a\n"})
    server.use(Script([ToolCalls([call]), Text("done")]))
    status, kind, body = _post(server, "/v1/messages", {"stream": True, "model": "m", **TOOLS})
    assert status == 200 and kind == "text/event-stream"
    events = _events(body)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert events[0][1]["message"]["model"] == "m"
    start = next(data for name, data in events if name == "content_block_start")
    assert (
        start["content_block"]["type"] == "tool_use" and start["content_block"]["name"] == "Write"
    )
    pieces = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
    assert json.loads("".join(pieces)) == {"file_path": "/x/a.txt", "content": "a\n"}
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"]["output_tokens"] == 80

    status, _, body = _post(server, "/v1/messages", {"stream": True, **TOOLS})
    texts = [d["delta"]["text"] for n, d in _events(body) if n == "content_block_delta"]
    assert "".join(texts) == "done"
    assert [r.answer for r in server.session_requests()] == ["tools", "text"]
    assert server.requests[0].headers["x-api-key"] == "k"


def test_a_request_without_tools_is_a_side_request_and_takes_no_turn(
    server: LoopbackServer,
) -> None:
    server.use(Script([verdict(0.8, "fine")]))
    status, _, body = _post(server, "/v1/messages", {"model": "m", "max_tokens": 1})
    assert status == 200 and json.loads(body)["content"] == [{"type": "text", "text": "ok"}]
    status, _, body = _post(server, "/v1/messages", TOOLS)
    answer = json.loads(body)
    assert answer["stop_reason"] == "end_turn" and '"score": 0.8' in answer["content"][0]["text"]
    assert [(r.session, r.answer) for r in server.requests] == [(False, "side"), (True, "text")]


def test_a_failure_refuses_every_request_with_the_error_body(server: LoopbackServer) -> None:
    server.use(Script([unauthorized()], repeat_last=True))
    for body in ({}, TOOLS, TOOLS):
        status, _, text = _post(server, "/v1/messages", body)
        assert status == 401
        assert json.loads(text)["error"]["type"] == "authentication_error"
    status, _, text = _post(server, "/v1/responses", {"input": []})
    assert status == 401 and json.loads(text)["error"]["message"] == "invalid x-api-key"


def test_an_exhausted_script_answers_text_or_repeats_its_last_turn(server: LoopbackServer) -> None:
    server.use(Script([Text("one")], exhausted_text="no more"))
    answers = [
        json.loads(_post(server, "/v1/messages", TOOLS)[2])["content"][0]["text"] for _ in "ab"
    ]
    assert answers == ["one", "no more"]
    server.use(Script([Failure(529, "overloaded_error", "busy")], repeat_last=True))
    assert [_post(server, "/v1/messages", TOOLS)[0] for _ in "ab"] == [529, 529]


def test_a_turn_from_the_request_is_made_from_its_body(server: LoopbackServer) -> None:
    seen: list[Any] = []

    def echo(body: Any) -> Text:
        seen.append(body)
        return Text(f"you said {body['messages'][0]['content']}")

    server.use(Script([FromRequest(echo)]))
    body = {**TOOLS, "messages": [{"role": "user", "content": "plan-1234"}]}
    answer = json.loads(_post(server, "/v1/messages", body)[2])
    assert answer["content"][0]["text"] == "you said plan-1234"
    assert seen == [body] and server.session_requests()[0].answer == "text"


def test_responses_stream_custom_and_function_calls_as_codex_reads_them(
    server: LoopbackServer,
) -> None:
    patch = "*** Begin Patch\n*** End Patch\n"
    calls = [ToolCall("apply_patch", patch), ToolCall("exec_command", {"cmd": "ls"})]
    server.use(Script([ToolCalls(calls), Text("done")]))
    offered = {"tools": [{"type": "custom", "name": "apply_patch"}], "input": []}
    status, kind, body = _post(server, "/v1/responses", {"model": "gpt-x", **offered})
    assert status == 200 and kind == "text/event-stream"
    events = _events(body)
    assert events[0][0] == "response.created" and events[-1][0] == "response.completed"
    done = [d["item"] for n, d in events if n == "response.output_item.done"]
    assert [(i["type"], i["name"]) for i in done] == [
        ("custom_tool_call", "apply_patch"),
        ("function_call", "exec_command"),
    ]
    assert done[0]["input"] == patch and json.loads(done[1]["arguments"]) == {"cmd": "ls"}
    usage = events[-1][1]["response"]["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]

    result = {"type": "custom_tool_call_output", "call_id": done[0]["call_id"], "output": "ok"}
    _, _, body = _post(server, "/v1/responses", {"input": [result]})
    done = [d["item"] for n, d in _events(body) if n == "response.output_item.done"]
    assert done[0]["content"][0]["text"] == "done"
    assert server.session_requests()[1].tool_results == [result]


def test_custom_tools_are_found_inside_namespaces_and_additional_tools(
    server: LoopbackServer,
) -> None:
    server.use(Script([ToolCalls([ToolCall("exec", "code")])]))
    nested = {
        "type": "namespace",
        "name": "functions",
        "tools": [{"type": "custom", "name": "exec"}],
    }
    body = {"input": [{"type": "additional_tools", "tools": [nested]}]}
    _, _, text = _post(server, "/v1/responses", body)
    done = [d["item"] for n, d in _events(text) if n == "response.output_item.done"]
    assert done[0]["type"] == "custom_tool_call" and done[0]["input"] == "code"


def test_other_endpoints_are_recorded_and_answered_harmlessly(server: LoopbackServer) -> None:
    status, _, body = _post(server, "/v1/messages/count_tokens", {"messages": []})
    assert status == 200 and json.loads(body)["input_tokens"] == 1200
    with urllib.request.urlopen(server.url + "/v1/models", timeout=10) as answer:
        assert json.loads(answer.read())["data"] == []
    hello = urllib.request.Request(server.url + "/api/hello", method="HEAD")
    with urllib.request.urlopen(hello, timeout=10) as answer:
        assert answer.status == 200
    status, _, _ = _post(server, "/api/unknown", {})
    assert status == 404
    assert [r.path for r in server.requests] == [
        "/v1/messages/count_tokens",
        "/v1/models",
        "/api/hello",
        "/api/unknown",
    ]
    assert server.session_requests() == []


def test_stop_frees_the_port() -> None:
    server = LoopbackServer().start()
    url = server.url
    server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/v1/models", timeout=5)
