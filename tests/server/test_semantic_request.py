"""Which requests the semantic cache may answer, and which partition each one's answer is in."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fkllmproxy.server.semantic_request import SemanticQuestion, semantic_question


def question(api: Any, body: dict[str, Any], **options: Any) -> SemanticQuestion | None:
    settings = {"model": "m", "owner": "team-a", "embedding_model": "e", "allow_temperature": False}
    return semantic_question(json.dumps(body).encode(), api=api, **{**settings, **options})


SAME_REQUEST = {
    "chat": {
        "model": "m",
        "max_completion_tokens": 50,
        "stop": "END",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Why is the sky blue?"}]},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    },
    "messages": {
        "model": "m",
        "max_tokens": 50,
        "stop_sequences": ["END"],
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Why is the sky blue?"}],
    },
    "responses": {
        "model": "m",
        "instructions": "Be brief.",
        "max_output_tokens": 50,
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Why is the sky blue?"}],
            }
        ],
        "store": False,
    },
    "gemini": {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [{"role": "user", "parts": [{"text": "Why is the sky blue?"}]}],
        "generationConfig": {"maxOutputTokens": 50, "stopSequences": ["END"]},
    },
}


class TestCanonicalForm:
    def test_the_same_request_on_every_api_has_one_partition(self) -> None:
        """System prompt, token limit and stop sequences compared under one name each
        (``stop`` aside for Responses, which has none, so it is left out here)."""
        found = {api: question(api, body) for api, body in SAME_REQUEST.items()}
        assert all(q is not None and q.text == "Why is the sky blue?" for q in found.values())
        partitions = {api: q.partition for api, q in found.items() if q is not None}
        assert partitions["chat"] == partitions["messages"] == partitions["gemini"]
        chat_without_stop = {k: v for k, v in SAME_REQUEST["chat"].items() if k != "stop"}
        assert question("chat", chat_without_stop).partition == partitions["responses"]  # type: ignore[union-attr]

    @pytest.mark.parametrize(
        ("api", "change"),
        [
            ("messages", {"top_k": 5}),
            ("messages", {"thinking": {"type": "enabled", "budget_tokens": 2048}}),
            ("gemini", {"safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH"}]}),
            ("chat", {"seed": 7}),
            ("chat", {"max_completion_tokens": 51}),
            ("messages", {"system": "Be verbose."}),
        ],
        ids=["top_k", "thinking", "safety", "seed", "limit", "system"],
    )
    def test_any_other_field_or_value_is_another_partition(
        self, api: str, change: dict[str, Any]
    ) -> None:
        base = question(api, SAME_REQUEST[api])
        changed = question(api, {**SAME_REQUEST[api], **change})
        assert base is not None and changed is not None
        assert changed.partition != base.partition

    def test_model_owner_and_embedding_model_are_part_of_the_partition(self) -> None:
        base = question("chat", SAME_REQUEST["chat"])
        assert base is not None
        for option in ({"model": "other"}, {"owner": "team-b"}, {"embedding_model": "e2"}):
            other = question("chat", SAME_REQUEST["chat"], **option)
            assert other is not None and other.partition != base.partition


class TestEligibility:
    @pytest.mark.parametrize(
        ("api", "change"),
        [
            ("messages", {"tools": [{"name": "f", "input_schema": {}}]}),
            ("messages", {"temperature": 0.5}),
            (
                "messages",
                {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
            ),
            ("responses", {"previous_response_id": "resp_1"}),
            (
                "responses",
                {"input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]},
            ),
            (
                "gemini",
                {
                    "contents": [
                        {"role": "user", "parts": [{"text": "a"}]},
                        {"role": "model", "parts": [{"text": "b"}]},
                    ]
                },
            ),
            ("gemini", {"generationConfig": {"candidateCount": 2}}),
            ("chat", {"n": 2}),
        ],
        ids=[
            "tools",
            "temperature",
            "image",
            "previous",
            "tool-output",
            "turns",
            "candidates",
            "n",
        ],
    )
    def test_unsafe_requests_have_no_question(self, api: str, change: dict[str, Any]) -> None:
        assert question(api, {**SAME_REQUEST[api], **change}) is None

    def test_temperature_is_allowed_when_the_model_says_so(self) -> None:
        body = {**SAME_REQUEST["gemini"], "generationConfig": {"temperature": 0.9}}
        assert question("gemini", body) is None
        assert question("gemini", body, allow_temperature=True) is not None
        assert question(
            "gemini", {**SAME_REQUEST["gemini"], "generationConfig": {"temperature": 0}}
        )
