"""The Cohere v2 codec: canonical conversations up, answers and streams back."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from fkllmproxy.errors import BadRequest, UpstreamTimeout, UpstreamUnavailable
from fkllmproxy.translate.canonical import (
    Answer,
    CacheHint,
    Conversation,
    Document,
    Finish,
    Image,
    Message,
    Part,
    Reasoning,
    ReasoningConfig,
    ReasoningDelta,
    Refusal,
    ResponseFormat,
    Start,
    StreamEvent,
    Text,
    TextDelta,
    Tool,
    ToolArgsDelta,
    ToolCall,
    ToolCallStart,
    ToolChoice,
    ToolResult,
    Unmapped,
    Usage,
)
from fkllmproxy.translate.codecs import cohere
from fkllmproxy.wire.cohere import Usage as CohereUsage
from fkllmproxy.wire.cohere import UsageUnits, encode

PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = Tool(name="get_weather", parameters=PARAMS)
COHERE_WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": PARAMS}}


def user(*parts: Part) -> Message:
    return Message(role="user", parts=list(parts) or [Text(text="hi")])


def conversation(*messages: Message, **fields: Any) -> Conversation:
    return Conversation(model="m", messages=list(messages) or [user()], **fields)


def sent(chat: Conversation) -> dict[str, Any]:
    """What goes up to Cohere for ``chat``, as JSON."""
    request = cohere.encode_request(chat, model="command-a", provider="co")
    result: dict[str, Any] = msgspec.json.decode(encode(request))
    return result


def refused(chat: Conversation) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        cohere.encode_request(chat, model="c", provider="co")
    return caught.value


USER = {"role": "user", "content": "hi"}
CALL = ToolCall(id="get_weather_1", name="get_weather", arguments='{"city":"Oslo"}')
COHERE_CALL = {
    "id": "get_weather_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
}


class TestEncodeRequest:
    def test_minimal_request(self) -> None:
        """Only what was asked for goes up; ``stream`` only when streaming."""
        assert sent(conversation()) == {"model": "command-a", "messages": [USER]}
        assert sent(conversation(stream=True))["stream"] is True

    def test_system_turns_become_one_first_system_message(self) -> None:
        """Cohere wants the system turn first: every system/developer text, in order."""
        chat = conversation(
            Message(role="system", parts=[Text(text="A.")]),
            user(),
            Message(role="developer", parts=[Text(text="B.")]),
        )
        assert sent(chat)["messages"] == [{"role": "system", "content": "A.\n\nB."}, USER]

    def test_sampling_and_limits_under_coheres_names(self) -> None:
        """max_tokens, stop, top_p (p), top_k (k), seed and penalties; user and metadata
        change nothing Cohere does and are not sent."""
        chat = conversation(
            max_tokens=9,
            stop=["END"],
            temperature=0.2,
            top_p=0.5,
            top_k=3,
            seed=1,
            presence_penalty=0.1,
            frequency_penalty=0.3,
            candidate_count=1,
            user="u",
            metadata={"a": "b"},
            tool_choice=ToolChoice(parallel=False),
        )
        out = sent(chat)
        assert out["max_tokens"] == 9
        assert out["stop_sequences"] == ["END"]
        assert (out["temperature"], out["p"], out["k"], out["seed"]) == (0.2, 0.5, 3, 1)
        assert (out["presence_penalty"], out["frequency_penalty"]) == (0.1, 0.3)
        assert set(out) == {
            "model",
            "messages",
            "max_tokens",
            "stop_sequences",
            "temperature",
            "p",
            "k",
            "seed",
            "presence_penalty",
            "frequency_penalty",
        }

    def test_image_parts(self) -> None:
        """Images go as Cohere's image_url block: a web URL with its detail, inline data
        as a data: URI."""
        chat = conversation(
            user(
                Text(text="look"),
                Image(url="https://x/a.png", detail="high"),
                Image(media_type="image/png", data="iVBO"),
            )
        )
        (message,) = sent(chat)["messages"]
        assert message["content"] == [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
        ]

    def test_tool_call_and_result(self) -> None:
        """Assistant text beside calls is the tool_plan; results go back by id as text."""
        chat = conversation(
            user(),
            Message(role="assistant", parts=[Text(text="Checking."), CALL]),
            Message(
                role="tool",
                parts=[ToolResult(call_id="get_weather_1", content=[Text(text="cold")])],
            ),
            tools=[WEATHER],
        )
        out = sent(chat)
        assert out["messages"][1:] == [
            {"role": "assistant", "tool_calls": [COHERE_CALL], "tool_plan": "Checking."},
            {
                "role": "tool",
                "tool_call_id": "get_weather_1",
                "content": [{"type": "text", "text": "cold"}],
            },
        ]
        assert out["tools"] == [COHERE_WEATHER]

    def test_results_in_a_user_turn_go_first_as_tool_messages(self) -> None:
        """Anthropic answers calls inside a user turn: each result becomes a tool message,
        before the rest of the turn; a failed one is a document saying so."""
        chat = conversation(
            user(),
            Message(role="assistant", parts=[CALL, ToolCall(id="t2", name="f")]),
            user(
                ToolResult(call_id="get_weather_1", content=[Text(text="cold")]),
                ToolResult(call_id="t2", content=[Text(text="boom")], is_error=True),
                Text(text="and now?"),
            ),
        )
        assert sent(chat)["messages"][2:] == [
            {
                "role": "tool",
                "tool_call_id": "get_weather_1",
                "content": [{"type": "text", "text": "cold"}],
            },
            {
                "role": "tool",
                "tool_call_id": "t2",
                "content": [{"type": "document", "document": {"data": {"error": "boom"}}}],
            },
            {"role": "user", "content": "and now?"},
        ]

    def test_reasoning_goes_back_as_thinking(self) -> None:
        """Reasoning text is an assistant thinking block, before the text or beside the
        calls; reasoning with only a signature or redacted data is left out."""
        chat = conversation(
            user(),
            Message(
                role="assistant",
                parts=[Reasoning(text="hmm", signature="sig"), Reasoning(redacted="xx"), CALL],
            ),
            Message(role="tool", parts=[ToolResult(call_id="get_weather_1")]),
            Message(role="assistant", parts=[Reasoning(text="so"), Text(text="Cold.")]),
            user(),
        )
        messages = sent(chat)["messages"]
        assert messages[1] == {
            "role": "assistant",
            "content": [{"type": "thinking", "thinking": "hmm"}],
            "tool_calls": [COHERE_CALL],
        }
        assert messages[3] == {
            "role": "assistant",
            "content": [{"type": "thinking", "thinking": "so"}, {"type": "text", "text": "Cold."}],
        }

    def test_refusals_are_the_assistants_text(self) -> None:
        chat = conversation(user(), Message(role="assistant", parts=[Refusal(text="No.")]), user())
        assert sent(chat)["messages"][1] == {"role": "assistant", "content": "No."}

    def test_an_empty_assistant_turn_is_left_out(self) -> None:
        """Cohere refuses an empty turn, and it carries nothing to replay."""
        chat = conversation(user(), Message(role="assistant", parts=[Text(text="")]), user())
        assert [m["role"] for m in sent(chat)["messages"]] == ["user", "user"]

    def test_cache_hints_are_dropped(self) -> None:
        """Cohere caches by itself: a cache breakpoint changes nothing that goes up."""
        chat = conversation(user(Text(text="hi", cache=CacheHint())), cache=CacheHint(ttl="1h"))
        assert sent(chat) == {"model": "command-a", "messages": [USER]}

    def test_a_function_without_parameters_takes_none(self) -> None:
        (out,) = sent(conversation(tools=[Tool(name="now")]))["tools"]
        assert out["function"]["parameters"] == {"type": "object", "properties": {}}

    @pytest.mark.parametrize(
        ("mode", "expected"),
        [("auto", None), ("none", "NONE"), ("required", "REQUIRED")],
    )
    def test_tool_choice(self, mode: Any, expected: str | None) -> None:
        chat = conversation(tools=[WEATHER], tool_choice=ToolChoice(mode=mode))
        assert sent(chat).get("tool_choice") == expected

    def test_named_tool_choice_offers_only_that_tool(self) -> None:
        other = Tool(name="get_time", parameters=PARAMS)
        choice = ToolChoice(mode="tool", name="get_time")
        out = sent(conversation(tools=[WEATHER, other], tool_choice=choice))
        assert out["tool_choice"] == "REQUIRED"
        assert [t["function"]["name"] for t in out["tools"]] == ["get_time"]

    @pytest.mark.parametrize(
        ("choice", "tools", "field"),
        [
            (ToolChoice(mode="required"), None, "tool_choice"),
            (ToolChoice(mode="tool", name="nope"), [WEATHER], "tool_choice.function.name"),
        ],
    )
    def test_impossible_tool_choices_are_invalid(
        self, choice: ToolChoice, tools: list[Tool] | None, field: str
    ) -> None:
        assert refused(conversation(tools=tools, tool_choice=choice)).param == field

    def test_no_tool_choice_without_tools_sends_nothing(self) -> None:
        assert "tool_choice" not in sent(conversation(tool_choice=ToolChoice(mode="none")))

    @pytest.mark.parametrize(
        ("response_format", "expected"),
        [
            (ResponseFormat(kind="text"), None),
            (ResponseFormat(kind="json_object"), {"type": "json_object"}),
            (
                ResponseFormat(kind="json_schema", name="x", schema=PARAMS),
                {"type": "json_object", "json_schema": PARAMS},
            ),
        ],
    )
    def test_response_format(self, response_format: ResponseFormat, expected: Any) -> None:
        assert sent(conversation(response_format=response_format)).get("response_format") == (
            expected
        )

    @pytest.mark.parametrize(
        ("config", "expected"),
        [
            (ReasoningConfig(effort="none"), {"type": "disabled"}),
            (ReasoningConfig(effort="low"), {"type": "enabled", "token_budget": 1024}),
            (ReasoningConfig(effort="high"), {"type": "enabled", "token_budget": 24576}),
            (ReasoningConfig(budget_tokens=2000), {"type": "enabled", "token_budget": 2000}),
            (ReasoningConfig(budget_tokens=0), {"type": "disabled"}),
            (ReasoningConfig(adaptive=True), {"type": "enabled"}),
            (ReasoningConfig(include=True), None),
        ],
    )
    def test_reasoning_is_thinking(self, config: ReasoningConfig, expected: Any) -> None:
        assert sent(conversation(reasoning=config)).get("thinking") == expected

    @pytest.mark.parametrize(
        ("api", "field"), [("chat", "reasoning_effort"), ("responses", "reasoning.effort")]
    )
    def test_an_unknown_effort_is_invalid(self, api: str, field: str) -> None:
        error = refused(conversation(reasoning=ReasoningConfig(effort="max"), api=api))
        assert error.param == field

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"logprobs": True}, "logprobs"),
            ({"top_logprobs": 2}, "top_logprobs"),
            ({"candidate_count": 3}, "n"),
            ({"modalities": ["text", "audio"]}, "modalities"),
            ({"extra": {"audio": {"voice": "x"}}}, "audio"),
            ({"extra": {"prediction": {}}}, "prediction"),
            ({"candidate_count": 2, "api": "gemini"}, "generationConfig.candidateCount"),
        ],
    )
    def test_what_cohere_cannot_carry_is_refused_by_name(
        self, fields: dict[str, Any], field: str
    ) -> None:
        error = refused(conversation(**fields))
        assert f"'{field}'" in error.message and "'co'" in error.message
        assert error.param == field

    @pytest.mark.parametrize(
        ("message", "field"),
        [
            (user(Document(file_id="f")), "messages[0].content[0].type"),
            (user(Image(url="gs://b/x.png")), "messages[0].content[0].image_url.url"),
            (user(Image()), "messages[0].content[0].image_url.url"),
            (user(Image(url="https://x", detail="max")), "messages[0].content[0].image_url.detail"),
            (
                Message(role="system", parts=[Image(url="https://x")]),
                "messages[0].content[0].type",
            ),
            (
                Message(role="assistant", parts=[Image(url="https://x")]),
                "messages[0].content[0].type",
            ),
            (
                Message(
                    role="tool", parts=[ToolResult(call_id="a", content=[Image(url="https://x")])]
                ),
                "messages[0].content[0].type",
            ),
            (Message(role="tool", parts=[Text(text="x")]), "messages[0].content[0].type"),
        ],
    )
    def test_parts_cohere_cannot_take_are_refused(self, message: Message, field: str) -> None:
        error = refused(conversation(message, user()))
        assert error.param == field and f"'{field}'" in error.message

    def test_audio_is_refused_as_audio(self) -> None:
        error = refused(conversation(user(Document(media_type="audio/wav", data="AA"))))
        assert "content parts of type 'audio'" in error.message

    @pytest.mark.parametrize("role", ["system", "user", "assistant", "tool"])
    def test_unmapped_content_is_refused_by_its_own_path(self, role: Any) -> None:
        """What the client's codec could not map is named as the client wrote it."""
        unmapped = Unmapped(kind="content parts of type 'x'", where="messages[0].content[2].type")
        error = refused(conversation(Message(role=role, parts=[unmapped]), user()))
        assert error.param == "messages[0].content[2].type"
        assert "(content parts of type 'x')" in error.message

    @pytest.mark.parametrize(
        ("messages", "where"),
        [
            ([], "messages"),
            ([Message(role="system", parts=[Text(text="only")])], "messages"),
            (
                [user(), Message(role="tool", parts=[ToolResult(call_id="")])],
                "messages[1].tool_call_id",
            ),
            (
                [Message(role="assistant", parts=[ToolCall(id="", name="f")])],
                "messages[0].tool_calls[0].id",
            ),
            (
                [Message(role="assistant", parts=[ToolCall(id="a", name="f", arguments="[1]")])],
                "messages[0].tool_calls[0].function.arguments",
            ),
            (
                [Message(role="assistant", parts=[ToolCall(id="a", name="f", arguments="{")])],
                "messages[0].tool_calls[0].function.arguments",
            ),
        ],
    )
    def test_invalid_messages_name_the_field(self, messages: list[Message], where: str) -> None:
        chat = Conversation(model="m", messages=messages)
        assert refused(chat).param == where


def answer_body(**fields: Any) -> bytes:
    base: dict[str, Any] = {
        "id": "r1",
        "finish_reason": "COMPLETE",
        "message": {"role": "assistant"},
    }
    return json.dumps({**base, **fields}).encode()


def decoded(**fields: Any) -> Answer:
    return cohere.decode_answer(answer_body(**fields), provider="co")


class TestDecodeAnswer:
    def test_text_answer(self) -> None:
        """The text, a stop, and the billed units as the usage (cached tokens too)."""
        found = decoded(
            message={"role": "assistant", "content": [{"type": "text", "text": "Hi"}]},
            usage={
                "billed_units": {"input_tokens": 3, "output_tokens": 1},
                "tokens": {"input_tokens": 70, "output_tokens": 1},
                "cached_tokens": 2,
            },
        )
        assert found.id == "r1"
        assert found.parts == [Text(text="Hi")]
        assert found.finish == "stop"
        assert found.usage == Usage(input_tokens=3, output_tokens=1, cached_tokens=2)

    def test_tool_calls_with_their_plan(self) -> None:
        """The plan is the text before the calls; a call ends the answer as tool_calls."""
        message = {"role": "assistant", "tool_plan": "I will call f.", "tool_calls": [COHERE_CALL]}
        found = decoded(message=message, finish_reason="TOOL_CALL")
        assert found.finish == "tool_calls"
        assert found.parts == [Text(text="I will call f."), CALL]

    def test_calls_after_a_complete_finish_are_tool_calls(self) -> None:
        found = decoded(message={"role": "assistant", "tool_calls": [COHERE_CALL]})
        assert found.finish == "tool_calls"

    def test_a_call_without_id_or_arguments_gets_them(self) -> None:
        """An id is made up when Cohere gives none; no arguments are an empty object."""
        message = {"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}
        (call,) = decoded(message=message).parts
        assert isinstance(call, ToolCall)
        assert call.id.startswith("call_") and (call.name, call.arguments) == ("f", "{}")

    def test_thinking_is_reasoning_first(self) -> None:
        content = [{"type": "text", "text": "42"}, {"type": "thinking", "thinking": "hmm"}]
        found = decoded(message={"role": "assistant", "content": content})
        assert found.parts == [Reasoning(text="hmm"), Text(text="42")]

    @pytest.mark.parametrize(
        ("reason", "expected"),
        [
            ("COMPLETE", "stop"),
            ("STOP_SEQUENCE", "stop"),
            ("MAX_TOKENS", "length"),
            ("NEW", "stop"),
        ],
    )
    def test_finish_reasons(self, reason: str, expected: str) -> None:
        assert decoded(finish_reason=reason).finish == expected

    def test_error_and_timeout_finishes_are_upstream_failures(self) -> None:
        with pytest.raises(UpstreamUnavailable):
            decoded(finish_reason="ERROR")
        with pytest.raises(UpstreamTimeout):
            decoded(finish_reason="TIMEOUT")

    def test_a_body_that_is_not_an_answer_is_an_upstream_failure(self) -> None:
        """A 200 that is not an answer falls over to the next target."""
        with pytest.raises(UpstreamUnavailable) as caught:
            cohere.decode_answer(b'{"text": "not a v2 answer"}', provider="co")
        assert caught.value.upstream_status == 200 and caught.value.retryable

    def test_usage_falls_back_to_tokens(self) -> None:
        """Without billed units, the tokens the model consumed are counted."""
        assert cohere.usage_of(None) == Usage()
        tokens = CohereUsage(tokens=UsageUnits(input_tokens=5, output_tokens=2))
        assert cohere.usage_of(tokens) == Usage(input_tokens=5, output_tokens=2)
        assert cohere.usage_of(CohereUsage(cached_tokens=4)) == Usage(cached_tokens=4)

    def test_an_answer_replays_as_cohere_sent_it(self) -> None:
        """An answer put back as the assistant turn of the next request is the message
        Cohere answered: thinking, plan and calls."""
        message = {
            "role": "assistant",
            "content": [{"type": "thinking", "thinking": "hmm"}],
            "tool_plan": "I will check.",
            "tool_calls": [COHERE_CALL],
        }
        found = decoded(message=message, finish_reason="TOOL_CALL")
        chat = conversation(user(), Message(role="assistant", parts=found.parts))
        assert sent(chat)["messages"][1] == message


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


def frame(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}".encode()


def content(kind: str, value: str, index: int = 0) -> dict[str, Any]:
    delta = {"message": {"content": {kind: value}}}
    return {"type": "content-delta", "index": index, "delta": delta}


def streamed(events: list[dict[str, Any]]) -> list[StreamEvent]:
    decoder = cohere.StreamDecoder(provider="co")
    found = [e for event in events for e in decoder.feed(frame(event))]
    return found + decoder.finish()


class TestStreamDecoder:
    def test_text_goes_out_as_it_comes(self) -> None:
        """Start, each content-delta as it comes, then the finish with the usage."""
        events = streamed(
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
        assert events == [
            Start(id="m1", model=""),
            TextDelta(text="Hel"),
            TextDelta(text="lo"),
            Finish(reason="stop", usage=Usage(input_tokens=3, output_tokens=2)),
        ]

    def test_a_stream_without_message_start_still_starts(self) -> None:
        first = streamed([content("text", "x"), END])[0]
        assert isinstance(first, Start) and first.id

    def test_thinking_is_reasoning(self) -> None:
        """Each thinking block starts a reasoning block of its own."""
        events = streamed(
            [
                content("thinking", "hmm"),
                content("thinking", " so", 0),
                content("thinking", "again", 1),
                content("text", "ok", 2),
                END,
            ]
        )
        assert events[1:5] == [
            ReasoningDelta(text="hmm", new=True),
            ReasoningDelta(text=" so"),
            ReasoningDelta(text="again", new=True),
            TextDelta(text="ok"),
        ]

    def test_tool_plan_and_calls(self) -> None:
        """The plan is text; each call opens with id and name, then argument pieces."""
        opened = {"id": "f_1", "type": "function", "function": {"name": "f", "arguments": ""}}
        second = {"id": "g_1", "type": "function", "function": {"name": "g", "arguments": "{}"}}
        piece = {"message": {"tool_calls": {"function": {"arguments": '{"a":'}}}}
        rest = {"message": {"tool_calls": {"function": {"arguments": "1}"}}}}
        events = streamed(
            [
                {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "Calling f."}}},
                {
                    "type": "tool-call-start",
                    "index": 0,
                    "delta": {"message": {"tool_calls": opened}},
                },
                {"type": "tool-call-delta", "index": 0, "delta": piece},
                {"type": "tool-call-delta", "index": 0, "delta": rest},
                {"type": "tool-call-end", "index": 0},
                {
                    "type": "tool-call-start",
                    "index": 1,
                    "delta": {"message": {"tool_calls": second}},
                },
                {"type": "tool-call-end", "index": 1},
                {"type": "message-end", "delta": {"finish_reason": "TOOL_CALL"}},
            ]
        )
        assert events[1:] == [
            TextDelta(text="Calling f."),
            ToolCallStart(index=0, id="f_1", name="f"),
            ToolArgsDelta(index=0, fragment='{"a":'),
            ToolArgsDelta(index=0, fragment="1}"),
            ToolCallStart(index=1, id="g_1", name="g"),
            ToolArgsDelta(index=1, fragment="{}"),
            Finish(reason="tool_calls"),
        ]

    def test_citations_debug_and_unknown_events_add_nothing(self) -> None:
        citation = {"message": {"citations": {"start": 0, "end": 1, "text": "x", "sources": []}}}
        events = streamed(
            [
                content("text", "x"),
                {"type": "citation-start", "index": 0, "delta": citation},
                {"type": "citation-end", "index": 0},
                {"type": "debug", "prompt": "..."},
                {"type": "some-new-event"},
                END,
            ]
        )
        assert [type(e) for e in events] == [Start, TextDelta, Finish]

    def test_a_second_message_end_adds_nothing(self) -> None:
        assert [type(e) for e in streamed([content("text", "x"), END, END])] == [
            Start,
            TextDelta,
            Finish,
        ]

    def test_error_at_message_end_raises(self) -> None:
        """message-end with an error is a failure, never a finished answer."""
        failed = {"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "boom"}}
        with pytest.raises(UpstreamUnavailable, match="boom"):
            streamed([content("text", "x"), failed])

    def test_a_timeout_at_message_end_raises(self) -> None:
        timed_out = {"type": "message-end", "delta": {"finish_reason": "TIMEOUT"}}
        with pytest.raises(UpstreamTimeout):
            streamed([timed_out])

    def test_a_stream_without_message_end_raises(self) -> None:
        with pytest.raises(UpstreamUnavailable, match="before the answer was complete"):
            streamed([content("text", "x")])

    def test_an_event_that_is_not_json_raises(self) -> None:
        decoder = cohere.StreamDecoder(provider="co")
        with pytest.raises(UpstreamUnavailable, match="not JSON of the expected shape"):
            decoder.feed(b"data: {nope")

    def test_frames_without_data_add_nothing(self) -> None:
        decoder = cohere.StreamDecoder(provider="co")
        assert decoder.feed(b": keep-alive") == [] and decoder.feed(b"data: [DONE]") == []
