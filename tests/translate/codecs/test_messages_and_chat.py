"""Anthropic Messages <-> OpenAI Chat Completions through the canonical model: the
messages codec and the chat codec in a row, both ways, as a ``/v1/messages`` client
reaching an OpenAI-type host and a ``/v1/chat/completions`` client reaching Anthropic
go. These are the tests of the pairwise translators the two codecs replace."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fkllmproxy.errors import BadRequest, UpstreamUnavailable
from fkllmproxy.translate._common import Unsupported
from fkllmproxy.translate.canonical import StreamEvent
from fkllmproxy.translate.codecs import chat, messages
from fkllmproxy.translate.codecs.messages import JSON_TOOL, MessagesCallBody

PROVIDER = "'up' (openai)"
CLAUDE = "'claude' (anthropic)"
UP = Unsupported("up", "openai")
TO_CLAUDE = Unsupported("claude", "anthropic")
PNG = "iVBORw0KGgo="


def chat_request_from_messages(raw: bytes) -> dict[str, Any]:
    """The chat body an OpenAI-type host gets for Anthropic request bytes."""
    conversation = messages.decode_request(raw, unsupported=UP)
    return chat.encode_request(conversation, model=conversation.model, unsupported=UP)


def messages_request_from_chat(body: dict[str, Any], default_max_tokens: int) -> MessagesCallBody:
    """The Anthropic call for a chat request body."""
    conversation = chat.decode_request(body, unsupported=TO_CLAUDE)
    return messages.encode_request(
        conversation,
        model=body["model"],
        unsupported=TO_CLAUDE,
        default_max_tokens=default_max_tokens,
    )


def chat_response_from_messages(body: bytes, *, created: int, json_tool: str | None) -> bytes:
    """The chat completion a chat client gets for an Anthropic Message."""
    answer = messages.decode_answer(body, provider=CLAUDE, json_tool=json_tool)
    return chat.encode_answer(answer, created=created)


def messages_response_from_chat(body: bytes, *, model: str) -> bytes:
    """The Message an Anthropic client gets for a chat completion."""
    answer = chat.decode_answer(body, provider=PROVIDER)
    return messages.encode_answer(answer, model=model, provider=PROVIDER)


class MessagesStreamFromChat:
    """Chat chunks in, Anthropic events out: the chat decoder, then the messages encoder."""

    def __init__(self, *, model: str) -> None:
        self.decoder = chat.StreamDecoder(provider=PROVIDER)
        self.encoder = messages.StreamEncoder(model=model, provider=PROVIDER)

    def _encode(self, events: list[StreamEvent]) -> list[bytes]:
        return [frame for event in events for frame in self.encoder.feed(event)]

    def feed(self, frame: bytes) -> list[bytes]:
        return self._encode(self.decoder.feed(frame))

    def finish(self) -> list[bytes]:
        return self._encode(self.decoder.finish()) + self.encoder.finish()


class ChatStreamFromMessages:
    """Anthropic events in, chat chunks out: the messages decoder, then the chat encoder."""

    def __init__(
        self, *, model: str, created: int, include_usage: bool, json_tool: str | None = None
    ) -> None:
        self.decoder = messages.StreamDecoder(provider=CLAUDE, json_tool=json_tool)
        self.encoder = chat.StreamEncoder(model=model, include_usage=include_usage, created=created)

    def _encode(self, events: list[StreamEvent]) -> list[bytes]:
        return [frame for event in events for frame in self.encoder.feed(event)]

    def feed(self, frame: bytes) -> list[bytes]:
        return self._encode(self.decoder.feed(frame))

    def finish(self) -> list[bytes]:
        return self._encode(self.decoder.finish()) + self.encoder.finish()


def to_chat(**fields: Any) -> dict[str, Any]:
    """Translate an Anthropic request (defaults filled in) to OpenAI."""
    body = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    body.update(fields)
    return chat_request_from_messages(json.dumps(body).encode())


def to_messages(default_max_tokens: int = 4096, **fields: Any) -> dict[str, Any]:
    """Translate an OpenAI request (defaults filled in) to Anthropic."""
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    body.update(fields)
    return messages_request_from_chat(body, default_max_tokens).body


def tool_use(ident: str, name: str, **arguments: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": ident, "name": name, "input": arguments}


def tool_call(ident: str, name: str, **arguments: Any) -> dict[str, Any]:
    function = {"name": name, "arguments": json.dumps(arguments, separators=(",", ":"))}
    return {"id": ident, "type": "function", "function": function}


class TestAnthropicRequestToOpenAI:
    def test_system_string_becomes_a_leading_system_message(self) -> None:
        """A string system prompt is the first message, role system."""
        body = to_chat(system="Be brief.")
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert body["messages"][1] == {"role": "user", "content": "hi"}

    def test_system_blocks_are_joined(self) -> None:
        """System text blocks (cache_control and all) become one system message."""
        system = [
            {"type": "text", "text": "One."},
            {"type": "text", "text": "Two.", "cache_control": {"type": "ephemeral"}},
        ]
        assert to_chat(system=system)["messages"][0]["content"] == "One.\n\nTwo."

    def test_turns_keep_their_roles_and_order(self) -> None:
        """user/assistant turns map one to one, text blocks kept apart."""
        messages = [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {"role": "assistant", "content": "c"},
            {"role": "user", "content": "d"},
        ]
        assert to_chat(messages=messages)["messages"] == [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {"role": "assistant", "content": "c"},
            {"role": "user", "content": "d"},
        ]

    @pytest.mark.parametrize(
        ("source", "url"),
        [
            (
                {"type": "base64", "media_type": "image/png", "data": PNG},
                f"data:image/png;base64,{PNG}",
            ),
            (
                {"type": "url", "url": "https://example.test/cat.png"},
                "https://example.test/cat.png",
            ),
        ],
    )
    def test_images(self, source: dict[str, Any], url: str) -> None:
        """Base64 images become data URLs; URL images stay URLs."""
        content = [{"type": "image", "source": source}, {"type": "text", "text": "what?"}]
        message = to_chat(messages=[{"role": "user", "content": content}])["messages"][0]
        assert message["content"] == [
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": "what?"},
        ]

    def test_tool_result_follows_tool_call_with_ids_kept(self) -> None:
        """tool_use -> tool_calls, tool_result -> a tool message with the same id."""
        messages = [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    tool_use("toolu_1", "get", city="Oslo"),
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"}],
            },
        ]
        out = to_chat(messages=messages)["messages"]
        assert out[1] == {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [tool_call("toolu_1", "get", city="Oslo")],
        }
        assert out[2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "rain"}
        assert len(out) == 3

    def test_several_tool_calls_in_one_turn(self) -> None:
        """Two tool_use blocks, then two results and a text: two tool messages, then the user text."""
        messages = [
            {"role": "user", "content": "both"},
            {"role": "assistant", "content": [tool_use("a", "f", x=1), tool_use("b", "g", y=2)]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "a",
                        "content": [{"type": "text", "text": "A"}],
                    },
                    {"type": "tool_result", "tool_use_id": "b", "content": "B", "is_error": True},
                    {"type": "text", "text": "thanks"},
                ],
            },
        ]
        out = to_chat(messages=messages)["messages"]
        assert out[1]["content"] is None
        assert [c["id"] for c in out[1]["tool_calls"]] == ["a", "b"]
        assert out[2:] == [
            {"role": "tool", "tool_call_id": "a", "content": "A"},
            {"role": "tool", "tool_call_id": "b", "content": "Error: B"},
            {"role": "user", "content": "thanks"},
        ]

    def test_images_in_a_tool_result_follow_it_in_a_user_message(self) -> None:
        """OpenAI tool messages hold text only, so a tool's image comes right after."""
        image = {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
        }
        messages = [
            {"role": "user", "content": "look"},
            {"role": "assistant", "content": [tool_use("t", "screenshot")]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [{"type": "text", "text": "shot"}, image],
                    }
                ],
            },
        ]
        out = to_chat(messages=messages)["messages"]
        assert out[2] == {"role": "tool", "tool_call_id": "t", "content": "shot"}
        assert out[3]["role"] == "user"
        assert out[3]["content"][1] == {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{PNG}"},
        }

    def test_empty_assistant_turns(self) -> None:
        """An empty final assistant turn is dropped; an empty middle one stays empty."""
        messages = [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": []},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": ""},
        ]
        out = to_chat(messages=messages)["messages"]
        assert out == [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "b"},
        ]

    def test_thinking_blocks_are_not_sent_back(self) -> None:
        """Prior thinking goes back as reasoning text at most (its signature has no Chat
        form); the text around it stays."""
        content = [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "ok"},
        ]
        messages = [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": content},
            {"role": "user", "content": "r"},
        ]
        turn = to_chat(messages=messages)["messages"][1]
        assert (turn["role"], turn["content"]) == ("assistant", "ok")
        assert "s" not in turn.values()  # Anthropic's signature reaches no other provider

    def test_sampling_and_limits(self) -> None:
        """max_tokens, temperature, top_p, top_k, stop_sequences, metadata.user_id."""
        body = to_chat(
            max_tokens=321,
            temperature=0.5,
            top_p=0.9,
            top_k=40,
            stop_sequences=["END", "STOP"],
            metadata={"user_id": "u-1"},
        )
        assert body["max_completion_tokens"] == 321
        assert (body["temperature"], body["top_p"], body["top_k"]) == (0.5, 0.9, 40)
        assert body["stop"] == ["END", "STOP"]
        assert body["user"] == "u-1"
        assert "stream" not in body

    def test_streaming_asks_for_usage(self) -> None:
        """A streamed request asks the provider for the final usage chunk."""
        body = to_chat(stream=True)
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}

    def test_tools(self) -> None:
        """Client tools become function tools with the schema as parameters."""
        schema = {"type": "object", "properties": {"city": {"type": "string"}}}
        tools = [
            {
                "name": "get",
                "description": "Weather.",
                "input_schema": schema,
                "cache_control": {"type": "ephemeral"},
            }
        ]
        assert to_chat(tools=tools)["tools"] == [
            {
                "type": "function",
                "function": {"name": "get", "parameters": schema, "description": "Weather."},
            }
        ]

    @pytest.mark.parametrize(
        ("choice", "expected", "parallel"),
        [
            ({"type": "auto"}, "auto", None),
            ({"type": "any"}, "required", None),
            ({"type": "none"}, "none", None),
            (
                {"type": "tool", "name": "get"},
                {"type": "function", "function": {"name": "get"}},
                None,
            ),
            ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
        ],
    )
    def test_tool_choice(
        self, choice: dict[str, Any], expected: Any, parallel: bool | None
    ) -> None:
        tools = [{"name": "get", "input_schema": {"type": "object"}}]
        body = to_chat(tools=tools, tool_choice=choice)
        assert body["tool_choice"] == expected
        assert body.get("parallel_tool_calls") == parallel

    def test_json_schema_output(self) -> None:
        """output_config.format becomes a strict json_schema response_format."""
        schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
        body = to_chat(output_config={"format": {"type": "json_schema", "schema": schema}})
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema, "strict": True},
        }

    def test_hints_for_anthropic_machinery_are_ignored(self) -> None:
        """effort, context_management and service_tier do not stop the request; thinking
        becomes the reasoning effort."""
        body = to_chat(
            thinking={"type": "enabled", "budget_tokens": 2048},
            output_config={"effort": "high"},
            context_management={"edits": []},
            service_tier="auto",
        )
        assert set(body) == {"model", "messages", "max_completion_tokens", "reasoning_effort"}
        assert body["reasoning_effort"] == "low"

    def test_a_claude_code_style_request_translates(self) -> None:
        """Cache hints everywhere, thinking, metadata, streaming: all carried or left out."""
        ephemeral = {"type": "ephemeral"}
        body = to_chat(
            system=[
                {"type": "text", "text": "You are a coding agent."},
                {"type": "text", "text": "Be careful.", "cache_control": ephemeral},
            ],
            tools=[
                {
                    "name": "Read",
                    "description": "Read a file.",
                    "input_schema": {
                        "$schema": "http://json-schema.org/draft-07/schema#",
                        "type": "object",
                        "properties": {"path": {"type": "string"}},
                    },
                    "cache_control": ephemeral,
                }
            ],
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "<reminder>", "cache_control": ephemeral},
                        {"type": "text", "text": "read a.py"},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "t", "signature": "s"},
                        tool_use("toolu_A", "Read", path="a.py"),
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_A",
                            "content": [{"type": "text", "text": "print(1)"}],
                            "cache_control": ephemeral,
                        }
                    ],
                },
            ],
            metadata={"user_id": "user_abc_session_1"},
            thinking={"type": "enabled", "budget_tokens": 31999},
            temperature=1,
            stream=True,
        )
        assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]
        assert body["messages"][2]["tool_calls"][0]["id"] == "toolu_A"
        assert body["messages"][3] == {
            "role": "tool",
            "tool_call_id": "toolu_A",
            "content": "print(1)",
        }
        assert body["tools"][0]["function"]["name"] == "Read"
        assert body["user"] == "user_abc_session_1"
        assert "thinking" not in body and body["reasoning_effort"] == "high"

    @pytest.mark.parametrize(
        ("fields", "names"),
        [
            ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
            ({"container": "c-1"}, "'container'"),
            ({"mcp_servers": [{"url": "x"}]}, "'mcp_servers'"),
            ({"surprise": 1}, "'surprise'"),
            (
                {"messages": [{"role": "user", "content": [{"type": "search_result", "x": 1}]}]},
                "messages[0].content[0].type",
            ),
            (
                {
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {
                                    "type": "document",
                                    "source": {"type": "url", "url": "https://x.test/a.pdf"},
                                }
                            ],
                        }
                    ]
                },
                "messages[0].content[0].source.type",
            ),
        ],
    )
    def test_what_cannot_be_carried_is_a_400_naming_field_and_provider(
        self, fields: dict[str, Any], names: str
    ) -> None:
        with pytest.raises(BadRequest) as info:
            to_chat(**fields)
        assert names in info.value.message
        assert PROVIDER in info.value.message

    @pytest.mark.parametrize(
        ("fields", "names"),
        [
            ({"tool_choice": {"type": "any"}}, "tool_choice.type"),
            ({"tools": [{"name": "f"}]}, "tools[0].input_schema"),
            (
                {
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {"type": "image", "source": {"type": "base64", "data": PNG}}
                            ],
                        }
                    ]
                },
                "messages[0].content[0].source",
            ),
            (
                {"messages": [{"role": "user", "content": [tool_use("x", "f")]}]},
                "messages[0].content[0].type",
            ),
        ],
    )
    def test_malformed_requests_name_the_field(self, fields: dict[str, Any], names: str) -> None:
        with pytest.raises(BadRequest) as info:
            to_chat(**fields)
        assert names in info.value.message


class TestOpenAIRequestToAnthropic:
    def test_system_and_developer_messages_become_system_blocks(self) -> None:
        messages = [
            {"role": "system", "content": "Rule one."},
            {"role": "developer", "content": [{"type": "text", "text": "Rule two."}]},
            {"role": "user", "content": "hi"},
        ]
        body = to_messages(messages=messages)
        assert body["system"] == [
            {"type": "text", "text": "Rule one."},
            {"type": "text", "text": "Rule two."},
        ]
        assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]

    def test_max_tokens_default_and_preference(self) -> None:
        """Anthropic needs max_tokens: the client's, else the provider default."""
        assert to_messages()["max_tokens"] == 4096
        assert to_messages(default_max_tokens=999)["max_tokens"] == 999
        assert to_messages(max_tokens=50)["max_tokens"] == 50
        assert to_messages(max_tokens=50, max_completion_tokens=70)["max_tokens"] == 70

    def test_sampling(self) -> None:
        body = to_messages(temperature=0.2, top_p=0.8, stop="END", user="alice", stream=True)
        assert (body["temperature"], body["top_p"]) == (0.2, 0.8)
        assert body["stop_sequences"] == ["END"]
        assert body["metadata"] == {"user_id": "alice"}
        assert body["stream"] is True
        assert to_messages(stop=["A", "B"])["stop_sequences"] == ["A", "B"]

    @pytest.mark.parametrize(
        ("url", "source"),
        [
            (
                f"data:image/png;base64,{PNG}",
                {"type": "base64", "media_type": "image/png", "data": PNG},
            ),
            (
                "https://example.test/cat.png",
                {"type": "url", "url": "https://example.test/cat.png"},
            ),
            (
                f"data:image/png;name=cat.png;base64,{PNG}",
                {"type": "base64", "media_type": "image/png", "data": PNG},
            ),
        ],
    )
    def test_images(self, url: str, source: dict[str, Any]) -> None:
        content = [
            {"type": "text", "text": "what?"},
            {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
        ]
        body = to_messages(messages=[{"role": "user", "content": content}])
        assert body["messages"][0]["content"] == [
            {"type": "text", "text": "what?"},
            {"type": "image", "source": source},
        ]

    def test_tool_calls_and_several_results_share_one_user_turn(self) -> None:
        """Tool messages (and the next user text) merge into one user turn, ids kept."""
        messages = [
            {"role": "user", "content": "both"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [tool_call("a", "f", x=1), tool_call("b", "g")],
            },
            {"role": "tool", "tool_call_id": "a", "content": "A"},
            {"role": "tool", "tool_call_id": "b", "content": [{"type": "text", "text": "B"}]},
            {"role": "user", "content": "and?"},
        ]
        out = to_messages(messages=messages)["messages"]
        assert out[1] == {
            "role": "assistant",
            "content": [tool_use("a", "f", x=1), tool_use("b", "g")],
        }
        assert out[2] == {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "a", "content": "A"},
                {"type": "tool_result", "tool_use_id": "b", "content": "B"},
                {"type": "text", "text": "and?"},
            ],
        }
        assert len(out) == 3

    def test_empty_assistant_message_is_dropped(self) -> None:
        """Anthropic refuses empty turns; the users around it merge."""
        messages = [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "b"},
        ]
        assert to_messages(messages=messages)["messages"] == [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        ]

    def test_tools(self) -> None:
        schema = {"type": "object", "properties": {"q": {"type": "string"}}}
        tools = [
            {
                "type": "function",
                "function": {
                    "name": "search",
                    "description": "Find.",
                    "parameters": schema,
                    "strict": True,
                },
            },
            {"type": "function", "function": {"name": "now"}},
        ]
        assert to_messages(tools=tools)["tools"] == [
            {"name": "search", "input_schema": schema, "description": "Find.", "strict": True},
            {"name": "now", "input_schema": {"type": "object", "properties": {}}},
        ]

    @pytest.mark.parametrize(
        ("choice", "parallel", "expected"),
        [
            ("auto", None, {"type": "auto"}),
            ("none", None, {"type": "none"}),
            ("required", None, {"type": "any"}),
            ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
            (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
            ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ],
    )
    def test_tool_choice(
        self, choice: Any, parallel: bool | None, expected: dict[str, Any]
    ) -> None:
        tools = [{"type": "function", "function": {"name": "f"}}]
        body = to_messages(tools=tools, tool_choice=choice, parallel_tool_calls=parallel)
        assert body["tool_choice"] == expected

    def test_json_schema_uses_structured_outputs(self) -> None:
        schema = {
            "type": "object",
            "properties": {"a": {"type": "integer"}},
            "additionalProperties": False,
        }
        body = to_messages(
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
        )
        assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}

    def test_json_object_forces_the_json_tool(self) -> None:
        translated = messages_request_from_chat(
            {
                "model": "m",
                "messages": [{"role": "user", "content": "hi"}],
                "response_format": {"type": "json_object"},
            },
            10,
        )
        assert translated.json_tool == JSON_TOOL
        assert translated.body["tool_choice"] == {"type": "tool", "name": JSON_TOOL}
        assert translated.body["tools"][0]["name"] == JSON_TOOL

    @pytest.mark.parametrize(
        ("fields", "names"),
        [
            ({"seed": 7}, "'seed'"),
            ({"n": 2}, "'n'"),
            ({"logprobs": True}, "'logprobs'"),
            ({"presence_penalty": 0.5}, "'presence_penalty'"),
            ({"reasoning_effort": "high"}, "'reasoning_effort'"),
            ({"temperature": 1.5}, "temperature = 1.5"),
            ({"made_up": True}, "'made_up'"),
            (
                {
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {
                                    "type": "input_audio",
                                    "input_audio": {"data": "UklGRg==", "format": "wav"},
                                }
                            ],
                        }
                    ]
                },
                "messages[0].content[0]",
            ),
            (
                {
                    "response_format": {"type": "json_object"},
                    "tools": [{"type": "function", "function": {"name": "f"}}],
                },
                "response_format",
            ),
        ],
    )
    def test_unsupported_is_a_400_naming_field_and_provider(
        self, fields: dict[str, Any], names: str
    ) -> None:
        with pytest.raises(BadRequest) as info:
            to_messages(**fields)
        assert names in info.value.message
        assert CLAUDE in info.value.message

    def test_neutral_values_pass(self) -> None:
        """n=1, zero penalties and logprobs=false mean nothing special and are accepted."""
        body = to_messages(n=1, presence_penalty=0, frequency_penalty=0, logprobs=False, seed=None)
        assert "n" not in body

    def test_invalid_tool_arguments_name_the_field(self) -> None:
        call = {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
        messages = [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]}]
        with pytest.raises(BadRequest) as info:
            to_messages(messages=messages)
        assert "messages[1].tool_calls[0].function.arguments" in info.value.message

    def test_round_trip_keeps_the_conversation(self) -> None:
        """Anthropic -> OpenAI -> Anthropic gives back the same turns (ids, tools, results)."""
        messages = [
            {"role": "user", "content": [{"type": "text", "text": "go"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "ok"},
                    tool_use("t1", "f", a=1),
                    tool_use("t2", "f", a=2),
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "one"},
                    {"type": "tool_result", "tool_use_id": "t2", "content": "two"},
                ],
            },
        ]
        chat_body = to_chat(messages=messages, system="S")
        back = messages_request_from_chat(chat_body, 1).body
        assert back["system"] == [{"type": "text", "text": "S"}]
        assert back["messages"] == messages


# ---- whole answers --------------------------------------------------------------------


def anthropic_message(content: list[dict[str, Any]], stop: str = "end_turn", **usage: int) -> bytes:
    counts = {"input_tokens": 10, "output_tokens": 5, **usage}
    return json.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": counts,
        }
    ).encode()


def openai_completion(message: dict[str, Any], finish: str = "stop", **usage: Any) -> bytes:
    counts = {"prompt_tokens": 12, "completion_tokens": 3, **usage}
    return json.dumps(
        {
            "id": "chatcmpl-9",
            "object": "chat.completion",
            "model": "gpt-x",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": counts,
        }
    ).encode()


class TestAnthropicAnswerToOpenAI:
    def answer(self, body: bytes, json_tool: str | None = None) -> dict[str, Any]:
        out = chat_response_from_messages(body, created=123, json_tool=json_tool)
        return json.loads(out)

    def test_text(self) -> None:
        out = self.answer(anthropic_message([{"type": "text", "text": "Hello"}]))
        assert out["choices"][0]["message"]["content"] == "Hello"
        assert out["choices"][0]["finish_reason"] == "stop"
        assert (out["id"], out["model"], out["created"]) == ("msg_1", "claude-x", 123)

    def test_tool_use_keeps_ids(self) -> None:
        content = [{"type": "text", "text": "Let me."}, tool_use("toolu_9", "get", city="Oslo")]
        out = self.answer(anthropic_message(content, "tool_use"))
        message = out["choices"][0]["message"]
        assert message["content"] == "Let me."
        assert message["tool_calls"] == [tool_call("toolu_9", "get", city="Oslo")]
        assert out["choices"][0]["finish_reason"] == "tool_calls"

    @pytest.mark.parametrize(
        ("stop", "finish"),
        [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("model_context_window_exceeded", "length"),
        ],
    )
    def test_stop_reasons(self, stop: str, finish: str) -> None:
        out = self.answer(anthropic_message([{"type": "text", "text": "x"}], stop))
        assert out["choices"][0]["finish_reason"] == finish

    def test_refusal_text_goes_to_refusal(self) -> None:
        out = self.answer(anthropic_message([{"type": "text", "text": "I can't."}], "refusal"))
        assert out["choices"][0]["message"]["refusal"] == "I can't."
        assert out["choices"][0]["message"]["content"] is None

    def test_usage_with_cache(self) -> None:
        """Prompt tokens include cache reads and writes; cached_tokens are the reads."""
        body = anthropic_message([], cache_read_input_tokens=100, cache_creation_input_tokens=20)
        assert self.answer(body)["usage"] == {
            "prompt_tokens": 130,
            "completion_tokens": 5,
            "total_tokens": 135,
            "prompt_tokens_details": {"cached_tokens": 100},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }

    def test_json_mode_tool_becomes_text(self) -> None:
        body = anthropic_message([tool_use("t", JSON_TOOL, a=1)], "tool_use")
        out = self.answer(body, json_tool=JSON_TOOL)
        assert json.loads(out["choices"][0]["message"]["content"]) == {"a": 1}
        assert out["choices"][0]["finish_reason"] == "stop"
        assert "tool_calls" not in out["choices"][0]["message"]

    def test_unreadable_answer_is_an_upstream_error(self) -> None:
        with pytest.raises(UpstreamUnavailable):
            self.answer(b"<html>oops</html>")


class TestOpenAIAnswerToAnthropic:
    def answer(self, body: bytes) -> dict[str, Any]:
        return json.loads(messages_response_from_chat(body, model="asked"))

    def test_text(self) -> None:
        out = self.answer(openai_completion({"role": "assistant", "content": "Hi"}))
        assert out["type"] == "message" and out["role"] == "assistant"
        assert out["id"].startswith("msg_")
        assert out["content"] == [{"type": "text", "text": "Hi"}]
        assert out["stop_reason"] == "end_turn"
        assert out["model"] == "gpt-x"

    def test_several_tool_calls(self) -> None:
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [tool_call("c1", "f", a=1), tool_call("c2", "g")],
        }
        out = self.answer(openai_completion(message, "tool_calls"))
        assert out["content"] == [tool_use("c1", "f", a=1), tool_use("c2", "g")]
        assert out["stop_reason"] == "tool_use"

    def test_tool_call_ended_with_stop_still_reads_as_tool_use(self) -> None:
        message = {"role": "assistant", "content": None, "tool_calls": [tool_call("c1", "f")]}
        assert self.answer(openai_completion(message, "stop"))["stop_reason"] == "tool_use"

    @pytest.mark.parametrize(
        ("finish", "stop"),
        [
            ("stop", "end_turn"),
            ("length", "max_tokens"),
            ("tool_calls", "tool_use"),
            ("content_filter", "refusal"),
        ],
    )
    def test_finish_reasons(self, finish: str, stop: str) -> None:
        out = self.answer(openai_completion({"role": "assistant", "content": "x"}, finish))
        assert out["stop_reason"] == stop

    def test_usage_with_cached_tokens(self) -> None:
        body = openai_completion(
            {"role": "assistant", "content": "x"}, prompt_tokens_details={"cached_tokens": 8}
        )
        assert self.answer(body)["usage"] == {
            "input_tokens": 4,
            "output_tokens": 3,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 8,
        }

    def test_refusal(self) -> None:
        out = self.answer(
            openai_completion({"role": "assistant", "content": None, "refusal": "No."})
        )
        assert out["content"] == [{"type": "text", "text": "No."}]
        assert out["stop_reason"] == "refusal"

    def test_empty_answer_has_no_blocks(self) -> None:
        out = self.answer(openai_completion({"role": "assistant", "content": ""}))
        assert out["content"] == []

    def test_invalid_tool_arguments_are_an_upstream_error(self) -> None:
        message = {
            "role": "assistant",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{"}}
            ],
        }
        with pytest.raises(UpstreamUnavailable):
            self.answer(openai_completion(message, "tool_calls"))


# ---- streams ------------------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "gpt-x",
        **extra,
    }
    if "choices" not in extra:
        body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    return b"data: " + json.dumps(body).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def events(frames: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each Anthropic frame, checking name and type agree."""
    out = []
    for frame in frames:
        lines = frame.decode().strip().split("\n")
        assert lines[0].startswith("event: ") and lines[1].startswith("data: ")
        name, data = lines[0][7:], json.loads(lines[1][6:])
        assert data["type"] == name
        out.append((name, data))
    return out


def run_messages_stream(
    frames: list[bytes],
) -> tuple[list[tuple[str, dict[str, Any]]], MessagesStreamFromChat]:
    translator = MessagesStreamFromChat(model="asked")
    out: list[bytes] = []
    for frame in frames:
        out.extend(translator.feed(frame))
    out.extend(translator.finish())
    return events(out), translator


def rebuild(sequence: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """A Message from its events, the way an Anthropic client accumulates them."""
    message: dict[str, Any] = {}
    json_parts: dict[int, str] = {}
    for name, data in sequence:
        if name == "message_start":
            message = data["message"]
        elif name == "content_block_start":
            assert data["index"] == len(message["content"])
            message["content"].append(dict(data["content_block"]))
        elif name == "content_block_delta":
            block = message["content"][data["index"]]
            if data["delta"]["type"] == "text_delta":
                block["text"] += data["delta"]["text"]
            else:
                json_parts[data["index"]] = (
                    json_parts.get(data["index"], "") + data["delta"]["partial_json"]
                )
        elif name == "message_delta":
            message.update(data["delta"])
            message["usage"].update(data["usage"])
    for index, text in json_parts.items():
        message["content"][index]["input"] = json.loads(text)
    return message


class TestOpenAIStreamToAnthropicEvents:
    def test_text_stream(self) -> None:
        """message_start, ping, one text block, message_delta with usage, message_stop."""
        sequence, _ = run_messages_stream(
            [
                chunk({"role": "assistant", "content": ""}),
                chunk({"content": "Hel"}),
                chunk({"content": "lo"}),
                chunk({}, "stop"),
                chunk(choices=[], usage={"prompt_tokens": 7, "completion_tokens": 2}),
                DONE,
            ]
        )
        assert [name for name, _ in sequence] == [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
        message = rebuild(sequence)
        assert message["content"] == [{"type": "text", "text": "Hello"}]
        assert message["stop_reason"] == "end_turn"
        assert message["usage"]["input_tokens"] == 7 and message["usage"]["output_tokens"] == 2

    def test_two_tool_calls_stream_their_arguments(self) -> None:
        """Each tool call is a tool_use block; argument pieces are input_json_delta."""

        def call(index: int, **fields: Any) -> dict[str, Any]:
            return {"tool_calls": [{"index": index, **fields}]}

        sequence, _ = run_messages_stream(
            [
                chunk({"role": "assistant", "content": "Checking."}),
                chunk(call(0, id="c1", type="function", function={"name": "f", "arguments": ""})),
                chunk(call(0, function={"arguments": '{"a":'})),
                chunk(call(0, function={"arguments": " 1}"})),
                chunk(call(1, id="c2", type="function", function={"name": "g", "arguments": "{}"})),
                chunk({}, "tool_calls"),
                DONE,
            ]
        )
        message = rebuild(sequence)
        assert message["content"] == [
            {"type": "text", "text": "Checking."},
            tool_use("c1", "f", a=1),
            tool_use("c2", "g"),
        ]
        assert message["stop_reason"] == "tool_use"
        stops = [data["index"] for name, data in sequence if name == "content_block_stop"]
        assert stops == [0, 1, 2]

    def test_stream_cut_short_raises(self) -> None:
        """No finish_reason and no [DONE]: the provider broke off, and the caller is told."""
        translator = MessagesStreamFromChat(model="m")
        translator.feed(chunk({"content": "partial"}))
        with pytest.raises(UpstreamUnavailable, match="before the answer was complete"):
            translator.finish()

    def test_finish_without_done_still_closes(self) -> None:
        sequence, _ = run_messages_stream([chunk({"content": "x"}), chunk({}, "length")])
        assert sequence[-1][0] == "message_stop"
        assert rebuild(sequence)["stop_reason"] == "max_tokens"

    def test_error_mid_stream_raises(self) -> None:
        translator = MessagesStreamFromChat(model="m")
        translator.feed(chunk({"content": "partial"}))
        with pytest.raises(UpstreamUnavailable, match="overloaded"):
            translator.feed(
                b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'
            )

    def test_empty_stream_still_makes_a_message(self) -> None:
        """A finish and [DONE] straight away: a well-formed, empty message."""
        sequence, _ = run_messages_stream([chunk({}, "stop"), DONE])
        assert [name for name, _ in sequence] == [
            "message_start",
            "ping",
            "message_delta",
            "message_stop",
        ]


def anthropic_event(name: str, **data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


def text_events(*pieces: str, stop: str = "end_turn") -> list[bytes]:
    frames = [
        anthropic_event(
            "message_start",
            message={
                "id": "msg_7",
                "type": "message",
                "role": "assistant",
                "model": "claude-x",
                "content": [],
                "usage": {"input_tokens": 9, "output_tokens": 1, "cache_read_input_tokens": 4},
            },
        ),
        anthropic_event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        anthropic_event("ping"),
    ]
    frames += [
        anthropic_event("content_block_delta", index=0, delta={"type": "text_delta", "text": p})
        for p in pieces
    ]
    frames += [
        anthropic_event("content_block_stop", index=0),
        anthropic_event(
            "message_delta",
            delta={"stop_reason": stop, "stop_sequence": None},
            usage={"output_tokens": 6},
        ),
        anthropic_event("message_stop"),
    ]
    return frames


def run_chat_stream(
    frames: list[bytes], include_usage: bool = True, json_tool: str | None = None
) -> tuple[list[Any], ChatStreamFromMessages]:
    translator = ChatStreamFromMessages(
        model="asked", created=5, include_usage=include_usage, json_tool=json_tool
    )
    out: list[bytes] = []
    for frame in frames:
        out.extend(translator.feed(frame))
    out.extend(translator.finish())
    assert out[-1] == DONE
    return [json.loads(f[6:]) for f in out[:-1]], translator


class TestAnthropicEventsToOpenAIChunks:
    def test_text_with_usage(self) -> None:
        chunks, _ = run_chat_stream(text_events("Hel", "lo"))
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
        assert text == "Hello"
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
        assert chunks[-1]["choices"] == []
        assert chunks[-1]["usage"]["prompt_tokens"] == 13
        assert chunks[-1]["usage"]["completion_tokens"] == 6
        assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 4}
        assert all(c["id"] == "msg_7" and c["object"] == "chat.completion.chunk" for c in chunks)

    def test_no_usage_chunk_unless_asked(self) -> None:
        chunks, _ = run_chat_stream(text_events("x"), include_usage=False)
        assert all(c["choices"] for c in chunks)

    def test_tool_use_streams_as_tool_call_deltas(self) -> None:
        frames = text_events("Let me.", stop="tool_use")
        tool_frames = [
            anthropic_event(
                "content_block_start",
                index=1,
                content_block={"type": "tool_use", "id": "toolu_1", "name": "get", "input": {}},
            ),
            anthropic_event(
                "content_block_delta",
                index=1,
                delta={"type": "input_json_delta", "partial_json": '{"city": '},
            ),
            anthropic_event(
                "content_block_delta",
                index=1,
                delta={"type": "input_json_delta", "partial_json": '"Oslo"}'},
            ),
            anthropic_event("content_block_stop", index=1),
        ]
        frames[-2:-2] = tool_frames
        chunks, _ = run_chat_stream(frames)
        deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
        calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
        assert calls[0] == {
            "index": 0,
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "get", "arguments": ""},
        }
        assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"city": "Oslo"}
        assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"

    def test_json_mode_streams_as_text(self) -> None:
        frames = [
            anthropic_event(
                "message_start",
                message={
                    "id": "msg_1",
                    "model": "c",
                    "content": [],
                    "usage": {"input_tokens": 1, "output_tokens": 1},
                },
            ),
            anthropic_event(
                "content_block_start",
                index=0,
                content_block={"type": "tool_use", "id": "t", "name": JSON_TOOL, "input": {}},
            ),
            anthropic_event(
                "content_block_delta",
                index=0,
                delta={"type": "input_json_delta", "partial_json": '{"a": 1}'},
            ),
            anthropic_event("content_block_stop", index=0),
            anthropic_event(
                "message_delta", delta={"stop_reason": "tool_use"}, usage={"output_tokens": 3}
            ),
            anthropic_event("message_stop"),
        ]
        chunks, _ = run_chat_stream(frames, include_usage=False, json_tool=JSON_TOOL)
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        assert json.loads(text) == {"a": 1}
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"

    def test_thinking_blocks_are_skipped(self) -> None:
        frames = text_events("answer")
        frames[1:1] = [
            anthropic_event(
                "content_block_start", index=5, content_block={"type": "thinking", "thinking": ""}
            ),
            anthropic_event(
                "content_block_delta", index=5, delta={"type": "thinking_delta", "thinking": "hmm"}
            ),
        ]
        chunks, _ = run_chat_stream(frames, include_usage=False)
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        assert text == "answer"

    def test_error_event_raises(self) -> None:
        translator = ChatStreamFromMessages(model="m", created=1, include_usage=False)
        translator.feed(text_events("x")[0])
        with pytest.raises(UpstreamUnavailable, match="overloaded_error"):
            translator.feed(
                anthropic_event(
                    "error", error={"type": "overloaded_error", "message": "Overloaded"}
                )
            )

    def test_cut_short_raises(self) -> None:
        translator = ChatStreamFromMessages(model="m", created=1, include_usage=False)
        for frame in text_events("x")[:4]:
            translator.feed(frame)
        with pytest.raises(UpstreamUnavailable, match="before the answer was complete"):
            translator.finish()


# ---- from the Messages-to-Chat tests: Claude Code's newer fields ----


class TestSystemMessages:
    def test_system_message_in_messages_stays_in_place(self) -> None:
        """A mid-conversation system message is a system message at the same place."""
        body = to_chat(
            system="Top.",
            messages=[
                {"role": "user", "content": "read a.py"},
                {"role": "system", "content": "Available agents: Explore."},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "go"},
                {"role": "system", "content": [{"type": "text", "text": "Go mode."}]},
            ],
        )
        assert body["messages"] == [
            {"role": "system", "content": "Top."},
            {"role": "user", "content": "read a.py"},
            {"role": "system", "content": "Available agents: Explore."},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "go"},
            {"role": "system", "content": "Go mode."},
        ]

    def test_system_message_with_an_image_is_refused_by_name(self) -> None:
        """A system message holds text only; the 400 names the block."""
        image = {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}}
        with pytest.raises(BadRequest) as caught:
            to_chat(
                messages=[{"role": "user", "content": "x"}, {"role": "system", "content": [image]}]
            )
        assert "messages[1].content[0].type" in caught.value.message

    def test_unknown_role_names_the_field(self) -> None:
        """A role no API knows is a 400 naming messages[i].role."""
        with pytest.raises(BadRequest) as caught:
            to_chat(messages=[{"role": "narrator", "content": "x"}])
        assert caught.value.param == "messages[0].role"

    def test_unknown_block_type_names_the_path_and_provider(self) -> None:
        """A block type the translation does not know is refused with its path and the provider."""
        block = {"type": "tool_addition", "tool": {"name": "x"}}
        with pytest.raises(BadRequest) as caught:
            to_chat(messages=[{"role": "user", "content": [block]}])
        assert "messages[0].content[0].type = 'tool_addition'" in caught.value.message
        assert PROVIDER in caught.value.message


class TestThinking:
    @pytest.mark.parametrize(
        ("thinking", "output", "effort"),
        [
            ({"type": "enabled", "budget_tokens": 1024}, None, "low"),
            ({"type": "enabled", "budget_tokens": 8000}, None, "medium"),
            ({"type": "enabled", "budget_tokens": 31999}, None, "high"),
            ({"type": "adaptive"}, {"effort": "low"}, "low"),
            ({"type": "adaptive"}, {"effort": "max"}, "high"),
            ({"type": "adaptive"}, None, "medium"),
        ],
    )
    def test_thinking_becomes_reasoning_effort(
        self, thinking: dict[str, Any], output: dict[str, Any] | None, effort: str
    ) -> None:
        """Claude's thinking budget or adaptive effort is the provider's reasoning effort."""
        fields: dict[str, Any] = {"thinking": thinking}
        if output is not None:
            fields["output_config"] = output
        assert to_chat(**fields)["reasoning_effort"] == effort

    def test_disabled_thinking_sends_no_effort(self) -> None:
        """thinking disabled: no reasoning setting goes up."""
        assert "reasoning_effort" not in to_chat(thinking={"type": "disabled"})

    def test_cache_control_is_dropped(self) -> None:
        """cache_control is a hint: it reaches no other provider."""
        block = {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
        body = to_chat(messages=[{"role": "user", "content": [block]}])
        assert "cache_control" not in json.dumps(body)


def completion(message: dict[str, Any]) -> bytes:
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return json.dumps({"id": "c1", "model": "m", "choices": [choice]}).encode()


class TestReasoningComesBack:
    @pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
    def test_reasoning_text_is_a_thinking_block(self, field: str) -> None:
        """A host's reasoning text becomes a leading thinking block."""
        body = completion({"role": "assistant", "content": "4", field: "2+2"})
        message = json.loads(messages_response_from_chat(body, model="m"))
        assert message["content"] == [
            {"type": "thinking", "thinking": "2+2", "signature": ""},
            {"type": "text", "text": "4"},
        ]

    def test_streamed_reasoning_is_a_thinking_block_before_the_text(self) -> None:
        """Reasoning deltas stream as thinking_delta in their own block, then the text."""
        translator = MessagesStreamFromChat(model="m")
        frames: list[bytes] = []
        for delta, finish in (
            ({"role": "assistant", "reasoning_content": "two "}, None),
            ({"reasoning_content": "plus two"}, None),
            ({"content": "4"}, "stop"),
        ):
            chunk = {
                "id": "c",
                "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            frames.extend(translator.feed(b"data: " + json.dumps(chunk).encode() + b"\n\n"))
        frames.extend(translator.feed(b"data: [DONE]\n\n"))
        frames.extend(translator.finish())
        events = [json.loads(f.split(b"data: ", 1)[1]) for f in frames]
        starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
        deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
        assert starts == ["thinking", "text"]
        assert deltas == [
            {"type": "thinking_delta", "thinking": "two "},
            {"type": "thinking_delta", "thinking": "plus two"},
            {"type": "text_delta", "text": "4"},
        ]
        assert events[-1]["type"] == "message_stop"
