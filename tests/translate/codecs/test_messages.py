"""The Anthropic Messages codec: requests read and written, answers and streams both
ways, refusals by field name, and same-API round trips."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fkllmproxy.errors import BadRequest, UpstreamUnavailable
from fkllmproxy.translate._common import Unsupported, in_client_terms
from fkllmproxy.translate.canonical import (
    Answer,
    CacheHint,
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
    Unmapped,
    Usage,
    UsageUpdate,
)
from fkllmproxy.translate.codecs import cohere, messages
from fkllmproxy.translate.codecs._ids import make_call_id

PROVIDER = "'up' (openai)"
CLAUDE = "'claude' (anthropic)"
UP = Unsupported("up", "openai")
TO_CLAUDE = Unsupported("claude", "anthropic")
PNG = "iVBORw0KGgo="
PDF = "JVBERi0xLjQ="
EPHEMERAL = {"type": "ephemeral"}


def decode(**fields: Any) -> Conversation:
    """Decode an Anthropic request (defaults filled in)."""
    body: dict[str, Any] = {
        "model": "m",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    body.update(fields)
    return messages.decode_request(json.dumps(body).encode(), unsupported=UP)


def encode(conversation: Conversation, default_max_tokens: int = 4096) -> dict[str, Any]:
    call = messages.encode_request(
        conversation, model="claude-x", unsupported=TO_CLAUDE, default_max_tokens=default_max_tokens
    )
    return call.body


def chat(*turns: Message, **fields: Any) -> Conversation:
    """A conversation as a Chat client's decoder would give it."""
    return Conversation(model="m", messages=list(turns) or [user("hi")], api="chat", **fields)


def user(*texts: str) -> Message:
    return Message(role="user", parts=[Text(text=t) for t in texts])


def tool_use(ident: str, name: str, **arguments: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": ident, "name": name, "input": arguments}


def call(ident: str, name: str, **arguments: Any) -> ToolCall:
    return ToolCall(id=ident, name=name, arguments=json.dumps(arguments, separators=(",", ":")))


# ================================================================ decode_request


class TestDecodeSystem:
    def test_system_string_is_a_leading_system_message(self) -> None:
        """A string system prompt is the first message, role system."""
        conversation = decode(system="Be brief.")
        assert conversation.messages == [
            Message(role="system", parts=[Text(text="Be brief.")]),
            user("hi"),
        ]
        assert conversation.api == "messages"

    def test_system_blocks_keep_their_cache_hints(self) -> None:
        """System text blocks are one system message, one text part each, cache kept."""
        system = [
            {"type": "text", "text": "One."},
            {"type": "text", "text": "Two.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        ]
        assert decode(system=system).messages[0].parts == [
            Text(text="One."),
            Text(text="Two.", cache=CacheHint(ttl="1h")),
        ]

    def test_system_message_in_messages_stays_in_place(self) -> None:
        """A mid-conversation system message is a system message at the same place."""
        conversation = decode(
            system="Top.",
            messages=[
                {"role": "user", "content": "read a.py"},
                {"role": "system", "content": "Available agents: Explore."},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "go"},
                {"role": "system", "content": [{"type": "text", "text": "Go mode."}]},
            ],
        )
        assert [(m.role, m.parts) for m in conversation.messages] == [
            ("system", [Text(text="Top.")]),
            ("user", [Text(text="read a.py")]),
            ("system", [Text(text="Available agents: Explore.")]),
            ("assistant", [Text(text="ok")]),
            ("user", [Text(text="go")]),
            ("system", [Text(text="Go mode.")]),
        ]

    def test_system_message_with_an_image_is_refused_by_name(self) -> None:
        """A system message holds text only; the 400 names the block."""
        image = {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}}
        with pytest.raises(BadRequest) as caught:
            decode(
                messages=[{"role": "user", "content": "x"}, {"role": "system", "content": [image]}]
            )
        assert "messages[1].content[0].type" in caught.value.message
        assert "a system message cannot hold a image block" in caught.value.message


class TestDecodeTurns:
    def test_turns_keep_their_roles_order_and_blocks(self) -> None:
        """user/assistant turns map one to one, one part per block."""
        conversation = decode(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
                {"role": "assistant", "content": "c"},
                {"role": "user", "content": "d"},
            ]
        )
        assert conversation.messages == [
            user("a", "b"),
            Message(role="assistant", parts=[Text(text="c")]),
            user("d"),
        ]

    @pytest.mark.parametrize(
        ("source", "image"),
        [
            (
                {"type": "base64", "media_type": "image/png", "data": PNG},
                Image(media_type="image/png", data=PNG),
            ),
            (
                {"type": "url", "url": "https://example.test/cat.png"},
                Image(url="https://example.test/cat.png"),
            ),
        ],
    )
    def test_images(self, source: dict[str, Any], image: Image) -> None:
        """Base64 images keep type and data; URL images keep the URL."""
        content = [{"type": "image", "source": source}, {"type": "text", "text": "what?"}]
        conversation = decode(messages=[{"role": "user", "content": content}])
        assert conversation.messages[0].parts == [image, Text(text="what?")]

    @pytest.mark.parametrize(
        ("source", "document"),
        [
            (
                {"type": "base64", "media_type": "application/pdf", "data": PDF},
                Document(media_type="application/pdf", data=PDF, title="Report"),
            ),
            (
                {"type": "text", "media_type": "text/plain", "data": "plain words"},
                Document(media_type="text/plain", text="plain words", title="Report"),
            ),
        ],
    )
    def test_documents_are_documents(self, source: dict[str, Any], document: Document) -> None:
        """PDF and plain-text documents are carried as documents, title kept."""
        block = {"type": "document", "source": source, "title": "Report"}
        conversation = decode(messages=[{"role": "user", "content": [block]}])
        assert conversation.messages[0].parts == [document]

    def test_document_context_and_cache_are_kept(self) -> None:
        """A document's context and cache hint reach the canonical part."""
        block = {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
            "context": "from the archive",
            "cache_control": EPHEMERAL,
        }
        (part,) = decode(messages=[{"role": "user", "content": [block]}]).messages[0].parts
        assert isinstance(part, Document)
        assert (part.context, part.cache) == ("from the archive", CacheHint())

    def test_tool_result_follows_tool_call_with_ids_and_name(self) -> None:
        """tool_use -> a tool call, tool_result -> a tool turn naming the call it answers."""
        conversation = decode(
            messages=[
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
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"}
                    ],
                },
            ]
        )
        assert conversation.messages[1:] == [
            Message(
                role="assistant",
                parts=[Text(text="Checking."), call("toolu_1", "get", city="Oslo")],
            ),
            Message(
                role="tool",
                parts=[ToolResult(call_id="toolu_1", content=[Text(text="rain")], name="get")],
            ),
        ]

    def test_tool_results_come_before_the_users_other_content(self) -> None:
        """Two results then a text: a tool turn for each result, then the user text."""
        conversation = decode(
            messages=[
                {"role": "user", "content": "both"},
                {"role": "assistant", "content": [tool_use("a", "f", x=1), tool_use("b", "g")]},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "thanks"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "a",
                            "content": [{"type": "text", "text": "A"}],
                        },
                        {
                            "type": "tool_result",
                            "tool_use_id": "b",
                            "content": "B",
                            "is_error": True,
                        },
                    ],
                },
            ]
        )
        assert conversation.messages[2:] == [
            Message(
                role="tool", parts=[ToolResult(call_id="a", content=[Text(text="A")], name="f")]
            ),
            Message(
                role="tool",
                parts=[ToolResult(call_id="b", content=[Text(text="B")], is_error=True, name="g")],
            ),
            user("thanks"),
        ]

    def test_images_and_documents_in_a_tool_result_stay_in_it(self) -> None:
        """A tool's image and PDF are parts of its result."""
        image = {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
        }
        pdf = {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
        }
        conversation = decode(
            messages=[
                {"role": "user", "content": "look"},
                {"role": "assistant", "content": [tool_use("t", "screenshot")]},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t",
                            "content": [{"type": "text", "text": "shot"}, image, pdf],
                            "cache_control": EPHEMERAL,
                        }
                    ],
                },
            ]
        )
        (result,) = conversation.messages[2].parts
        assert result == ToolResult(
            call_id="t",
            content=[
                Text(text="shot"),
                Image(media_type="image/png", data=PNG),
                Document(media_type="application/pdf", data=PDF),
            ],
            name="screenshot",
            cache=CacheHint(),
        )

    def test_empty_assistant_turns(self) -> None:
        """An empty final assistant turn is dropped; an empty middle one stays empty."""
        conversation = decode(
            messages=[
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": []},
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": ""},
            ]
        )
        assert conversation.messages == [
            user("a"),
            Message(role="assistant", parts=[]),
            user("b"),
        ]

    def test_thinking_and_redacted_thinking_are_reasoning(self) -> None:
        """Prior thinking keeps its signature, redacted thinking its data."""
        content = [
            {"type": "thinking", "thinking": "hmm", "signature": "sig=="},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "ok"},
        ]
        conversation = decode(
            messages=[
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": content},
                {"role": "user", "content": "r"},
            ]
        )
        assert conversation.messages[1].parts == [
            Reasoning(text="hmm", signature="anthropic:sig=="),
            Reasoning(redacted="anthropic:opaque"),
            Text(text="ok"),
        ]

    def test_a_thought_signature_in_a_tool_use_id_is_read_back(self) -> None:
        """A Gemini signature we put in a tool_use id is the call's signature again."""
        ident = make_call_id("ab+/cd==", upstream_id="call_1")
        content = [tool_use(ident, "f")]
        conversation = decode(
            messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": content}]
        )
        (part,) = conversation.messages[1].parts
        assert isinstance(part, ToolCall)
        assert (part.id, part.signature) == (ident, "ab+/cd==")

    def test_cache_hints_on_blocks_and_request(self) -> None:
        """cache_control on text, tool_use, tools and the request become cache hints."""
        conversation = decode(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "x", "cache_control": EPHEMERAL}],
                },
                {
                    "role": "assistant",
                    "content": [{**tool_use("t", "f"), "cache_control": EPHEMERAL}],
                },
            ],
            tools=[{"name": "f", "input_schema": {"type": "object"}, "cache_control": EPHEMERAL}],
            cache_control=EPHEMERAL,
        )
        assert conversation.messages[0].parts == [Text(text="x", cache=CacheHint())]
        (tool_call,) = conversation.messages[1].parts
        assert isinstance(tool_call, ToolCall) and tool_call.cache == CacheHint()
        assert conversation.tools is not None and conversation.tools[0].cache == CacheHint()
        assert conversation.cache == CacheHint()


class TestDecodeSettings:
    def test_sampling_and_limits(self) -> None:
        """max_tokens, temperature, top_p, top_k, stop_sequences, metadata.user_id."""
        conversation = decode(
            max_tokens=321,
            temperature=0.5,
            top_p=0.9,
            top_k=40,
            stop_sequences=["END", "STOP"],
            metadata={"user_id": "u-1"},
        )
        assert conversation.max_tokens == 321
        assert (conversation.temperature, conversation.top_p, conversation.top_k) == (
            0.5,
            0.9,
            40,
        )
        assert conversation.stop == ["END", "STOP"]
        assert conversation.user == "u-1"
        assert conversation.stream is False

    def test_streaming_asks_for_usage(self) -> None:
        """A streamed request asks the provider for usage."""
        conversation = decode(stream=True)
        assert conversation.stream and conversation.include_usage

    def test_tools(self) -> None:
        """Client tools keep name, description, schema and strictness."""
        schema = {"type": "object", "properties": {"city": {"type": "string"}}}
        tools = [{"name": "get", "description": "Weather.", "input_schema": schema, "strict": True}]
        assert decode(tools=tools).tools == [
            Tool(name="get", description="Weather.", parameters=schema, strict=True)
        ]

    @pytest.mark.parametrize(
        ("choice", "expected"),
        [
            ({"type": "auto"}, ToolChoice(mode="auto")),
            ({"type": "any"}, ToolChoice(mode="required")),
            ({"type": "none"}, ToolChoice(mode="none")),
            ({"type": "tool", "name": "get"}, ToolChoice(mode="tool", name="get")),
            (
                {"type": "auto", "disable_parallel_tool_use": True},
                ToolChoice(mode="auto", parallel=False),
            ),
        ],
    )
    def test_tool_choice(self, choice: dict[str, Any], expected: ToolChoice) -> None:
        """auto/any/none/tool and disable_parallel_tool_use."""
        tools = [{"name": "get", "input_schema": {"type": "object"}}]
        assert decode(tools=tools, tool_choice=choice).tool_choice == expected

    def test_json_schema_output(self) -> None:
        """output_config.format is a strict json_schema response format."""
        schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
        conversation = decode(output_config={"format": {"type": "json_schema", "schema": schema}})
        assert conversation.response_format == ResponseFormat(
            kind="json_schema", name="output", schema=schema, strict=True
        )

    @pytest.mark.parametrize(
        ("thinking", "output", "expected"),
        [
            (
                {"type": "enabled", "budget_tokens": 1024},
                None,
                ReasoningConfig(effort="low", budget_tokens=1024, include=True),
            ),
            (
                {"type": "enabled", "budget_tokens": 8000},
                None,
                ReasoningConfig(effort="medium", budget_tokens=8000, include=True),
            ),
            (
                {"type": "enabled", "budget_tokens": 31999},
                {"effort": "low"},
                ReasoningConfig(effort="high", budget_tokens=31999, include=True),
            ),
            (
                {"type": "adaptive"},
                {"effort": "low"},
                ReasoningConfig(effort="low", adaptive=True, include=True),
            ),
            (
                {"type": "adaptive"},
                {"effort": "max"},
                ReasoningConfig(effort="high", adaptive=True, include=True),
            ),
            (
                {"type": "adaptive"},
                None,
                ReasoningConfig(effort="medium", adaptive=True, include=True),
            ),
            ({"type": "disabled"}, {"effort": "high"}, None),
        ],
    )
    def test_thinking_is_the_reasoning_setting(
        self, thinking: dict[str, Any], output: dict[str, Any] | None, expected: Any
    ) -> None:
        """A thinking budget or adaptive effort, with OpenAI's effort it always read as."""
        fields: dict[str, Any] = {"thinking": thinking}
        if output is not None:
            fields["output_config"] = output
        assert decode(**fields).reasoning == expected

    def test_hints_for_anthropic_machinery_are_ignored(self) -> None:
        """context_management, service_tier, speed, diagnostics change nothing."""
        conversation = decode(
            context_management={"edits": []}, service_tier="auto", speed="fast", diagnostics={}
        )
        assert conversation == decode()


class TestDecodeRefusals:
    @pytest.mark.parametrize(
        ("fields", "names"),
        [
            ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
            ({"surprise": 1}, "'surprise'"),
            ({"container": "c-1"}, "'container'"),
            ({"mcp_servers": [{"url": "x"}]}, "'mcp_servers'"),
            ({"inference_geo": "us"}, "'inference_geo'"),
            (
                {"messages": [{"role": "user", "content": [{"type": "search_result", "x": 1}]}]},
                "messages[0].content[0].type",
            ),
            (
                {"messages": [{"role": "user", "content": [{"type": "tool_addition"}]}]},
                "messages[0].content[0].type = 'tool_addition'",
            ),
            (
                {
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {
                                    "type": "document",
                                    "source": {"type": "text", "data": "x"},
                                    "citations": {"enabled": True},
                                }
                            ],
                        }
                    ]
                },
                "messages[0].content[0].citations",
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
    def test_what_no_provider_can_carry_names_field_and_provider(
        self, fields: dict[str, Any], names: str
    ) -> None:
        """Server tools, documents by URL or with citations, unknown fields and block
        types: a 400 with path and provider."""
        with pytest.raises(BadRequest) as info:
            decode(**fields)
        assert names in info.value.message
        assert PROVIDER in info.value.message

    @pytest.mark.parametrize(
        ("fields", "param"),
        [
            ({"tool_choice": {"type": "any"}}, "tool_choice.type"),
            ({"tools": [{"name": "f"}]}, "tools[0].input_schema"),
            (
                {
                    "tools": [{"name": "f", "input_schema": {}}],
                    "tool_choice": {"type": "tool"},
                },
                "tool_choice.name",
            ),
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
                "messages[0].content[0].source.media_type",
            ),
            (
                {
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {
                                    "type": "image",
                                    "source": {
                                        "type": "base64",
                                        "media_type": "text/plain",
                                        "data": "x",
                                    },
                                }
                            ],
                        }
                    ]
                },
                "messages[0].content[0].source.media_type",
            ),
            (
                {"messages": [{"role": "user", "content": [tool_use("x", "f")]}]},
                "messages[0].content[0].type",
            ),
            (
                {
                    "messages": [
                        {"role": "user", "content": "q"},
                        {
                            "role": "assistant",
                            "content": [
                                {"type": "image", "source": {"type": "url", "url": "https://x"}}
                            ],
                        },
                    ]
                },
                "messages[1].content[0].type",
            ),
            ({"messages": [{"role": "narrator", "content": "x"}]}, "messages[0].role"),
            ({"thinking": {"type": "sometimes"}}, "thinking.type"),
        ],
    )
    def test_malformed_requests_name_the_field(self, fields: dict[str, Any], param: str) -> None:
        """A wrong value or a missing field is a 400 whose param is its path."""
        with pytest.raises(BadRequest) as info:
            decode(**fields)
        assert info.value.param == param


# ================================================================ encode_request


class TestEncodeConversation:
    def test_system_and_developer_messages_become_system_blocks(self) -> None:
        """System and developer turns, wherever they are, are the system blocks in order."""
        body = encode(
            chat(
                Message(role="system", parts=[Text(text="Rule one.")]),
                Message(role="developer", parts=[Text(text="Rule two.", cache=CacheHint())]),
                user("hi"),
                Message(role="system", parts=[Text(text="Rule three.")]),
            )
        )
        assert body["system"] == [
            {"type": "text", "text": "Rule one."},
            {"type": "text", "text": "Rule two.", "cache_control": EPHEMERAL},
            {"type": "text", "text": "Rule three."},
        ]
        assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
        assert body["model"] == "claude-x"

    def test_max_tokens_default_and_preference(self) -> None:
        """Anthropic needs max_tokens: the client's, else the provider default."""
        assert encode(chat())["max_tokens"] == 4096
        assert encode(chat(), default_max_tokens=999)["max_tokens"] == 999
        assert encode(chat(max_tokens=50))["max_tokens"] == 50

    def test_sampling(self) -> None:
        """temperature, top_p, top_k, stop, user and stream."""
        body = encode(
            chat(temperature=0.2, top_p=0.8, top_k=5, stop=["END"], user="alice", stream=True)
        )
        assert (body["temperature"], body["top_p"], body["top_k"]) == (0.2, 0.8, 5)
        assert body["stop_sequences"] == ["END"]
        assert body["metadata"] == {"user_id": "alice"}
        assert body["stream"] is True

    @pytest.mark.parametrize(
        ("image", "source"),
        [
            (
                Image(url=f"data:image/png;base64,{PNG}"),
                {"type": "base64", "media_type": "image/png", "data": PNG},
            ),
            (
                Image(url="https://example.test/cat.png", detail="low"),
                {"type": "url", "url": "https://example.test/cat.png"},
            ),
            (
                Image(url=f"data:image/png;name=cat.png;base64,{PNG}"),
                {"type": "base64", "media_type": "image/png", "data": PNG},
            ),
            (
                Image(media_type="image/jpeg", data=PNG),
                {"type": "base64", "media_type": "image/jpeg", "data": PNG},
            ),
        ],
    )
    def test_images(self, image: Image, source: dict[str, Any]) -> None:
        """Data URLs open into base64 sources; http(s) URLs stay URLs."""
        body = encode(chat(Message(role="user", parts=[Text(text="what?"), image])))
        assert body["messages"][0]["content"] == [
            {"type": "text", "text": "what?"},
            {"type": "image", "source": source},
        ]

    @pytest.mark.parametrize(
        ("document", "block"),
        [
            (
                Document(media_type="application/pdf", data=PDF, filename="a.pdf"),
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                    "title": "a.pdf",
                },
            ),
            (
                Document(text="words", title="T", context="ctx"),
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "words"},
                    "title": "T",
                    "context": "ctx",
                },
            ),
            (
                Document(url="https://x.test/a.pdf", citations={"enabled": True}),
                {
                    "type": "document",
                    "source": {"type": "url", "url": "https://x.test/a.pdf"},
                    "citations": {"enabled": True},
                },
            ),
        ],
    )
    def test_documents(self, document: Document, block: dict[str, Any]) -> None:
        """PDFs, plain text and URLs are document blocks."""
        body = encode(chat(Message(role="user", parts=[document])))
        assert body["messages"][0]["content"] == [block]

    def test_tool_calls_and_several_results_share_one_user_turn(self) -> None:
        """Tool turns (and the next user text) merge into one user turn, ids kept."""
        body = encode(
            chat(
                user("both"),
                Message(role="assistant", parts=[call("a", "f", x=1), call("b", "g")]),
                Message(role="tool", parts=[ToolResult(call_id="a", content=[Text(text="A")])]),
                Message(
                    role="tool",
                    parts=[
                        ToolResult(
                            call_id="b",
                            content=[Text(text="B"), Image(url="https://x.test/b.png")],
                            is_error=True,
                        )
                    ],
                ),
                user("and?"),
            )
        )
        assert body["messages"][1:] == [
            {"role": "assistant", "content": [tool_use("a", "f", x=1), tool_use("b", "g")]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "a", "content": "A"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "b",
                        "content": [
                            {"type": "text", "text": "B"},
                            {
                                "type": "image",
                                "source": {"type": "url", "url": "https://x.test/b.png"},
                            },
                        ],
                        "is_error": True,
                    },
                    {"type": "text", "text": "and?"},
                ],
            },
        ]

    def test_empty_assistant_message_is_dropped(self) -> None:
        """Anthropic refuses empty turns; the users around it merge."""
        body = encode(chat(user("a"), Message(role="assistant", parts=[Text(text="")]), user("b")))
        assert body["messages"] == [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        ]

    def test_reasoning_goes_back_as_thinking_when_signed(self) -> None:
        """Signed reasoning is a thinking block, redacted a redacted_thinking block, and
        reasoning with neither is left out."""
        body = encode(
            chat(
                user("q"),
                Message(
                    role="assistant",
                    parts=[
                        Reasoning(text="plain thoughts"),
                        Reasoning(text="hmm", signature="anthropic:sig"),
                        Reasoning(redacted="anthropic:opaque"),
                        Refusal(text="No."),
                    ],
                ),
            )
        )
        assert body["messages"][1]["content"] == [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "No."},
        ]

    def test_cache_hints_become_cache_control(self) -> None:
        """Hints on tool calls, results, tools and the request are cache_control."""
        body = encode(
            chat(
                user("q"),
                Message(
                    role="assistant", parts=[ToolCall(id="t", name="f", cache=CacheHint(ttl="1h"))]
                ),
                Message(role="tool", parts=[ToolResult(call_id="t", cache=CacheHint())]),
                tools=[Tool(name="f", cache=CacheHint())],
                cache=CacheHint(),
            )
        )
        assert body["messages"][1]["content"][0]["cache_control"] == {
            "type": "ephemeral",
            "ttl": "1h",
        }
        assert body["messages"][2]["content"][0] == {
            "type": "tool_result",
            "tool_use_id": "t",
            "cache_control": EPHEMERAL,
        }
        assert body["tools"][0]["cache_control"] == EPHEMERAL
        assert body["cache_control"] == EPHEMERAL


class TestEncodeSettings:
    def test_tools(self) -> None:
        """Function tools have an input_schema (an empty object schema when none)."""
        schema = {"type": "object", "properties": {"q": {"type": "string"}}}
        body = encode(
            chat(
                tools=[
                    Tool(name="search", description="Find.", parameters=schema, strict=True),
                    Tool(name="now"),
                ]
            )
        )
        assert body["tools"] == [
            {"name": "search", "input_schema": schema, "description": "Find.", "strict": True},
            {"name": "now", "input_schema": {"type": "object", "properties": {}}},
        ]

    @pytest.mark.parametrize(
        ("choice", "expected"),
        [
            (ToolChoice(mode="auto"), {"type": "auto"}),
            (ToolChoice(mode="none"), {"type": "none"}),
            (ToolChoice(mode="required"), {"type": "any"}),
            (ToolChoice(mode="tool", name="f"), {"type": "tool", "name": "f"}),
            (ToolChoice(parallel=False), {"type": "auto", "disable_parallel_tool_use": True}),
            (
                ToolChoice(mode="required", parallel=False),
                {"type": "any", "disable_parallel_tool_use": True},
            ),
            (ToolChoice(mode="none", parallel=False), {"type": "none"}),
        ],
    )
    def test_tool_choice(self, choice: ToolChoice, expected: dict[str, Any]) -> None:
        """auto/none/required/tool -> auto/none/any/tool, parallel=False -> disabled."""
        body = encode(chat(tools=[Tool(name="f")], tool_choice=choice))
        assert body["tool_choice"] == expected

    def test_tool_choice_without_tools(self) -> None:
        """auto or none with no tools is no choice; requiring a tool is a 400."""
        assert "tool_choice" not in encode(chat(tool_choice=ToolChoice(mode="none")))
        with pytest.raises(BadRequest) as info:
            encode(chat(tool_choice=ToolChoice(mode="required")))
        assert info.value.param == "tool_choice"

    def test_json_schema_uses_structured_outputs(self) -> None:
        """A JSON schema response format is output_config.format."""
        schema = {"type": "object", "additionalProperties": False}
        body = encode(
            chat(response_format=ResponseFormat(kind="json_schema", name="x", schema=schema))
        )
        assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}

    def test_json_object_forces_the_json_tool(self) -> None:
        """JSON mode is a forced tool, whose name comes back for the answer decoders."""
        translated = messages.encode_request(
            chat(response_format=ResponseFormat(kind="json_object")),
            model="c",
            unsupported=TO_CLAUDE,
            default_max_tokens=10,
        )
        assert translated.json_tool == messages.JSON_TOOL
        assert translated.body["tool_choice"] == {"type": "tool", "name": messages.JSON_TOOL}
        assert translated.body["tools"][0]["name"] == messages.JSON_TOOL

    @pytest.mark.parametrize(
        ("reasoning", "thinking", "output"),
        [
            (ReasoningConfig(budget_tokens=2048), {"type": "enabled", "budget_tokens": 2048}, None),
            (
                ReasoningConfig(adaptive=True, effort="low"),
                {"type": "adaptive"},
                {"effort": "low"},
            ),
            (ReasoningConfig(effort="none"), None, None),
        ],
    )
    def test_reasoning_budget_or_adaptive_is_thinking(
        self, reasoning: ReasoningConfig, thinking: Any, output: Any
    ) -> None:
        """A budget is enabled thinking, adaptive is adaptive thinking with its effort."""
        body = encode(chat(reasoning=reasoning))
        assert body.get("thinking") == thinking
        assert body.get("output_config") == output

    @pytest.mark.parametrize(
        ("conversation", "names"),
        [
            (chat(seed=7), "'seed'"),
            (chat(candidate_count=2), "'n'"),
            (chat(logprobs=True), "'logprobs'"),
            (chat(top_logprobs=2), "'top_logprobs'"),
            (chat(presence_penalty=0.5), "'presence_penalty'"),
            (chat(modalities=["text", "audio"]), "'modalities'"),
            (chat(metadata={"a": "b"}), "'metadata'"),
            (chat(reasoning=ReasoningConfig(effort="high")), "'reasoning_effort'"),
            (chat(temperature=1.5), "temperature = 1.5"),
            (chat(service_tier="flex"), "service_tier = 'flex'"),
            (
                chat(
                    Message(
                        role="user",
                        parts=[Unmapped(kind="audio input", where="messages[0].content[1].type")],
                    )
                ),
                "'messages[0].content[1].type'",
            ),
            (chat(extra={"made_up": True}), "'made_up'"),
            (
                chat(response_format=ResponseFormat(kind="json_object"), tools=[Tool(name="f")]),
                "response_format",
            ),
            (
                chat(Message(role="user", parts=[Document(file_id="file-1")])),
                "messages[0].content[0].file.file_id",
            ),
            (
                chat(Message(role="user", parts=[Document(media_type="image/tiff", data="x")])),
                "(image/tiff)",
            ),
            (
                chat(Message(role="system", parts=[Image(url="https://x.test/a.png")])),
                "messages[0].content[0].type = 'image'",
            ),
        ],
    )
    def test_unsupported_is_a_400_naming_field_and_provider(
        self, conversation: Conversation, names: str
    ) -> None:
        """What Anthropic cannot take is refused by name, with the provider."""
        with pytest.raises(BadRequest) as info:
            encode(conversation)
        assert names in info.value.message
        assert CLAUDE in info.value.message

    @pytest.mark.parametrize(
        "reasoning", [ReasoningConfig(budget_tokens=1024), ReasoningConfig(effort="high")]
    )
    def test_a_gemini_clients_thinking_config_is_a_hint_left_out(
        self, reasoning: ReasoningConfig
    ) -> None:
        """Gemini's thinkingConfig is neither sent to Anthropic nor refused."""
        conversation = Conversation(
            model="m", messages=[user("x")], api="gemini", reasoning=reasoning
        )
        assert "thinking" not in encode(conversation)

    @pytest.mark.parametrize(("tier", "sent"), [("auto", "auto"), ("default", "standard_only")])
    def test_service_tier(self, tier: str, sent: str) -> None:
        """OpenAI's auto and default tiers are Anthropic's auto and standard_only."""
        assert encode(chat(service_tier=tier))["service_tier"] == sent

    def test_neutral_values_pass(self) -> None:
        """One candidate, zero penalties, text output mean nothing special."""
        body = encode(
            chat(candidate_count=1, presence_penalty=0, frequency_penalty=0, modalities=["text"])
        )
        assert set(body) == {"model", "max_tokens", "messages"}

    @pytest.mark.parametrize("arguments", ["{not json", "[1]"])
    def test_invalid_tool_arguments_name_the_field(self, arguments: str) -> None:
        """Arguments that are not a JSON object are a 400 naming them."""
        bad = ToolCall(id="a", name="f", arguments=arguments)
        with pytest.raises(BadRequest) as info:
            encode(chat(user("x"), Message(role="assistant", parts=[bad])))
        assert info.value.param == "messages[1].tool_calls[0].function.arguments"


class TestRequestRoundTrip:
    def test_decode_then_encode_keeps_the_request(self) -> None:
        """Messages -> canonical -> Messages gives back the same request."""
        request: dict[str, Any] = {
            "model": "m",
            "max_tokens": 100,
            "system": [{"type": "text", "text": "S", "cache_control": EPHEMERAL}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "go"}]},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "t", "signature": "sig"},
                        {"type": "redacted_thinking", "data": "r"},
                        {"type": "text", "text": "ok"},
                        tool_use("t1", "f", a=1),
                        tool_use("t2", "f", a=2),
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "one"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "t2",
                            "content": [
                                {"type": "text", "text": "two"},
                                {
                                    "type": "image",
                                    "source": {
                                        "type": "base64",
                                        "media_type": "image/png",
                                        "data": PNG,
                                    },
                                },
                            ],
                            "is_error": True,
                        },
                        {
                            "type": "document",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": PDF,
                            },
                            "title": "a.pdf",
                            "cache_control": EPHEMERAL,
                        },
                    ],
                },
            ],
            "stream": True,
            "temperature": 0.5,
            "top_k": 3,
            "stop_sequences": ["X"],
            "metadata": {"user_id": "u"},
            "cache_control": EPHEMERAL,
            "tools": [{"name": "f", "input_schema": {"type": "object"}, "description": "F"}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
        }
        conversation = messages.decode_request(json.dumps(request).encode(), unsupported=UP)
        back = messages.encode_request(
            conversation, model="m", unsupported=TO_CLAUDE, default_max_tokens=1
        ).body
        assert back == request


# ================================================================ answers


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


class TestDecodeAnswer:
    def answer(self, body: bytes, json_tool: str | None = None) -> Answer:
        return messages.decode_answer(body, provider=CLAUDE, json_tool=json_tool)

    def test_blocks_in_order(self) -> None:
        """Thinking (signed), redacted thinking, text and tool calls, in order."""
        content = [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Let me."},
            tool_use("toolu_9", "get", city="Oslo"),
            {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}},
        ]
        answer = self.answer(anthropic_message(content, "tool_use"))
        assert answer.parts == [
            Reasoning(text="hmm", signature="anthropic:sig"),
            Reasoning(redacted="anthropic:opaque"),
            Text(text="Let me."),
            ToolCall(id="toolu_9", name="get", arguments='{"city":"Oslo"}'),
        ]
        assert (answer.id, answer.model, answer.finish) == ("msg_1", "claude-x", "tool_calls")

    @pytest.mark.parametrize(
        ("stop", "finish"),
        [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("pause_turn", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "refusal"),
            ("model_context_window_exceeded", "length"),
        ],
    )
    def test_stop_reasons(self, stop: str, finish: str) -> None:
        """Each stop reason has its canonical finish."""
        answer = self.answer(anthropic_message([{"type": "text", "text": "x"}], stop))
        assert answer.finish == finish

    def test_stop_sequence_is_kept(self) -> None:
        """The stop sequence that ended the text is part of the answer."""
        body = json.loads(anthropic_message([], "stop_sequence"))
        body["stop_sequence"] = "END"
        assert self.answer(json.dumps(body).encode()).stop_sequence == "END"

    def test_refused_text_is_a_refusal(self) -> None:
        """The text of a refused answer is a refusal part."""
        answer = self.answer(anthropic_message([{"type": "text", "text": "I can't."}], "refusal"))
        assert answer.parts == [Refusal(text="I can't.")]

    def test_usage_with_cache(self) -> None:
        """Input tokens include cache reads and writes, each also counted on its own."""
        body = anthropic_message([], cache_read_input_tokens=100, cache_creation_input_tokens=20)
        assert self.answer(body).usage == Usage(
            input_tokens=130, output_tokens=5, cached_tokens=100, cache_write_tokens=20
        )

    def test_json_mode_tool_becomes_text(self) -> None:
        """The forced JSON tool's input is the text, and the answer simply stopped."""
        body = anthropic_message([tool_use("t", messages.JSON_TOOL, a=1)], "tool_use")
        answer = self.answer(body, json_tool=messages.JSON_TOOL)
        (part,) = answer.parts
        assert isinstance(part, Text) and json.loads(part.text) == {"a": 1}
        assert answer.finish == "stop"

    def test_unreadable_answer_is_an_upstream_error(self) -> None:
        """A body that is not a Message is the provider's fault."""
        with pytest.raises(UpstreamUnavailable):
            self.answer(b"<html>oops</html>")


class TestEncodeAnswer:
    def answer(self, answer: Answer) -> dict[str, Any]:
        return json.loads(messages.encode_answer(answer, model="asked", provider=PROVIDER))

    def test_text(self) -> None:
        """A text answer is a Message with one text block."""
        out = self.answer(
            Answer(id="chatcmpl-9", model="gpt-x", parts=[Text(text="Hi")], finish="stop")
        )
        assert out["type"] == "message" and out["role"] == "assistant"
        assert out["id"] == "msg_chatcmpl-9"
        assert out["content"] == [{"type": "text", "text": "Hi"}]
        assert (out["stop_reason"], out["stop_sequence"], out["model"]) == (
            "end_turn",
            None,
            "gpt-x",
        )

    def test_model_asked_for_when_the_answer_names_none(self) -> None:
        """An answer without a model is in the name the client asked for."""
        assert self.answer(Answer(id="x", model="", finish="stop"))["model"] == "asked"

    def test_reasoning_is_thinking(self) -> None:
        """Reasoning is a thinking block (empty signature when none), redacted kept."""
        out = self.answer(
            Answer(
                id="x",
                model="m",
                parts=[
                    Reasoning(text="2+2"),
                    Reasoning(text="more", signature="sig"),
                    Reasoning(redacted="opaque"),
                    Text(text="4"),
                ],
                finish="stop",
            )
        )
        assert out["content"] == [
            {"type": "thinking", "thinking": "2+2", "signature": ""},
            {"type": "thinking", "thinking": "more", "signature": "sig"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "4"},
        ]

    def test_tool_calls_with_a_thought_signature_in_the_id(self) -> None:
        """Tool calls are tool_use blocks; a Gemini signature rides in the id."""
        out = self.answer(
            Answer(
                id="x",
                model="m",
                parts=[
                    ToolCall(id="c1", name="f", arguments='{"a":1}', signature="ab+/"),
                    ToolCall(id="", name="g"),
                ],
                finish="stop",
            )
        )
        assert out["content"] == [
            tool_use(make_call_id("ab+/", upstream_id="c1"), "f", a=1),
            tool_use("toolu_1", "g"),
        ]
        assert out["stop_reason"] == "tool_use"  # some hosts end a tool call with "stop"

    @pytest.mark.parametrize(
        ("finish", "stop"),
        [
            ("stop", "end_turn"),
            ("length", "max_tokens"),
            ("tool_calls", "tool_use"),
            ("content_filter", "refusal"),
            ("refusal", "refusal"),
        ],
    )
    def test_finish_reasons(self, finish: Any, stop: str) -> None:
        """Each canonical finish has its stop reason."""
        out = self.answer(Answer(id="x", model="m", parts=[Text(text="x")], finish=finish))
        assert out["stop_reason"] == stop

    def test_stop_sequence(self) -> None:
        """A known stop sequence is stop_reason stop_sequence, and named."""
        out = self.answer(Answer(id="x", model="m", finish="stop", stop_sequence="END"))
        assert (out["stop_reason"], out["stop_sequence"]) == ("stop_sequence", "END")

    def test_usage_with_cached_tokens(self) -> None:
        """Anthropic's input count leaves out cache reads and writes."""
        usage = Usage(input_tokens=12, output_tokens=3, cached_tokens=8, cache_write_tokens=1)
        assert self.answer(Answer(id="x", model="m", usage=usage))["usage"] == {
            "input_tokens": 3,
            "output_tokens": 3,
            "cache_creation_input_tokens": 1,
            "cache_read_input_tokens": 8,
        }

    def test_refusal(self) -> None:
        """A refusal is a text block and stop_reason refusal."""
        out = self.answer(Answer(id="x", model="m", parts=[Refusal(text="No.")], finish="stop"))
        assert out["content"] == [{"type": "text", "text": "No."}]
        assert out["stop_reason"] == "refusal"

    def test_empty_answer_has_no_blocks(self) -> None:
        """Empty text makes no block."""
        assert self.answer(Answer(id="x", model="m", parts=[Text(text="")]))["content"] == []

    @pytest.mark.parametrize(
        ("tool_call", "what"),
        [
            (ToolCall(id="c", name="f", arguments="{"), "invalid JSON"),
            (ToolCall(id="c", name=""), "without a function name"),
        ],
    )
    def test_unreadable_tool_calls_are_an_upstream_error(
        self, tool_call: ToolCall, what: str
    ) -> None:
        """A call no client could read is the provider's fault."""
        with pytest.raises(UpstreamUnavailable, match=what):
            self.answer(Answer(id="x", model="m", parts=[tool_call], finish="tool_calls"))

    def test_answer_round_trip(self) -> None:
        """Message -> canonical -> Message gives back the same Message."""
        body = json.loads(
            anthropic_message(
                [
                    {"type": "thinking", "thinking": "t", "signature": "s"},
                    {"type": "redacted_thinking", "data": "r"},
                    {"type": "text", "text": "x"},
                    tool_use("toolu_1", "f", a=[1]),
                ],
                "tool_use",
                cache_read_input_tokens=4,
                cache_creation_input_tokens=2,
            )
        )
        answer = messages.decode_answer(json.dumps(body).encode(), provider=CLAUDE)
        again = json.loads(messages.encode_answer(answer, model="m", provider=CLAUDE))
        body["usage"] = {**body["usage"]}
        assert again == body


# ================================================================ streams


def frame(name: str, **data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


def events_of(frames: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each Anthropic frame, checking name and type agree."""
    out = []
    for raw in frames:
        lines = raw.decode().strip().split("\n")
        assert lines[0].startswith("event: ") and lines[1].startswith("data: ")
        name, data = lines[0][7:], json.loads(lines[1][6:])
        assert data["type"] == name
        out.append((name, data))
    return out


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
            delta = data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] += delta["signature"]
            else:
                json_parts[data["index"]] = (
                    json_parts.get(data["index"], "") + delta["partial_json"]
                )
        elif name == "message_delta":
            message.update(data["delta"])
            message["usage"].update(data["usage"])
    for index, text in json_parts.items():
        message["content"][index]["input"] = json.loads(text)
    return message


def decode_stream(frames: list[bytes], json_tool: str | None = None) -> list[StreamEvent]:
    decoder = messages.StreamDecoder(provider=CLAUDE, json_tool=json_tool)
    out = [event for raw in frames for event in decoder.feed(raw)]
    return out + decoder.finish()


def encode_stream(events: list[StreamEvent]) -> list[tuple[str, dict[str, Any]]]:
    encoder = messages.StreamEncoder(model="asked", provider=PROVIDER)
    out = [raw for event in events for raw in encoder.feed(event)]
    return events_of(out + encoder.finish())


def message_start(**usage: int) -> bytes:
    counts = {"input_tokens": 9, "output_tokens": 1, **usage}
    message = {
        "id": "msg_7",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [],
        "usage": counts,
    }
    return frame("message_start", message=message)


def closing(stop: str = "end_turn", output_tokens: int = 6) -> list[bytes]:
    return [
        frame(
            "message_delta",
            delta={"stop_reason": stop, "stop_sequence": None},
            usage={"output_tokens": output_tokens},
        ),
        frame("message_stop"),
    ]


class TestStreamDecoder:
    def test_text_with_usage(self) -> None:
        """Start, usage, text pieces, then the finish with the merged counts."""
        events = decode_stream(
            [
                message_start(cache_read_input_tokens=4),
                frame("content_block_start", index=0, content_block={"type": "text", "text": ""}),
                frame("ping"),
                frame("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hel"}),
                frame("content_block_delta", index=0, delta={"type": "text_delta", "text": "lo"}),
                frame("content_block_stop", index=0),
                *closing(),
            ]
        )
        usage = Usage(input_tokens=13, output_tokens=6, cached_tokens=4)
        assert events == [
            Start(id="msg_7", model="claude-x"),
            UsageUpdate(usage=Usage(input_tokens=13, output_tokens=1, cached_tokens=4)),
            TextDelta(text="Hel"),
            TextDelta(text="lo"),
            UsageUpdate(usage=usage),
            Finish(reason="stop", usage=usage),
        ]

    def test_thinking_signature_redacted_and_tool_use(self) -> None:
        """Thinking streams as reasoning then its signature; redacted thinking, a tool
        call start and its argument pieces follow."""
        events = decode_stream(
            [
                message_start(),
                frame(
                    "content_block_start",
                    index=0,
                    content_block={"type": "thinking", "thinking": "", "signature": ""},
                ),
                frame(
                    "content_block_delta",
                    index=0,
                    delta={"type": "thinking_delta", "thinking": "a"},
                ),
                frame(
                    "content_block_delta",
                    index=0,
                    delta={"type": "thinking_delta", "thinking": "b"},
                ),
                frame(
                    "content_block_delta",
                    index=0,
                    delta={"type": "signature_delta", "signature": "S"},
                ),
                frame("content_block_stop", index=0),
                frame(
                    "content_block_start",
                    index=1,
                    content_block={"type": "thinking", "thinking": ""},
                ),
                frame(
                    "content_block_delta",
                    index=1,
                    delta={"type": "thinking_delta", "thinking": "c"},
                ),
                frame(
                    "content_block_start",
                    index=2,
                    content_block={"type": "redacted_thinking", "data": "R"},
                ),
                frame(
                    "content_block_start",
                    index=3,
                    content_block={"type": "tool_use", "id": "toolu_1", "name": "get", "input": {}},
                ),
                frame(
                    "content_block_delta",
                    index=3,
                    delta={"type": "input_json_delta", "partial_json": '{"city": '},
                ),
                frame(
                    "content_block_delta",
                    index=3,
                    delta={"type": "input_json_delta", "partial_json": '"Oslo"}'},
                ),
                *closing("tool_use"),
            ]
        )
        assert events[2:-2] == [
            ReasoningDelta(text="a", new=True),
            ReasoningDelta(text="b"),
            ReasoningDelta(signature="anthropic:S"),
            ReasoningDelta(text="c", new=True),
            ReasoningDelta(redacted="anthropic:R", new=True),
            ToolCallStart(index=0, id="toolu_1", name="get"),
            ToolArgsDelta(index=0, fragment='{"city": '),
            ToolArgsDelta(index=0, fragment='"Oslo"}'),
        ]
        last = events[-1]
        assert isinstance(last, Finish) and last.reason == "tool_calls"

    def test_json_mode_streams_as_text(self) -> None:
        """The forced JSON tool's input is text, and the answer simply stopped."""
        events = decode_stream(
            [
                message_start(),
                frame(
                    "content_block_start",
                    index=0,
                    content_block={"type": "tool_use", "id": "t", "name": messages.JSON_TOOL},
                ),
                frame(
                    "content_block_delta",
                    index=0,
                    delta={"type": "input_json_delta", "partial_json": '{"a": 1}'},
                ),
                *closing("tool_use"),
            ],
            json_tool=messages.JSON_TOOL,
        )
        assert TextDelta(text='{"a": 1}') in events
        last = events[-1]
        assert isinstance(last, Finish) and last.reason == "stop"

    def test_error_event_raises(self) -> None:
        """An error event mid-stream is the provider failing."""
        decoder = messages.StreamDecoder(provider=CLAUDE)
        decoder.feed(message_start())
        with pytest.raises(UpstreamUnavailable, match="overloaded_error"):
            decoder.feed(
                frame("error", error={"type": "overloaded_error", "message": "Overloaded"})
            )

    def test_cut_short_raises(self) -> None:
        """No message_stop: the provider broke off, and the caller is told."""
        decoder = messages.StreamDecoder(provider=CLAUDE)
        decoder.feed(message_start())
        with pytest.raises(UpstreamUnavailable, match="before the answer was complete"):
            decoder.finish()

    def test_unreadable_event_is_an_upstream_error(self) -> None:
        """An event that is not JSON is the provider's fault."""
        decoder = messages.StreamDecoder(provider=CLAUDE)
        with pytest.raises(UpstreamUnavailable, match="unreadable"):
            decoder.feed(b"event: message_start\ndata: {oops\n\n")


class TestStreamEncoder:
    def test_text_stream(self) -> None:
        """message_start, ping, one text block, message_delta with usage, message_stop."""
        sequence = encode_stream(
            [
                Start(id="chatcmpl-1", model="gpt-x"),
                TextDelta(text="Hel"),
                TextDelta(text="lo"),
                Finish(reason="stop"),
                UsageUpdate(usage=Usage(input_tokens=7, output_tokens=2)),
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
        assert message["id"] == "msg_chatcmpl-1" and message["model"] == "gpt-x"
        assert message["content"] == [{"type": "text", "text": "Hello"}]
        assert message["stop_reason"] == "end_turn"
        assert message["usage"]["input_tokens"] == 7 and message["usage"]["output_tokens"] == 2

    def test_thinking_with_signature_then_text_then_tools(self) -> None:
        """Reasoning is a thinking block with its signature, then text, then each tool call
        a tool_use block whose arguments stream as input_json_delta."""
        sequence = encode_stream(
            [
                Start(id="x", model="m"),
                ReasoningDelta(text="two "),
                ReasoningDelta(text="plus two"),
                ReasoningDelta(signature="sig"),
                ReasoningDelta(redacted="opaque"),
                TextDelta(text="Checking."),
                ToolCallStart(index=0, id="c1", name="f", signature="ab+/"),
                ToolArgsDelta(index=0, fragment='{"a":'),
                ToolArgsDelta(index=0, fragment=" 1}"),
                ToolCallStart(index=1, id="c2", name="g"),
                ToolArgsDelta(index=1, fragment="{}"),
                Finish(reason="tool_calls"),
            ]
        )
        message = rebuild(sequence)
        assert message["content"] == [
            {"type": "thinking", "thinking": "two plus two", "signature": "sig"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Checking."},
            tool_use(make_call_id("ab+/", upstream_id="c1"), "f", a=1),
            tool_use("c2", "g"),
        ]
        assert message["stop_reason"] == "tool_use"
        stops = [data["index"] for name, data in sequence if name == "content_block_stop"]
        assert stops == [0, 1, 2, 3, 4]

    def test_a_new_reasoning_block(self) -> None:
        """ReasoningDelta(new=True) starts a second thinking block."""
        sequence = encode_stream(
            [ReasoningDelta(text="a"), ReasoningDelta(text="b", new=True), Finish(reason="stop")]
        )
        assert [b["thinking"] for b in rebuild(sequence)["content"]] == ["a", "b"]

    def test_refusal_and_stop_sequence(self) -> None:
        """Refused text is text with stop_reason refusal; a stop sequence is named."""
        refused = rebuild(encode_stream([RefusalDelta(text="No."), Finish(reason="stop")]))
        assert refused["content"] == [{"type": "text", "text": "No."}]
        assert refused["stop_reason"] == "refusal"
        stopped = rebuild(encode_stream([Finish(reason="stop", stop_sequence="END")]))
        assert (stopped["stop_reason"], stopped["stop_sequence"]) == ("stop_sequence", "END")

    def test_length_and_cache_usage(self) -> None:
        """length is max_tokens; usage splits out cache reads and writes."""
        usage = Usage(input_tokens=20, output_tokens=5, cached_tokens=10, cache_write_tokens=4)
        message = rebuild(
            encode_stream([TextDelta(text="x"), Finish(reason="length", usage=usage)])
        )
        assert message["stop_reason"] == "max_tokens"
        assert message["usage"] == {
            "input_tokens": 6,
            "output_tokens": 5,
            "cache_creation_input_tokens": 4,
            "cache_read_input_tokens": 10,
        }

    def test_further_candidates_are_left_out(self) -> None:
        """Events of a choice other than the first make no frames."""
        sequence = encode_stream(
            [
                TextDelta(text="one"),
                TextDelta(text="two", choice=1),
                Finish(reason="length", choice=1),
                Finish(reason="stop"),
            ]
        )
        message = rebuild(sequence)
        assert message["content"] == [{"type": "text", "text": "one"}]
        assert message["stop_reason"] == "end_turn"

    def test_empty_stream_still_makes_a_message(self) -> None:
        """A finish straight away: a well-formed, empty message."""
        sequence = encode_stream([Finish(reason="stop")])
        assert [name for name, _ in sequence] == [
            "message_start",
            "ping",
            "message_delta",
            "message_stop",
        ]

    def test_cut_short_raises(self) -> None:
        """No Finish by the end: the answer was cut short, and the caller is told."""
        encoder = messages.StreamEncoder(model="m", provider=PROVIDER)
        encoder.feed(TextDelta(text="partial"))
        with pytest.raises(UpstreamUnavailable, match="before the answer was complete"):
            encoder.finish()

    def test_stream_round_trip(self) -> None:
        """Anthropic events -> canonical -> Anthropic events rebuild the same Message."""
        frames = [
            message_start(cache_read_input_tokens=4, cache_creation_input_tokens=1),
            frame(
                "content_block_start",
                index=0,
                content_block={"type": "thinking", "thinking": "", "signature": ""},
            ),
            frame(
                "content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "hm"}
            ),
            frame(
                "content_block_delta", index=0, delta={"type": "signature_delta", "signature": "S"}
            ),
            frame("content_block_stop", index=0),
            frame("content_block_start", index=1, content_block={"type": "text", "text": ""}),
            frame("content_block_delta", index=1, delta={"type": "text_delta", "text": "ok"}),
            frame("content_block_stop", index=1),
            frame(
                "content_block_start",
                index=2,
                content_block={"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
            ),
            frame(
                "content_block_delta",
                index=2,
                delta={"type": "input_json_delta", "partial_json": '{"a": 1}'},
            ),
            frame("content_block_stop", index=2),
            *closing("tool_use"),
        ]
        original = rebuild(events_of(frames))
        again = rebuild(encode_stream(decode_stream(frames)))
        assert again == original


class TestClientPaths:
    def test_a_refusal_names_the_block_the_client_sent(self) -> None:
        """Another provider's refusal of a part names the client's own messages[i].content[j]."""
        pdf = {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}
        conversation = decode(
            system="Be brief.",
            messages=[
                {"role": "user", "content": "first"},
                {
                    "role": "assistant",
                    "content": [{"type": "text", "text": ""}, {"type": "text", "text": "ok"}],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "read"},
                        {"type": "document", "source": pdf},
                    ],
                },
            ],
        )
        # The system prompt is turn 0 and the empty text block is gone: the paths differ.
        assert conversation.paths["messages[3].content[1]"] == "messages[2].content[1]"
        assert conversation.paths["messages[2].content[0]"] == "messages[1].content[1]"
        with pytest.raises(BadRequest) as refused:
            cohere.encode_request(conversation, model="command-a", provider="co")
        renamed = in_client_terms(refused.value, conversation.paths)
        assert renamed.param is not None and renamed.param.startswith("messages[2].content[1]")
        assert "'co' (Cohere)" in renamed.message
