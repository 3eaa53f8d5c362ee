"""Gemini API requests -> OpenAI Chat requests, and Chat answers -> Gemini answers,
through the Gemini and chat codecs (as the inbound Gemini API reaches a chat provider)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from fkllmproxy.errors import BadRequest
from fkllmproxy.translate._common import Unsupported
from fkllmproxy.translate.canonical import Conversation, Document, ReasoningConfig
from fkllmproxy.translate.codecs import chat, gemini
from fkllmproxy.translate.codecs.gemini import json_schema_of
from fkllmproxy.translate.token_estimate import estimate_gemini_tokens
from fkllmproxy.wire.gemini_inbound import GenerateContentBody, generate_content_decoder


def conversation_of(data: dict[str, Any], stream: bool = False) -> Conversation:
    return gemini.decode_request(json.dumps(data).encode(), model="up", stream=stream)


def translate(data: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    """The chat body an OpenAI-type target gets (topK left out, as the route does)."""
    conversation = conversation_of(data, stream)
    conversation.top_k = None
    return chat.encode_request(conversation, model="up", unsupported=Unsupported("p (x)"))


def gemini_response_from_chat(body: bytes, *, provider: str, model: str) -> bytes:
    answer = chat.decode_answer(body, provider=provider)
    return gemini.encode_answer(answer, model=model, provider=provider)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


class TestRequest:
    def test_system_turns_and_generation_config(self) -> None:
        """systemInstruction -> system; sampling and limits carried by their Chat names."""
        chat = translate(
            {
                "systemInstruction": {"parts": [{"text": "A"}, {"text": "B"}]},
                "contents": [user("hi"), {"role": "model", "parts": [{"text": "yo"}]}, user("again")],
                "generationConfig": {
                    "temperature": 0.3, "topP": 0.9, "topK": 5, "maxOutputTokens": 7,
                    "stopSequences": ["END"], "candidateCount": 2, "seed": 1,
                },
            }
        )  # fmt: skip
        assert chat["messages"] == [
            {"role": "system", "content": "A\nB"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yo"},
            {"role": "user", "content": "again"},
        ]
        assert chat["temperature"] == 0.3 and chat["top_p"] == 0.9
        assert chat["max_completion_tokens"] == 7
        assert chat["stop"] == ["END"] and chat["n"] == 2 and chat["seed"] == 1
        assert "top_k" not in chat  # OpenAI has none: a sampling hint, left out
        assert (
            conversation_of({"contents": [user("x")], "generationConfig": {"topK": 5}}).top_k == 5
        )

    def test_stream_asks_for_usage(self) -> None:
        chat = translate({"contents": [user("x")]}, stream=True)
        assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}

    def test_function_calls_and_responses_pair_by_id_or_name(self) -> None:
        chat = translate(
            {
                "contents": [
                    user("go"),
                    {
                        "role": "model",
                        "parts": [
                            {
                                "functionCall": {"name": "a", "args": {"x": 1}},
                                "thoughtSignature": "sig",
                            },
                            {"functionCall": {"name": "b", "args": {}, "id": "given"}},
                        ],
                    },
                    {
                        "role": "user",
                        "parts": [
                            {
                                "functionResponse": {
                                    "name": "b",
                                    "id": "given",
                                    "response": {"output": "B"},
                                }
                            },
                            {"functionResponse": {"name": "a", "response": {"v": 2}}},
                        ],
                    },
                ]
            }
        )
        assistant = chat["messages"][1]
        first_id = assistant["tool_calls"][0]["id"]
        assert assistant["tool_calls"][0]["function"] == {"name": "a", "arguments": '{"x":1}'}
        assert assistant["tool_calls"][1]["id"] == "given"
        assert chat["messages"][2] == {"role": "tool", "tool_call_id": "given", "content": "B"}
        assert chat["messages"][3] == {
            "role": "tool",
            "tool_call_id": first_id,
            "content": '{"v":2}',
        }

    def test_a_response_without_its_call_is_a_400(self) -> None:
        with pytest.raises(BadRequest, match="functionResponse"):
            translate(
                {"contents": [{"parts": [{"functionResponse": {"name": "a", "response": {}}}]}]}
            )

    def test_thought_parts_are_left_out(self) -> None:
        """A thought summary does not go back to a Chat host: Chat has no field for it."""
        chat = translate(
            {
                "contents": [
                    user("q"),
                    {"role": "model", "parts": [{"text": "hmm", "thought": True}, {"text": "A"}]},
                    user("q2"),
                ]
            }
        )
        assert chat["messages"][1] == {"role": "assistant", "content": "A"}

    def test_tools_and_tool_config(self) -> None:
        declaration = {
            "name": "f",
            "description": "d",
            "parameters": {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}},
        }
        chat = translate(
            {
                "contents": [user("x")],
                "tools": [{"functionDeclarations": [declaration]}],
                "toolConfig": {
                    "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}
                },
            }
        )
        function = chat["tools"][0]["function"]
        assert function["parameters"] == {
            "type": "object",
            "properties": {"n": {"type": "integer"}},
        }
        assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}

    def test_json_schema_output_and_thinking(self) -> None:
        chat = translate(
            {
                "contents": [user("x")],
                "generationConfig": {
                    "responseMimeType": "application/json",
                    "responseJsonSchema": {"type": "object"},
                    "thinkingConfig": {"thinkingBudget": 0},
                },
            }
        )
        assert chat["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": {"type": "object"}},
        }
        assert "reasoning_effort" in chat
        data = {
            "contents": [user("x")],
            "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}},
        }
        assert conversation_of(data).reasoning == ReasoningConfig(budget_tokens=0)

    @pytest.mark.parametrize(
        ("data", "field"),
        [
            ({"cachedContent": "c/1"}, "cachedContent"),
            ({"tools": [{"codeExecution": {}}]}, "tools[0].codeExecution"),
            ({"generationConfig": {"responseLogprobs": True}}, "generationConfig.responseLogprobs"),
            (
                {"generationConfig": {"responseMimeType": "text/x.enum"}},
                "generationConfig.responseMimeType",
            ),
            (
                {"generationConfig": {"responseModalities": ["IMAGE"]}},
                "generationConfig.responseModalities",
            ),
        ],
    )
    def test_what_cannot_be_carried_names_field_and_provider(
        self, data: dict[str, Any], field: str
    ) -> None:
        with pytest.raises(BadRequest) as caught:
            translate({"contents": [user("x")], **data})
        assert field in caught.value.message and "'p (x)'" in caught.value.message

    def test_unknown_part_fields_are_named(self) -> None:
        part = {"inlineData": {"mimeType": "image/png", "data": "AA=="}, "videoMetadata": {}}
        with pytest.raises(BadRequest, match=r"contents\[0\].parts\[0\].videoMetadata"):
            translate({"contents": [{"role": "user", "parts": [part]}]})
        with pytest.raises(BadRequest, match=r"contents\[1\].parts\[0\].executableCode"):
            translate(
                {"contents": [user("x"), {"role": "model", "parts": [{"executableCode": {}}]}]}
            )

    def test_media(self) -> None:
        png = {"inlineData": {"mimeType": "image/png", "data": "AAA="}}
        wav = {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}}
        url = {"fileData": {"fileUri": "https://x/y.jpg", "mimeType": "image/jpeg"}}
        chat = translate({"contents": [{"role": "user", "parts": [png, wav, url]}]})
        assert chat["messages"][0]["content"] == [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA="}},
            {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
            {"type": "image_url", "image_url": {"url": "https://x/y.jpg"}},
        ]
        # Audio is a document of its type, for the target's encoder to take or refuse.
        parts = (
            conversation_of({"contents": [{"role": "user", "parts": [png, wav]}]}).messages[0].parts
        )
        assert parts[1] == Document(media_type="audio/wav", data="UklG")


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
    assert json_schema_of(schema, "s") == {
        "type": "object",
        "properties": {
            "a": {"type": ["string", "null"]},
            "b": {"type": "array", "items": {"type": "number"}},
        },
    }


def test_answer_from_chat() -> None:
    """Text, tool calls with their ids, finish reason and usage with thinking apart."""
    chat = {
        "id": "chatcmpl-1",
        "choices": [
            {
                "index": 0,
                "message": {
                    "content": "hi",
                    "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": '{"a":1}'}}],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        },
    }
    answer = msgspec.json.decode(
        gemini_response_from_chat(json.dumps(chat).encode(), provider="p", model="m")
    )
    assert answer["candidates"] == [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "hi"},
                    {"functionCall": {"name": "f", "args": {"a": 1}, "id": "c1"}},
                ],
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ]
    assert answer["usageMetadata"] == {
        "promptTokenCount": 10,
        "candidatesTokenCount": 5,
        "totalTokenCount": 17,
        "cachedContentTokenCount": 4,
        "thoughtsTokenCount": 2,
    }
    assert answer["modelVersion"] == "m" and answer["responseId"] == "chatcmpl-1"


def test_token_estimate() -> None:
    body: GenerateContentBody = generate_content_decoder.decode(
        json.dumps({"contents": [user("x" * 40)]})
    )
    assert estimate_gemini_tokens(body.contents, None) == 14


def test_reasoning_text_comes_back_as_a_thought_part_first() -> None:
    """A host's reasoning_content is a thought part before the answer, not dropped."""
    chat = {
        "choices": [
            {
                "index": 0,
                "message": {"content": "hi", "reasoning_content": "Because."},
                "finish_reason": "stop",
            }
        ]
    }
    answer = msgspec.json.decode(
        gemini_response_from_chat(json.dumps(chat).encode(), provider="p", model="m")
    )
    assert answer["candidates"][0]["content"]["parts"] == [
        {"text": "Because.", "thought": True},
        {"text": "hi"},
    ]
