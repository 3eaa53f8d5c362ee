"""Reasoning proofs across providers: each provider is sent only the signatures it made."""

from __future__ import annotations

from typing import Any

import msgspec

from fkllmproxy.translate._common import Unsupported
from fkllmproxy.translate.canonical import Reasoning
from fkllmproxy.translate.codecs import gemini, messages
from fkllmproxy.translate.codecs.proofs import without_foreign_thinking, without_foreign_thoughts

CLAUDE = Unsupported("claude", "anthropic")


def _gemini_answer_with_thought() -> bytes:
    return msgspec.json.encode(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "think", "thought": True, "thoughtSignature": "R0VN"},
                            {"text": "answer"},
                        ],
                    },
                    "finishReason": "STOP",
                }
            ],
            "responseId": "r",
        }
    )


def _messages_turn(thinking_block: dict[str, Any]) -> bytes:
    return msgspec.json.encode(
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": [thinking_block, {"type": "text", "text": "a"}]},
                {"role": "user", "content": "q2"},
            ],
        }
    )


class TestGeminiThoughtsThroughAnAnthropicClient:
    def test_the_client_sees_the_signature_tagged_with_its_maker(self) -> None:
        """A Gemini thought reaches an Anthropic client as thinking signed 'gemini:...'."""
        answer = gemini.decode_answer(_gemini_answer_with_thought(), provider="g")
        assert answer.parts[0] == Reasoning(text="think", signature="gemini:R0VN")
        body = msgspec.json.decode(messages.encode_answer(answer, model="m", provider="g"))
        assert body["content"][0] == {
            "type": "thinking",
            "thinking": "think",
            "signature": "gemini:R0VN",
        }

    def test_gemini_gets_its_signature_back_and_anthropic_does_not(self) -> None:
        """Sent back, the thought goes to Gemini as its own and is left out for Anthropic."""
        block = {"type": "thinking", "thinking": "think", "signature": "gemini:R0VN"}
        conversation = messages.decode_request(_messages_turn(block), unsupported=CLAUDE)
        assert conversation.messages[1].parts[0] == Reasoning(text="think", signature="gemini:R0VN")
        to_gemini = msgspec.to_builtins(gemini.encode_request(conversation, provider="g"))
        thought = to_gemini["contents"][1]["parts"][0]
        assert thought == {"text": "think", "thought": True, "thoughtSignature": "R0VN"}
        to_claude = messages.encode_request(
            conversation, model="c", unsupported=CLAUDE, default_max_tokens=10
        ).body
        assert to_claude["messages"][1]["content"] == [{"type": "text", "text": "a"}]

    def test_anthropics_own_signature_stays_untagged_for_anthropic(self) -> None:
        """An Anthropic client's own thinking goes back to Anthropic exactly as it came."""
        block = {"type": "thinking", "thinking": "t", "signature": "QU5U"}
        conversation = messages.decode_request(_messages_turn(block), unsupported=CLAUDE)
        body = messages.encode_request(
            conversation, model="c", unsupported=CLAUDE, default_max_tokens=10
        ).body
        assert body["messages"][1]["content"][0] == block
        to_gemini = msgspec.to_builtins(gemini.encode_request(conversation, provider="g"))
        assert to_gemini["contents"][1]["parts"] == [{"text": "a"}]


class TestPassThrough:
    def test_anthropic_is_not_sent_a_gemini_signature(self) -> None:
        """A Messages request to Anthropic loses only the thinking Anthropic did not sign."""
        foreign = {"type": "thinking", "thinking": "x", "signature": "gemini:R0VN"}
        raw = _messages_turn(foreign)
        kept = msgspec.json.decode(without_foreign_thinking(raw))
        assert kept["messages"][1]["content"] == [{"type": "text", "text": "a"}]
        own = _messages_turn({"type": "thinking", "thinking": "x", "signature": "QU5U"})
        assert without_foreign_thinking(own) is own

    def test_gemini_is_not_sent_an_anthropic_signature(self) -> None:
        """A Gemini request to Google loses only the thought parts Gemini did not sign."""
        parts = [
            {"text": "x", "thought": True, "thoughtSignature": "anthropic:QU5U"},
            {"text": "a"},
        ]
        raw = msgspec.json.encode(
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "q"}]},
                    {"role": "model", "parts": parts},
                ]
            }
        )
        kept = msgspec.json.decode(without_foreign_thoughts(raw))
        assert kept["contents"][1]["parts"] == [{"text": "a"}]
        own = raw.replace(b"anthropic:", b"")
        assert without_foreign_thoughts(own) is own
