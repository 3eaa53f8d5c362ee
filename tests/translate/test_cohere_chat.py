"""OpenAI Chat <-> Cohere v2 chat: requests out, whole answers back."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from fkllmproxy.errors import BadRequest, UpstreamTimeout, UpstreamUnavailable
from fkllmproxy.translate.cohere_chat import from_cohere, to_cohere, token_counts
from fkllmproxy.wire.cohere import ChatResponse, Usage, UsageUnits, decode_chat, encode

PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": PARAMS}}


def sent(body: dict[str, Any], **options: Any) -> dict[str, Any]:
    """What goes up to Cohere for ``body``, as JSON."""
    request = to_cohere(body, model="command-a", provider="co", **options)
    result: dict[str, Any] = msgspec.json.decode(encode(request))
    return result


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages), **extra}


USER = {"role": "user", "content": "hi"}


class TestToCohere:
    def test_minimal_request(self) -> None:
        """Only what the client asked for goes up; ``stream`` only when streaming."""
        assert sent(chat(USER)) == {"model": "command-a", "messages": [USER]}
        assert sent(chat(USER), stream=True)["stream"] is True

    def test_system_messages_become_one_first_system_turn(self) -> None:
        """Cohere wants the system turn first: every system/developer text, in order."""
        body = chat(
            {"role": "system", "content": "A."},
            USER,
            {"role": "developer", "content": [{"type": "text", "text": "B."}]},
        )
        assert sent(body)["messages"] == [{"role": "system", "content": "A.\n\nB."}, USER]

    def test_sampling_and_limits_under_coheres_names(self) -> None:
        body = chat(
            USER,
            max_completion_tokens=9,
            max_tokens=5,
            stop="END",
            temperature=0.2,
            top_p=0.5,
            top_k=3,
            seed=1,
            presence_penalty=0.1,
            frequency_penalty=0.3,
            n=1,
            user="u",
            parallel_tool_calls=False,
        )
        out = sent(body)
        assert out["max_tokens"] == 9
        assert out["stop_sequences"] == ["END"]
        assert (out["temperature"], out["p"], out["k"], out["seed"]) == (0.2, 0.5, 3, 1)
        assert (out["presence_penalty"], out["frequency_penalty"]) == (0.1, 0.3)
        assert "user" not in out and "n" not in out and "parallel_tool_calls" not in out

    def test_image_parts(self) -> None:
        """Cohere takes OpenAI's image_url block as it is (data: or web URL, detail)."""
        parts = [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "high"}},
        ]
        (message,) = sent(chat({"role": "user", "content": parts}))["messages"]
        assert message["content"] == [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "high"}},
        ]

    def test_tool_call_and_result(self) -> None:
        """Assistant text beside calls is the tool_plan; results go back by id as text."""
        call = {
            "id": "get_weather_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        }
        body = chat(
            USER,
            {"role": "assistant", "content": "Checking.", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "get_weather_1", "content": "cold"},
            tools=[TOOL],
        )
        out = sent(body)
        assert out["messages"][1:] == [
            {"role": "assistant", "tool_calls": [call], "tool_plan": "Checking."},
            {
                "role": "tool",
                "tool_call_id": "get_weather_1",
                "content": [{"type": "text", "text": "cold"}],
            },
        ]
        assert out["tools"] == [TOOL]

    def test_an_empty_assistant_turn_is_left_out(self) -> None:
        """Cohere refuses an empty turn, and it carries nothing to replay."""
        body = chat(USER, {"role": "assistant", "content": ""}, USER)
        assert [m["role"] for m in sent(body)["messages"]] == ["user", "user"]

    def test_a_function_without_parameters_takes_none(self) -> None:
        tool = {"type": "function", "function": {"name": "now"}}
        (out,) = sent(chat(USER, tools=[tool]))["tools"]
        assert out["function"]["parameters"] == {"type": "object", "properties": {}}

    @pytest.mark.parametrize(
        ("choice", "expected"),
        [("auto", None), ("none", "NONE"), ("required", "REQUIRED")],
    )
    def test_tool_choice(self, choice: str, expected: str | None) -> None:
        assert sent(chat(USER, tools=[TOOL], tool_choice=choice)).get("tool_choice") == expected

    def test_named_tool_choice_offers_only_that_tool(self) -> None:
        other = {"type": "function", "function": {"name": "get_time", "parameters": PARAMS}}
        choice = {"type": "function", "function": {"name": "get_time"}}
        out = sent(chat(USER, tools=[TOOL, other], tool_choice=choice))
        assert out["tool_choice"] == "REQUIRED"
        assert [t["function"]["name"] for t in out["tools"]] == ["get_time"]

    @pytest.mark.parametrize(
        ("response_format", "expected"),
        [
            ({"type": "text"}, None),
            ({"type": "json_object"}, {"type": "json_object"}),
            (
                {"type": "json_schema", "json_schema": {"name": "x", "schema": PARAMS}},
                {"type": "json_object", "json_schema": PARAMS},
            ),
        ],
    )
    def test_response_format(self, response_format: Any, expected: Any) -> None:
        assert sent(chat(USER, response_format=response_format)).get("response_format") == expected

    @pytest.mark.parametrize(
        ("effort", "expected"),
        [
            ("none", {"type": "disabled"}),
            ("low", {"type": "enabled", "token_budget": 1024}),
            ("high", {"type": "enabled", "token_budget": 24576}),
        ],
    )
    def test_reasoning_effort_is_thinking(self, effort: str, expected: Any) -> None:
        assert sent(chat(USER, reasoning_effort=effort))["thinking"] == expected

    @pytest.mark.parametrize(
        ("extra", "field"),
        [
            ({"logprobs": True}, "logprobs"),
            ({"top_logprobs": 2}, "top_logprobs"),
            ({"n": 3}, "n"),
            ({"modalities": ["text", "audio"]}, "modalities"),
            ({"audio": {"voice": "x"}}, "audio"),
            ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
            ({"response_format": {"type": "grammar"}}, "response_format.type"),
            ({"tool_choice": {"type": "custom", "name": "x"}, "tools": [TOOL]}, "tool_choice.type"),
        ],
    )
    def test_what_cohere_cannot_carry_is_refused_by_name(
        self, extra: dict[str, Any], field: str
    ) -> None:
        with pytest.raises(BadRequest) as caught:
            to_cohere(chat(USER, **extra), model="c", provider="co")
        assert f"'{field}'" in caught.value.message and "'co'" in caught.value.message
        assert caught.value.param == field

    @pytest.mark.parametrize(
        ("part", "field"),
        [
            ({"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}, "type"),
            ({"type": "file", "file": {"file_id": "f"}}, "type"),
            ({"type": "image_url", "image_url": {"url": "gs://b/x.png"}}, "image_url.url"),
        ],
    )
    def test_parts_cohere_cannot_take_are_refused(self, part: Any, field: str) -> None:
        with pytest.raises(BadRequest) as caught:
            to_cohere(chat({"role": "user", "content": [part]}), model="c", provider="co")
        assert f"messages[0].content[0].{field}" in caught.value.message

    @pytest.mark.parametrize(
        ("messages", "where"),
        [
            ([{"role": "system", "content": "only"}], "messages"),
            ([USER, {"role": "tool", "content": "x"}], "messages[1].tool_call_id"),
            ([{"role": "robot", "content": "x"}], "messages[0].role"),
            (
                [{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}],
                "messages[0].tool_calls[0].id",
            ),
            (
                [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "[1]"}}],
                    }
                ],
                "messages[0].tool_calls[0].function.arguments",
            ),
        ],
    )
    def test_invalid_messages_name_the_field(self, messages: Any, where: str) -> None:
        with pytest.raises(BadRequest) as caught:
            to_cohere({"model": "m", "messages": messages}, model="c", provider="co")
        assert caught.value.param == where


def answer(**fields: Any) -> ChatResponse:
    base: dict[str, Any] = {
        "id": "r1",
        "finish_reason": "COMPLETE",
        "message": {"role": "assistant"},
    }
    return decode_chat(json.dumps({**base, **fields}).encode())


def completion(response: ChatResponse) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(from_cohere(response, model="m", provider="co", created=1))
    return result


class TestFromCohere:
    def test_text_answer(self) -> None:
        body = completion(
            answer(
                message={"role": "assistant", "content": [{"type": "text", "text": "Hi"}]},
                usage={
                    "billed_units": {"input_tokens": 3, "output_tokens": 1},
                    "tokens": {"input_tokens": 70, "output_tokens": 1},
                    "cached_tokens": 2,
                },
            )
        )
        assert body["id"] == "chatcmpl-r1" and body["object"] == "chat.completion"
        (choice,) = body["choices"]
        assert choice["message"] == {"role": "assistant", "content": "Hi", "refusal": None}
        assert choice["finish_reason"] == "stop"
        assert body["usage"] == {
            "prompt_tokens": 3,
            "completion_tokens": 1,
            "total_tokens": 4,
            "prompt_tokens_details": {"cached_tokens": 2},
        }

    def test_tool_calls_with_their_plan(self) -> None:
        call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
        message = {"role": "assistant", "tool_plan": "I will call f.", "tool_calls": [call]}
        (choice,) = completion(answer(message=message, finish_reason="TOOL_CALL"))["choices"]
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"]["content"] == "I will call f."
        assert choice["message"]["tool_calls"] == [call]

    def test_thinking_is_reasoning_content(self) -> None:
        content = [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "42"}]
        (choice,) = completion(answer(message={"role": "assistant", "content": content}))["choices"]
        assert choice["message"]["reasoning_content"] == "hmm"
        assert choice["message"]["content"] == "42"

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
        (choice,) = completion(answer(finish_reason=reason))["choices"]
        assert choice["finish_reason"] == expected

    def test_error_and_timeout_finishes_are_upstream_failures(self) -> None:
        with pytest.raises(UpstreamUnavailable):
            completion(answer(finish_reason="ERROR"))
        with pytest.raises(UpstreamTimeout):
            completion(answer(finish_reason="TIMEOUT"))

    def test_token_counts_fall_back_to_tokens(self) -> None:
        """Without billed units, the tokens the model consumed are counted."""
        assert token_counts(None) == (0, 0, 0)
        assert token_counts(Usage(tokens=UsageUnits(input_tokens=5, output_tokens=2))) == (5, 2, 0)
