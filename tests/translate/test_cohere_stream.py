"""Cohere v2 chat stream events -> OpenAI chat chunks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fkllmproxy.errors import UpstreamUnavailable
from fkllmproxy.translate.cohere_stream import CohereStreamTranslator
from fkllmproxy.wire.cohere import decode_event

END = {
    "type": "message-end",
    "delta": {
        "finish_reason": "COMPLETE",
        "usage": {
            "billed_units": {"input_tokens": 3, "output_tokens": 2},
            "tokens": {"input_tokens": 60, "output_tokens": 2},
        },
    },
}


def content(kind: str, value: str, index: int = 0) -> dict[str, Any]:
    delta = {"message": {"content": {kind: value}}}
    return {"type": "content-delta", "index": index, "delta": delta}


def run(events: list[dict[str, Any]], *, include_usage: bool = False) -> list[Any]:
    translator = CohereStreamTranslator(model="m", provider="co", include_usage=include_usage)
    frames = [f for e in events for f in translator.feed(decode_event(json.dumps(e).encode()))]
    frames += translator.finish()
    out = []
    for frame in frames:
        assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
        data = frame[6:-2]
        out.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return out


def deltas(chunks: list[Any]) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks if c != "[DONE]" and c["choices"]]


def test_text_goes_out_as_it_comes() -> None:
    """Role first, each content-delta as a chunk, the finish, then [DONE]."""
    chunks = run(
        [
            {"type": "message-start", "id": "m1", "delta": {"message": {"role": "assistant"}}},
            {
                "type": "content-start",
                "index": 0,
                "delta": {"message": {"content": {"type": "text", "text": ""}}},
            },
            content("text", "Hel"),
            content("text", "lo"),
            {"type": "content-end", "index": 0},
            END,
        ]
    )
    assert chunks[0]["id"] == "chatcmpl-m1"
    assert deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo"},
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1] == "[DONE]"


def test_usage_chunk_when_asked() -> None:
    chunks = run([content("text", "x"), END], include_usage=True)
    assert chunks[-2]["choices"] == []
    assert chunks[-2]["usage"]["prompt_tokens"] == 3
    assert chunks[-2]["usage"]["completion_tokens"] == 2


def test_thinking_is_reasoning_content() -> None:
    chunks = run([content("thinking", "hmm"), content("text", "ok", 1), END])
    assert deltas(chunks)[1:3] == [{"reasoning_content": "hmm"}, {"content": "ok"}]


def test_tool_plan_and_calls() -> None:
    """The plan is content; each call opens with id and name, then argument pieces."""
    opened = {"id": "f_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    piece = {"message": {"tool_calls": {"function": {"arguments": '{"a":'}}}}
    rest = {"message": {"tool_calls": {"function": {"arguments": "1}"}}}}
    chunks = run(
        [
            {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "Calling f."}}},
            {"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": opened}}},
            {"type": "tool-call-delta", "index": 0, "delta": piece},
            {"type": "tool-call-delta", "index": 0, "delta": rest},
            {"type": "tool-call-end", "index": 0},
            {"type": "message-end", "delta": {"finish_reason": "TOOL_CALL"}},
        ]
    )
    found = deltas(chunks)
    assert found[1] == {"content": "Calling f."}
    assert found[2]["tool_calls"] == [
        {"index": 0, "id": "f_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    ]
    assert [d["tool_calls"][0]["function"]["arguments"] for d in found[3:5]] == ['{"a":', "1}"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_citations_debug_and_unknown_events_add_nothing() -> None:
    citation = {"message": {"citations": {"start": 0, "end": 1, "text": "x", "sources": []}}}
    chunks = run(
        [
            content("text", "x"),
            {"type": "citation-start", "index": 0, "delta": citation},
            {"type": "citation-end", "index": 0},
            {"type": "debug", "prompt": "..."},
            {"type": "some-new-event"},
            END,
        ]
    )
    assert deltas(chunks) == [{"role": "assistant", "content": ""}, {"content": "x"}, {}]


def test_error_at_message_end_raises() -> None:
    """message-end with an error is a failure, never a finished answer."""
    failed = {"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "boom"}}
    with pytest.raises(UpstreamUnavailable, match="boom"):
        run([content("text", "x"), failed])


def test_a_stream_without_message_end_raises() -> None:
    with pytest.raises(UpstreamUnavailable, match="before the answer was complete"):
        run([content("text", "x")])
