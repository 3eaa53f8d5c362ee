"""Typed Responses events from a Chat Completions stream, in OpenAI's order."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from fkllmproxy.errors import UpstreamUnavailable
from fkllmproxy.translate.responses_chat import response_envelope
from fkllmproxy.translate.responses_stream import ResponsesStreamFromChat


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, usage: Any = None
) -> bytes:
    body: dict[str, Any] = {"id": "c", "choices": []}
    if delta is not None or finish is not None:
        body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    if usage is not None:
        body["usage"] = usage
    return b"data: " + msgspec.json.encode(body) + b"\n\n"


def run(frames: list[bytes]) -> tuple[list[dict[str, Any]], ResponsesStreamFromChat]:
    envelope = response_envelope({"input": "x"}, model="m", response_id="resp_1")
    translator = ResponsesStreamFromChat(provider="'p' (openai)", envelope=envelope)
    out: list[bytes] = []
    for frame in frames:
        out.extend(translator.feed(frame))
    out.extend(translator.finish())
    events = []
    for frame in out:
        head, data = frame.decode().split("\n", 1)
        payload = json.loads(data.removeprefix("data: "))
        assert head == f"event: {payload['type']}"
        events.append(payload)
    return events, translator


USAGE = {"prompt_tokens": 4, "completion_tokens": 2}


def test_text_stream_order_and_final_response() -> None:
    events, translator = run(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, "stop"),
            chunk(usage=USAGE),
            b"data: [DONE]\n\n",
        ]
    )
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["response"]["status"] == "in_progress"
    final = events[-1]["response"]
    assert final["status"] == "completed"
    assert final["output"][0]["content"][0]["text"] == "Hello"
    assert final["usage"]["input_tokens"] == 4 and final["usage"]["total_tokens"] == 6
    assert translator.prompt_tokens == 4 and translator.completion_tokens == 2


def test_tool_calls_stream_as_function_call_items() -> None:
    head = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "w", "arguments": ""},
    }
    events, _ = run(
        [
            chunk({"tool_calls": [head]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"c":'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]}),
            chunk({}, "tool_calls"),
            b"data: [DONE]\n\n",
        ]
    )
    kinds = [e["type"] for e in events]
    assert kinds[2:] == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[2]["item"]["call_id"] == "call_1"
    assert events[5]["arguments"] == '{"c":"x"}'
    assert events[-1]["response"]["output"][0]["arguments"] == '{"c":"x"}'


def test_length_ends_with_response_incomplete() -> None:
    events, _ = run([chunk({"content": "a"}), chunk({}, "length"), b"data: [DONE]\n\n"])
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_a_stream_cut_short_raises_and_failed_closes_it() -> None:
    envelope = response_envelope({"input": "x"}, model="m", response_id="resp_1")
    translator = ResponsesStreamFromChat(provider="'p' (openai)", envelope=envelope)
    sent = translator.feed(chunk({"content": "partial"}))
    with pytest.raises(UpstreamUnavailable) as cut:
        translator.finish()
    failed = json.loads(translator.failed(cut.value).decode().split("data: ", 1)[1])
    assert failed["type"] == "response.failed"
    assert failed["sequence_number"] == len(sent)
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"]["code"] == "server_error"


def test_reasoning_text_streams_as_a_reasoning_item_before_the_message() -> None:
    """A host's streamed reasoning_content is a reasoning item, closed when the text starts."""
    events, _ = run(
        [
            chunk({"role": "assistant", "reasoning_content": "Think"}),
            chunk({"reasoning_content": "ing"}),
            chunk({"content": "Hi"}),
            chunk({}, "stop"),
            b"data: [DONE]\n\n",
        ]
    )
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[2]["item"]["type"] == "reasoning"
    assert events[3]["part"] == {"type": "reasoning_text", "text": ""}
    assert events[6]["text"] == "Thinking"
    reasoning, message = events[-1]["response"]["output"]
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "Thinking"}]
    assert reasoning["summary"] == [] and reasoning["status"] == "completed"
    assert events[11]["output_index"] == 1 and message["content"][0]["text"] == "Hi"
