"""The input-token estimate for providers that cannot count Anthropic requests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fkllmproxy.translate.token_estimate import estimate_input_tokens
from fkllmproxy.wire.anthropic import count_tokens_decoder

IMAGE = {
    "type": "image",
    "source": {"type": "base64", "media_type": "image/png", "data": "x" * 5000},
}


def estimate(**fields: Any) -> int:
    body = {"model": "m", **fields}
    return estimate_input_tokens(count_tokens_decoder.decode(json.dumps(body).encode()))


@pytest.mark.parametrize(
    ("fields", "tokens"),
    [
        # 8 characters = 2 tokens, plus 4 for the one message
        ({"messages": [{"role": "user", "content": "abcdefgh"}]}, 6),
        # rounded up: 9 characters = 3 tokens
        ({"messages": [{"role": "user", "content": "abcdefghi"}]}, 7),
        # the system prompt counts, as string or blocks
        ({"system": "abcd", "messages": [{"role": "user", "content": "abcd"}]}, 6),
        (
            {
                "system": [{"type": "text", "text": "abcd"}],
                "messages": [{"role": "user", "content": "abcd"}],
            },
            6,
        ),
        # an image is a flat 1,600, whatever its base64 length
        ({"messages": [{"role": "user", "content": [IMAGE]}]}, 1604),
        # tool results count their text and attachments
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "ab", "input": {}}],
                    },
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "t",
                                "content": [{"type": "text", "text": "abcd"}, IMAGE],
                            }
                        ],
                    },
                ]
            },
            # "ab" + "{}" = 4 chars, "abcd" = 4 chars -> 2 tokens; one image; two messages
            2 + 1600 + 8,
        ),
    ],
)
def test_estimates(fields: dict[str, Any], tokens: int) -> None:
    assert estimate(**fields) == tokens


def test_tool_definitions_count() -> None:
    """Tool definitions count as their JSON: characters of text and tools, / 4, rounded up."""
    messages = [{"role": "user", "content": "abcd"}]
    tools = [{"name": "search", "input_schema": {"type": "object"}}]
    characters = 4 + len(json.dumps(tools, separators=(",", ":")))
    assert estimate(messages=messages, tools=tools) == -(-characters // 4) + 4
