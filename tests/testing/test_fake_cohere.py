"""The fake speaks Cohere's v2 Chat and Embed APIs as Cohere's reference describes them."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from fkllmproxy.testing.fake_upstream import FakeUpstream

AUTH = {"authorization": "Bearer co-key"}
USER = {"role": "user", "content": "hello brave new world"}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def chat(up: FakeUpstream, body: dict[str, Any], headers: Any = AUTH) -> httpx.Response:
    return httpx.post(up.url + "/v2/chat", json=body, headers=headers, timeout=10)


def events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(the ``event:`` name, the data) of every event of a stream."""
    found = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        found.append((lines["event"], json.loads(lines["data"])))
    return found


class TestChat:
    def test_answer_shape(self, fake_upstream: FakeUpstream) -> None:
        """V2ChatResponse: id, finish_reason, message content blocks, billed and raw usage."""
        answer = chat(fake_upstream, {"model": "command-a", "messages": [USER]}).json()
        assert answer["finish_reason"] == "COMPLETE"
        assert answer["message"]["content"] == [
            {"type": "text", "text": "echo: hello brave new world"}
        ]
        usage = answer["usage"]
        assert usage["billed_units"] == {"input_tokens": 4, "output_tokens": 5}
        assert usage["tokens"]["input_tokens"] > usage["billed_units"]["input_tokens"]

    def test_stream_events_in_the_documented_order(self, fake_upstream: FakeUpstream) -> None:
        reply = chat(fake_upstream, {"model": "command-a", "messages": [USER], "stream": True})
        assert reply.headers["content-type"].startswith("text/event-stream")
        found = events(reply.text)
        kinds = [name for name, _ in found]
        assert kinds[:2] == ["message-start", "content-start"]
        assert kinds[-2:] == ["content-end", "message-end"]
        assert all(name == data["type"] for name, data in found)
        text = "".join(
            d["delta"]["message"]["content"]["text"] for n, d in found if n == "content-delta"
        )
        assert text == "echo: hello brave new world"
        assert found[-1][1]["delta"]["finish_reason"] == "COMPLETE"

    def test_tool_call_stream(self, fake_upstream: FakeUpstream) -> None:
        body = {"model": "tools", "messages": [USER], "tools": [WEATHER], "stream": True}
        kinds = [name for name, _ in events(chat(fake_upstream, body).text)]
        assert "tool-plan-delta" in kinds
        assert kinds.index("tool-call-start") < kinds.index("tool-call-delta")
        assert kinds[-2:] == ["tool-call-end", "message-end"]

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"messages": [USER]}, "a model parameter is required"),
            ({"model": "m", "messages": [USER], "top_p": 1}, "top_p is not a valid field"),
            (
                {"model": "m", "messages": [USER, {"role": "system", "content": "late"}]},
                "system turn must be the first in the list",
            ),
            ({"model": "m", "messages": [{"role": "user", "content": ""}]}, "must not be empty"),
            (
                {
                    "model": "m",
                    "messages": [USER, {"role": "tool", "tool_call_id": "x", "content": "r"}],
                },
                "does not match a tool call",
            ),
            ({"model": "m", "messages": [USER], "tool_choice": "AUTO"}, "tool_choice"),
        ],
    )
    def test_invalid_requests_are_400_with_a_message(
        self, fake_upstream: FakeUpstream, body: dict[str, Any], message: str
    ) -> None:
        reply = chat(fake_upstream, body)
        assert reply.status_code == 400
        assert message in reply.json()["message"]

    def test_key_required(self, fake_upstream: FakeUpstream) -> None:
        reply = chat(fake_upstream, {"model": "m", "messages": [USER]}, headers={})
        assert reply.status_code == 401 and "message" in reply.json()


class TestEmbed:
    def test_embeddings_by_type(self, fake_upstream: FakeUpstream) -> None:
        body = {
            "model": "embed-v4.0",
            "texts": ["a", "b"],
            "input_type": "search_query",
            "embedding_types": ["float", "int8"],
            "output_dimension": 4,
        }
        answer = httpx.post(fake_upstream.url + "/v2/embed", json=body, headers=AUTH).json()
        assert [len(v) for v in answer["embeddings"]["float"]] == [4, 4]
        assert all(isinstance(x, int) for x in answer["embeddings"]["int8"][0])
        assert answer["meta"]["billed_units"] == {"input_tokens": 2}

    def test_input_type_required(self, fake_upstream: FakeUpstream) -> None:
        body = {"model": "embed-v4.0", "texts": ["a"]}
        reply = httpx.post(fake_upstream.url + "/v2/embed", json=body, headers=AUTH)
        assert reply.status_code == 400
        assert "valid input_type must be provided" in reply.json()["message"]
