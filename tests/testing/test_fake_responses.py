"""The fake upstream's Responses API, read by the official openai SDK as OpenAI's would be."""

from __future__ import annotations

import json

import openai
import pytest

from fkllmproxy.testing.fake_upstream import FakeUpstream

TOOL = {
    "type": "function",
    "name": "lookup",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
}


@pytest.fixture
def client(fake_upstream: FakeUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake_upstream.url + "/v1", api_key="k", max_retries=0)


def test_whole_answer(client: openai.OpenAI) -> None:
    response = client.responses.create(model="ok", input="hi there")
    assert response.output_text == "echo: hi there"
    assert response.usage is not None and response.usage.output_tokens == 3


def test_stream_is_read_by_the_sdk(client: openai.OpenAI) -> None:
    with client.responses.stream(model="ok", input="a b") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert final.output_text == "echo: a b"


def test_tools_and_previous_response_id(client: openai.OpenAI) -> None:
    first = client.responses.create(model="tools", input="find", tools=[TOOL])  # type: ignore[list-item]
    call = first.output[0]
    assert call.type == "function_call" and json.loads(call.arguments) == {"q": "find"}
    second = client.responses.create(
        model="tools",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "found"}],
        tools=[TOOL],  # type: ignore[list-item]
    )
    assert second.output_text == "tool said: found"


def test_unknown_previous_response_id_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="ok", input="x", previous_response_id="resp_nope")
    assert refused.value.param == "previous_response_id"


def test_store_false_keeps_nothing(client: openai.OpenAI) -> None:
    first = client.responses.create(model="ok", input="x", store=False)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="ok", input="y", previous_response_id=first.id)
