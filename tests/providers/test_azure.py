"""The ``azure`` provider end to end: real daemon, fake Azure OpenAI upstream, openai SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from fkllmproxy.testing.fake_upstream import FakeUpstream
from tests.conftest import MASTER_KEY, RunningDaemon, only_request

AZURE_KEY = "azure-resource-key-0123"

CONFIG = """
[[providers]]
name = "az"
type = "azure"
base_url = "{url}"
api_key_env = "AZURE_OPENAI_API_KEY"

[[providers]]
name = "az-preview"
type = "azure"
base_url = "{url}/"
api_key_env = "AZURE_OPENAI_API_KEY"
api_version = "2025-01-01-preview"

[[models]]
name = "gpt-4o"
targets = [{{ provider = "az", model = "prod-gpt4o" }}]

[[models]]
name = "preview"
targets = [{{ provider = "az-preview", model = "preview-deploy" }}]

[[models]]
name = "tools"
targets = [{{ provider = "az", model = "tools" }}]

[[models]]
name = "embed"
targets = [{{ provider = "az", model = "embed-small" }}]

[[models]]
name = "rejects"
targets = [{{ provider = "az", model = "fault-400" }}]
"""


@pytest.fixture(scope="module")
def daemon(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDaemon]:
    with RunningDaemon(
        tmp_path_factory.mktemp("azure"),
        CONFIG.format(url=upstream.url),
        env={"AZURE_OPENAI_API_KEY": AZURE_KEY},
    ) as running:
        yield running


def hello(text: str = "hello azure") -> list[Any]:
    return [{"role": "user", "content": text}]


def test_completion_uses_the_deployment_url_version_and_key(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    reply = client.chat.completions.create(model="gpt-4o", messages=hello())
    assert reply.choices[0].message.content == "echo: hello azure"
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    seen = only_request(upstream)
    assert seen.path == "/openai/deployments/prod-gpt4o/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.headers["api-key"] == AZURE_KEY
    assert "authorization" not in seen.headers
    assert seen.json["messages"] == hello()


def test_configured_api_version(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    client.chat.completions.create(model="preview", messages=hello())
    seen = only_request(upstream)
    assert seen.path == "/openai/deployments/preview-deploy/chat/completions"
    assert seen.query["api-version"] == "2025-01-01-preview"


async def test_async_client(daemon: RunningDaemon, upstream: FakeUpstream) -> None:
    upstream.clear()
    async with openai.AsyncOpenAI(
        base_url=daemon.url + "/v1", api_key=MASTER_KEY, max_retries=0
    ) as client:
        reply = await client.chat.completions.create(model="gpt-4o", messages=hello("async"))
    assert reply.choices[0].message.content == "echo: async"


def test_streaming_with_usage(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=hello("one two three"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert only_request(upstream).json["stream"] is True


def test_tools_round_trip(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    tools: list[Any] = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ]
    first = client.chat.completions.create(model="tools", messages=hello("find it"), tools=tools)
    (call,) = first.choices[0].message.tool_calls or []
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "lookup"
    assert only_request(upstream).json["tools"] == tools
    upstream.clear()
    second = client.chat.completions.create(
        model="tools",
        messages=[
            *hello("find it"),
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "found"},
        ],
        tools=tools,
    )
    assert second.choices[0].finish_reason == "stop"
    sent = only_request(upstream).json["messages"]
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "found"}


def test_embeddings(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    result = client.embeddings.create(model="embed", input=["a", "b"], dimensions=8)
    assert [len(item.embedding) for item in result.data] == [8, 8]
    seen = only_request(upstream)
    assert seen.path == "/openai/deployments/embed-small/embeddings"
    assert seen.query == {"api-version": "2024-10-21"}


def test_rejection_comes_back_as_400_with_azures_message(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="rejects", messages=hello())
    assert "fault-400" in str(caught.value.message)
