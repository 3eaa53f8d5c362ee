"""The official anthropic SDK through fkllm serve: a plain answer, and a thinking,
tool-using turn streamed, on an Anthropic, an OpenAI-compatible and a Gemini provider.

The plain answer (``messages.create``) checks what the upstream got in its own format.
What ``tests/server/test_anthropic_api.py`` does not cover: extended thinking with a tool
round trip, streamed, against an Anthropic provider (the signed thinking block must come
back unchanged, which the fake upstream checks as the API does), an OpenAI-compatible
one (thinking becomes ``reasoning_effort``; the host's ``reasoning_content`` comes back
as a thinking block) and Gemini (a thinking budget with ``includeThoughts``; the thought
summary comes back as a thinking block).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from fkllmproxy.testing.fake_upstream import FakeUpstream, RecordedRequest
from tests.conftest import MASTER_KEY, RunningDaemon

CONFIG = """
[[providers]]
name = "claude"
type = "anthropic"
base_url = "{url}"
api_key_env = "FAKE_KEY"

[[providers]]
name = "oai"
type = "openai"
base_url = "{url}/v1"
api_key_env = "FAKE_KEY"

[[providers]]
name = "gem"
type = "gemini"
base_url = "{url}"
api_key_env = "FAKE_KEY"

[[models]]
name = "claude-ok"
targets = [{{ provider = "claude", model = "ok" }}]

[[models]]
name = "oai-ok"
targets = [{{ provider = "oai", model = "ok" }}]

[[models]]
name = "gem-ok"
targets = [{{ provider = "gem", model = "ok" }}]

[[models]]
name = "gem-think"
targets = [{{ provider = "gem", model = "thinking" }}]

[[models]]
name = "claude-think"
targets = [{{ provider = "claude", model = "thinking" }}]

[[models]]
name = "oai-think"
targets = [{{ provider = "oai", model = "thinking" }}]
"""

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
THINKING: Any = {"type": "enabled", "budget_tokens": 2048}


@pytest.fixture(scope="module")
def daemon(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDaemon]:
    tmp = tmp_path_factory.mktemp("anthropic-sdk")
    with RunningDaemon(tmp, CONFIG.format(url=upstream.url), env={"FAKE_KEY": "k"}) as running:
        yield running


def model_calls(upstream: FakeUpstream) -> list[RecordedRequest]:
    paths = ("/v1/messages", "/v1/chat/completions", ":streamGenerateContent")
    return [r for r in upstream.requests if r.path.endswith(paths)]


@pytest.mark.parametrize("provider", ["claude", "oai", "gem"])
def test_plain_answer(daemon: RunningDaemon, upstream: FakeUpstream, provider: str) -> None:
    """``messages.create`` answers with text and usage; the system prompt reaches the upstream
    in its own format."""
    upstream.clear()
    client = anthropic.Anthropic(base_url=daemon.url, api_key=MASTER_KEY, max_retries=0)
    message = client.messages.create(
        model=f"{provider}-ok",
        max_tokens=256,
        system="Be brief.",
        messages=[{"role": "user", "content": "plain from the SDK"}],
    )
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: plain from the SDK"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    (sent,) = [r for r in upstream.requests if r.method == "POST"]
    if provider == "claude":
        assert sent.json["system"] == "Be brief." and sent.json["model"] == "ok"
    elif provider == "oai":
        assert sent.json["messages"][0] == {"role": "system", "content": "Be brief."}
    else:
        assert sent.path.endswith("/models/ok:generateContent")
        assert sent.json["systemInstruction"]["parts"] == [{"text": "Be brief."}]


@pytest.mark.parametrize("model", ["claude-think", "oai-think", "gem-think"])
def test_streamed_thinking_and_tool_round_trip(
    daemon: RunningDaemon, upstream: FakeUpstream, model: str
) -> None:
    """Think, call a tool, get its result, answer: all streamed, the thinking carried."""
    upstream.clear()
    client = anthropic.Anthropic(base_url=daemon.url, api_key=MASTER_KEY, max_retries=0)
    question: Any = {"role": "user", "content": "Oslo"}
    with client.messages.stream(
        model=model, max_tokens=4096, thinking=THINKING, tools=[WEATHER], messages=[question]
    ) as stream:
        first = stream.get_final_message()
    kinds = [block.type for block in first.content]
    assert kinds == ["thinking", "tool_use"], kinds
    thought, use = first.content
    assert thought.type == "thinking" and "Oslo" in thought.thinking
    assert use.type == "tool_use" and use.input == {"city": "Oslo"}
    assert first.stop_reason == "tool_use"

    result: Any = {"type": "tool_result", "tool_use_id": use.id, "content": "snow"}
    with client.messages.stream(
        model=model,
        max_tokens=4096,
        thinking=THINKING,
        tools=[WEATHER],
        messages=[
            question,
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [result]},
        ],
    ) as stream:
        text = "".join(stream.text_stream)
        second = stream.get_final_message()
    assert text == "tool said: snow"
    assert second.stop_reason == "end_turn"

    up_first, up_second = model_calls(upstream)
    if model == "claude-think":
        # The fake refuses a tool turn whose thinking does not carry its own signature.
        assert thought.signature and up_first.json["thinking"] == THINKING
        sent_back = up_second.json["messages"][1]["content"][0]
        assert sent_back["type"] == "thinking" and sent_back["signature"] == thought.signature
    elif model == "gem-think":
        assert thought.signature == ""
        config = up_first.json["generationConfig"]["thinkingConfig"]
        # The client's own budget, not the nearest OpenAI effort's (no Chat in between).
        assert config == {"thinkingBudget": THINKING["budget_tokens"], "includeThoughts": True}
        parts = [p for c in up_second.json["contents"] for p in c["parts"]]
        (answered,) = [p["functionResponse"] for p in parts if "functionResponse" in p]
        assert answered["name"] == "get_weather"
    else:
        assert thought.signature == ""
        assert up_first.json["reasoning_effort"] == "low"
        tool_message = up_second.json["messages"][-1]
        assert tool_message == {"role": "tool", "tool_call_id": use.id, "content": "snow"}
