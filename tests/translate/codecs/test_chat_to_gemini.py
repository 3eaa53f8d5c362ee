"""OpenAI Chat Completions <-> Gemini generateContent through the two codecs, as tables.

A chat request is read by the chat codec and written by the Gemini codec; a Gemini
answer or stream goes the other way. Expected Gemini JSON is written out by hand from
Google's API reference, so these tests check the pair against the documented format,
not against itself.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fkllmproxy.errors import BadRequest, UpstreamUnavailable
from fkllmproxy.translate._common import Unsupported
from fkllmproxy.translate.codecs import chat, gemini
from fkllmproxy.translate.codecs._ids import make_call_id, signature_of
from fkllmproxy.wire.gemini import GenerateContentRequest

PROVIDER = "gem"


def to_gemini(
    body: dict[str, Any], *, provider: str, include_thoughts: bool = False
) -> GenerateContentRequest:
    """A chat body as the Gemini provider sends it (``include_thoughts``: a client that
    asked for the reasoning)."""
    conversation = chat.decode_request(body, unsupported=Unsupported(provider, "Gemini"))
    if include_thoughts and conversation.reasoning is not None:
        conversation.reasoning.include = True
    return gemini.encode_request(conversation, provider=provider)


class StreamTranslator:
    """Gemini stream events as chat chunks: the Gemini decoder, then the chat encoder."""

    def __init__(self, *, model: str, provider: str, include_usage: bool) -> None:
        self._decoder = gemini.StreamDecoder(provider=provider, model=model)
        self._encoder = chat.StreamEncoder(model=model, include_usage=include_usage)

    def feed(self, event: bytes) -> list[bytes]:
        frames = self._decoder.feed(b"data: " + event + b"\n\n")
        return [out for e in frames for out in self._encoder.feed(e)]

    def finish(self) -> list[bytes]:
        frames = self._decoder.finish()
        return [out for e in frames for out in self._encoder.feed(e)] + self._encoder.finish()


def gemini_json(body: dict[str, Any]) -> dict[str, Any]:
    """What goes upstream for ``body``, as plain JSON."""
    result: dict[str, Any] = msgspec.json.decode(
        msgspec.json.encode(to_gemini(body, provider=PROVIDER))
    )
    return result


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def text_turn(role: str, *texts: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"text": t} for t in texts]}


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def call(ident: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": ident, "type": "function", "function": {"name": name, "arguments": arguments}}


# ---------------------------------------------------------------- requests

REQUEST_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "system prompt becomes systemInstruction",
        {"messages": [{"role": "system", "content": "Be brief."}, user("Hi")]},
        {
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "contents": [text_turn("user", "Hi")],
        },
    ),
    (
        "developer and later system messages join the system instruction in order",
        {
            "messages": [
                {"role": "developer", "content": [{"type": "text", "text": "Rule 1."}]},
                user("Hi"),
                {"role": "system", "content": "Rule 2."},
                user("Again"),
            ]
        },
        {
            "systemInstruction": {"parts": [{"text": "Rule 1."}, {"text": "Rule 2."}]},
            "contents": [text_turn("user", "Hi", "Again")],
        },
    ),
    (
        "assistant turns become model turns",
        {"messages": [user("Hi"), {"role": "assistant", "content": "Hello!"}, user("Bye")]},
        {
            "contents": [
                text_turn("user", "Hi"),
                text_turn("model", "Hello!"),
                text_turn("user", "Bye"),
            ]
        },
    ),
    (
        "an empty assistant message is left out",
        {
            "messages": [
                user("Hi"),
                {"role": "assistant", "content": ""},
                {"role": "assistant", "content": None},
                user("Still there?"),
            ]
        },
        {"contents": [text_turn("user", "Hi", "Still there?")]},
    ),
    (
        "a data: URL image becomes inlineData",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                    ],
                }
            ]
        },
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"text": "What is this?"},
                        {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
                    ],
                }
            ]
        },
    ),
    (
        "an https image becomes fileData with its type guessed from the name",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://x.test/cat.png?s=1"}},
                        {"type": "image_url", "image_url": {"url": "gs://bucket/photo"}},
                    ],
                }
            ]
        },
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {
                            "fileData": {
                                "fileUri": "https://x.test/cat.png?s=1",
                                "mimeType": "image/png",
                            }
                        },
                        {"fileData": {"fileUri": "gs://bucket/photo", "mimeType": "image/jpeg"}},
                    ],
                }
            ]
        },
    ),
    (
        "input audio becomes inlineData with an audio type",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}}
                    ],
                }
            ]
        },
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [{"inlineData": {"mimeType": "audio/wav", "data": "UklG"}}],
                }
            ]
        },
    ),
    (
        "tools become functionDeclarations with the JSON Schema untouched",
        {"messages": [user("Weather?")], "tools": [WEATHER_TOOL]},
        {
            "contents": [text_turn("user", "Weather?")],
            "tools": [
                {
                    "functionDeclarations": [
                        {
                            "name": "get_weather",
                            "description": "Weather for a city",
                            "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"],
                        }
                    ]
                }
            ],
        },
    ),
    (
        "a tool result following a tool call becomes functionCall then functionResponse",
        {
            "messages": [
                user("Weather in Paris?"),
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [call("call_1", "get_weather", '{"city": "Paris"}')],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"},
            ]
        },
        {
            "contents": [
                text_turn("user", "Weather in Paris?"),
                {
                    "role": "model",
                    "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
                },
                {
                    "role": "user",
                    "parts": [
                        {
                            "functionResponse": {
                                "name": "get_weather",
                                "response": {"output": "18C and sunny"},
                            }
                        }
                    ],
                },
            ]
        },
    ),
    (
        "several tool calls in one turn: calls in order, results in one user turn by name",
        {
            "messages": [
                user("Paris and Oslo?"),
                {
                    "role": "assistant",
                    "content": "Checking both.",
                    "tool_calls": [
                        call("a", "get_weather", '{"city": "Paris"}'),
                        call("b", "get_time", ""),
                    ],
                },
                {"role": "tool", "tool_call_id": "b", "content": '{"time": "12:00"}'},
                {"role": "tool", "tool_call_id": "a", "content": [{"type": "text", "text": "18C"}]},
                user("Thanks"),
            ]
        },
        {
            "contents": [
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
                        {
                            "functionResponse": {
                                "name": "get_weather",
                                "response": {"output": "18C"},
                            }
                        },
                        {"text": "Thanks"},
                    ],
                },
            ]
        },
    ),
    (
        "a thought signature carried in a call id goes back on the functionCall",
        {
            "messages": [
                user("Weather?"),
                {
                    "role": "assistant",
                    "tool_calls": [call("call_9__thought__ab-c_", "get_weather", "{}")],
                },
                {"role": "tool", "tool_call_id": "call_9__thought__ab-c_", "content": "ok"},
            ]
        },
        {
            "contents": [
                text_turn("user", "Weather?"),
                {
                    "role": "model",
                    "parts": [
                        {
                            "functionCall": {"name": "get_weather", "args": {}},
                            "thoughtSignature": "ab+c/===",
                        }
                    ],
                },
                {
                    "role": "user",
                    "parts": [
                        {"functionResponse": {"name": "get_weather", "response": {"output": "ok"}}}
                    ],
                },
            ]
        },
    ),
    (
        "sampling, limits and stop sequences go to generationConfig",
        {
            "messages": [user("Hi")],
            "temperature": 0.2,
            "top_p": 0.9,
            "max_tokens": 50,
            "stop": "END",
            "seed": 7,
            "n": 2,
            "presence_penalty": 0.5,
            "frequency_penalty": -0.5,
        },
        {
            "contents": [text_turn("user", "Hi")],
            "generationConfig": {
                "stopSequences": ["END"],
                "candidateCount": 2,
                "maxOutputTokens": 50,
                "temperature": 0.2,
                "topP": 0.9,
                "seed": 7,
                "presencePenalty": 0.5,
                "frequencyPenalty": -0.5,
            },
        },
    ),
    (
        "max_completion_tokens wins over max_tokens; a stop list stays a list",
        {
            "messages": [user("Hi")],
            "max_tokens": 10,
            "max_completion_tokens": 20,
            "stop": ["a", "b"],
        },
        {
            "contents": [text_turn("user", "Hi")],
            "generationConfig": {"stopSequences": ["a", "b"], "maxOutputTokens": 20},
        },
    ),
    (
        "JSON mode sets the JSON MIME type",
        {"messages": [user("Hi")], "response_format": {"type": "json_object"}},
        {
            "contents": [text_turn("user", "Hi")],
            "generationConfig": {"responseMimeType": "application/json"},
        },
    ),
    (
        "a JSON schema goes to responseJsonSchema",
        {
            "messages": [user("Hi")],
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "answer",
                    "strict": True,
                    "schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
                },
            },
        },
        {
            "contents": [text_turn("user", "Hi")],
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseJsonSchema": {"type": "object", "properties": {"n": {"type": "integer"}}},
            },
        },
    ),
    (
        "reasoning effort becomes a thinking budget; harmless fields are accepted",
        {
            "messages": [user("Hi")],
            "reasoning_effort": "low",
            "user": "u1",
            "parallel_tool_calls": True,
            "stream": True,
            "stream_options": {"include_usage": True},
            "logprobs": False,
        },
        {
            "contents": [text_turn("user", "Hi")],
            "generationConfig": {"thinkingConfig": {"thinkingBudget": 1024}},
        },
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"),
    [case[1:] for case in REQUEST_CASES],
    ids=[case[0] for case in REQUEST_CASES],
)
def test_request_translation(body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert gemini_json({"model": "gemini-pro", **body}) == expected


TOOL_CHOICE_CASES = [
    ("auto", {"mode": "AUTO"}),
    ("none", {"mode": "NONE"}),
    ("required", {"mode": "ANY"}),
    (
        {"type": "function", "function": {"name": "get_weather"}},
        {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
    ),
]


@pytest.mark.parametrize(("choice", "expected"), TOOL_CHOICE_CASES)
def test_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    body = {"messages": [user("Hi")], "tools": [WEATHER_TOOL], "tool_choice": choice}
    assert gemini_json(body)["toolConfig"] == {"functionCallingConfig": expected}


BAD_REQUESTS: list[tuple[str, dict[str, Any], str]] = [
    ("logprobs", {"logprobs": True}, "logprobs"),
    ("top_logprobs", {"top_logprobs": 3}, "top_logprobs"),
    ("logit_bias", {"logit_bias": {"50256": -100}}, "logit_bias"),
    ("audio output", {"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ("audio modality", {"modalities": ["text", "audio"]}, "modalities"),
    ("an unknown field", {"frobnicate": 1}, "frobnicate"),
    ("legacy functions", {"functions": [{"name": "f"}]}, "functions"),
    ("custom tools", {"tools": [{"type": "custom", "custom": {}}]}, "tools[0].type"),
    (
        "allowed_tools choice",
        {"tools": [WEATHER_TOOL], "tool_choice": {"type": "allowed_tools"}},
        "tool_choice.type",
    ),
    ("required with no tools", {"tool_choice": "required"}, "tool_choice"),
    ("unknown response format", {"response_format": {"type": "grammar"}}, "response_format.type"),
    ("unknown reasoning effort", {"reasoning_effort": "max"}, "reasoning_effort"),
]


@pytest.mark.parametrize(
    ("extra", "field"), [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS]
)
def test_unsupported_fields_are_refused_by_name(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest) as info:
        to_gemini({"messages": [user("Hi")], **extra}, provider=PROVIDER)
    assert info.value.status == 400
    assert f"'{field}'" in info.value.message
    assert info.value.param == field


BAD_MESSAGES: list[tuple[str, list[dict[str, Any]], str, str]] = [
    ("only a system prompt", [{"role": "system", "content": "x"}], "messages", "no user"),
    ("a legacy function message", [{"role": "function", "content": "x"}], "messages[0].role", ""),
    (
        "an ftp image",
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}],
        "messages[0].content[0].image_url.url",
        "gem",
    ),
    (
        "a malformed data URL",
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:xx"}}]}],
        "messages[0].content[0].image_url.url",
        "base64",
    ),
    (
        "an OpenAI file id",
        [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}],
        "messages[0].content[0].file.file_id",
        "gem",
    ),
    (
        "a tool result for an unknown call",
        [user("x"), {"role": "tool", "tool_call_id": "nope", "content": "r"}],
        "messages[1].tool_call_id",
        "'nope'",
    ),
    (
        "tool call arguments that are not JSON",
        [user("x"), {"role": "assistant", "tool_calls": [call("c", "f", "{oops")]}],
        "messages[1].tool_calls[0].function.arguments",
        "not valid JSON",
    ),
    (
        "a text part without text",
        [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text"}]}],
        "messages[0].content[1].text",
        "expected a string",
    ),
    (
        "a content part without a type",
        [{"role": "user", "content": [{"text": "a"}]}],
        "messages[0].content[0]",
        "'type'",
    ),
    (
        "an image in a system message",
        [
            {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
            user("x"),
        ],
        "messages[0].content[0]",
        "gem",
    ),
]


@pytest.mark.parametrize(
    ("messages", "field", "words"), [c[1:] for c in BAD_MESSAGES], ids=[c[0] for c in BAD_MESSAGES]
)
def test_bad_messages_are_refused_by_path(
    messages: list[dict[str, Any]], field: str, words: str
) -> None:
    with pytest.raises(BadRequest) as info:
        to_gemini({"messages": messages}, provider=PROVIDER)
    assert info.value.param == field
    assert words in info.value.message


# ---------------------------------------------------------------- responses


def openai_answer(response: dict[str, Any], model: str = "gemini-2.5-pro") -> dict[str, Any]:
    answer = gemini.decode_answer(msgspec.json.encode(response), provider=PROVIDER, model=model)
    result: dict[str, Any] = msgspec.json.decode(chat.encode_answer(answer))
    return result


def candidate(parts: list[dict[str, Any]], finish: str | None = "STOP", **extra: Any) -> dict:
    found: dict[str, Any] = {"content": {"role": "model", "parts": parts}, **extra}
    if finish:
        found["finishReason"] = finish
    return found


FINISH_CASES = [
    ("STOP", "stop"),
    ("MAX_TOKENS", "length"),
    ("SAFETY", "content_filter"),
    ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"),
    ("SPII", "content_filter"),
    ("OTHER", "stop"),
    ("SOMETHING_NEW", "stop"),
]


@pytest.mark.parametrize(("gemini_reason", "openai_reason"), FINISH_CASES)
def test_finish_reasons(gemini_reason: str, openai_reason: str) -> None:
    answer = openai_answer({"candidates": [candidate([{"text": "x"}], gemini_reason)]})
    assert answer["choices"][0]["finish_reason"] == openai_reason


def test_text_answer_with_usage() -> None:
    answer = openai_answer(
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
    assert answer["object"] == "chat.completion"
    assert answer["id"] == "abc"  # Gemini's responseId
    assert answer["model"] == "gemini-2.5-pro-001"
    assert answer["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert answer["usage"] == {
        "prompt_tokens": 12,
        "completion_tokens": 8,
        "total_tokens": 20,
        "prompt_tokens_details": {"cached_tokens": 8},
        "completion_tokens_details": {"reasoning_tokens": 5},
    }


def test_thought_summaries_are_not_part_of_the_answer() -> None:
    answer = openai_answer(
        {"candidates": [candidate([{"text": "pondering", "thought": True}, {"text": "42"}])]}
    )
    assert answer["choices"][0]["message"]["content"] == "42"


def test_function_calls_become_tool_calls_with_distinct_ids() -> None:
    answer = openai_answer(
        {
            "candidates": [
                candidate(
                    [
                        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                        {"functionCall": {"name": "get_time"}},
                    ]
                )
            ]
        }
    )
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [(c["type"], c["function"]["name"]) for c in calls] == [
        ("function", "get_weather"),
        ("function", "get_weather"),
        ("function", "get_time"),
    ]
    assert [msgspec.json.decode(c["function"]["arguments"]) for c in calls] == [
        {"city": "Paris"},
        {"city": "Oslo"},
        {},
    ]
    ids = [c["id"] for c in calls]
    assert len(set(ids)) == 3 and all(i.startswith("call_") for i in ids)


def test_gemini_call_ids_are_kept() -> None:
    answer = openai_answer(
        {"candidates": [candidate([{"functionCall": {"name": "f", "args": {}, "id": "g-1"}}])]}
    )
    assert answer["choices"][0]["message"]["tool_calls"][0]["id"] == "g-1"


def test_a_signed_call_round_trips_through_the_client() -> None:
    """The signature Gemini puts on a call comes back to it on the next turn."""
    answer = openai_answer(
        {
            "candidates": [
                candidate(
                    [{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "Zm9v+/8="}]
                )
            ]
        }
    )
    call_id = answer["choices"][0]["message"]["tool_calls"][0]["id"]
    assert signature_of(call_id) == "Zm9v+/8="
    assert all(ch.isalnum() or ch in "_-" for ch in call_id)
    history = [
        user("x"),
        answer["choices"][0]["message"],
        {"role": "tool", "tool_call_id": call_id, "content": "done"},
    ]
    model_turn = gemini_json({"messages": history})["contents"][1]
    assert model_turn["parts"][0]["thoughtSignature"] == "Zm9v+/8="


def test_unsigned_ids_carry_no_signature() -> None:
    assert signature_of(make_call_id()) is None


def test_several_candidates_become_several_choices() -> None:
    answer = openai_answer(
        {"candidates": [candidate([{"text": "a"}]), candidate([{"text": "b"}], index=1)]}
    )
    assert [(c["index"], c["message"]["content"]) for c in answer["choices"]] == [
        (0, "a"),
        (1, "b"),
    ]


def test_blocked_prompt_is_an_empty_content_filter_answer() -> None:
    answer = openai_answer(
        {
            "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
            "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4},
        }
    )
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert not choice["message"]["content"]
    assert "SAFETY" in choice["message"]["refusal"]
    assert answer["usage"]["prompt_tokens"] == 4


def test_safety_stop_without_content() -> None:
    answer = openai_answer(
        {"candidates": [{"finishReason": "SAFETY", "safetyRatings": [{"blocked": True}]}]}
    )
    assert answer["choices"][0]["finish_reason"] == "content_filter"
    assert answer["choices"][0]["message"]["content"] == ""


def test_an_answer_with_nothing_in_it_is_an_upstream_failure() -> None:
    with pytest.raises(UpstreamUnavailable):
        openai_answer({})


# ---------------------------------------------------------------- streams


def run_stream(events: list[dict[str, Any]], include_usage: bool = True) -> list[Any]:
    """Feed events and finish; the OpenAI frames as JSON (``[DONE]`` as the string)."""
    translator = StreamTranslator(
        model="gemini-2.5-pro", provider=PROVIDER, include_usage=include_usage
    )
    frames: list[bytes] = []
    for event in events:
        frames.extend(translator.feed(msgspec.json.encode(event)))
    frames.extend(translator.finish())
    out: list[Any] = []
    for frame in frames:
        assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
        data = frame[6:-2]
        out.append("[DONE]" if data == b"[DONE]" else msgspec.json.decode(data))
    return out


def deltas(chunks: list[Any]) -> list[tuple[dict[str, Any], str | None]]:
    return [
        (c["choices"][0]["delta"], c["choices"][0]["finish_reason"])
        for c in chunks
        if isinstance(c, dict) and c["choices"]
    ]


def test_text_stream_in_openai_order() -> None:
    chunks = run_stream(
        [
            {"candidates": [candidate([{"text": "Hel"}], None)], "responseId": "r1"},
            {"candidates": [candidate([{"text": "lo"}], None)]},
            {
                "candidates": [candidate([{"text": "!"}], "STOP")],
                "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2},
            },
        ]
    )
    assert deltas(chunks) == [
        ({"role": "assistant", "content": ""}, None),
        ({"content": "Hel"}, None),
        ({"content": "lo"}, None),
        ({"content": "!"}, None),
        ({}, "stop"),
    ]
    usage_chunk = chunks[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens"] == 3
    assert usage_chunk["usage"]["completion_tokens"] == 2
    assert chunks[-1] == "[DONE]"
    assert {c["id"] for c in chunks[:-1]} == {"r1"}  # Gemini's responseId
    assert {c["object"] for c in chunks[:-1]} == {"chat.completion.chunk"}


def test_no_usage_chunk_unless_asked() -> None:
    chunks = run_stream([{"candidates": [candidate([{"text": "x"}])]}], include_usage=False)
    assert all(c == "[DONE]" or c["choices"] for c in chunks)


def test_tool_calls_stream_with_running_indices() -> None:
    chunks = run_stream(
        [
            {"candidates": [candidate([{"functionCall": {"name": "a", "args": {"x": 1}}}], None)]},
            {"candidates": [candidate([{"functionCall": {"name": "b", "args": {}}}], "STOP")]},
        ]
    )
    found = deltas(chunks)
    assert found[0] == ({"role": "assistant", "content": ""}, None)
    calls = [c for delta, _ in found for c in delta.get("tool_calls", ())]
    starts = [c for c in calls if "id" in c]
    assert [(c["index"], c["function"]["name"]) for c in starts] == [(0, "a"), (1, "b")]
    arguments = {
        i: "".join(c["function"]["arguments"] for c in calls if c["index"] == i) for i in (0, 1)
    }
    assert arguments == {0: '{"x":1}', 1: "{}"}
    assert starts[0]["id"] != starts[1]["id"]
    assert found[-1] == ({}, "tool_calls")


def test_blocked_prompt_in_a_stream() -> None:
    chunks = run_stream([{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}])
    assert deltas(chunks) == [({"role": "assistant", "content": ""}, None), ({}, "content_filter")]


def test_stream_cut_short_is_an_error_not_a_short_answer() -> None:
    translator = StreamTranslator(model="m", provider=PROVIDER, include_usage=False)
    translator.feed(b'{"candidates": [{"content": {"parts": [{"text": "Hal"}]}}]}')
    with pytest.raises(UpstreamUnavailable) as info:
        translator.finish()
    assert "before the answer was complete" in info.value.message


def test_empty_stream_is_an_error() -> None:
    translator = StreamTranslator(model="m", provider=PROVIDER, include_usage=False)
    with pytest.raises(UpstreamUnavailable):
        translator.finish()


def test_provider_error_mid_stream() -> None:
    translator = StreamTranslator(model="m", provider=PROVIDER, include_usage=False)
    translator.feed(b'{"candidates": [{"content": {"parts": [{"text": "a"}]}}]}')
    error = (
        b'{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}'
    )
    with pytest.raises(UpstreamUnavailable) as info:
        translator.feed(error)
    assert "The model is overloaded." in info.value.message


def test_data_url_with_parameters_keeps_only_the_type() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/webp;name=a.webp;base64,UklG"}}
    parts = gemini_json({"messages": [{"role": "user", "content": [image]}]})["contents"][0]
    assert parts["parts"] == [{"inlineData": {"mimeType": "image/webp", "data": "UklG"}}]


def test_include_thoughts_asks_for_thought_summaries() -> None:
    """For a caller that wants reasoning back, a thinking budget comes with includeThoughts."""
    body = {"model": "m", "messages": [user("hi")], "reasoning_effort": "low"}
    sent = msgspec.json.decode(
        msgspec.json.encode(to_gemini(body, provider=PROVIDER, include_thoughts=True))
    )
    assert sent["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 1024,
        "includeThoughts": True,
    }
    assert "includeThoughts" not in str(gemini_json(body)), "only when asked for"


def test_thought_summaries_come_back_as_reasoning_content() -> None:
    """Thought parts (sent only when asked for) are the message's reasoning_content."""
    answer = openai_answer(
        {"candidates": [candidate([{"text": "pondering", "thought": True}, {"text": "42"}])]}
    )
    assert answer["choices"][0]["message"]["reasoning_content"] == "pondering"


def test_streamed_thought_summaries_are_reasoning_deltas() -> None:
    """A streamed thought part is a reasoning_content delta ahead of the text."""
    translator = StreamTranslator(model="m", provider=PROVIDER, include_usage=False)
    frames: list[bytes] = []
    for parts, finish in (([{"text": "hmm", "thought": True}], None), ([{"text": "42"}], "STOP")):
        event = {"candidates": [candidate(parts, finish)]}
        frames.extend(translator.feed(msgspec.json.encode(event)))
    deltas = [msgspec.json.decode(f[6:])["choices"][0]["delta"] for f in frames]
    assert {"reasoning_content": "hmm"} in deltas
    assert deltas.index({"reasoning_content": "hmm"}) < deltas.index({"content": "42"})
