"""Anthropic requests to OpenAI's shape: Claude Code's newer fields (system messages in
``messages``, thinking, unknown roles and blocks) and reasoning coming back as thinking."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fkllmproxy.errors import BadRequest
from fkllmproxy.translate.anthropic_openai import (
    MessagesStreamFromChat,
    chat_request_from_messages,
    messages_response_from_chat,
)

PROVIDER = "'up' (openai)"


def to_chat(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "m",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    body.update(fields)
    return chat_request_from_messages(json.dumps(body).encode(), provider=PROVIDER)


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
        message = json.loads(messages_response_from_chat(body, provider=PROVIDER, model="m"))
        assert message["content"] == [
            {"type": "thinking", "thinking": "2+2", "signature": ""},
            {"type": "text", "text": "4"},
        ]

    def test_streamed_reasoning_is_a_thinking_block_before_the_text(self) -> None:
        """Reasoning deltas stream as thinking_delta in their own block, then the text."""
        translator = MessagesStreamFromChat(provider=PROVIDER, model="m")
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
