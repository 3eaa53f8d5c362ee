"""The OpenAI Agents SDK (``Runner.run``, Responses API by default) through fkllm.

An agent with one function tool: the model (the fake's ``tools`` behaviour) calls it,
the SDK runs the Python function and sends its result back, and the final output is the
model's answer about it; checked on a translated ``openai`` provider, a pass-through
one and an ``anthropic`` one, with what the upstream received.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

from fkllmproxy.testing.fake_upstream import FakeUpstream
from tests.clients._responses_setup import responses_config
from tests.conftest import MASTER_KEY, RunningDaemon

set_tracing_disabled(True)  # no trace export to any host


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@pytest.fixture(scope="module")
def daemon(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDaemon]:
    config = responses_config(upstream.url)
    with RunningDaemon(tmp_path_factory.mktemp("agents"), config) as running:
        yield running


async def run_agent(daemon: RunningDaemon, model: str, prompt: str) -> str:
    client = openai.AsyncOpenAI(base_url=daemon.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    agent = Agent(
        name="weather",
        instructions="Answer with the tool.",
        tools=[get_weather],
        model=OpenAIResponsesModel(model=model, openai_client=client),
    )
    try:
        result = await Runner.run(agent, prompt, max_turns=4)
    finally:
        await client.close()
    return str(result.final_output)


@pytest.mark.parametrize("provider", ["oai", "native", "claude"])
def test_runner_with_a_function_tool(
    daemon: RunningDaemon, upstream: FakeUpstream, provider: str
) -> None:
    upstream.clear()
    output = asyncio.run(asyncio.wait_for(run_agent(daemon, f"{provider}-tools", "Paris"), 60))
    assert output == "tool said: sunny in Paris"
    sent = [r for r in upstream.requests if r.method == "POST"]
    assert len(sent) == 2
    if provider == "oai":
        assert sent[1].json["messages"][-1] == {
            "role": "tool",
            "tool_call_id": sent[1].json["messages"][-2]["tool_calls"][0]["id"],
            "content": "sunny in Paris",
        }
    elif provider == "native":
        assert sent[1].path == "/v1/responses"
        assert sent[1].json["input"][-1]["output"] == "sunny in Paris"
    else:
        result = sent[1].json["messages"][-1]["content"][-1]
        assert result["type"] == "tool_result" and "sunny in Paris" in str(result["content"])
