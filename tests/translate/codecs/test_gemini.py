"""The Gemini codec: conversations to ``generateContent`` and back, answers and streams.

Expected Gemini JSON is written out by hand from Google's API reference, so these
tests check the codec against the documented format, not against itself.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from fkllmproxy.errors import BadRequest, UpstreamUnavailable
from fkllmproxy.translate._common import in_client_terms
from fkllmproxy.translate.canonical import (
    Answer,
    Choice,
    Conversation,
    Document,
    Finish,
    Image,
    Message,
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
    UsageUpdate,
)
from fkllmproxy.translate.codecs import gemini
from fkllmproxy.translate.codecs._ids import make_call_id

PROVIDER = "gem"


def user(text: str) -> Message:
    return Message(role="user", parts=[Text(text=text)])


def assistant(*parts: Any) -> Message:
    return Message(role="assistant", parts=list(parts))


def result(call_id: str, text: str, **extra: Any) -> Message:
    return Message(
        role="tool", parts=[ToolResult(call_id=call_id, content=[Text(text=text)], **extra)]
    )


def sent(*messages: Message, **settings: Any) -> dict[str, Any]:
    """What goes upstream for a conversation, as plain JSON."""
    conversation = Conversation(model="m", messages=list(messages), **settings)
    request = gemini.encode_request(conversation, model="gemini-2.5-pro", provider=PROVIDER)
    found: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(request))
    return found


def text_turn(role: str, *texts: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"text": t} for t in texts]}


WEATHER = Tool(
    name="get_weather",
    description="Weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


# ================================================================ encode_request


class TestEncodeRequest:
    def test_system_and_developer_turns_join_the_system_instruction_in_order(self) -> None:
        """system/developer turns anywhere -> systemInstruction; user turns merge."""
        body = sent(
            Message(role="developer", parts=[Text(text="Rule 1.")]),
            user("Hi"),
            Message(role="system", parts=[Text(text="Rule 2.")]),
            user("Again"),
        )
        assert body == {
            "systemInstruction": {"parts": [{"text": "Rule 1."}, {"text": "Rule 2."}]},
            "contents": [text_turn("user", "Hi", "Again")],
        }

    def test_assistant_turns_are_model_turns_and_empty_ones_are_left_out(self) -> None:
        """assistant -> model; an assistant turn with no content adds nothing."""
        body = sent(user("Hi"), assistant(Text(text="Hello!")), assistant(), user("Bye"))
        assert body["contents"] == [
            text_turn("user", "Hi"),
            text_turn("model", "Hello!"),
            text_turn("user", "Bye"),
        ]

    def test_images_inline_and_by_url(self) -> None:
        """Inline data -> inlineData; data: URLs too; http(s)/gs URLs -> fileData, type guessed."""
        body = sent(
            Message(
                role="user",
                parts=[
                    Image(media_type="image/png", data="iVBO"),
                    Image(url="data:image/webp;name=a.webp;base64,UklG"),
                    Image(url="https://x.test/cat.png?s=1"),
                    Image(url="gs://bucket/photo"),
                ],
            )
        )
        assert body["contents"][0]["parts"] == [
            {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
            {"inlineData": {"mimeType": "image/webp", "data": "UklG"}},
            {"fileData": {"fileUri": "https://x.test/cat.png?s=1", "mimeType": "image/png"}},
            {"fileData": {"fileUri": "gs://bucket/photo", "mimeType": "image/jpeg"}},
        ]

    def test_documents_and_audio_go_inline_or_by_uri(self) -> None:
        """PDFs, audio and text documents reach Gemini as inlineData, fileData or text."""
        body = sent(
            Message(
                role="user",
                parts=[
                    Document(media_type="application/pdf", data="JVBE"),
                    Document(media_type="audio/wav", data="UklG"),
                    Document(url="https://x.test/paper.pdf"),
                    Document(text="plain words", title="notes"),
                ],
            )
        )
        assert body["contents"][0]["parts"] == [
            {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
            {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}},
            {"fileData": {"fileUri": "https://x.test/paper.pdf", "mimeType": "application/pdf"}},
            {"text": "plain words"},
        ]

    def test_tools_become_function_declarations_with_the_schema_untouched(self) -> None:
        """Tools -> functionDeclarations with parametersJsonSchema as given."""
        body = sent(user("Weather?"), tools=[WEATHER])
        assert body["tools"] == [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather for a city",
                        "parametersJsonSchema": WEATHER.parameters,
                    }
                ]
            }
        ]

    @pytest.mark.parametrize(
        ("choice", "expected"),
        [
            (ToolChoice(mode="auto"), {"mode": "AUTO"}),
            (ToolChoice(mode="none"), {"mode": "NONE"}),
            (ToolChoice(mode="required"), {"mode": "ANY"}),
            (
                ToolChoice(mode="tool", name="get_weather"),
                {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
            ),
        ],
    )
    def test_tool_choice(self, choice: ToolChoice, expected: dict[str, Any]) -> None:
        """Each tool choice mode has its functionCallingConfig."""
        body = sent(user("Hi"), tools=[WEATHER], tool_choice=choice)
        assert body["toolConfig"] == {"functionCallingConfig": expected}

    def test_calls_and_results_pair_by_name_with_json_objects_kept(self) -> None:
        """Calls in order; results find their function's name through the call id."""
        body = sent(
            user("Paris and Oslo?"),
            assistant(
                Text(text="Checking both."),
                ToolCall(id="a", name="get_weather", arguments='{"city": "Paris"}'),
                ToolCall(id="b", name="get_time", arguments=""),
            ),
            result("b", '{"time": "12:00"}'),
            result("a", "18C"),
            user("Thanks"),
        )
        assert body["contents"] == [
            text_turn("user", "Paris and Oslo?"),
            {
                "role": "model",
                "parts": [
                    {"text": "Checking both."},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                    {"functionCall": {"name": "get_time", "args": {}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_time", "response": {"time": "12:00"}}},
                    {"functionResponse": {"name": "get_weather", "response": {"output": "18C"}}},
                    {"text": "Thanks"},
                ],
            },
        ]

    def test_an_error_result_is_sent_as_error(self) -> None:
        """A failed tool's result goes back under 'error', as Google's reference says."""
        body = sent(
            user("x"), assistant(ToolCall(id="c", name="f")), result("c", "boom", is_error=True)
        )
        assert body["contents"][2]["parts"] == [
            {"functionResponse": {"name": "f", "response": {"error": "boom"}}}
        ]

    def test_signatures_go_back_on_their_parts(self) -> None:
        """ToolCall.signature (or one carried in the id) -> thoughtSignature; signed
        reasoning -> a thought part; unsigned or redacted reasoning is left out."""
        body = sent(
            user("Weather?"),
            assistant(
                Reasoning(text="unsigned"),
                Reasoning(redacted="opaque"),
                Reasoning(text="Let me look.", signature="gemini:sig-r"),
                ToolCall(id="c1", name="get_weather", signature="sig-1"),
                ToolCall(id=make_call_id("ab+c/==="), name="get_weather"),
            ),
        )
        assert body["contents"][1]["parts"] == [
            {"text": "Let me look.", "thought": True, "thoughtSignature": "sig-r"},
            {"functionCall": {"name": "get_weather", "args": {}}, "thoughtSignature": "sig-1"},
            {"functionCall": {"name": "get_weather", "args": {}}, "thoughtSignature": "ab+c/==="},
        ]

    def test_a_bare_signature_goes_on_the_part_after_it(self) -> None:
        """A text's signature (reasoning with no text) returns on the text it came with."""
        body = sent(
            user("q"), assistant(Reasoning(signature="gemini:s"), Text(text="A")), user("q2")
        )
        assert body["contents"][1]["parts"] == [{"text": "A", "thoughtSignature": "s"}]

    def test_generation_config(self) -> None:
        """Sampling, limits, stop sequences and candidates go to generationConfig."""
        body = sent(
            user("Hi"),
            temperature=0.2,
            top_p=0.9,
            top_k=5,
            max_tokens=50,
            stop=["END"],
            seed=7,
            candidate_count=2,
            presence_penalty=0.5,
            frequency_penalty=-0.5,
            user="u1",
            metadata={"a": "b"},
        )
        assert body["generationConfig"] == {
            "stopSequences": ["END"],
            "candidateCount": 2,
            "maxOutputTokens": 50,
            "temperature": 0.2,
            "topP": 0.9,
            "topK": 5,
            "seed": 7,
            "presencePenalty": 0.5,
            "frequencyPenalty": -0.5,
        }

    @pytest.mark.parametrize(
        ("response_format", "expected"),
        [
            (ResponseFormat(kind="text"), None),
            (ResponseFormat(kind="json_object"), {"responseMimeType": "application/json"}),
            (
                ResponseFormat(
                    kind="json_schema", name="a", schema={"type": "object"}, strict=True
                ),
                {"responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}},
            ),
        ],
    )
    def test_response_format(
        self, response_format: ResponseFormat, expected: dict[str, Any] | None
    ) -> None:
        """JSON mode sets the JSON MIME type; a schema goes to responseJsonSchema."""
        body = sent(user("Hi"), response_format=response_format)
        assert body.get("generationConfig") == expected

    @pytest.mark.parametrize(
        ("reasoning", "expected"),
        [
            (ReasoningConfig(effort="low"), {"thinkingBudget": 1024}),
            (ReasoningConfig(effort="none", include=True), {"thinkingBudget": 0}),
            (
                ReasoningConfig(effort="low", include=True),
                {"thinkingBudget": 1024, "includeThoughts": True},
            ),
            (
                ReasoningConfig(budget_tokens=5000, include=True),
                {"thinkingBudget": 5000, "includeThoughts": True},
            ),
            (ReasoningConfig(adaptive=True), {"thinkingBudget": -1}),
            (ReasoningConfig(include=True), {"includeThoughts": True}),
        ],
    )
    def test_reasoning_becomes_a_thinking_config(
        self, reasoning: ReasoningConfig, expected: dict[str, Any]
    ) -> None:
        """Effort by the budget table, budgets as given; thought summaries when asked for."""
        body = sent(user("Hi"), reasoning=reasoning)
        assert body["generationConfig"]["thinkingConfig"] == expected

    def test_cache_hints_are_dropped(self) -> None:
        """Gemini caches by itself: a cache hint changes nothing upstream."""
        from fkllmproxy.translate.canonical import CacheHint

        hinted = Message(role="user", parts=[Text(text="Hi", cache=CacheHint())])
        assert sent(hinted, cache=CacheHint(ttl="1h")) == {"contents": [text_turn("user", "Hi")]}


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("a field another API had", {"extra": {"logit_bias": {"1": 2}}}, "logit_bias"),
    ("log probabilities", {"logprobs": True}, "logprobs"),
    ("top log probabilities", {"top_logprobs": 3}, "top_logprobs"),
    ("audio output", {"modalities": ["text", "audio"]}, "modalities"),
    ("an unknown effort", {"reasoning": ReasoningConfig(effort="max")}, "reasoning_effort"),
    ("required with no tools", {"tool_choice": ToolChoice(mode="required")}, "tool_choice"),
]


@pytest.mark.parametrize(
    ("settings", "field"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_settings_gemini_cannot_take_are_refused_by_name(
    settings: dict[str, Any], field: str
) -> None:
    """Nothing is dropped silently: a 400 naming the field (and the provider)."""
    with pytest.raises(BadRequest) as info:
        sent(user("Hi"), **settings)
    assert info.value.status == 400
    assert info.value.param == field
    assert f"'{field}'" in info.value.message


BAD_MESSAGES: list[tuple[str, list[Message], str, str]] = [
    (
        "only a system prompt",
        [Message(role="system", parts=[Text(text="x")])],
        "messages",
        "no user",
    ),
    (
        "an ftp image",
        [Message(role="user", parts=[Image(url="ftp://x")])],
        "messages[0].content[0].image_url.url",
        "gem",
    ),
    (
        "a malformed data URL",
        [Message(role="user", parts=[Image(url="data:xx")])],
        "messages[0].content[0].image_url.url",
        "base64",
    ),
    (
        "a file id",
        [Message(role="user", parts=[Document(file_id="file-1")])],
        "messages[0].content[0].file.file_id",
        "gem",
    ),
    (
        "a document type Gemini cannot read",
        [Message(role="user", parts=[Document(media_type="application/msword", data="AA")])],
        "messages[0].content[0].media_type",
        "application/msword",
    ),
    (
        "a tool result for an unknown call",
        [user("x"), result("nope", "r")],
        "messages[1].tool_call_id",
        "'nope'",
    ),
    (
        "tool call arguments that are not JSON",
        [user("x"), assistant(Text(text="t"), ToolCall(id="c", name="f", arguments="{oops"))],
        "messages[1].tool_calls[0].function.arguments",
        "not valid JSON",
    ),
    (
        "an image in a system message",
        [Message(role="system", parts=[Image(url="https://x/y.png")]), user("x")],
        "messages[0].content[0].type",
        "gem",
    ),
    (
        "content the client's API has and the model does not",
        [
            Message(
                role="user",
                parts=[Unmapped(kind="video_url parts", where="messages[0].content[0]")],
            )
        ],
        "messages[0].content[0]",
        "video_url",
    ),
]


@pytest.mark.parametrize(
    ("messages", "field", "words"), [c[1:] for c in BAD_MESSAGES], ids=[c[0] for c in BAD_MESSAGES]
)
def test_bad_messages_are_refused_by_path(messages: list[Message], field: str, words: str) -> None:
    """A part Gemini cannot take is a 400 naming its path."""
    with pytest.raises(BadRequest) as info:
        sent(*messages)
    assert info.value.param == field
    assert words in info.value.message


# ================================================================ decode_answer


def answer_of(response: dict[str, Any]) -> Answer:
    return gemini.decode_answer(json.dumps(response).encode(), provider=PROVIDER, model="asked")


def candidate(parts: list[dict[str, Any]], finish: str | None = "STOP", **extra: Any) -> dict:
    found: dict[str, Any] = {"content": {"role": "model", "parts": parts}, **extra}
    if finish:
        found["finishReason"] = finish
    return found


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("OTHER", "stop"),
        ("SOMETHING_NEW", "stop"),
    ],
)
def test_finish_reasons(reason: str, expected: str) -> None:
    """Gemini's finish reasons in canonical terms; unknown ones are a plain stop."""
    assert answer_of({"candidates": [candidate([{"text": "x"}], reason)]}).finish == expected


class TestDecodeAnswer:
    def test_text_answer_with_usage(self) -> None:
        """Text parts join in order; usage counts thinking as output and as reasoning."""
        answer = answer_of(
            {
                "candidates": [candidate([{"text": "Hello"}, {"text": " there"}])],
                "usageMetadata": {
                    "promptTokenCount": 12,
                    "candidatesTokenCount": 3,
                    "thoughtsTokenCount": 5,
                    "cachedContentTokenCount": 8,
                    "totalTokenCount": 20,
                },
                "modelVersion": "gemini-2.5-pro-001",
                "responseId": "abc",
            }
        )
        assert answer.id == "abc" and answer.model == "gemini-2.5-pro-001"
        assert answer.parts == [Text(text="Hello"), Text(text=" there")]
        assert answer.finish == "stop"
        assert answer.usage == Usage(
            input_tokens=12, output_tokens=8, cached_tokens=8, reasoning_tokens=5
        )

    def test_the_requested_model_names_an_answer_without_model_version(self) -> None:
        """Without modelVersion the answer is the asked-for model's."""
        assert answer_of({"candidates": [candidate([{"text": "x"}])]}).model == "asked"

    def test_thought_parts_are_reasoning_with_their_signature(self) -> None:
        """Thoughts -> Reasoning (consecutive ones one block); a text's signature joins it."""
        answer = answer_of(
            {
                "candidates": [
                    candidate(
                        [
                            {"text": "ponder", "thought": True},
                            {"text": "ing", "thought": True},
                            {"text": "42", "thoughtSignature": "sig"},
                        ]
                    )
                ]
            }
        )
        assert answer.parts == [
            Reasoning(text="pondering", signature="gemini:sig"),
            Text(text="42"),
        ]

    def test_function_calls_are_tool_calls_with_distinct_ids_and_signatures(self) -> None:
        """functionCall -> ToolCall (Gemini's id kept, else a fresh one); signature apart."""
        answer = answer_of(
            {
                "candidates": [
                    candidate(
                        [
                            {
                                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                                "thoughtSignature": "Zm9v+/8=",
                            },
                            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                            {"functionCall": {"name": "get_time", "id": "g-1"}},
                        ]
                    )
                ]
            }
        )
        assert answer.finish == "tool_calls"
        calls = [p for p in answer.parts if isinstance(p, ToolCall)]
        assert [(c.name, json.loads(c.arguments), c.signature) for c in calls] == [
            ("get_weather", {"city": "Paris"}, "Zm9v+/8="),
            ("get_weather", {"city": "Oslo"}, None),
            ("get_time", {}, None),
        ]
        assert calls[2].id == "g-1"
        assert len({c.id for c in calls}) == 3 and calls[0].id.startswith("call_")

    def test_several_candidates(self) -> None:
        """Candidates after the first are the answer's further choices."""
        answer = answer_of(
            {"candidates": [candidate([{"text": "a"}]), candidate([{"text": "b"}], index=1)]}
        )
        assert answer.parts == [Text(text="a")]
        assert answer.more == [Choice(index=1, parts=[Text(text="b")], finish="stop")]

    def test_blocked_prompt_is_a_refusal_finished_by_the_content_filter(self) -> None:
        """A prompt blocked outright: a refusal naming the reason, usage kept."""
        answer = answer_of(
            {
                "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
                "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4},
            }
        )
        assert answer.finish == "content_filter"
        assert len(answer.parts) == 1 and isinstance(answer.parts[0], Refusal)
        assert "SAFETY" in answer.parts[0].text
        assert answer.usage is not None and answer.usage.input_tokens == 4

    def test_safety_stop_without_content(self) -> None:
        """A candidate stopped by safety with no content is an empty filtered answer."""
        answer = answer_of({"candidates": [{"finishReason": "SAFETY"}]})
        assert answer.finish == "content_filter" and answer.parts == []

    @pytest.mark.parametrize(
        ("body", "words"),
        [
            (b"{}", "no candidates"),
            (b"not json", "not valid JSON"),
            (b'{"error": {"code": 500, "message": "Boom."}}', "Boom."),
        ],
    )
    def test_unreadable_or_empty_answers_are_upstream_failures(
        self, body: bytes, words: str
    ) -> None:
        """Another target may do better: an upstream failure, not a 400."""
        with pytest.raises(UpstreamUnavailable) as info:
            gemini.decode_answer(body, provider=PROVIDER)
        assert words in info.value.message


# ================================================================ StreamDecoder


def sse(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event).encode() + b"\r\n\r\n"


def decode_stream(events: list[dict[str, Any]]) -> list[StreamEvent]:
    decoder = gemini.StreamDecoder(provider=PROVIDER, model="asked")
    out = [e for event in events for e in decoder.feed(sse(event))]
    return out + decoder.finish()


class TestStreamDecoder:
    def test_text_stream(self) -> None:
        """Start, text as it comes, then the finish with the usage reported."""
        events = decode_stream(
            [
                {"candidates": [candidate([{"text": "Hel"}], None)], "responseId": "r1"},
                {"candidates": [candidate([{"text": "lo"}], None)]},
                {
                    "candidates": [candidate([{"text": "!"}], "STOP")],
                    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2},
                },
            ]
        )
        usage = Usage(input_tokens=3, output_tokens=2)
        assert events == [
            Start(id="r1", model="asked"),
            TextDelta(text="Hel"),
            TextDelta(text="lo"),
            TextDelta(text="!"),
            Finish(reason="stop", usage=usage),
        ]

    def test_tool_calls_with_running_indices_and_signatures(self) -> None:
        """Each functionCall is a whole call: start (with signature), arguments, in order."""
        events = decode_stream(
            [
                {
                    "candidates": [
                        candidate(
                            [
                                {
                                    "functionCall": {"name": "a", "args": {"x": 1}},
                                    "thoughtSignature": "s",
                                }
                            ],
                            None,
                        )
                    ]
                },
                {"candidates": [candidate([{"functionCall": {"name": "b", "id": "g"}}], "STOP")]},
            ]
        )
        starts = [e for e in events if isinstance(e, ToolCallStart)]
        args = [e for e in events if isinstance(e, ToolArgsDelta)]
        assert [(s.index, s.name, s.signature) for s in starts] == [(0, "a", "s"), (1, "b", None)]
        assert starts[1].id == "g" and starts[0].id != starts[1].id
        assert [(a.index, a.fragment) for a in args] == [(0, '{"x":1}'), (1, "{}")]
        assert events[-1] == Finish(reason="tool_calls")

    def test_thoughts_stream_as_one_reasoning_block_with_its_signature(self) -> None:
        """Thought parts are reasoning deltas of one block; the signature closes it."""
        events = decode_stream(
            [
                {"candidates": [candidate([{"text": "hm", "thought": True}], None)]},
                {"candidates": [candidate([{"text": "m", "thought": True}], None)]},
                {"candidates": [candidate([{"text": "42", "thoughtSignature": "sig"}], "STOP")]},
            ]
        )
        assert events[1:] == [
            ReasoningDelta(text="hm", new=True),
            ReasoningDelta(text="m"),
            ReasoningDelta(signature="gemini:sig"),
            TextDelta(text="42"),
            Finish(reason="stop"),
        ]

    def test_candidates_stream_as_choices(self) -> None:
        """Each candidate's events carry its number; each finishes on its own."""
        events = decode_stream(
            [
                {
                    "candidates": [
                        candidate([{"text": "a"}], "STOP"),
                        candidate([{"text": "b"}], "STOP", index=1),
                    ]
                },
            ]
        )
        assert events[1:] == [
            TextDelta(text="a"),
            Finish(reason="stop"),
            TextDelta(text="b", choice=1),
            Finish(reason="stop", choice=1),
        ]

    def test_blocked_prompt(self) -> None:
        """A prompt blocked mid-stream finishes by the content filter."""
        events = decode_stream([{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}])
        assert events[1:] == [Finish(reason="content_filter")]

    def test_usage_after_the_finish_is_an_update(self) -> None:
        """Usage that comes after the last finish is reported as an update."""
        events = decode_stream(
            [
                {"candidates": [candidate([{"text": "x"}], "STOP")]},
                {"usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1}},
            ]
        )
        assert events[-1] == UsageUpdate(usage=Usage(input_tokens=1, output_tokens=1))

    def test_a_stream_cut_short_is_an_error_not_a_short_answer(self) -> None:
        """A stream that stops before its finish reason raises from finish."""
        decoder = gemini.StreamDecoder(provider=PROVIDER)
        decoder.feed(sse({"candidates": [candidate([{"text": "Hal"}], None)]}))
        with pytest.raises(UpstreamUnavailable, match="before the answer was complete"):
            decoder.finish()

    def test_an_empty_stream_is_an_error(self) -> None:
        """No event at all: an upstream failure."""
        with pytest.raises(UpstreamUnavailable, match="without an answer"):
            gemini.StreamDecoder(provider=PROVIDER).finish()

    def test_provider_error_mid_stream(self) -> None:
        """Google's error event mid-stream raises with Google's message."""
        decoder = gemini.StreamDecoder(provider=PROVIDER)
        decoder.feed(sse({"candidates": [candidate([{"text": "a"}], None)]}))
        error = {
            "error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}
        }
        with pytest.raises(UpstreamUnavailable, match=r"The model is overloaded\."):
            decoder.feed(sse(error))


# ================================================================ decode_request


def conversation_of(data: dict[str, Any], stream: bool = False) -> Conversation:
    return gemini.decode_request(json.dumps(data).encode(), model="up", stream=stream)


def gemini_user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


class TestDecodeRequest:
    def test_system_turns_and_generation_config(self) -> None:
        """systemInstruction -> one system text; sampling and limits by canonical name."""
        conversation = conversation_of(
            {
                "systemInstruction": {"parts": [{"text": "A"}, {"text": "B"}]},
                "contents": [gemini_user("hi"), {"role": "model", "parts": [{"text": "yo"}]}, gemini_user("again")],
                "generationConfig": {
                    "temperature": 0.3, "topP": 0.9, "topK": 5, "maxOutputTokens": 7,
                    "stopSequences": ["END"], "candidateCount": 2, "seed": 1,
                    "presencePenalty": 0.1, "frequencyPenalty": 0.2,
                },
                "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
            }
        )  # fmt: skip
        assert conversation.messages == [
            Message(role="system", parts=[Text(text="A\nB")]),
            Message(role="user", parts=[Text(text="hi")]),
            Message(role="assistant", parts=[Text(text="yo")]),
            Message(role="user", parts=[Text(text="again")]),
        ]
        assert (conversation.temperature, conversation.top_p, conversation.top_k) == (0.3, 0.9, 5)
        assert (conversation.max_tokens, conversation.stop, conversation.seed) == (7, ["END"], 1)
        assert conversation.candidate_count == 2
        assert (conversation.presence_penalty, conversation.frequency_penalty) == (0.1, 0.2)
        assert conversation.model == "up" and conversation.api == "gemini"
        assert conversation.extra == {}

    def test_stream_asks_for_usage(self) -> None:
        """A stream (from the URL) wants usage at its end, as Gemini sends it."""
        conversation = conversation_of({"contents": [gemini_user("x")]}, stream=True)
        assert conversation.stream and conversation.include_usage

    def test_calls_and_responses_pair_by_id_or_name_and_keep_signatures(self) -> None:
        """Calls keep their signature; responses find their call by id, else by name."""
        conversation = conversation_of(
            {
                "contents": [
                    gemini_user("go"),
                    {
                        "role": "model",
                        "parts": [
                            {"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": "sig"},
                            {"functionCall": {"name": "b", "args": {}, "id": "given"}},
                            {"functionCall": {"name": "a"}},
                        ],
                    },
                    {
                        "role": "user",
                        "parts": [
                            {"functionResponse": {"name": "b", "id": "given", "response": {"output": "B"}}},
                            {"functionResponse": {"name": "a", "response": {"v": 2}}},
                            {"functionResponse": {"name": "a", "response": {"error": "no"}}},
                        ],
                    },
                ]
            }
        )  # fmt: skip
        calls = [p for p in conversation.messages[1].parts if isinstance(p, ToolCall)]
        assert (calls[0].name, calls[0].arguments, calls[0].signature) == ("a", '{"x":1}', "sig")
        assert calls[1].id == "given"
        assert conversation.messages[2:] == [
            Message(
                role="tool", parts=[ToolResult(call_id="given", content=[Text(text="B")], name="b")]
            ),
            Message(
                role="tool",
                parts=[ToolResult(call_id=calls[0].id, content=[Text(text='{"v":2}')], name="a")],
            ),
            Message(
                role="tool",
                parts=[
                    ToolResult(
                        call_id=calls[2].id, content=[Text(text="no")], is_error=True, name="a"
                    )
                ],
            ),
        ]

    def test_a_response_without_its_call_is_a_400(self) -> None:
        """A functionResponse with no earlier call to answer is refused by its path."""
        with pytest.raises(BadRequest, match=r"contents\[0\].parts\[0\].functionResponse"):
            conversation_of(
                {"contents": [{"parts": [{"functionResponse": {"name": "a", "response": {}}}]}]}
            )

    def test_thought_parts_are_kept_as_reasoning(self) -> None:
        """Thought summaries and their signatures survive as reasoning, for the model."""
        conversation = conversation_of(
            {
                "contents": [
                    gemini_user("q"),
                    {
                        "role": "model",
                        "parts": [
                            {"text": "hmm", "thought": True},
                            {"text": "A", "thoughtSignature": "s"},
                        ],
                    },
                    gemini_user("q2"),
                ]
            }
        )
        assert conversation.messages[1].parts == [
            Reasoning(text="hmm", signature="gemini:s"),
            Text(text="A"),
        ]

    def test_tools_and_tool_config(self) -> None:
        """Google's schema subset becomes JSON Schema; ANY with one name forces that tool."""
        declaration = {
            "name": "f",
            "description": "d",
            "parameters": {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}},
        }
        conversation = conversation_of(
            {
                "contents": [gemini_user("x")],
                "tools": [{"functionDeclarations": [declaration]}],
                "toolConfig": {
                    "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}
                },
            }
        )
        assert conversation.tools == [
            Tool(
                name="f",
                description="d",
                parameters={"type": "object", "properties": {"n": {"type": "integer"}}},
            )
        ]
        assert conversation.tool_choice == ToolChoice(mode="tool", name="f")

    def test_json_schema_output_and_thinking(self) -> None:
        """A JSON MIME type with a schema is a schema format; thinking budgets carry over."""
        conversation = conversation_of(
            {
                "contents": [gemini_user("x")],
                "generationConfig": {
                    "responseMimeType": "application/json",
                    "responseJsonSchema": {"type": "object"},
                    "thinkingConfig": {"thinkingBudget": 0, "includeThoughts": True},
                },
            }
        )
        assert conversation.response_format == ResponseFormat(
            kind="json_schema", name="response", schema={"type": "object"}
        )
        assert conversation.reasoning == ReasoningConfig(budget_tokens=0, include=True)

    def test_thinking_levels_and_dynamic_budgets(self) -> None:
        """thinkingLevel is an effort; a budget of -1 lets the model decide."""
        config = {"thinkingConfig": {"thinkingLevel": "HIGH", "thinkingBudget": -1}}
        conversation = conversation_of({"contents": [gemini_user("x")], "generationConfig": config})
        assert conversation.reasoning == ReasoningConfig(effort="high", adaptive=True)
        with pytest.raises(BadRequest, match="thinkingLevel"):
            bad = {"thinkingConfig": {"thinkingLevel": "HUGE"}}
            conversation_of({"contents": [gemini_user("x")], "generationConfig": bad})

    @pytest.mark.parametrize(
        ("data", "field"),
        [
            ({"cachedContent": "c/1"}, "cachedContent"),
            ({"tools": [{"codeExecution": {}}]}, "tools[0].codeExecution"),
            ({"generationConfig": {"responseLogprobs": True}}, "generationConfig.responseLogprobs"),
            ({"generationConfig": {"responseMimeType": "text/x.enum"}}, "generationConfig.responseMimeType"),
            ({"generationConfig": {"responseModalities": ["IMAGE"]}}, "generationConfig.responseModalities"),
            ({"toolConfig": {"retrievalConfig": {}}}, "toolConfig.retrievalConfig"),
        ],
    )  # fmt: skip
    def test_what_has_no_canonical_name_is_kept_for_the_encoder_to_refuse(
        self, data: dict[str, Any], field: str
    ) -> None:
        """Fields nothing maps land in extra by path; the target's encoder refuses them."""
        conversation = conversation_of({"contents": [gemini_user("x")], **data})
        assert field in conversation.extra
        with pytest.raises(BadRequest) as caught:
            gemini.encode_request(conversation, provider="p (x)")
        assert caught.value.param == field and "'p (x)'" in caught.value.message

    def test_unknown_part_fields_are_kept_by_path(self) -> None:
        """Part keys the proxy does not read are named by their full path."""
        part = {"inlineData": {"mimeType": "image/png", "data": "AA=="}, "videoMetadata": {}}
        conversation = conversation_of({"contents": [{"role": "user", "parts": [part]}]})
        assert "contents[0].parts[0].videoMetadata" in conversation.extra
        conversation = conversation_of(
            {"contents": [gemini_user("x"), {"role": "model", "parts": [{"executableCode": {}}]}]}
        )
        assert "contents[1].parts[0].executableCode" in conversation.extra

    def test_media(self) -> None:
        """Inline images and URLs are images; other inline data are documents of their type."""
        png = {"inlineData": {"mimeType": "image/png", "data": "AAA="}}
        wav = {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}}
        url = {"fileData": {"fileUri": "https://x/y.jpg", "mimeType": "image/jpeg"}}
        pdf = {"fileData": {"fileUri": "https://x/y.pdf", "mimeType": "application/pdf"}}
        conversation = conversation_of(
            {"contents": [{"role": "user", "parts": [png, wav, url, pdf]}]}
        )
        assert conversation.messages[0].parts == [
            Image(media_type="image/png", data="AAA="),
            Document(media_type="audio/wav", data="UklG"),
            Image(media_type="image/jpeg", url="https://x/y.jpg"),
            Document(media_type="application/pdf", url="https://x/y.pdf"),
        ]

    def test_structural_mistakes_are_400s(self) -> None:
        """No content, a wrong role, a call in a user turn: 400s naming the path."""
        with pytest.raises(BadRequest, match="contents"):
            conversation_of({"contents": [], "systemInstruction": {"parts": [{"text": "x"}]}})
        with pytest.raises(BadRequest, match=r"contents\[0\].role"):
            conversation_of({"contents": [{"role": "tool", "parts": [{"text": "x"}]}]})
        with pytest.raises(BadRequest, match=r"contents\[0\].parts\[0\].functionCall"):
            conversation_of(
                {"contents": [{"role": "user", "parts": [{"functionCall": {"name": "f"}}]}]}
            )


def test_json_schema_of_google_schema() -> None:
    """Google's OpenAPI subset: upper-case types, nullable, propertyOrdering."""
    schema = {
        "type": "OBJECT",
        "properties": {
            "a": {"type": "STRING", "nullable": True},
            "b": {"type": "ARRAY", "items": {"type": "NUMBER"}},
        },
        "propertyOrdering": ["a", "b"],
    }
    assert gemini.json_schema_of(schema, "s") == {
        "type": "object",
        "properties": {
            "a": {"type": ["string", "null"]},
            "b": {"type": "array", "items": {"type": "number"}},
        },
    }


# ================================================================ encode_answer


class TestEncodeAnswer:
    def test_text_calls_finish_and_usage(self) -> None:
        """Text, calls with id and signature, the finish reason, usage with thinking apart."""
        answer = Answer(
            id="chatcmpl-1",
            model="x",
            parts=[
                Reasoning(text="Because.", signature="rs"),
                Text(text="hi"),
                ToolCall(id="c1", name="f", arguments='{"a":1}', signature="cs"),
            ],
            finish="tool_calls",
            usage=Usage(input_tokens=10, output_tokens=7, cached_tokens=4, reasoning_tokens=2),
        )
        body = json.loads(gemini.encode_answer(answer, model="m"))
        assert body == {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "Because.", "thought": True, "thoughtSignature": "rs"},
                            {"text": "hi"},
                            {"functionCall": {"name": "f", "args": {"a": 1}, "id": "c1"}, "thoughtSignature": "cs"},
                        ],
                    },
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 10,
                "candidatesTokenCount": 5,
                "totalTokenCount": 17,
                "cachedContentTokenCount": 4,
                "thoughtsTokenCount": 2,
            },
            "modelVersion": "m",
            "responseId": "chatcmpl-1",
        }  # fmt: skip

    def test_several_choices_are_several_candidates(self) -> None:
        """Further choices follow as candidates with their index and finish reason."""
        answer = Answer(
            id="r",
            model="x",
            parts=[Text(text="a")],
            finish="stop",
            more=[Choice(index=1, parts=[], finish="length")],
        )
        candidates = json.loads(gemini.encode_answer(answer, model="m"))["candidates"]
        assert [(c["index"], c["content"]["parts"], c["finishReason"]) for c in candidates] == [
            (0, [{"text": "a"}], "STOP"),
            (1, [{"text": ""}], "MAX_TOKENS"),
        ]

    def test_a_refusal_is_text_finished_by_safety(self) -> None:
        """Gemini has no refusal part: the words go as text, the finish is SAFETY."""
        answer = Answer(id="r", model="x", parts=[Refusal(text="No.")], finish="refusal")
        candidate = json.loads(gemini.encode_answer(answer, model="m"))["candidates"][0]
        assert candidate["content"]["parts"] == [{"text": "No."}]
        assert candidate["finishReason"] == "SAFETY"


# ================================================================ StreamEncoder


def encode_stream(events: list[StreamEvent]) -> list[dict[str, Any]]:
    encoder = gemini.StreamEncoder(model="m", provider="p")
    out = [e for event in events for e in encoder.feed(event)]
    return [json.loads(e) for e in out + encoder.finish()]


class TestStreamEncoder:
    def test_text_goes_out_as_it_comes_and_usage_ends_it(self) -> None:
        """One response per text; the last one carries the finish reason and usage."""
        events = encode_stream(
            [
                Start(id="r1", model="x"),
                TextDelta(text="Hel"),
                TextDelta(text="lo"),
                Finish(reason="length"),
                UsageUpdate(usage=Usage(input_tokens=3, output_tokens=2)),
            ]
        )
        assert [e["candidates"][0]["content"]["parts"] for e in events[:2]] == [
            [{"text": "Hel"}],
            [{"text": "lo"}],
        ]
        last = events[-1]
        assert last["candidates"][0]["finishReason"] == "MAX_TOKENS"
        assert last["usageMetadata"] == {
            "promptTokenCount": 3,
            "candidatesTokenCount": 2,
            "totalTokenCount": 5,
        }
        assert {e["responseId"] for e in events} == {"r1"}
        assert {e["modelVersion"] for e in events} == {"m"}

    def test_tool_calls_come_whole_at_the_end(self) -> None:
        """Arguments streamed in pieces go out as one functionCall with its signature."""
        events = encode_stream(
            [
                Start(id="r", model="x"),
                ToolCallStart(index=0, id="c1", name="f", signature="s"),
                ToolArgsDelta(index=0, fragment='{"a":'),
                ToolArgsDelta(index=0, fragment="1}"),
                Finish(reason="tool_calls", usage=Usage()),
            ]
        )
        (only,) = events
        assert only["candidates"][0]["content"]["parts"] == [
            {"functionCall": {"name": "f", "args": {"a": 1}, "id": "c1"}, "thoughtSignature": "s"}
        ]
        assert only["candidates"][0]["finishReason"] == "STOP"

    def test_reasoning_streams_as_thought_parts(self) -> None:
        """Reasoning text and signatures go out as thought parts, then the text."""
        events = encode_stream(
            [
                ReasoningDelta(text="Think"),
                ReasoningDelta(signature="sig"),
                TextDelta(text="Hi"),
                Finish(reason="stop"),
            ]
        )
        assert [e["candidates"][0]["content"]["parts"] for e in events[:3]] == [
            [{"text": "Think", "thought": True}],
            [{"text": "", "thought": True, "thoughtSignature": "sig"}],
            [{"text": "Hi"}],
        ]

    def test_choices_are_candidates(self) -> None:
        """Each choice streams under its index; the last response finishes them all."""
        events = encode_stream(
            [
                TextDelta(text="a"),
                TextDelta(text="b", choice=1),
                Finish(reason="stop"),
                Finish(reason="stop", choice=1),
            ]
        )
        assert [e["candidates"][0]["index"] for e in events[:2]] == [0, 1]
        assert [c["index"] for c in events[-1]["candidates"]] == [0, 1]

    def test_a_stream_cut_before_its_finish_raises(self) -> None:
        """No finish reason: an error, not a cut answer passed off as whole."""
        with pytest.raises(UpstreamUnavailable, match="before the answer was complete"):
            encode_stream([TextDelta(text="partial")])


# ================================================================ round trips


def test_a_gemini_request_survives_decode_then_encode() -> None:
    """Decoding a Gemini request and encoding it for Gemini keeps its meaning."""
    data = {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            gemini_user("Weather?"),
            {
                "role": "model",
                "parts": [
                    {"text": "Looking.", "thought": True, "thoughtSignature": "t"},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c"},
                ],
            },
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": 18}}}]},
        ],
        "tools": [{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": {"type": "object"}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
        "generationConfig": {
            "temperature": 0.5,
            "maxOutputTokens": 100,
            "responseMimeType": "application/json",
            "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": True},
        },
    }  # fmt: skip
    request = gemini.encode_request(conversation_of(data), provider=PROVIDER)
    assert msgspec.json.decode(msgspec.json.encode(request)) == data


def test_a_gemini_answer_survives_decode_then_encode() -> None:
    """Decoding a Gemini answer and encoding it back keeps parts, signatures and usage."""
    response = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "Hmm.", "thought": True, "thoughtSignature": "t"},
                        {"text": "Calling."},
                        {"functionCall": {"name": "f", "args": {"a": 1}, "id": "g1"}, "thoughtSignature": "c"},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 9,
            "candidatesTokenCount": 4,
            "totalTokenCount": 16,
            "thoughtsTokenCount": 3,
        },
        "modelVersion": "m",
        "responseId": "r",
    }  # fmt: skip
    answer = gemini.decode_answer(json.dumps(response).encode(), provider=PROVIDER)
    assert json.loads(gemini.encode_answer(answer, model="m")) == response


class TestClientPaths:
    def test_media_parts_remember_where_the_client_put_them(self) -> None:
        """A refusal of a part names the client's inlineData, not the canonical path."""
        raw = msgspec.json.encode(
            {
                "systemInstruction": {"parts": [{"text": "rules"}]},
                "contents": [
                    {
                        "role": "user",
                        "parts": [
                            {"text": "watch"},
                            {"inlineData": {"mimeType": "video/mp4", "data": "AAAA"}},
                        ],
                    }
                ],
            }
        )
        conversation = gemini.decode_request(raw, model="m")
        assert conversation.paths == {"messages[1].content[1]": "contents[0].parts[1].inlineData"}
        refusal = BadRequest(
            "'messages[1].content[1].file' is not supported by provider 'x'.",
            param="messages[1].content[1].file",
        )
        renamed = in_client_terms(refusal, conversation.paths)
        assert renamed.param == "contents[0].parts[1].inlineData"
        assert "'contents[0].parts[1].inlineData' is not supported" in renamed.message
        other = BadRequest("'top_k' is not supported.", param="top_k")
        assert in_client_terms(other, conversation.paths) is other
