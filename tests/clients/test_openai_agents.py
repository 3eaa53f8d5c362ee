"""The OpenAI Agents SDK (``Runner.run``, Responses API by default) through fkllm.

Three tasks, each on a translated ``openai`` provider, a pass-through one and an
``anthropic`` one, checked against what the upstream received: a plain answer
(``Runner.run``), the same streamed (``Runner.run_streamed``, text deltas as they come),
and an agent with one function tool: the model (the fake's ``tools`` behaviour) calls
it, the SDK runs the Python function and sends its result back, and the final output is
the model's answer about it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai.types.responses import ResponseTextDeltaEvent

from fkllmproxy.testing.fake_upstream import FakeUpstream, RecordedRequest
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


async def run_agent(daemon: RunningDaemon, model: str, prompt: str, *, tools: bool = True) -> str:
    client = openai.AsyncOpenAI(base_url=daemon.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    agent = Agent(
        name="weather",
        instructions="Answer with the tool." if tools else "Answer briefly.",
        tools=[get_weather] if tools else [],
        model=OpenAIResponsesModel(model=model, openai_client=client),
    )
    try:
        result = await Runner.run(agent, prompt, max_turns=4)
    finally:
        await client.close()
    return str(result.final_output)


async def stream_agent(daemon: RunningDaemon, model: str, prompt: str) -> tuple[list[str], str]:
    """The text deltas ``Runner.run_streamed`` yielded, and the final output."""
    client = openai.AsyncOpenAI(base_url=daemon.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    agent = Agent(
        name="plain",
        instructions="Answer briefly.",
        model=OpenAIResponsesModel(model=model, openai_client=client),
    )
    deltas: list[str] = []
    try:
        result = Runner.run_streamed(agent, prompt, max_turns=2)
        async for event in result.stream_events():
            if event.type == "raw_response_event" and isinstance(
                event.data, ResponseTextDeltaEvent
            ):
                deltas.append(event.data.delta)
    finally:
        await client.close()
    return deltas, str(result.final_output)


def last_post(upstream: FakeUpstream) -> RecordedRequest:
    return [r for r in upstream.requests if r.method == "POST"][-1]


@pytest.mark.parametrize("provider", ["oai", "native", "claude"])
def test_runner_plain_answer(daemon: RunningDaemon, upstream: FakeUpstream, provider: str) -> None:
    """An agent without tools answers; the upstream got the instructions and the prompt."""
    upstream.clear()
    output = asyncio.run(
        asyncio.wait_for(run_agent(daemon, f"{provider}-ok", "hello agents", tools=False), 60)
    )
    assert output == "echo: hello agents"
    sent = last_post(upstream)
    if provider == "native":
        assert sent.path == "/v1/responses"
        assert sent.json["instructions"] == "Answer briefly."
    elif provider == "oai":
        assert sent.json["messages"][0] == {"role": "system", "content": "Answer briefly."}
        assert sent.json["messages"][-1]["content"] == "hello agents"
    else:
        assert sent.path == "/v1/messages" and "Answer briefly." in str(sent.json["system"])


@pytest.mark.parametrize("provider", ["oai", "native", "claude"])
def test_runner_streamed(daemon: RunningDaemon, upstream: FakeUpstream, provider: str) -> None:
    """``Runner.run_streamed`` gets the answer as several text deltas, then the whole of it."""
    upstream.clear()
    deltas, output = asyncio.run(
        asyncio.wait_for(stream_agent(daemon, f"{provider}-ok", "stream for the agent"), 60)
    )
    assert output == "echo: stream for the agent" == "".join(deltas)
    assert len(deltas) > 1
    assert last_post(upstream).json["stream"] is True


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
