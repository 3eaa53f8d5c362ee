"""Pairs of codecs through the canonical model: what a client of one API meets at a
provider of another.

Chat clients at Cohere: each check is one the pairwise Chat <-> Cohere translator these
codecs replace was held to, now made by the chat codec's decoder and the Cohere codec's
encoder, and back.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from fkllmproxy.errors import BadRequest, UpstreamTimeout, UpstreamUnavailable
from fkllmproxy.translate._common import Unsupported
from fkllmproxy.translate.codecs import chat, cohere
from fkllmproxy.wire.cohere import encode

PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": PARAMS}}
USER = {"role": "user", "content": "hi"}


def to_cohere(body: dict[str, Any]) -> dict[str, Any]:
    """What goes up to Cohere (provider 'co') for a chat client's ``body``, as JSON."""
    conversation = chat.decode_request(body, unsupported=Unsupported("co", "Cohere"))
    request = cohere.encode_request(conversation, model="command-a", provider="co")
    result: dict[str, Any] = msgspec.json.decode(encode(request))
    return result


def refusal(body: dict[str, Any]) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        to_cohere(body)
    return caught.value


def body(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages), **extra}


class TestChatToCohere:
    def test_minimal_request(self) -> None:
        """Only what the client asked for goes up; ``stream`` only when streaming."""
        assert to_cohere(body(USER)) == {"model": "command-a", "messages": [USER]}
        assert to_cohere(body(USER, stream=True))["stream"] is True

    def test_system_messages_become_one_first_system_turn(self) -> None:
        """Cohere wants the system turn first: every system/developer text, in order."""
        sent = to_cohere(
            body(
                {"role": "system", "content": "A."},
                USER,
                {"role": "developer", "content": [{"type": "text", "text": "B."}]},
            )
        )
        assert sent["messages"] == [{"role": "system", "content": "A.\n\nB."}, USER]

    def test_sampling_and_limits_under_coheres_names(self) -> None:
        sent = to_cohere(
            body(
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
                store=True,
                service_tier="auto",
            )
        )
        assert sent["max_tokens"] == 9
        assert sent["stop_sequences"] == ["END"]
        assert (sent["temperature"], sent["p"], sent["k"], sent["seed"]) == (0.2, 0.5, 3, 1)
        assert (sent["presence_penalty"], sent["frequency_penalty"]) == (0.1, 0.3)
        assert not {"user", "n", "parallel_tool_calls", "store", "service_tier"} & set(sent)

    def test_image_parts(self) -> None:
        """Cohere takes Chat's image_url block as it is (data: or web URL, detail)."""
        parts = [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
        ]
        (message,) = to_cohere(body({"role": "user", "content": parts}))["messages"]
        assert message["content"] == parts

    def test_tool_call_and_result(self) -> None:
        """Assistant text beside calls is the tool_plan; results go back by id as text."""
        call = {
            "id": "get_weather_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        }
        sent = to_cohere(
            body(
                USER,
                {"role": "assistant", "content": "Checking.", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "get_weather_1", "content": "cold"},
                tools=[TOOL],
            )
        )
        assert sent["messages"][1:] == [
            {"role": "assistant", "tool_calls": [call], "tool_plan": "Checking."},
            {
                "role": "tool",
                "tool_call_id": "get_weather_1",
                "content": [{"type": "text", "text": "cold"}],
            },
        ]
        assert sent["tools"] == [TOOL]

    def test_reasoning_content_goes_back_as_thinking(self) -> None:
        """The reasoning a chat client keeps (``reasoning_content``) is Cohere's thinking."""
        assistant = {"role": "assistant", "content": "4", "reasoning_content": "2+2"}
        sent = to_cohere(body(USER, assistant, USER))
        assert sent["messages"][1] == {
            "role": "assistant",
            "content": [{"type": "thinking", "thinking": "2+2"}, {"type": "text", "text": "4"}],
        }

    def test_an_empty_assistant_turn_is_left_out(self) -> None:
        """Cohere refuses an empty turn, and it carries nothing to replay."""
        sent = to_cohere(body(USER, {"role": "assistant", "content": ""}, USER))
        assert [m["role"] for m in sent["messages"]] == ["user", "user"]

    def test_a_function_without_parameters_takes_none(self) -> None:
        tool = {"type": "function", "function": {"name": "now"}}
        (sent,) = to_cohere(body(USER, tools=[tool]))["tools"]
        assert sent["function"]["parameters"] == {"type": "object", "properties": {}}

    @pytest.mark.parametrize(
        ("choice", "expected"),
        [("auto", None), ("none", "NONE"), ("required", "REQUIRED")],
    )
    def test_tool_choice(self, choice: str, expected: str | None) -> None:
        assert to_cohere(body(USER, tools=[TOOL], tool_choice=choice)).get("tool_choice") == (
            expected
        )

    def test_named_tool_choice_offers_only_that_tool(self) -> None:
        other = {"type": "function", "function": {"name": "get_time", "parameters": PARAMS}}
        choice = {"type": "function", "function": {"name": "get_time"}}
        sent = to_cohere(body(USER, tools=[TOOL, other], tool_choice=choice))
        assert sent["tool_choice"] == "REQUIRED"
        assert [t["function"]["name"] for t in sent["tools"]] == ["get_time"]

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
        sent = to_cohere(body(USER, response_format=response_format))
        assert sent.get("response_format") == expected

    @pytest.mark.parametrize(
        ("effort", "expected"),
        [
            ("none", {"type": "disabled"}),
            ("low", {"type": "enabled", "token_budget": 1024}),
            ("high", {"type": "enabled", "token_budget": 24576}),
        ],
    )
    def test_reasoning_effort_is_thinking(self, effort: str, expected: Any) -> None:
        assert to_cohere(body(USER, reasoning_effort=effort))["thinking"] == expected

    @pytest.mark.parametrize(
        ("extra", "field"),
        [
            ({"logprobs": True}, "logprobs"),
            ({"top_logprobs": 2}, "top_logprobs"),
            ({"n": 3}, "n"),
            ({"modalities": ["text", "audio"]}, "modalities"),
            ({"audio": {"voice": "x"}}, "audio"),
            ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
            ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
            ({"response_format": {"type": "grammar"}}, "response_format.type"),
            ({"tool_choice": {"type": "custom", "name": "x"}, "tools": [TOOL]}, "tool_choice.type"),
        ],
    )
    def test_what_cohere_cannot_carry_is_refused_by_name(
        self, extra: dict[str, Any], field: str
    ) -> None:
        error = refusal(body(USER, **extra))
        assert f"'{field}'" in error.message and "'co'" in error.message
        assert error.param == field

    @pytest.mark.parametrize(
        ("part", "field"),
        [
            ({"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}, "type"),
            ({"type": "file", "file": {"file_id": "f"}}, "type"),
            ({"type": "image_url", "image_url": {"url": "gs://b/x.png"}}, "image_url.url"),
            ({"type": "video_url", "video_url": {"url": "https://x"}}, "type"),
        ],
    )
    def test_parts_cohere_cannot_take_are_refused(self, part: Any, field: str) -> None:
        error = refusal(body({"role": "user", "content": [part]}))
        assert f"messages[0].content[0].{field}" in error.message

    def test_legacy_function_messages_are_refused_by_their_role(self) -> None:
        error = refusal(body(USER, {"role": "function", "name": "f", "content": "x"}))
        assert error.param == "messages[1].role"

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
        assert refusal({"model": "m", "messages": messages}).param == where


def completion(**fields: Any) -> dict[str, Any]:
    """The chat.completion a chat client gets for a Cohere answer made of ``fields``."""
    base: dict[str, Any] = {
        "id": "r1",
        "finish_reason": "COMPLETE",
        "message": {"role": "assistant"},
    }
    answer = cohere.decode_answer(json.dumps({**base, **fields}).encode(), provider="co")
    result: dict[str, Any] = json.loads(chat.encode_answer(answer, model="m", created=1))
    return result


class TestCohereAnswerToChat:
    def test_text_answer(self) -> None:
        """Text, a stop, Cohere's id, and the billed units as the usage (cached too)."""
        answer = completion(
            message={"role": "assistant", "content": [{"type": "text", "text": "Hi"}]},
            usage={
                "billed_units": {"input_tokens": 3, "output_tokens": 1},
                "tokens": {"input_tokens": 70, "output_tokens": 1},
                "cached_tokens": 2,
            },
        )
        assert answer["id"] == "r1" and answer["object"] == "chat.completion"
        assert answer["model"] == "m"
        (choice,) = answer["choices"]
        assert choice["message"] == {"role": "assistant", "content": "Hi", "refusal": None}
        assert choice["finish_reason"] == "stop"
        assert answer["usage"] == {
            "prompt_tokens": 3,
            "completion_tokens": 1,
            "total_tokens": 4,
            "prompt_tokens_details": {"cached_tokens": 2},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }

    def test_tool_calls_with_their_plan(self) -> None:
        call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
        message = {"role": "assistant", "tool_plan": "I will call f.", "tool_calls": [call]}
        (choice,) = completion(message=message, finish_reason="TOOL_CALL")["choices"]
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"]["content"] == "I will call f."
        assert choice["message"]["tool_calls"] == [call]

    def test_thinking_is_reasoning_content(self) -> None:
        content = [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "42"}]
        (choice,) = completion(message={"role": "assistant", "content": content})["choices"]
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
        (choice,) = completion(finish_reason=reason)["choices"]
        assert choice["finish_reason"] == expected

    def test_error_and_timeout_finishes_are_upstream_failures(self) -> None:
        with pytest.raises(UpstreamUnavailable):
            completion(finish_reason="ERROR")
        with pytest.raises(UpstreamTimeout):
            completion(finish_reason="TIMEOUT")


STREAM_END = {
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


def chunks(events: list[dict[str, Any]], *, include_usage: bool = False) -> list[Any]:
    """The chat chunks (and ``"[DONE]"``) a chat client gets for Cohere's ``events``."""
    decoder = cohere.StreamDecoder(provider="co")
    encoder = chat.StreamEncoder(model="m", include_usage=include_usage)
    frames = [
        frame
        for event in events
        for canonical in decoder.feed(b"data: " + json.dumps(event).encode())
        for frame in encoder.feed(canonical)
    ]
    frames += [frame for canonical in decoder.finish() for frame in encoder.feed(canonical)]
    frames += encoder.finish()
    out = []
    for frame in frames:
        assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
        data = frame[6:-2]
        out.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return out


def deltas(found: list[Any]) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in found if c != "[DONE]" and c["choices"]]


class TestCohereStreamToChat:
    def test_text_goes_out_as_it_comes(self) -> None:
        """Role first, each content-delta as a chunk, the finish, then [DONE]."""
        found = chunks(
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
                STREAM_END,
            ]
        )
        assert found[0]["id"] == "m1"
        assert deltas(found) == [
            {"role": "assistant", "content": ""},
            {"content": "Hel"},
            {"content": "lo"},
            {},
        ]
        assert found[-2]["choices"][0]["finish_reason"] == "stop"
        assert found[-1] == "[DONE]"

    def test_usage_chunk_when_asked(self) -> None:
        found = chunks([content("text", "x"), STREAM_END], include_usage=True)
        assert found[-2]["choices"] == []
        assert found[-2]["usage"]["prompt_tokens"] == 3
        assert found[-2]["usage"]["completion_tokens"] == 2

    def test_thinking_is_reasoning_content(self) -> None:
        found = chunks([content("thinking", "hmm"), content("text", "ok", 1), STREAM_END])
        assert deltas(found)[1:3] == [{"reasoning_content": "hmm"}, {"content": "ok"}]

    def test_tool_plan_and_calls(self) -> None:
        """The plan is content; each call opens with id and name, then argument pieces."""
        opened = {"id": "f_1", "type": "function", "function": {"name": "f", "arguments": ""}}
        piece = {"message": {"tool_calls": {"function": {"arguments": '{"a":'}}}}
        rest = {"message": {"tool_calls": {"function": {"arguments": "1}"}}}}
        found = chunks(
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
                {"type": "message-end", "delta": {"finish_reason": "TOOL_CALL"}},
            ]
        )
        found_deltas = deltas(found)
        assert found_deltas[1] == {"content": "Calling f."}
        assert found_deltas[2]["tool_calls"] == [
            {
                "index": 0,
                "id": "f_1",
                "type": "function",
                "function": {"name": "f", "arguments": ""},
            }
        ]
        arguments = [d["tool_calls"][0]["function"]["arguments"] for d in found_deltas[3:5]]
        assert arguments == ['{"a":', "1}"]
        assert found[-2]["choices"][0]["finish_reason"] == "tool_calls"

    def test_citations_debug_and_unknown_events_add_nothing(self) -> None:
        citation = {"message": {"citations": {"start": 0, "end": 1, "text": "x", "sources": []}}}
        found = chunks(
            [
                content("text", "x"),
                {"type": "citation-start", "index": 0, "delta": citation},
                {"type": "citation-end", "index": 0},
                {"type": "debug", "prompt": "..."},
                {"type": "some-new-event"},
                STREAM_END,
            ]
        )
        assert deltas(found) == [{"role": "assistant", "content": ""}, {"content": "x"}, {}]

    def test_error_at_message_end_raises(self) -> None:
        """message-end with an error is a failure, never a finished answer."""
        failed = {"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "boom"}}
        with pytest.raises(UpstreamUnavailable, match="boom"):
            chunks([content("text", "x"), failed])

    def test_a_stream_without_message_end_raises(self) -> None:
        with pytest.raises(UpstreamUnavailable, match="before the answer was complete"):
            chunks([content("text", "x")])
