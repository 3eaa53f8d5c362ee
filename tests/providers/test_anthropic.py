"""The ``anthropic`` provider with the openai SDK: real daemon, fake Anthropic upstream.

OpenAI requests are translated to the Messages API on the way up and the answers back;
the tests check both what the SDK got and what the upstream received.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from fkllmproxy.config import load_config
from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.providers import build_provider, default_transport
from fkllmproxy.providers.anthropic import AnthropicProvider
from fkllmproxy.testing.fake_upstream import FakeUpstream, RecordedRequest
from tests.conftest import MASTER_KEY, RunningDaemon

PROVIDER_KEY = "sk-ant-provider-key"

CONFIG = """
[[providers]]
name = "claude"
type = "anthropic"
base_url = "{url}"
api_key_env = "FAKE_ANTHROPIC_KEY"
api_version = "2023-06-01"
default_max_tokens = 777
{models}
"""
BEHAVIOURS = ("ok", "tools", "tools-all", "cached", "cut-stream", "error-midstream", "fault-400")
MODELS = "".join(
    f'\n[[models]]\nname = "c-{b}"\ntargets = [{{ provider = "claude", model = "{b}" }}]\n'
    for b in BEHAVIOURS
)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def daemon(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDaemon]:
    with RunningDaemon(
        tmp_path_factory.mktemp("anthropic-provider"),
        CONFIG.format(url=upstream.url, models=MODELS),
        env={"FAKE_ANTHROPIC_KEY": PROVIDER_KEY},
    ) as running:
        yield running


def sent(upstream: FakeUpstream) -> list[RecordedRequest]:
    return [r for r in upstream.requests if r.path == "/v1/messages"]


def test_completion_and_what_upstream_got(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    """System prompt at the top level, max_tokens defaulted, key and version headers set."""
    reply = client.chat.completions.create(
        model="c-ok",
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "hello there"},
        ],
        temperature=0.5,
        stop=["STOP"],
        user="alice",
    )
    assert reply.choices[0].message.content == "echo: hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (4, 3)
    (seen,) = sent(upstream)
    assert seen.json == {
        "model": "ok",
        "max_tokens": 777,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}],
        "system": [{"type": "text", "text": "Be terse."}],
        "temperature": 0.5,
        "stop_sequences": ["STOP"],
        "metadata": {"user_id": "alice"},
    }
    assert seen.headers["x-api-key"] == PROVIDER_KEY
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert MASTER_KEY not in str(seen.headers)


def test_streaming_with_usage(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    stream = client.chat.completions.create(
        model="c-ok",
        messages=[{"role": "user", "content": "one two three"}],
        max_tokens=30,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) >= 3 and "".join(pieces) == "echo: one two three"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 4)
    (seen,) = sent(upstream)
    assert seen.json["stream"] is True and seen.json["max_tokens"] == 30


async def test_async_client(daemon: RunningDaemon, upstream: FakeUpstream) -> None:
    async with openai.AsyncOpenAI(
        base_url=daemon.url + "/v1", api_key=MASTER_KEY, max_retries=0
    ) as client:
        reply = await client.chat.completions.create(
            model="c-ok", messages=[{"role": "user", "content": "async hi"}]
        )
    assert reply.choices[0].message.content == "echo: async hi"


def test_tool_call_round_trip(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    """tool_calls come back with Anthropic's ids; the result goes up as tool_result."""
    question: dict[str, Any] = {"role": "user", "content": "Oslo"}
    first = client.chat.completions.create(
        model="c-tools", messages=[question], tools=[WEATHER], tool_choice="auto"
    )
    assert first.choices[0].finish_reason == "tool_calls"
    (call,) = first.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    second = client.chat.completions.create(
        model="c-tools",
        tools=[WEATHER],
        messages=[
            question,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "rain"},
        ],
    )
    assert second.choices[0].message.content == "tool said: rain"
    up_first, up_second = sent(upstream)
    assert up_first.json["tools"] == [
        {
            "name": "get_weather",
            "input_schema": WEATHER["function"]["parameters"],
            "description": "Weather for a city.",
        }
    ]
    assert up_first.json["tool_choice"] == {"type": "auto"}
    assistant, result = up_second.json["messages"][1:]
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": call.id, "name": "get_weather", "input": {"city": "Oslo"}}
        ],
    }
    assert result == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "rain"}],
    }


def test_streamed_tool_calls(client: openai.OpenAI) -> None:
    """Two tool calls stream as indexed deltas whose arguments join into JSON."""
    clock = {
        "type": "function",
        "function": {"name": "clock", "parameters": {"type": "object", "properties": {"tz": {}}}},
    }
    stream = client.chat.completions.create(
        model="c-tools-all",
        messages=[{"role": "user", "content": "Bergen"}],
        tools=[WEATHER, clock],
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            entry = calls.setdefault(delta.index, {"name": "", "arguments": ""})
            if delta.function and delta.function.name:
                entry["name"] = delta.function.name
            if delta.function and delta.function.arguments:
                entry["arguments"] += delta.function.arguments
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == [
        ("get_weather", {"city": "Bergen"}),
        ("clock", {"tz": "Bergen"}),
    ]
    assert finish == "tool_calls"


def test_json_mode_answers_in_text(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    reply = client.chat.completions.create(
        model="c-ok",
        messages=[{"role": "user", "content": "give json"}],
        response_format={"type": "json_object"},
    )
    assert json.loads(reply.choices[0].message.content or "") == {"input": "give json"}
    assert reply.choices[0].finish_reason == "stop"
    (seen,) = sent(upstream)
    assert seen.json["tool_choice"] == {"type": "tool", "name": "json_answer"}


def test_image_goes_up_as_base64_block(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    client.chat.completions.create(
        model="c-ok",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is it"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                    },
                ],
            }
        ],
    )
    (seen,) = sent(upstream)
    assert seen.json["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }


def test_cached_tokens_are_reported(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="c-cached", messages=[{"role": "user", "content": "a b c d"}]
    )
    assert reply.usage is not None and reply.usage.prompt_tokens == 4
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 2


def test_unsupported_field_is_a_400_naming_it(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="c-ok", messages=[{"role": "user", "content": "x"}], seed=7
        )
    assert "'seed'" in caught.value.message and "'claude' (anthropic)" in caught.value.message
    assert sent(upstream) == []


def test_provider_400_comes_back_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="c-fault-400", messages=[{"role": "user", "content": "x"}]
        )
    assert "fault-400" in caught.value.message


@pytest.mark.parametrize("model", ["c-cut-stream", "c-error-midstream"])
def test_broken_stream_ends_with_an_error_frame(daemon: RunningDaemon, model: str) -> None:
    body = {
        "model": model,
        "stream": True,
        "messages": [{"role": "user", "content": "one two three four five six"}],
    }
    response = httpx.post(
        daemon.url + "/v1/chat/completions", json=body, headers=daemon.headers(), timeout=30
    )
    frames = [f for f in response.text.split("\n\n") if f.strip()]
    assert json.loads(frames[0][6:])["object"] == "chat.completion.chunk"
    assert "error" in json.loads(frames[-1][6:])
    assert "data: [DONE]" not in response.text


async def test_config_example_block_works(tmp_path: Path) -> None:
    """The commented anthropic block in config.example.toml, uncommented, is a valid config."""
    text = (Path(__file__).parents[2] / "config.example.toml").read_text()
    block = text.split("# --- begin anthropic example ---\n")[1]
    block = block.split("# --- end anthropic example ---")[0]
    path = tmp_path / "anthropic.toml"
    path.write_text("\n".join(line.removeprefix("#").lstrip() for line in block.splitlines()))
    loaded = load_config(config_path=path, environ={"ANTHROPIC_API_KEY": "sk-ant-x"})
    provider = build_provider(loaded.config.providers[0], default_transport("httpx"))
    assert isinstance(provider, AnthropicProvider)
    assert str(provider.client.base_url) == "https://api.anthropic.com"
    assert provider.client.headers["x-api-key"] == "sk-ant-x"
    assert provider.client.headers["anthropic-version"] == "2023-06-01"
    assert loaded.config.models[0].name == "claude-sonnet-5"
    await provider.aclose()


async def test_base_url_with_v1_is_tolerated() -> None:
    """``base_url`` is the host root; a copied ``.../v1`` must not become ``/v1/v1``."""
    config = ProviderConfig(
        name="c", type="anthropic", base_url="https://gw.example/anthropic/v1/", api_key="k"
    )
    provider = build_provider(config, default_transport("httpx"))
    request = provider.client.build_request("POST", "/v1/messages")  # type: ignore[attr-defined]
    assert str(request.url) == "https://gw.example/anthropic/v1/messages"
    await provider.aclose()
