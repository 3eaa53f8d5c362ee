"""LangChain's ``ChatOpenAI`` with ``use_responses_api=True`` through fkllm.

LangChain sends the Responses API when asked to (and for some models by default): a
plain answer, a streamed one, and a tool call whose result goes back in the next turn,
each on a translated ``openai`` provider, a pass-through one (``responses_api = true``)
and an ``anthropic`` one, with what the upstream received.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from fkllmproxy.testing.fake_upstream import FakeUpstream, RecordedRequest
from tests.clients._responses_setup import responses_config
from tests.conftest import MASTER_KEY, RunningDaemon

PROVIDERS = ["oai", "native", "claude"]


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"windy in {city}"


@pytest.fixture(scope="module")
def daemon(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDaemon]:
    with RunningDaemon(tmp_path_factory.mktemp("langchain"), responses_config(upstream.url)) as d:
        yield d


def chat(daemon: RunningDaemon, model: str) -> ChatOpenAI:
    return ChatOpenAI(
        model=model,
        base_url=daemon.url + "/v1",
        api_key=MASTER_KEY,  # type: ignore[arg-type]
        use_responses_api=True,
        max_retries=0,
        timeout=60,
    )


def posts(upstream: FakeUpstream) -> list[RecordedRequest]:
    return [r for r in upstream.requests if r.method == "POST"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_invoke(daemon: RunningDaemon, upstream: FakeUpstream, provider: str) -> None:
    """``invoke`` returns the answer's text; the upstream got the prompt in its own format."""
    upstream.clear()
    answer = chat(daemon, f"{provider}-ok").invoke("hello from langchain")
    assert answer.text == "echo: hello from langchain"
    assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] > 0
    (sent,) = posts(upstream)
    expected_path = {"oai": "/v1/chat/completions", "native": "/v1/responses"}
    assert sent.path == expected_path.get(provider, "/v1/messages")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream(daemon: RunningDaemon, upstream: FakeUpstream, provider: str) -> None:
    """``stream`` yields the text in several chunks that add up to the answer."""
    upstream.clear()
    chunks = [c.text for c in chat(daemon, f"{provider}-ok").stream("stream from langchain")]
    assert "".join(chunks) == "echo: stream from langchain"
    assert len([c for c in chunks if c]) > 1
    (sent,) = posts(upstream)
    assert sent.json["stream"] is True


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tool_round_trip(daemon: RunningDaemon, upstream: FakeUpstream, provider: str) -> None:
    """The model calls the bound tool; its result, sent back, reaches the upstream and the
    final answer is about it."""
    upstream.clear()
    model = chat(daemon, f"{provider}-tools").bind_tools([get_weather])
    question = HumanMessage("Lima")
    first = model.invoke([question])
    (call,) = first.tool_calls
    assert call["name"] == "get_weather" and call["args"] == {"city": "Lima"}
    result = ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])
    second = model.invoke([question, first, result])
    assert second.text == "tool said: windy in Lima"
    sent = posts(upstream)[-1]
    if provider == "oai":
        assert sent.json["messages"][-1]["role"] == "tool"
        assert sent.json["messages"][-1]["content"] == "windy in Lima"
    elif provider == "native":
        assert sent.json["input"][-1]["type"] == "function_call_output"
        assert sent.json["input"][-1]["output"] == "windy in Lima"
    else:
        block = sent.json["messages"][-1]["content"][-1]
        assert block["type"] == "tool_result" and "windy in Lima" in str(block["content"])
