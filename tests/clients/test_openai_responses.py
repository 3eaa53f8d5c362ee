"""The openai SDK's ``client.responses.create`` through fkllm, as an application uses it.

Against two provider types (an ``openai`` provider without the Responses API, so
translated through Chat Completions, and a ``gemini`` one) and a pass-through ``openai``
provider with ``responses_api = true``: a plain answer, a stream, a function-tool round
trip (continued by ``previous_response_id`` and by replaying the whole input) and
structured output, checking what the SDK returned and what the upstream received.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pydantic
import pytest

from fkllmproxy.testing.fake_upstream import FakeUpstream, RecordedRequest
from tests.clients._responses_setup import responses_config
from tests.conftest import MASTER_KEY, RunningDaemon

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def daemon(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDaemon]:
    config = responses_config(upstream.url)
    with RunningDaemon(tmp_path_factory.mktemp("sdk-responses"), config) as running:
        yield running


@pytest.fixture
def client(daemon: RunningDaemon, upstream: FakeUpstream) -> openai.OpenAI:
    upstream.clear()
    return openai.OpenAI(base_url=daemon.url + "/v1", api_key=MASTER_KEY, max_retries=0)


def last_sent(upstream: FakeUpstream) -> RecordedRequest:
    return [r for r in upstream.requests if r.method == "POST"][-1]


class Echo(pydantic.BaseModel):
    echo: str


@pytest.mark.parametrize("provider", ["oai", "native", "gem"])
class TestResponsesCreate:
    def test_plain(self, client: openai.OpenAI, upstream: FakeUpstream, provider: str) -> None:
        response = client.responses.create(model=f"{provider}-ok", input="What is fkllm?")
        assert response.output_text == "echo: What is fkllm?"
        assert response.status == "completed"
        sent = last_sent(upstream)
        if provider == "native":
            assert sent.path == "/v1/responses" and sent.json["input"] == "What is fkllm?"
        elif provider == "oai":
            assert sent.json["messages"] == [{"role": "user", "content": "What is fkllm?"}]
        else:
            assert sent.path == "/v1beta/models/ok:generateContent"
            assert sent.json["contents"][-1]["parts"] == [{"text": "What is fkllm?"}]

    def test_stream(self, client: openai.OpenAI, upstream: FakeUpstream, provider: str) -> None:
        with client.responses.stream(model=f"{provider}-ok", input="stream me") as stream:
            deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
            final = stream.get_final_response()
        assert "".join(deltas) == "echo: stream me" == final.output_text
        assert final.usage is not None and final.usage.output_tokens == 3
        sent = last_sent(upstream)
        assert sent.path.endswith(":streamGenerateContent") or sent.json["stream"] is True

    def test_tool_round_trip_by_previous_response_id(
        self, client: openai.OpenAI, upstream: FakeUpstream, provider: str
    ) -> None:
        first = client.responses.create(model=f"{provider}-tools", input="Oslo", tools=[WEATHER])  # type: ignore[list-item]
        call = first.output[0]
        assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Oslo"}
        output = {"type": "function_call_output", "call_id": call.call_id, "output": "snow"}
        second = client.responses.create(
            model=f"{provider}-tools",
            previous_response_id=first.id,
            input=[output],
            tools=[WEATHER],  # type: ignore[list-item]
        )
        assert second.output_text == "tool said: snow"
        if provider == "gem":
            parts = last_sent(upstream).json["contents"][-1]["parts"]
            assert parts[0]["functionResponse"]["name"] == "get_weather"

    def test_tool_round_trip_by_full_input(
        self, client: openai.OpenAI, upstream: FakeUpstream, provider: str
    ) -> None:
        history: list[object] = [{"role": "user", "content": "Nice"}]
        first = client.responses.create(model=f"{provider}-tools", input=history, tools=[WEATHER])  # type: ignore[arg-type, list-item]
        history += [item.model_dump(exclude_none=True) for item in first.output]
        call_id = first.output[0].call_id  # type: ignore[union-attr]
        history.append({"type": "function_call_output", "call_id": call_id, "output": "mild"})
        second = client.responses.create(model=f"{provider}-tools", input=history, tools=[WEATHER])  # type: ignore[arg-type, list-item]
        assert second.output_text == "tool said: mild"

    def test_structured_output(
        self, client: openai.OpenAI, upstream: FakeUpstream, provider: str
    ) -> None:
        schema = {
            "type": "object",
            "properties": {"echo": {"type": "string"}},
            "required": ["echo"],
            "additionalProperties": False,
        }
        fmt = {"type": "json_schema", "name": "Echo", "schema": schema, "strict": True}
        response = client.responses.create(
            model=f"{provider}-ok", input="json please", text={"format": fmt}
        )  # type: ignore[typeddict-item]
        assert json.loads(response.output_text) == {"echo": "json please"}
        sent = last_sent(upstream)
        if provider == "gem":
            assert sent.json["generationConfig"]["responseMimeType"] == "application/json"

    def test_parse_into_a_pydantic_model(self, client: openai.OpenAI, provider: str) -> None:
        """responses.parse: the SDK builds the strict schema and reads the answer back."""
        parsed = client.responses.parse(model=f"{provider}-ok", input="typed", text_format=Echo)
        assert parsed.output_parsed == Echo(echo="typed")
