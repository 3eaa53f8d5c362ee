"""An OpenAI Chat stream -> Gemini stream events, through the chat and Gemini codecs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fkllmproxy.errors import UpstreamUnavailable
from fkllmproxy.translate.codecs import chat, gemini


def frame(chunk: Any) -> bytes:
    return b"data: " + (chunk if isinstance(chunk, bytes) else json.dumps(chunk).encode()) + b"\n\n"


def delta(**fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}


def run(frames: list[bytes]) -> list[dict[str, Any]]:
    decoder = chat.StreamDecoder(provider="p")
    encoder = gemini.StreamEncoder(model="m", provider="p")
    canonical = [e for f in frames for e in decoder.feed(f)]
    canonical += decoder.finish()
    events = [out for e in canonical for out in encoder.feed(e)] + encoder.finish()
    return [json.loads(e) for e in events]


def test_text_goes_out_as_it_comes_and_usage_ends_it() -> None:
    events = run(
        [
            frame(delta(role="assistant", content="")),
            frame(delta(content="Hel")),
            frame(delta(content="lo")),
            frame({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}),
            frame({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}),
            frame(b"[DONE]"),
        ]
    )
    assert [e["candidates"][0]["content"]["parts"][0]["text"] for e in events[:2]] == ["Hel", "lo"]
    last = events[-1]
    assert last["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert last["usageMetadata"] == {
        "promptTokenCount": 3,
        "candidatesTokenCount": 2,
        "totalTokenCount": 5,
    }
    assert len({e["responseId"] for e in events}) == 1


def test_tool_calls_come_whole_at_the_end() -> None:
    call = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"a":'}}
    more = {"index": 0, "function": {"arguments": "1}"}}
    events = run(
        [
            frame(delta(tool_calls=[call])),
            frame(delta(tool_calls=[more])),
            frame({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
            frame(b"[DONE]"),
        ]
    )
    (only,) = events
    assert only["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "f", "args": {"a": 1}, "id": "c1"}}
    ]
    assert only["candidates"][0]["finishReason"] == "STOP"


def test_a_stream_cut_before_its_finish_raises() -> None:
    with pytest.raises(UpstreamUnavailable):
        run([frame(delta(content="partial"))])


def test_reasoning_text_streams_as_thought_parts() -> None:
    """A host's streamed reasoning_content goes out as thought parts, then the text."""
    events = run(
        [
            frame(delta(role="assistant", reasoning_content="Think")),
            frame(delta(content="Hi")),
            frame({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            frame(b"[DONE]"),
        ]
    )
    parts = [e["candidates"][0]["content"]["parts"] for e in events[:2]]
    assert parts == [[{"text": "Think", "thought": True}], [{"text": "Hi"}]]
