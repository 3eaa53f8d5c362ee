"""Responses requests as Chat Completions requests, and Chat answers as ``response`` objects."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fkllmproxy.errors import BadRequest, UpstreamUnavailable
from fkllmproxy.translate.responses_chat import (
    chat_request_from_responses,
    input_items,
    response_envelope,
    response_from_chat,
)

P = "'main' (openai)"


def chat(**data: Any) -> dict[str, Any]:
    return chat_request_from_responses({"model": "m", **data}, provider=P)


class TestRequest:
    def test_string_input_and_instructions(self) -> None:
        """instructions lead as a system message; a string input is one user message."""
        body = chat(input="hi", instructions="be brief")
        assert body["messages"] == [
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
        assert chat(input=items)["messages"] == [
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
        messages = chat(input=items)["messages"]
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
        """Tools, choice, limits, sampling, text format, reasoning effort, user; stream asks usage."""
        body = chat(
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
        assert chat(input="x", text={"format": fmt})["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "E", "schema": {"type": "object"}, "strict": True},
        }

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
            chat(**{"input": "x", **data})
        assert refused.value.param == field
        assert P in refused.value.message

    def test_codex_hint_for_web_search(self) -> None:
        with pytest.raises(BadRequest, match='web_search = "disabled"'):
            chat(input="x", tools=[{"type": "web_search"}])

    def test_input_items_fills_in_message_type(self) -> None:
        assert input_items([{"role": "user", "content": "a"}]) == [
            {"type": "message", "role": "user", "content": "a"}
        ]
        assert input_items(None) == []


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


class TestAnswer:
    def envelope(self, **data: Any) -> dict[str, Any]:
        return response_envelope({"input": "x", **data}, model="client-name", response_id="resp_1")

    def test_reasoning_text_comes_back_as_a_reasoning_item(self) -> None:
        """A host's reasoning_content is a reasoning item before the message, not dropped."""
        response = response_from_chat(
            completion({"role": "assistant", "content": "hi", "reasoning_content": "Because."}),
            provider=P,
            envelope=self.envelope(),
        )
        reasoning, message = response["output"]
        assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_")
        assert reasoning["summary"] == []
        assert reasoning["content"] == [{"type": "reasoning_text", "text": "Because."}]
        assert message["content"][0]["text"] == "hi"

    def test_text_answer_and_usage(self) -> None:
        response = response_from_chat(
            completion({"role": "assistant", "content": "hello"}),
            provider=P,
            envelope=self.envelope(metadata={"k": "v"}, store=False),
        )
        assert response["object"] == "response" and response["status"] == "completed"
        assert response["model"] == "client-name"
        assert response["metadata"] == {"k": "v"} and response["store"] is False
        (item,) = response["output"]
        assert item["type"] == "message" and item["role"] == "assistant"
        assert item["content"][0] == {
            "type": "output_text",
            "text": "hello",
            "annotations": [],
            "logprobs": [],
        }
        assert response["usage"] == {
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
        response = response_from_chat(
            completion({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"),
            provider=P,
            envelope=self.envelope(),
        )
        (item,) = response["output"]
        assert item["type"] == "function_call"
        assert (item["call_id"], item["name"], item["arguments"]) == ("call_9", "w", '{"c":"x"}')

    def test_length_is_incomplete(self) -> None:
        response = response_from_chat(
            completion({"role": "assistant", "content": "cut"}, "length"),
            provider=P,
            envelope=self.envelope(),
        )
        assert response["status"] == "incomplete"
        assert response["incomplete_details"] == {"reason": "max_output_tokens"}

    def test_unreadable_answer_is_an_upstream_failure(self) -> None:
        with pytest.raises(UpstreamUnavailable):
            response_from_chat(b"[]", provider=P, envelope=self.envelope())


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"tool_choice": "required"}, "tool_choice"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image"}]}]},
            "input[0].content[0].image_url",
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
    data: dict[str, Any], field: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        chat(**{"input": "x", **data})
    assert refused.value.param == field
