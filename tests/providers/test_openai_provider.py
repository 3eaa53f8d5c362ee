"""The ``openai`` provider end to end: real daemon, fake OpenAI upstream, openai SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from fkllmproxy.testing.fake_upstream import FakeUpstream
from tests.conftest import MASTER_KEY, RunningDaemon

PROVIDER_KEY = "sk-upstream-provider-key"

CONFIG = """
[[providers]]
name = "fake"
type = "openai"
base_url = "{url}/v1"
api_key_env = "FAKE_UPSTREAM_KEY"

[[models]]
name = "chat"
targets = [{{ provider = "fake", model = "gpt-4o-mini" }}]

[[models]]
name = "rejects"
targets = [{{ provider = "fake", model = "fault-400" }}]

[[models]]
name = "broken"
targets = [{{ provider = "fake", model = "fault-500" }}]
"""


@pytest.fixture(scope="module")
def daemon(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDaemon]:
    with RunningDaemon(
        tmp_path_factory.mktemp("openai-provider"),
        CONFIG.format(url=upstream.url),
        env={"FAKE_UPSTREAM_KEY": PROVIDER_KEY},
    ) as running:
        yield running


def upstream_chats(upstream: FakeUpstream) -> list[Any]:
    return [r for r in upstream.requests if r.path == "/v1/chat/completions"]


def test_completion_goes_through(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    """The client gets the upstream's answer; upstream gets its model and our key."""
    reply = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "hi there"}],
        extra_body={"vendor_knob": {"depth": 3}, "seed": 7},
    )
    assert reply.choices[0].message.content == "echo: hi there"
    assert reply.usage is not None and reply.usage.total_tokens == 5
    (seen,) = upstream_chats(upstream)
    assert seen.json["model"] == "gpt-4o-mini"
    assert seen.json["vendor_knob"] == {"depth": 3}
    assert seen.json["seed"] == 7
    assert seen.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert MASTER_KEY not in str(seen.headers)


def test_streaming_chunks_arrive(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    stream = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) >= 3
    assert "".join(pieces) == "echo: one two three"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    (seen,) = upstream_chats(upstream)
    assert seen.json["stream"] is True
    assert seen.json["stream_options"] == {"include_usage": True}


def test_upstream_400_comes_back_with_its_message(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="rejects", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 400
    assert "fault-400" in str(caught.value.message)


def test_upstream_500_on_only_target_is_502(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="broken", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 502
