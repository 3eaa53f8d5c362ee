"""The fake speaks Anthropic's Messages API: proven with the official anthropic SDK."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest

from fkllmproxy.testing.fake_upstream import FakeUpstream

HEADERS = {"x-api-key": "ak-test", "anthropic-version": "2023-06-01"}
USER = [{"role": "user", "content": "hello brave new world"}]
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def sdk(up: FakeUpstream) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=up.url, api_key="ak-test", max_retries=0, timeout=10)


def post(
    up: FakeUpstream, body: dict[str, Any], headers: dict[str, str] = HEADERS
) -> httpx.Response:
    return httpx.post(up.url + "/v1/messages", json=body, headers=headers, timeout=10)


def events(up: FakeUpstream, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, data) pairs of a streamed answer, checking the two fit."""
    with httpx.stream(
        "POST", up.url + "/v1/messages", json={**body, "stream": True}, headers=HEADERS
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    pairs = []
    for frame in text.strip().split("\n\n"):
        name_line, data_line = frame.split("\n")
        name, data = name_line.removeprefix("event: "), json.loads(data_line.removeprefix("data: "))
        assert data["type"] == name
        pairs.append((name, data))
    return pairs


class TestMessages:
    def test_create_echoes_and_counts(self, fake_upstream: FakeUpstream) -> None:
        message = sdk(fake_upstream).messages.create(
            model="claude-test", max_tokens=100, system="be brief", messages=USER
        )
        assert message.content[0].type == "text"
        assert message.content[0].text == "echo: hello brave new world"
        assert message.stop_reason == "end_turn"
        assert message.model == "claude-test"
        assert (message.usage.input_tokens, message.usage.output_tokens) == (6, 5)
        seen = fake_upstream.requests[-1]
        assert seen.headers["anthropic-version"]
        assert seen.json["system"] == "be brief"

    def test_stream_event_sequence(self, fake_upstream: FakeUpstream) -> None:
        pairs = events(fake_upstream, {"model": "m", "max_tokens": 50, "messages": USER})
        names = [name for name, _ in pairs]
        assert names == [
            "message_start",
            "content_block_start",
            "ping",
            *["content_block_delta"] * 5,
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
        deltas = [data["delta"] for name, data in pairs if name == "content_block_delta"]
        assert all(delta["type"] == "text_delta" for delta in deltas)
        assert "".join(d["text"] for d in deltas) == "echo: hello brave new world"
        final = pairs[-2][1]
        assert final["delta"]["stop_reason"] == "end_turn"
        assert final["usage"]["output_tokens"] == 5
        assert pairs[0][1]["message"]["usage"]["input_tokens"] == 4

    def test_sdk_stream(self, fake_upstream: FakeUpstream) -> None:
        with sdk(fake_upstream).messages.stream(model="m", max_tokens=50, messages=USER) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert text == "echo: hello brave new world"
        assert final.usage.output_tokens == 5

    def test_tool_use_streamed_then_answered(self, fake_upstream: FakeUpstream) -> None:
        client = sdk(fake_upstream)
        asked = [{"role": "user", "content": "Paris"}]
        with client.messages.stream(
            model="tools", max_tokens=50, messages=asked, tools=[WEATHER]
        ) as stream:
            first = stream.get_final_message()
        (use,) = first.content
        assert use.type == "tool_use" and use.name == "get_weather"
        assert use.input == {"city": "Paris"}
        assert first.stop_reason == "tool_use"
        result = {"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}
        follow = [
            *asked,
            {"role": "assistant", "content": [use.model_dump()]},
            {"role": "user", "content": [result]},
        ]
        second = client.messages.create(
            model="tools", max_tokens=50, messages=follow, tools=[WEATHER]
        )
        assert second.content[0].type == "text"
        assert second.content[0].text == "tool said: sunny"

    def test_input_json_deltas_rebuild_the_input(self, fake_upstream: FakeUpstream) -> None:
        body = {"model": "tools", "max_tokens": 50, "messages": USER, "tools": [WEATHER]}
        pairs = events(fake_upstream, body)
        start = next(d for n, d in pairs if n == "content_block_start")
        assert start["content_block"]["type"] == "tool_use"
        assert start["content_block"]["input"] == {}
        partial = "".join(
            d["delta"]["partial_json"] for n, d in pairs if n == "content_block_delta"
        )
        assert json.loads(partial) == {"city": "hello brave new world"}

    def test_forced_tool_choice(self, fake_upstream: FakeUpstream) -> None:
        message = sdk(fake_upstream).messages.create(
            model="plain",
            max_tokens=50,
            messages=USER,
            tools=[WEATHER],
            tool_choice={"type": "tool", "name": "get_weather"},
        )
        assert message.content[0].type == "tool_use"

    def test_stop_sequence_and_max_tokens(self, fake_upstream: FakeUpstream) -> None:
        client = sdk(fake_upstream)
        stopped = client.messages.create(
            model="m", max_tokens=50, messages=USER, stop_sequences=["new"]
        )
        assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "new"
        assert stopped.content[0].type == "text"
        assert stopped.content[0].text == "echo: hello brave "
        cut = client.messages.create(model="m", max_tokens=2, messages=USER)
        assert cut.stop_reason == "max_tokens"

    def test_cached_tokens_are_cache_reads(self, fake_upstream: FakeUpstream) -> None:
        message = sdk(fake_upstream).messages.create(model="cached", max_tokens=50, messages=USER)
        assert message.usage.cache_read_input_tokens == 2
        assert message.usage.input_tokens == 2  # Anthropic's input_tokens exclude cache reads

    def test_count_tokens(self, fake_upstream: FakeUpstream) -> None:
        counted = sdk(fake_upstream).messages.count_tokens(model="m", system="x y", messages=USER)
        assert counted.input_tokens == 6


class TestRequestRules:
    def test_key_and_version_required(self, fake_upstream: FakeUpstream) -> None:
        body = {"model": "m", "max_tokens": 5, "messages": USER}
        no_key = post(fake_upstream, body, {"anthropic-version": "2023-06-01"})
        assert no_key.status_code == 401
        assert no_key.json()["type"] == "error"
        assert no_key.json()["error"]["type"] == "authentication_error"
        no_version = post(fake_upstream, body, {"x-api-key": "k"})
        assert no_version.status_code == 400
        assert "anthropic-version" in no_version.json()["error"]["message"]
        bearer = {"authorization": "Bearer k", "anthropic-version": "2023-06-01"}
        assert post(fake_upstream, body, bearer).status_code == 200

    @pytest.mark.parametrize(
        ("body", "fragment"),
        [
            ({"model": "m", "messages": USER}, "max_tokens: Field required"),
            ({"model": "m", "max_tokens": 5, "messages": USER, "n": 2}, "n: Extra inputs"),
            ({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
             'Unexpected role "system"'),
            ({"model": "m", "max_tokens": 5,
              "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
             "text content blocks must be non-empty"),
            ({"model": "m", "max_tokens": 5,
              "messages": [*USER, {"role": "assistant", "content": ""}, *USER]},
             "must have non-empty content"),
            ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_x", "content": "r"}]}]},
             "unexpected `tool_use_id`"),
            ({"model": "m", "max_tokens": 5, "messages": [
                *USER,
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
                *USER]},
             "without `tool_result`"),
            ({"model": "m", "max_tokens": 5, "messages": USER,
              "tools": [{"name": "f", "parameters": {}}]},
             "input_schema"),
        ],
    )  # fmt: skip
    def test_rejected_like_anthropic(
        self, fake_upstream: FakeUpstream, body: dict[str, Any], fragment: str
    ) -> None:
        response = post(fake_upstream, body)
        assert response.status_code == 400
        error = response.json()
        assert error["type"] == "error"
        assert error["error"]["type"] == "invalid_request_error"
        assert fragment in error["error"]["message"]
        assert error["request_id"]

    def test_final_assistant_prefill_may_be_empty(self, fake_upstream: FakeUpstream) -> None:
        body = {
            "model": "m",
            "max_tokens": 5,
            "messages": [*USER, {"role": "assistant", "content": ""}],
        }
        assert post(fake_upstream, body).status_code == 200


class TestFaults:
    @pytest.mark.parametrize(
        ("model", "error", "status"),
        [
            ("fault-529", anthropic.InternalServerError, 529),
            ("fault-500", anthropic.InternalServerError, 500),
            ("fault-429-retry-4", anthropic.RateLimitError, 429),
            ("fault-400", anthropic.BadRequestError, 400),
            ("fault-401", anthropic.AuthenticationError, 401),
        ],
    )
    def test_status_faults_in_anthropic_shape(
        self, fake_upstream: FakeUpstream, model: str, error: type[Exception], status: int
    ) -> None:
        with pytest.raises(error) as caught:
            sdk(fake_upstream).messages.create(model=model, max_tokens=5, messages=USER)
        assert isinstance(caught.value, anthropic.APIStatusError)
        assert caught.value.status_code == status
        if status == 429:
            assert caught.value.response.headers["retry-after"] == "4"

    def test_error_event_midstream(self, fake_upstream: FakeUpstream) -> None:
        pairs = events(
            fake_upstream, {"model": "error-midstream", "max_tokens": 50, "messages": USER}
        )
        assert pairs[0][0] == "message_start"
        assert pairs[-1][0] == "error"
        assert pairs[-1][1]["error"]["type"] == "overloaded_error"
        assert "message_stop" not in [name for name, _ in pairs]
        with (
            pytest.raises(anthropic.APIStatusError),
            sdk(fake_upstream).messages.stream(
                model="error-midstream", max_tokens=50, messages=USER
            ) as stream,
        ):
            for _ in stream:
                pass

    def test_cut_stream(self, fake_upstream: FakeUpstream) -> None:
        body = {"model": "cut-stream", "max_tokens": 50, "messages": USER, "stream": True}
        with (
            pytest.raises(httpx.RemoteProtocolError),
            httpx.stream(
                "POST", fake_upstream.url + "/v1/messages", json=body, headers=HEADERS
            ) as response,
        ):
            response.read()

    def test_safety_is_refusal(self, fake_upstream: FakeUpstream) -> None:
        message = sdk(fake_upstream).messages.create(
            model="fault-safety", max_tokens=5, messages=USER
        )
        assert message.stop_reason == "refusal"
        assert message.content == []


MID_SYSTEM = {**HEADERS, "anthropic-beta": "mid-conversation-system-2026-04-07"}


class TestNewerFeatures:
    def test_system_message_after_a_user_turn_with_the_beta(
        self, fake_upstream: FakeUpstream
    ) -> None:
        """Mid-conversation system messages are taken under their beta, after a user turn."""
        messages = [{"role": "user", "content": "hi"}, {"role": "system", "content": "Be Go."}]
        body = {"model": "m", "max_tokens": 20, "messages": messages}
        assert post(fake_upstream, body, MID_SYSTEM).status_code == 200
        assert post(fake_upstream, body).status_code == 400

    @pytest.mark.parametrize(
        ("messages", "wording"),
        [
            ([{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}], "first"),
            (
                [
                    {"role": "user", "content": "hi"},
                    {"role": "system", "content": "a"},
                    {"role": "system", "content": "b"},
                ],
                "consecutive",
            ),
            (
                [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "system",
                        "content": [{"type": "image", "source": {"type": "url", "url": "u"}}],
                    },
                ],
                "text blocks only",
            ),
        ],
    )
    def test_system_message_placement_rules(
        self, fake_upstream: FakeUpstream, messages: list[Any], wording: str
    ) -> None:
        """Not first, never next to another, text only: else a 400 as the API gives."""
        body = {"model": "m", "max_tokens": 20, "messages": messages}
        response = post(fake_upstream, body, MID_SYSTEM)
        assert response.status_code == 400 and wording in response.json()["error"]["message"]

    def test_thinking_behaviour_signs_and_checks_its_thinking(
        self, fake_upstream: FakeUpstream
    ) -> None:
        """thinking: a signed thinking block first; a tool turn sent back without it is refused."""
        client = sdk(fake_upstream)
        thinking: Any = {"type": "enabled", "budget_tokens": 1024}
        question: Any = {"role": "user", "content": "Oslo"}
        first = client.messages.create(
            model="thinking",
            max_tokens=2048,
            thinking=thinking,
            tools=[WEATHER],
            messages=[question],
        )
        thought, use = first.content
        assert thought.type == "thinking" and thought.signature
        assert use.type == "tool_use"
        result: Any = {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "ok"}],
        }
        stripped: Any = {"role": "assistant", "content": [use]}
        with pytest.raises(anthropic.BadRequestError, match="must start with a thinking block"):
            client.messages.create(
                model="thinking",
                max_tokens=2048,
                thinking=thinking,
                tools=[WEATHER],
                messages=[question, stripped, result],
            )

    def test_a_tampered_thinking_signature_is_refused(self, fake_upstream: FakeUpstream) -> None:
        """Thinking sent back with another signature than the one issued: a 400."""
        client = sdk(fake_upstream)
        thinking: Any = {"type": "adaptive"}
        question: Any = {"role": "user", "content": "Oslo"}
        first = client.messages.create(
            model="thinking",
            max_tokens=2048,
            thinking=thinking,
            tools=[WEATHER],
            messages=[question],
        )
        thought, use = first.content
        assert thought.type == "thinking" and use.type == "tool_use"
        forged: Any = {"type": "thinking", "thinking": thought.thinking, "signature": "Zm9yZ2Vk"}
        result: Any = {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "ok"}],
        }
        with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
            client.messages.create(
                model="thinking",
                max_tokens=2048,
                thinking=thinking,
                tools=[WEATHER],
                messages=[question, {"role": "assistant", "content": [forged, use]}, result],
            )

    def test_cache_write_behaviour_reports_cache_creation(
        self, fake_upstream: FakeUpstream
    ) -> None:
        """cache-write: half the prompt reported as written to the cache."""
        body = {
            "model": "cache-write",
            "max_tokens": 20,
            "messages": [{"role": "user", "content": "a b c d"}],
        }
        usage = post(fake_upstream, body).json()["usage"]
        assert (usage["input_tokens"], usage["cache_creation_input_tokens"]) == (2, 2)
