"""The Responses codec: requests into the canonical conversation, answers and streams out."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from fkllmproxy.errors import BadRequest, UpstreamUnavailable
from fkllmproxy.translate._common import Unsupported, in_client_terms
from fkllmproxy.translate.canonical import (
    Answer,
    Conversation,
    Document,
    Finish,
    Image,
    Message,
    Reasoning,
    ReasoningConfig,
    ReasoningDelta,
    Refusal,
    RefusalDelta,
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
    Usage,
    UsageUpdate,
)
from fkllmproxy.translate.codecs import chat, cohere
from fkllmproxy.translate.codecs._ids import make_call_id
from fkllmproxy.translate.codecs.responses import (
    StreamEncoder,
    decode_request,
    encode_answer,
    in_responses_terms,
    input_items,
    response_envelope,
)

P = "'main' (openai)"


def decode(**data: Any) -> Conversation:
    return decode_request({"model": "m", **data}, provider=P)


def answer(*parts: Any, finish: Any = "stop", usage: Usage | None = None) -> Answer:
    return Answer(id="up", model="up-model", parts=list(parts), finish=finish, usage=usage)


def response(result: Answer, **request: Any) -> dict[str, Any]:
    body = encode_answer(result, model="client-name", request={"input": "x", **request}, provider=P)
    data: dict[str, Any] = msgspec.json.decode(body)
    return data


class TestDecodeRequest:
    def test_string_input_and_instructions(self) -> None:
        """instructions lead as a system message; a string input is one user message."""
        conversation = decode(input="hi", instructions="be brief")
        assert conversation.messages == [
            Message(role="system", parts=[Text(text="be brief")]),
            Message(role="user", parts=[Text(text="hi")]),
        ]
        assert conversation.api == "responses" and conversation.model == "m"

    def test_message_items_parts_and_roles(self) -> None:
        """Easy messages (no type), developer as system, images inline with their detail."""
        items = [
            {"role": "developer", "content": "rules"},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "look"},
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64,AA",
                        "detail": "low",
                    },
                    {"type": "input_image", "image_url": "https://x/a.png", "detail": "original"},
                ],
            },
            {"role": "assistant", "content": [{"type": "output_text", "text": "seen"}]},
        ]
        assert decode(input=items).messages == [
            Message(role="system", parts=[Text(text="rules")]),
            Message(
                role="user",
                parts=[
                    Text(text="look"),
                    Image(media_type="image/png", data="AA", detail="low"),
                    Image(url="https://x/a.png"),
                ],
            ),
            Message(role="assistant", parts=[Text(text="seen")]),
        ]

    def test_files_become_documents(self) -> None:
        """input_file: a data URL inline, bare base64 typed by its name, a file_id as it is."""
        parts = [
            {
                "type": "input_file",
                "file_data": "data:application/pdf;base64,JVBE",
                "filename": "a",
            },
            {"type": "input_file", "file_data": "JVBE", "filename": "b.pdf"},
            {"type": "input_file", "file_id": "file-1"},
            {"type": "input_image", "file_id": "file-2"},
        ]
        (message,) = decode(input=[{"role": "user", "content": parts}]).messages
        assert message.parts == [
            Document(media_type="application/pdf", data="JVBE", filename="a"),
            Document(media_type="application/pdf", data="JVBE", filename="b.pdf"),
            Document(file_id="file-1"),
            Document(file_id="file-2"),
        ]

    def test_an_assistant_refusal_is_a_refusal(self) -> None:
        """An assistant's refusal part stays a refusal (Chat had to make it text)."""
        item = {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]}
        assert decode(input=[item]).messages == [
            Message(role="assistant", parts=[Refusal(text="no")])
        ]

    def test_reasoning_calls_and_outputs(self) -> None:
        """Reasoning and function calls make one assistant turn; each output a tool turn."""
        items = [
            {"role": "user", "content": "weather?"},
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": "Look it up."}],
                "encrypted_content": "opaque",
            },
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": '{"a":1}'},
            {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sun"},
            {
                "type": "function_call_output",
                "call_id": "c2",
                "output": [
                    {"type": "input_text", "text": "rain"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AA"},
                ],
            },
        ]
        messages = decode(input=items).messages
        assert messages[1] == Message(
            role="assistant",
            parts=[
                Reasoning(text="Look it up.", id="rs_1", redacted="opaque"),
                ToolCall(id="c1", name="w", arguments='{"a":1}'),
                ToolCall(id="c2", name="w", arguments="{}"),
            ],
        )
        assert messages[2:] == [
            Message(
                role="tool", parts=[ToolResult(call_id="c1", content=[Text(text="sun")], name="w")]
            ),
            Message(
                role="tool",
                parts=[
                    ToolResult(
                        call_id="c2",
                        content=[Text(text="rain"), Image(media_type="image/png", data="AA")],
                        name="w",
                    )
                ],
            ),
        ]

    def test_a_message_after_reasoning_joins_its_turn(self) -> None:
        """An assistant message its reasoning items opened is one turn; raw reasoning text
        stands in for a missing summary."""
        items = [
            {
                "type": "reasoning",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": "Hmm."}],
            },
            {"role": "assistant", "content": "Yes."},
            {"role": "assistant", "content": "And more."},
        ]
        assert decode(input=items).messages == [
            Message(role="assistant", parts=[Reasoning(text="Hmm."), Text(text="Yes.")]),
            Message(role="assistant", parts=[Text(text="And more.")]),
        ]

    def test_a_thought_signature_comes_back_out_of_the_call_id(self) -> None:
        """A call_id this proxy handed out with a signature inside gives the signature back."""
        call_id = make_call_id("c2lnbmF0dXJl", "call_1")
        item = {"type": "function_call", "call_id": call_id, "name": "f", "arguments": "{}"}
        (message,) = decode(input=[item]).messages
        assert message.parts == [
            ToolCall(id=call_id, name="f", arguments="{}", signature="c2lnbmF0dXJl")
        ]

    def test_parameters(self) -> None:
        """Tools, choice, limits, sampling, text format, reasoning, user; stream asks usage."""
        conversation = decode(
            input="x",
            tools=[
                {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True},
                {"type": "function", "name": "g"},
            ],
            tool_choice={"type": "function", "name": "f"},
            parallel_tool_calls=False,
            max_output_tokens=50,
            temperature=0.2,
            top_p=0.9,
            text={"format": {"type": "json_object"}, "verbosity": "low"},
            reasoning={"effort": "low", "summary": "auto"},
            user="u1",
            stream=True,
            metadata={"k": "v"},
            store=False,
            include=["reasoning.encrypted_content"],
            prompt_cache_key="abc",
            client_metadata={"x": "y"},
        )
        assert conversation.stream and conversation.include_usage
        assert conversation.tools == [
            Tool(name="f", parameters={"type": "object"}, strict=True),
            Tool(name="g", parameters={"type": "object", "properties": {}}),
        ]
        assert conversation.tool_choice == ToolChoice(mode="tool", name="f", parallel=False)
        assert conversation.max_tokens == 50
        assert (conversation.temperature, conversation.top_p) == (0.2, 0.9)
        assert conversation.response_format == ResponseFormat(kind="json_object")
        assert conversation.reasoning == ReasoningConfig(effort="low", summary="auto", include=True)
        assert conversation.user == "u1"
        assert conversation.metadata is None and conversation.extra == {}

    def test_json_schema_format(self) -> None:
        fmt = {"type": "json_schema", "name": "E", "schema": {"type": "object"}, "strict": True}
        assert decode(input="x", text={"format": fmt}).response_format == ResponseFormat(
            kind="json_schema", name="E", schema={"type": "object"}, strict=True
        )

    def test_a_text_format_and_no_reasoning_ask_for_nothing(self) -> None:
        """text.format text, reasoning without effort or summary, effort none: nothing."""
        plain = decode(input="x", text={"format": {"type": "text"}}, reasoning={})
        assert plain.response_format is None and plain.reasoning is None
        off = decode(input="x", reasoning={"effort": "none"}).reasoning
        assert off == ReasoningConfig(effort="none", include=False)

    @pytest.mark.parametrize(
        ("choice", "expected"),
        [
            ("auto", ToolChoice(mode="auto")),
            ("required", ToolChoice(mode="required")),
            ("none", ToolChoice(mode="none")),
        ],
    )
    def test_tool_choice_modes(self, choice: str, expected: ToolChoice) -> None:
        tools = [{"type": "function", "name": "f"}]
        assert decode(input="x", tools=tools, tool_choice=choice).tool_choice == expected

    def test_tool_choice_without_tools(self) -> None:
        """'none' is kept without tools, 'auto' is moot, parallel_tool_calls too."""
        assert decode(input="x", tool_choice="none").tool_choice == ToolChoice(mode="none")
        assert decode(input="x", tool_choice="auto", parallel_tool_calls=True).tool_choice is None

    @pytest.mark.parametrize(
        ("data", "field"),
        [
            ({"tools": [{"type": "web_search"}]}, "tools[0].type = 'web_search'"),
            (
                {"tools": [{"type": "namespace", "name": "n", "tools": []}]},
                "tools[0].type = 'namespace'",
            ),
            ({"background": True}, "background"),
            (
                {"input": [{"type": "item_reference", "id": "x"}]},
                "input[0].type = 'item_reference'",
            ),
            (
                {"input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
                "input[0].content[0].type = 'input_audio'",
            ),
        ],
    )
    def test_what_cannot_be_carried_is_a_400_naming_field_and_provider(
        self, data: dict[str, Any], field: str
    ) -> None:
        with pytest.raises(BadRequest) as refused:
            decode(**{"input": "x", **data})
        assert refused.value.param == field
        assert P in refused.value.message

    def test_codex_hint_for_web_search(self) -> None:
        with pytest.raises(BadRequest, match='web_search = "disabled"'):
            decode(input="x", tools=[{"type": "web_search"}])

    @pytest.mark.parametrize(
        ("data", "field"),
        [
            ({"tool_choice": "required"}, "tool_choice"),
            (
                {"input": [{"role": "user", "content": [{"type": "input_image"}]}]},
                "input[0].content[0].image_url",
            ),
            (
                {"input": [{"role": "user", "content": [{"type": "input_file"}]}]},
                "input[0].content[0].file_data",
            ),
            (
                {
                    "input": [
                        {
                            "role": "user",
                            "content": [{"type": "input_file", "file_url": "https://x/a.pdf"}],
                        }
                    ]
                },
                "input[0].content[0].file_url",
            ),
        ],
    )
    def test_values_that_cannot_work_are_a_400_naming_the_field(
        self, data: dict[str, Any], field: str
    ) -> None:
        with pytest.raises(BadRequest) as refused:
            decode(**{"input": "x", **data})
        assert refused.value.param == field

    def test_input_items_fills_in_message_type(self) -> None:
        assert input_items([{"role": "user", "content": "a"}]) == [
            {"type": "message", "role": "user", "content": "a"}
        ]
        assert input_items(None) == []

    def test_a_provider_refusal_names_the_responses_field(self) -> None:
        """A 400 about a Chat field the request became names the field the client sent."""
        error = in_responses_terms(
            BadRequest(
                "'reasoning_effort' is not supported by provider x.", param="reasoning_effort"
            )
        )
        assert error.param == "reasoning.effort"
        assert error.message == "'reasoning.effort' is not supported by provider x."
        other = BadRequest("bad", param="temperature")
        assert in_responses_terms(other) is other


USAGE = Usage(input_tokens=7, output_tokens=3, cached_tokens=2, reasoning_tokens=1)


class TestEncodeAnswer:
    def test_text_answer_and_usage(self) -> None:
        """The envelope echoes the request; text is one message; usage with its details."""
        data = response(answer(Text(text="hello"), usage=USAGE), metadata={"k": "v"}, store=False)
        assert data["object"] == "response" and data["status"] == "completed"
        assert data["id"].startswith("resp_") and data["model"] == "client-name"
        assert data["metadata"] == {"k": "v"} and data["store"] is False
        (item,) = data["output"]
        assert item["type"] == "message" and item["role"] == "assistant"
        assert item["id"].startswith("msg_")
        assert item["content"] == [
            {"type": "output_text", "text": "hello", "annotations": [], "logprobs": []}
        ]
        assert data["usage"] == {
            "input_tokens": 7,
            "input_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 0},
            "output_tokens": 3,
            "output_tokens_details": {"reasoning_tokens": 1},
            "total_tokens": 10,
        }

    def test_reasoning_text_comes_back_as_a_reasoning_item(self) -> None:
        """Reasoning is a reasoning item before the message, its text as reasoning_text."""
        data = response(answer(Reasoning(text="Because."), Text(text="hi")))
        reasoning, message = data["output"]
        assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_")
        assert reasoning["summary"] == []
        assert reasoning["content"] == [{"type": "reasoning_text", "text": "Because."}]
        assert "encrypted_content" not in reasoning
        assert message["content"][0]["text"] == "hi"

    def test_reasoning_is_the_summary_when_one_was_asked(self) -> None:
        """reasoning.summary set: the reasoning text is the item's summary."""
        data = response(
            answer(Reasoning(text="Because.", id="rs_up")), reasoning={"summary": "auto"}
        )
        (item,) = data["output"]
        assert item["id"] == "rs_up" and "content" not in item
        assert item["summary"] == [{"type": "summary_text", "text": "Because."}]

    def test_encrypted_content_when_included(self) -> None:
        """The proof (redacted data, or a signature marked as one) goes out when asked."""
        parts = (
            Reasoning(text="a", signature="sig"),
            Reasoning(redacted="opaque"),
            Reasoning(text="b"),
            Text(text="ok"),
        )
        asked = response(answer(*parts), include=["reasoning.encrypted_content"])
        signed, redacted, bare, _ = asked["output"]
        assert signed["encrypted_content"] == "signature:sig"
        assert redacted["encrypted_content"] == "opaque" and redacted["content"] == []
        assert "encrypted_content" not in bare
        plain = response(answer(*parts))
        assert [item["type"] for item in plain["output"]] == ["reasoning", "reasoning", "message"]
        assert all("encrypted_content" not in item for item in plain["output"])

    def test_tool_calls_become_function_call_items(self) -> None:
        """A call keeps its id; a thought signature rides inside it."""
        data = response(
            answer(
                ToolCall(id="call_9", name="w", arguments='{"c":"x"}'),
                ToolCall(id="call_8", name="v", arguments="{}", signature="c2ln"),
                finish="tool_calls",
            )
        )
        first, second = data["output"]
        assert first["type"] == "function_call" and first["id"].startswith("fc_")
        assert (first["call_id"], first["name"], first["arguments"]) == (
            "call_9",
            "w",
            '{"c":"x"}',
        )
        assert second["call_id"] == make_call_id("c2ln", "call_8")
        assert data["status"] == "completed"

    def test_refusal_is_a_message_of_its_own(self) -> None:
        data = response(answer(Text(text="a"), Text(text="b"), Refusal(text="no")))
        text, refusal = data["output"]
        assert text["content"][0]["text"] == "ab"
        assert refusal["content"] == [{"type": "refusal", "refusal": "no"}]

    @pytest.mark.parametrize(
        ("finish", "reason"),
        [("length", "max_output_tokens"), ("content_filter", "content_filter")],
    )
    def test_a_cut_answer_is_incomplete(self, finish: Any, reason: str) -> None:
        data = response(answer(Text(text="cut"), finish=finish))
        assert data["status"] == "incomplete"
        assert data["incomplete_details"] == {"reason": reason}

    def test_the_envelope_echoes_the_request_with_openai_defaults(self) -> None:
        envelope = response_envelope(
            {"instructions": "i", "reasoning": {"effort": "low"}, "text": {"format": None}},
            model="m",
        )
        assert envelope["instructions"] == "i" and envelope["temperature"] == 1.0
        assert envelope["reasoning"] == {"effort": "low", "summary": None}
        assert envelope["text"] == {"format": {"type": "text"}}
        assert envelope["store"] is True and envelope["tools"] == []


class TestRoundTrip:
    def test_an_answer_handed_back_decodes_to_the_same_turn(self) -> None:
        """Output items sent back as input give the assistant turn the answer held."""
        parts = [
            Reasoning(text="Think.", signature="sig"),
            Text(text="Calling."),
            ToolCall(id="call_1", name="f", arguments='{"a":1}', signature="c2ln"),
        ]
        request = {"include": ["reasoning.encrypted_content"], "reasoning": {"summary": "auto"}}
        output = response(answer(*parts), **request)["output"]
        (turn,) = decode(input=output).messages
        reasoning, text, call = turn.parts
        assert isinstance(reasoning, Reasoning)
        assert (reasoning.text, reasoning.signature) == ("Think.", "sig")
        assert text == Text(text="Calling.")
        assert isinstance(call, ToolCall)
        assert (call.name, call.arguments, call.signature) == ("f", '{"a":1}', "c2ln")


def run(events: list[StreamEvent], **request: Any) -> tuple[list[dict[str, Any]], StreamEncoder]:
    encoder = StreamEncoder(provider="'p' (openai)", model="m", request={"input": "x", **request})
    out: list[bytes] = []
    for event in events:
        out.extend(encoder.feed(event))
    out.extend(encoder.finish())
    payloads = []
    for frame in out:
        head, data = frame.decode().split("\n", 1)
        payload = json.loads(data.removeprefix("data: "))
        assert head == f"event: {payload['type']}"
        payloads.append(payload)
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    return payloads, encoder


START = Start(id="up", model="up-model")


class TestStream:
    def test_text_stream_order_and_final_response(self) -> None:
        events, encoder = run(
            [
                START,
                TextDelta(text=""),
                TextDelta(text="Hel"),
                TextDelta(text="lo"),
                Finish(reason="stop"),
                UsageUpdate(usage=Usage(input_tokens=4, output_tokens=2)),
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
        assert events[0]["response"]["status"] == "in_progress"
        assert events[2]["item"]["content"] == [] and events[2]["item"]["status"] == "in_progress"
        assert events[6]["text"] == "Hello"
        final = events[-1]["response"]
        assert final == encoder.response
        assert final["status"] == "completed"
        assert final["output"][0]["content"][0]["text"] == "Hello"
        assert final["output"][0]["status"] == "completed"
        assert final["usage"]["input_tokens"] == 4 and final["usage"]["total_tokens"] == 6

    def test_tool_calls_stream_as_function_call_items(self) -> None:
        events, _ = run(
            [
                ToolCallStart(index=0, id="call_1", name="w"),
                ToolArgsDelta(index=0, fragment='{"c":'),
                ToolArgsDelta(index=0, fragment='"x"}'),
                ToolCallStart(index=1, id="call_2", name="v", signature="c2ln"),
                Finish(reason="tool_calls"),
            ]
        )
        kinds = [e["type"] for e in events]
        assert kinds[2:] == [
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.output_item.added",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
        assert events[2]["item"]["call_id"] == "call_1"
        assert events[5]["item"]["call_id"] == make_call_id("c2ln", "call_2")
        assert events[6]["arguments"] == '{"c":"x"}' and events[8]["arguments"] == "{}"
        first, second = events[-1]["response"]["output"]
        assert first["arguments"] == '{"c":"x"}' and first["status"] == "completed"
        assert second["arguments"] == "{}"

    def test_length_ends_with_response_incomplete(self) -> None:
        events, _ = run([TextDelta(text="a"), Finish(reason="length")])
        assert events[-1]["type"] == "response.incomplete"
        assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}

    def test_a_stream_cut_short_raises_and_failed_closes_it(self) -> None:
        encoder = StreamEncoder(provider="'p' (openai)", model="m", request={"input": "x"})
        sent = encoder.feed(TextDelta(text="partial"))
        with pytest.raises(UpstreamUnavailable) as cut:
            encoder.finish()
        failed = json.loads(encoder.failed(cut.value).decode().split("data: ", 1)[1])
        assert failed["type"] == "response.failed"
        assert failed["sequence_number"] == len(sent)
        assert failed["response"]["status"] == "failed"
        assert failed["response"]["error"]["code"] == "server_error"
        assert encoder.feed(TextDelta(text="late")) == []

    def test_failed_before_anything_opens_the_response_first(self) -> None:
        """A failure before the first event still starts with created and in_progress."""
        encoder = StreamEncoder(provider="'p' (openai)", model="m", request={"input": "x"})
        frames = encoder.failed(UpstreamUnavailable("gone"))
        assert frames.count(b"event: ") == 3 and b"response.in_progress" in frames

    def test_reasoning_text_streams_as_a_reasoning_item_before_the_message(self) -> None:
        """Reasoning is a reasoning item, closed when the text starts."""
        events, _ = run(
            [
                ReasoningDelta(text="Think"),
                ReasoningDelta(text="ing"),
                TextDelta(text="Hi"),
                Finish(reason="stop"),
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

    def test_reasoning_streams_as_a_summary_when_one_was_asked(self) -> None:
        """reasoning.summary set: summary part events, the proof in the item when included."""
        events, _ = run(
            [
                ReasoningDelta(text="Think", id="rs_up"),
                ReasoningDelta(text="ing"),
                ReasoningDelta(signature="sig"),
                TextDelta(text="Hi"),
                Finish(reason="stop"),
            ],
            reasoning={"summary": "auto"},
            include=["reasoning.encrypted_content"],
        )
        assert [e["type"] for e in events][2:9] == [
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
        ]
        assert events[2]["item"] == {
            "id": "rs_up",
            "type": "reasoning",
            "summary": [],
            "status": "in_progress",
        }
        assert events[3]["summary_index"] == 0
        assert events[3]["part"] == {"type": "summary_text", "text": ""}
        assert events[4]["delta"] == "Think" and events[6]["text"] == "Thinking"
        assert events[7]["part"] == {"type": "summary_text", "text": "Thinking"}
        assert events[8]["item"] == {
            "id": "rs_up",
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "Thinking"}],
            "encrypted_content": "signature:sig",
            "status": "completed",
        }

    def test_reasoning_with_only_a_proof(self) -> None:
        """Redacted reasoning is an item of its own when included, and nothing otherwise."""
        stream: list[StreamEvent] = [
            ReasoningDelta(text="a"),
            ReasoningDelta(redacted="opaque", new=True),
            TextDelta(text="Hi"),
            Finish(reason="stop"),
        ]
        events, _ = run(stream, include=["reasoning.encrypted_content"])
        output = events[-1]["response"]["output"]
        assert [item["type"] for item in output] == ["reasoning", "reasoning", "message"]
        assert output[1]["encrypted_content"] == "opaque" and output[1]["content"] == []
        kinds = [e["type"] for e in events]
        assert kinds[8:10] == ["response.output_item.added", "response.output_item.done"]
        plain, _ = run(stream)
        output = plain[-1]["response"]["output"]
        assert [item["type"] for item in output] == ["reasoning", "message"]

    def test_a_refusal_streams_as_refusal_events(self) -> None:
        events, _ = run(
            [RefusalDelta(text="I can"), RefusalDelta(text="not."), Finish(reason="stop")]
        )
        assert [e["type"] for e in events][2:-1] == [
            "response.output_item.added",
            "response.content_part.added",
            "response.refusal.delta",
            "response.refusal.delta",
            "response.refusal.done",
            "response.content_part.done",
            "response.output_item.done",
        ]
        assert events[3]["part"] == {"type": "refusal", "refusal": ""}
        assert events[6]["refusal"] == "I cannot."
        (item,) = events[-1]["response"]["output"]
        assert item["content"] == [{"type": "refusal", "refusal": "I cannot."}]

    def test_text_after_a_tool_call_is_a_new_message(self) -> None:
        """Items keep the order they began in; calls close at the end."""
        events, _ = run(
            [
                TextDelta(text="a"),
                ToolCallStart(index=0, id="call_1", name="f"),
                TextDelta(text="b"),
                Finish(reason="tool_calls"),
            ]
        )
        output = events[-1]["response"]["output"]
        assert [item["type"] for item in output] == ["message", "function_call", "message"]
        assert [item["content"][0]["text"] for item in (output[0], output[2])] == ["a", "b"]

    def test_further_candidates_are_ignored(self) -> None:
        events, _ = run([TextDelta(text="a"), TextDelta(text="b", choice=1), Finish(reason="stop")])
        (item,) = events[-1]["response"]["output"]
        assert item["content"][0]["text"] == "a"

    def test_arguments_of_an_unknown_call_are_an_upstream_failure(self) -> None:
        encoder = StreamEncoder(provider="'p' (openai)", model="m", request={"input": "x"})
        with pytest.raises(UpstreamUnavailable):
            encoder.feed(ToolArgsDelta(index=3, fragment="{}"))


# ---------------------------------------------------------------- through the chat codec
# What a Chat-speaking provider gets and gives: the former Responses <-> Chat
# translator's behaviour, now the two codecs in a row.


def chat_body(**data: Any) -> dict[str, Any]:
    return chat.encode_request(decode(**data), model="m", unsupported=Unsupported("main", "openai"))


def completion(message: dict[str, Any], finish: str = "stop") -> bytes:
    return msgspec.json.encode(
        {
            "id": "c",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": 7,
                "completion_tokens": 3,
                "prompt_tokens_details": {"cached_tokens": 2},
                "completion_tokens_details": {"reasoning_tokens": 1},
            },
        }
    )


def from_chat(body: bytes) -> dict[str, Any]:
    return response(chat.decode_answer(body, provider=P))


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, usage: Any = None
) -> bytes:
    body: dict[str, Any] = {"id": "c", "choices": []}
    if delta is not None or finish is not None:
        body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    if usage is not None:
        body["usage"] = usage
    return b"data: " + msgspec.json.encode(body) + b"\n\n"


def run_chat(frames: list[bytes]) -> list[dict[str, Any]]:
    decoder = chat.StreamDecoder(provider=P)
    events = [event for frame in frames for event in decoder.feed(frame)]
    payloads, _ = run([*events, *decoder.finish()])
    return payloads


class TestThroughChat:
    def test_string_input_and_instructions(self) -> None:
        """instructions lead as a system message; a string input is one user message
        (the chat codec writes a user's text as text parts)."""
        assert chat_body(input="hi", instructions="be brief")["messages"] == [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
        ]

    def test_message_items_parts_and_roles(self) -> None:
        """Easy messages (no type), developer/system to system, images kept with detail."""
        items = [
            {"role": "developer", "content": "rules"},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "look"},
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64,AA",
                        "detail": "low",
                    },
                ],
            },
            {"role": "assistant", "content": [{"type": "output_text", "text": "seen"}]},
        ]
        assert chat_body(input=items)["messages"] == [
            {"role": "system", "content": "rules"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,AA", "detail": "low"},
                    },
                ],
            },
            {"role": "assistant", "content": "seen"},
        ]

    def test_function_calls_join_the_assistant_turn_and_outputs_become_tool_messages(self) -> None:
        """Reasoning with no text stays behind; calls are the turn's tool_calls."""
        items = [
            {"role": "user", "content": "weather?"},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": '{"a":1}'},
            {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sun"},
            {
                "type": "function_call_output",
                "call_id": "c2",
                "output": [{"type": "input_text", "text": "rain"}],
            },
        ]
        messages = chat_body(input=items)["messages"]
        assert messages[1] == {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"a":1}'}},
                {"id": "c2", "type": "function", "function": {"name": "w", "arguments": "{}"}},
            ],
        }
        assert messages[2:] == [
            {"role": "tool", "tool_call_id": "c1", "content": "sun"},
            {"role": "tool", "tool_call_id": "c2", "content": "rain"},
        ]

    def test_parameters(self) -> None:
        """Tools, choice, limits, sampling, text format, reasoning effort, user; stream asks
        usage; prompt_cache_key reaches a Chat host."""
        body = chat_body(
            input="x",
            tools=[
                {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}
            ],
            tool_choice={"type": "function", "name": "f"},
            parallel_tool_calls=False,
            max_output_tokens=50,
            temperature=0.2,
            top_p=0.9,
            text={"format": {"type": "json_object"}},
            reasoning={"effort": "low", "summary": "auto"},
            user="u1",
            stream=True,
            metadata={"k": "v"},
            store=False,
            include=["reasoning.encrypted_content"],
            prompt_cache_key="abc",
            client_metadata={"x": "y"},
        )
        assert body == {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_completion_tokens": 50,
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "u1",
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "f", "parameters": {"type": "object"}, "strict": True},
                }
            ],
            "parallel_tool_calls": False,
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "response_format": {"type": "json_object"},
            "reasoning_effort": "low",
            "prompt_cache_key": "abc",
        }

    def test_json_schema_format(self) -> None:
        fmt = {"type": "json_schema", "name": "E", "schema": {"type": "object"}, "strict": True}
        assert chat_body(input="x", text={"format": fmt})["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "E", "schema": {"type": "object"}, "strict": True},
        }

    def test_reasoning_text_comes_back_as_a_reasoning_item(self) -> None:
        """A host's reasoning_content is a reasoning item before the message, not dropped."""
        data = from_chat(
            completion({"role": "assistant", "content": "hi", "reasoning_content": "Because."})
        )
        reasoning, message = data["output"]
        assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_")
        assert reasoning["summary"] == []
        assert reasoning["content"] == [{"type": "reasoning_text", "text": "Because."}]
        assert message["content"][0]["text"] == "hi"

    def test_text_answer_and_usage(self) -> None:
        data = from_chat(completion({"role": "assistant", "content": "hello"}))
        (item,) = data["output"]
        assert item["content"][0] == {
            "type": "output_text",
            "text": "hello",
            "annotations": [],
            "logprobs": [],
        }
        assert data["usage"] == {
            "input_tokens": 7,
            "input_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 0},
            "output_tokens": 3,
            "output_tokens_details": {"reasoning_tokens": 1},
            "total_tokens": 10,
        }

    def test_tool_calls_become_function_call_items(self) -> None:
        call = {
            "id": "call_9",
            "type": "function",
            "function": {"name": "w", "arguments": '{"c":"x"}'},
        }
        data = from_chat(
            completion({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls")
        )
        (item,) = data["output"]
        assert item["type"] == "function_call"
        assert (item["call_id"], item["name"], item["arguments"]) == ("call_9", "w", '{"c":"x"}')

    def test_length_is_incomplete(self) -> None:
        data = from_chat(completion({"role": "assistant", "content": "cut"}, "length"))
        assert data["status"] == "incomplete"
        assert data["incomplete_details"] == {"reason": "max_output_tokens"}

    def test_unreadable_answer_is_an_upstream_failure(self) -> None:
        with pytest.raises(UpstreamUnavailable):
            from_chat(b"[]")

    @pytest.mark.parametrize(
        ("function", "why"),
        [
            ({"name": "", "arguments": "{}"}, "without a function name"),
            ({"name": "w", "arguments": "{oops"}, "with invalid JSON"),
        ],
    )
    def test_a_call_a_client_cannot_run_is_an_upstream_failure(
        self, function: dict[str, Any], why: str
    ) -> None:
        call = {"id": "call_1", "type": "function", "function": function}
        body = completion({"role": "assistant", "tool_calls": [call]}, "tool_calls")
        with pytest.raises(UpstreamUnavailable, match=why):
            from_chat(body)

    def test_text_stream_order_and_final_response(self) -> None:
        events = run_chat(
            [
                chunk({"role": "assistant", "content": ""}),
                chunk({"content": "Hel"}),
                chunk({"content": "lo"}),
                chunk({}, "stop"),
                chunk(usage={"prompt_tokens": 4, "completion_tokens": 2}),
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
        final = events[-1]["response"]
        assert final["status"] == "completed"
        assert final["output"][0]["content"][0]["text"] == "Hello"
        assert final["usage"]["input_tokens"] == 4 and final["usage"]["total_tokens"] == 6
        assert final["usage"]["output_tokens"] == 2

    def test_tool_calls_stream_as_function_call_items(self) -> None:
        head = {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "w", "arguments": ""},
        }
        events = run_chat(
            [
                chunk({"tool_calls": [head]}),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"c":'}}]}),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]}),
                chunk({}, "tool_calls"),
                b"data: [DONE]\n\n",
            ]
        )
        assert [e["type"] for e in events][2:] == [
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

    def test_length_ends_with_response_incomplete(self) -> None:
        events = run_chat([chunk({"content": "a"}), chunk({}, "length"), b"data: [DONE]\n\n"])
        assert events[-1]["type"] == "response.incomplete"
        assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}

    def test_reasoning_text_streams_as_a_reasoning_item_before_the_message(self) -> None:
        """A host's streamed reasoning_content is a reasoning item, closed when the text starts."""
        events = run_chat(
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
        reasoning, message = events[-1]["response"]["output"]
        assert reasoning["content"] == [{"type": "reasoning_text", "text": "Thinking"}]
        assert message["content"][0]["text"] == "Hi"


class TestClientPaths:
    def test_a_refusal_names_the_input_item_the_client_sent(self) -> None:
        """Another provider's refusal of a part names the client's input[i].content[j]."""
        pdf = "data:application/pdf;base64,JVBERi0="
        request = {
            "model": "m",
            "instructions": "Be brief.",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "read"},
                        {"type": "input_file", "filename": "a.pdf", "file_data": pdf},
                    ],
                }
            ],
        }
        conversation = decode_request(request, provider=P)
        assert conversation.paths["messages[1].content[1]"] == "input[0].content[1]"
        with pytest.raises(BadRequest) as refused:
            cohere.encode_request(conversation, model="command-a", provider="co")
        renamed = in_client_terms(refused.value, conversation.paths)
        assert renamed.param == "input[0].content[1]"
        assert "'input[0].content[1]'" in renamed.message and "'co' (Cohere)" in renamed.message
