"""The chat codec: Chat Completions requests, answers and streams <-> the canonical model."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fkllmproxy.errors import BadRequest, UpstreamUnavailable
from fkllmproxy.translate._common import Unsupported
from fkllmproxy.translate.canonical import (
    Answer,
    Conversation,
    Document,
    Finish,
    Image,
    Message,
    Reasoning,
    ReasoningDelta,
    Start,
    Text,
    TextDelta,
    ToolArgsDelta,
    ToolCall,
    ToolCallStart,
    ToolResult,
    Unmapped,
    Usage,
    UsageUpdate,
)
from fkllmproxy.translate.codecs import chat
from fkllmproxy.translate.codecs._ids import make_call_id

REFUSE = Unsupported("main", "Gemini")


def _decode(**body: Any) -> Conversation:
    body.setdefault("model", "m")
    return chat.decode_request(body, unsupported=REFUSE)


def _frames(*chunks: dict[str, Any]) -> list[bytes]:
    return [b"data: " + msgspec.json.encode(c) for c in chunks] + [b"data: [DONE]"]


def _chunks(frames: list[bytes]) -> list[Any]:
    out = []
    for frame in frames:
        data = frame.removeprefix(b"data: ").strip()
        out.append("[DONE]" if data == b"[DONE]" else msgspec.json.decode(data))
    return out


class TestDecodeRequest:
    def test_roles_and_parts_keep_one_message_per_chat_message(self) -> None:
        """Each chat message is one canonical message, in order, so refusals name it."""
        conversation = _decode(
            messages=[
                {"role": "system", "content": "be brief"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
                    ],
                },
                {"role": "developer", "content": "mid-conversation rule"},
            ]
        )
        system, user, developer = conversation.messages
        assert system == Message(role="system", parts=[Text(text="be brief")])
        assert user.parts == [
            Text(text="what is this"),
            Image(media_type="image/png", data="AAAA"),
            Document(media_type="audio/wav", data="UklG"),
        ]
        assert developer.role == "developer"

    def test_tool_round_trip_names_results_and_reads_signatures(self) -> None:
        """A tool result learns its function's name; a signature in the id is read back."""
        ident = make_call_id("c2ln+/8=", "call_1")
        conversation = _decode(
            messages=[
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": ident,
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": ident, "content": "rain"},
            ]
        )
        call = conversation.messages[1].parts[0]
        assert call == ToolCall(
            id=ident, name="weather", arguments='{"city":"Oslo"}', signature="c2ln+/8="
        )
        assert conversation.messages[2].parts == [
            ToolResult(call_id=ident, content=[Text(text="rain")], name="weather")
        ]

    def test_unknown_content_and_fields_are_kept_for_the_encoder_to_refuse(self) -> None:
        """Nothing is dropped: an unknown part is Unmapped at its path, a field is extra."""
        conversation = _decode(
            messages=[{"role": "user", "content": [{"type": "input_video", "video": "x"}]}],
            logit_bias={"1": 2},
            store=True,
        )
        assert conversation.messages[0].parts == [
            Unmapped(
                kind="content parts of type 'input_video'", where="messages[0].content[0].type"
            )
        ]
        assert conversation.extra == {"logit_bias": {"1": 2}}

    def test_settings(self) -> None:
        """Sampling, limits, format, reasoning and usage options map to their slots."""
        conversation = _decode(
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=5,
            max_completion_tokens=7,
            stop="END",
            n=2,
            reasoning_effort="low",
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        )
        assert conversation.stream and conversation.include_usage
        assert conversation.max_tokens == 7
        assert conversation.stop == ["END"]
        assert conversation.candidate_count == 2
        assert conversation.reasoning is not None and conversation.reasoning.effort == "low"
        assert conversation.response_format is not None
        assert conversation.response_format.kind == "json_schema"

    @pytest.mark.parametrize(
        ("body", "param"),
        [
            ({"messages": []}, "messages"),
            ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
            (
                {"messages": [{"role": "tool", "content": "x"}]},
                "messages[0].tool_call_id",
            ),
            (
                {
                    "messages": [
                        {
                            "role": "assistant",
                            "tool_calls": [
                                {"id": "a", "function": {"name": "f", "arguments": "[1]"}}
                            ],
                        }
                    ]
                },
                "messages[0].tool_calls[0].function.arguments",
            ),
            (
                {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web"}]},
                "tools[0].type",
            ),
        ],
    )
    def test_mistakes_are_400s_naming_the_field(self, body: dict[str, Any], param: str) -> None:
        """A malformed request is a BadRequest whose param is the client's field."""
        with pytest.raises(BadRequest) as caught:
            _decode(**body)
        assert caught.value.param == param


class TestEncodeRequest:
    def test_another_apis_conversation_as_a_chat_body(self) -> None:
        """System turns, documents, reasoning text, tool calls and results map to Chat."""
        conversation = Conversation(
            model="claude",
            messages=[
                Message(role="system", parts=[Text(text="rules")]),
                Message(
                    role="user",
                    parts=[
                        Text(text="read"),
                        Document(media_type="application/pdf", data="JVBE", title="a.pdf"),
                    ],
                ),
                Message(
                    role="assistant",
                    parts=[
                        Reasoning(text="thinking", signature="sig"),
                        ToolCall(id="t1", name="f", arguments="{}"),
                    ],
                ),
                Message(role="tool", parts=[ToolResult(call_id="t1", content=[Text(text="ok")])]),
            ],
            stream=True,
            max_tokens=100,
        )
        body = chat.encode_request(conversation, model="gpt", unsupported=REFUSE)
        assert body["model"] == "gpt"
        assert body["stream_options"] == {"include_usage": True}
        assert body["max_completion_tokens"] == 100
        system, user, assistant, tool = body["messages"]
        assert system == {"role": "system", "content": "rules"}
        assert user["content"][1] == {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
        }
        assert assistant["reasoning_content"] == "thinking"
        assert assistant["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}
        assert tool == {"role": "tool", "tool_call_id": "t1", "content": "ok"}

    def test_what_chat_cannot_carry_is_refused_by_name(self) -> None:
        """Another API's unknown field and unmapped content are 400s naming them."""
        conversation = Conversation(model="m", messages=[], extra={"container": "x"})
        with pytest.raises(BadRequest) as caught:
            chat.encode_request(conversation, model="m", unsupported=REFUSE)
        assert caught.value.param == "container"
        unmapped = Unmapped(kind="server tools", where="messages[0].content[0]")
        conversation = Conversation(model="m", messages=[Message(role="user", parts=[unmapped])])
        with pytest.raises(BadRequest) as caught:
            chat.encode_request(conversation, model="m", unsupported=REFUSE)
        assert caught.value.param == "messages[0].content[0]"
        assert "provider 'main' (Gemini)" in str(caught.value)


class TestAnswers:
    def test_decode_then_encode_keeps_the_meaning(self) -> None:
        """A completion read and written again has the same message, finish and usage."""
        body = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "reasoning_content": "hmm",
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{}"},
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 4,
                "prompt_tokens_details": {"cached_tokens": 6},
            },
        }
        answer = chat.decode_answer(msgspec.json.encode(body), provider="'main' (openai)")
        assert answer.parts == [
            Reasoning(text="hmm"),
            ToolCall(id="c1", name="f", arguments="{}"),
        ]
        assert answer.usage == Usage(input_tokens=10, output_tokens=4, cached_tokens=6)
        again = msgspec.json.decode(chat.encode_answer(answer, created=1))
        message = again["choices"][0]["message"]
        assert message["tool_calls"] == body["choices"][0]["message"]["tool_calls"]
        assert message["reasoning_content"] == "hmm"
        assert again["choices"][0]["finish_reason"] == "tool_calls"
        assert again["usage"]["prompt_tokens_details"] == {"cached_tokens": 6}

    def test_a_signed_call_carries_its_signature_in_the_id(self) -> None:
        """ToolCall.signature rides in the call id a chat client keeps."""
        answer = Answer(
            id="r",
            model="gemini",
            parts=[ToolCall(id="", name="f", arguments="{}", signature="c2ln")],
            finish="stop",
        )
        call = msgspec.json.decode(chat.encode_answer(answer))["choices"][0]["message"]
        assert "__thought__c2ln" in call["tool_calls"][0]["id"]
        assert (
            msgspec.json.decode(chat.encode_answer(answer))["choices"][0]["finish_reason"]
            == "tool_calls"
        )

    def test_an_unreadable_answer_is_a_provider_failure(self) -> None:
        """Bytes that are not a completion are the provider's fault, not the client's."""
        with pytest.raises(UpstreamUnavailable):
            chat.decode_answer(b"<html>", provider="'main' (openai)")


class TestStreams:
    def test_decoder_yields_events_and_holds_the_finish_for_the_usage(self) -> None:
        """Deltas become events; the finish waits for the usage chunk after it."""
        decoder = chat.StreamDecoder(provider="'main' (openai)")
        chunk = {"id": "c", "model": "gpt", "choices": []}
        frames = _frames(
            {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
            {**chunk, "choices": [{"index": 0, "delta": {"reasoning_content": "r"}}]},
            {
                **chunk,
                "choices": [
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [
                                {"index": 0, "id": "t", "function": {"name": "f", "arguments": "{"}}
                            ]
                        },
                    }
                ],
            },
            {
                **chunk,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]},
                    }
                ],
            },
            {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
            {**chunk, "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
        )
        events = [event for frame in frames for event in decoder.feed(frame)]
        events += decoder.finish()
        usage = Usage(input_tokens=3, output_tokens=2)
        assert events == [
            Start(id="c", model="gpt"),
            ReasoningDelta(text="r"),
            ToolCallStart(index=0, id="t", name="f"),
            ToolArgsDelta(index=0, fragment="{"),
            ToolArgsDelta(index=0, fragment="}"),
            UsageUpdate(usage=usage),
            Finish(reason="tool_calls", usage=usage),
        ]

    def test_a_stream_cut_short_raises(self) -> None:
        """A stream with no finish is an error, not a truncated answer passed off."""
        decoder = chat.StreamDecoder(provider="'main' (openai)")
        decoder.feed(b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"par"}}]}')
        with pytest.raises(UpstreamUnavailable):
            decoder.finish()

    def test_encoder_writes_chunks_then_usage_and_done(self) -> None:
        """Events become chat chunks; the usage chunk and [DONE] close the stream."""
        encoder = chat.StreamEncoder(model="m", include_usage=True, created=1)
        frames: list[bytes] = []
        for event in [
            Start(id="x", model="up"),
            TextDelta(text="hi"),
            ToolCallStart(index=0, id="t", name="f"),
            ToolArgsDelta(index=0, fragment="{}"),
            Finish(reason="stop", usage=Usage(input_tokens=1, output_tokens=2)),
        ]:
            frames += encoder.feed(event)
        frames += encoder.finish()
        chunks = _chunks(frames)
        assert chunks[-1] == "[DONE]"
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert chunks[1]["choices"][0]["delta"] == {"content": "hi"}
        assert chunks[2]["choices"][0]["delta"]["tool_calls"][0]["id"] == "t"
        assert chunks[4]["choices"][0]["finish_reason"] == "tool_calls"
        assert chunks[5]["usage"]["total_tokens"] == 3
        assert {c["model"] for c in chunks[:-1]} == {"up"}
