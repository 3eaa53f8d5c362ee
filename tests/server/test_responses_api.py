"""``/v1/responses`` through a real daemon with the official openai SDK.

One daemon serves five kinds of provider: the built-in mock, an ``openai`` provider
without the Responses API (translated through Chat Completions), an ``openai`` provider
with ``responses_api = true`` (passed through), an ``anthropic`` and a ``gemini``
provider, all but the mock on the fake upstream. Tests check what the client got and
what the upstream was sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from fkllmproxy.testing.fake_upstream import FakeUpstream, RecordedRequest
from tests.conftest import MASTER_KEY, RunningDaemon

OTHER_KEY = "sk-team-b-responses-000001"
PROVIDERS = ("oai", "native", "az", "claude", "gem")
NATIVE = ("native", "az")  # the providers with the Responses API: passed through
BEHAVIOURS = ("ok", "tools", "cut-stream", "error-midstream")
UPSTREAM_MODEL = dict.fromkeys(PROVIDERS, "{b}")

CONFIG = f"""
[[auth.keys]]
name = "team-b"
key_sha256 = "{hashlib.sha256(OTHER_KEY.encode()).hexdigest()}"

[[providers]]
name = "mock"
type = "mock"

[[providers]]
name = "oai"
type = "openai"
base_url = "{{url}}/v1"
api_key = "sk-upstream-openai"

[[providers]]
name = "native"
type = "openai"
base_url = "{{url}}/v1"
api_key = "sk-upstream-openai"
responses_api = true

[[providers]]
name = "az"
type = "azure"
base_url = "{{url}}"
api_key = "azure-key"
responses_api = true

[[providers]]
name = "claude"
type = "anthropic"
base_url = "{{url}}"
api_key = "sk-ant-upstream"

[[providers]]
name = "gem"
type = "gemini"
base_url = "{{url}}"
api_key = "google-key"

[[models]]
name = "mock"
targets = [{{{{ provider = "mock", model = "mock-1" }}}}]
{{models}}
"""
MODELS = "".join(
    f'\n[[models]]\nname = "{provider}-{behaviour}"\n'
    f'targets = [{{ provider = "{provider}", model = "{UPSTREAM_MODEL[provider].format(b=behaviour)}" }}]\n'
    for provider in PROVIDERS
    for behaviour in BEHAVIOURS
)
UPSTREAM_PATH = {
    "oai": "/v1/chat/completions",
    "native": "/v1/responses",
    "az": "/openai/v1/responses",
    "claude": "/v1/messages",
    "gem": None,  # /v1beta/models/{model}:generateContent
}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def daemon(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDaemon]:
    config = CONFIG.format(url=upstream.url, models=MODELS)
    with RunningDaemon(tmp_path_factory.mktemp("responses-api"), config) as running:
        yield running


@pytest.fixture
def client(daemon: RunningDaemon, upstream: FakeUpstream) -> openai.OpenAI:
    upstream.clear()
    return openai.OpenAI(base_url=daemon.url + "/v1", api_key=MASTER_KEY, max_retries=0)


def model_requests(upstream: FakeUpstream) -> list[RecordedRequest]:
    return [r for r in upstream.requests if r.method == "POST"]


def post(daemon: RunningDaemon, body: Any, key: str = MASTER_KEY) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    return httpx.post(daemon.url + "/v1/responses", content=content, headers=headers)


def events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


@pytest.mark.parametrize("provider", PROVIDERS)
class TestEveryProvider:
    def test_plain_answer(
        self, client: openai.OpenAI, upstream: FakeUpstream, provider: str
    ) -> None:
        """A text answer in the response shape, the model as the client named it."""
        response = client.responses.create(
            model=f"{provider}-ok", input="Hello there", instructions="Be brief."
        )
        assert response.object == "response"
        assert response.status == "completed"
        assert response.output_text == "echo: Hello there"
        assert response.id.startswith("resp_")
        assert response.usage is not None
        assert response.usage.input_tokens > 0 and response.usage.output_tokens == 3
        assert response.usage.total_tokens == (
            response.usage.input_tokens + response.usage.output_tokens
        )
        (seen,) = model_requests(upstream)
        if UPSTREAM_PATH[provider]:
            assert seen.path == UPSTREAM_PATH[provider]
        else:
            assert seen.path.endswith(":generateContent")
        if provider == "oai":
            assert seen.json["messages"] == [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello there"},
            ]
        if provider in NATIVE:
            assert response.model == "ok"  # the provider's own bytes
            assert seen.json == {
                "model": "ok",
                "input": "Hello there",
                "instructions": "Be brief.",
            }
        else:
            assert response.model == f"{provider}-ok"

    def test_stream_events_in_openais_order(
        self, client: openai.OpenAI, upstream: FakeUpstream, provider: str
    ) -> None:
        """The SDK's strict parser reads every event; the last one carries the whole response."""
        stream = client.responses.create(model=f"{provider}-ok", input="Hi stream", stream=True)
        seen = list(stream)
        kinds = [event.type for event in seen]
        assert kinds[:4] == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
        ]
        assert kinds[-4:] == [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
        assert [e.sequence_number for e in seen] == list(range(len(seen)))
        deltas = [e.delta for e in seen if e.type == "response.output_text.delta"]
        assert "".join(deltas) == "echo: Hi stream"
        final = seen[-1].response  # type: ignore[union-attr]
        assert final.output_text == "echo: Hi stream"
        assert final.usage is not None and final.usage.output_tokens == 3
        (request,) = model_requests(upstream)
        if provider in ("oai", *NATIVE):
            assert request.json["stream"] is True

    def test_function_tool_round_trip_with_previous_response_id(
        self, client: openai.OpenAI, upstream: FakeUpstream, provider: str
    ) -> None:
        """A function call, its output sent back against the stored response, the answer."""
        first = client.responses.create(
            model=f"{provider}-tools",
            input="Paris",
            tools=[WEATHER],  # type: ignore[list-item]
        )
        (call,) = first.output
        assert call.type == "function_call"
        assert call.name == "get_weather"
        assert json.loads(call.arguments) == {"city": "Paris"}
        second = client.responses.create(
            model=f"{provider}-tools",
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
            tools=[WEATHER],  # type: ignore[list-item]
        )
        assert second.output_text == "tool said: sunny"
        last = model_requests(upstream)[-1]
        if provider == "oai":
            messages = last.json["messages"]
            assert messages[0] == {"role": "user", "content": "Paris"}
            assert messages[1]["tool_calls"][0]["id"] == call.call_id
            assert messages[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny"}
        if provider in NATIVE:
            assert last.json["previous_response_id"] == first.id  # the provider continues it

    def test_function_tool_round_trip_with_full_input(
        self, client: openai.OpenAI, upstream: FakeUpstream, provider: str
    ) -> None:
        """The conversation replayed by the client with store off: nothing kept, same answer."""
        user = {"role": "user", "content": "Lyon"}
        first = client.responses.create(
            model=f"{provider}-tools",
            input=[user],
            tools=[WEATHER],
            store=False,  # type: ignore[list-item]
        )
        call = first.output[0]
        assert call.type == "function_call"
        replay = [
            user,
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "rain"},
        ]
        second = client.responses.create(
            model=f"{provider}-tools",
            input=replay,
            tools=[WEATHER],
            store=False,  # type: ignore[arg-type, list-item]
        )
        assert second.output_text == "tool said: rain"
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(first.id)

    def test_structured_output(
        self, client: openai.OpenAI, upstream: FakeUpstream, provider: str
    ) -> None:
        """text.format json_schema: the answer is the JSON the schema asks for."""
        schema = {
            "type": "object",
            "properties": {"echo": {"type": "string"}},
            "required": ["echo"],
            "additionalProperties": False,
        }
        response = client.responses.create(
            model=f"{provider}-ok",
            input="structured",
            text={
                "format": {"type": "json_schema", "name": "echo", "schema": schema, "strict": True}
            },
        )
        (seen,) = model_requests(upstream)
        if provider == "claude":
            # The fake Anthropic answers output_config in plain text; what it was asked is the point.
            assert seen.json["output_config"]["format"] == {"type": "json_schema", "schema": schema}
        else:
            assert json.loads(response.output_text) == {"echo": "structured"}
        if provider == "oai":
            assert seen.json["response_format"] == {
                "type": "json_schema",
                "json_schema": {"name": "echo", "schema": schema, "strict": True},
            }

    def test_streamed_tool_call(
        self, client: openai.OpenAI, upstream: FakeUpstream, provider: str
    ) -> None:
        """A streamed function call: added, argument deltas, done, and the item in the final response."""
        stream = client.responses.create(
            model=f"{provider}-tools",
            input="Rome",
            tools=[WEATHER],
            stream=True,  # type: ignore[list-item]
        )
        seen = list(stream)
        kinds = [event.type for event in seen]
        assert "response.function_call_arguments.delta" in kinds
        done = [e for e in seen if e.type == "response.function_call_arguments.done"]
        assert json.loads(done[0].arguments) == {"city": "Rome"}
        final = seen[-1]
        assert final.type == "response.completed"
        assert final.response.output[-1].type == "function_call"

    def test_failure_mid_stream_ends_the_stream_with_an_event(
        self, daemon: RunningDaemon, provider: str
    ) -> None:
        """Never silently: response.failed (translated) or error (passed through) comes last."""
        for behaviour in ("cut-stream", "error-midstream"):
            reply = post(
                daemon, {"model": f"{provider}-{behaviour}", "input": "x y z", "stream": True}
            )
            assert reply.status_code == 200
            last = events(reply.text)[-1]
            assert last["type"] in ("response.failed", "error"), (behaviour, last)
            if provider not in NATIVE:
                assert last["type"] == "response.failed"
                assert last["response"]["status"] == "failed"


def test_usage_is_logged_for_every_shape(daemon: RunningDaemon, client: openai.OpenAI) -> None:
    """Token counts reach the request log line, translated or passed through, streamed or not."""
    for model in ("oai-ok", "native-ok"):
        client.responses.create(model=model, input="count these words")
        list(client.responses.create(model=model, input="count these words", stream=True))
    lines = [
        line
        for line in daemon.logs()
        if line.get("path") == "/v1/responses" and line.get("model") in ("oai-ok", "native-ok")
    ]
    shapes = {(line["model"], line["stream"]) for line in lines if line.get("prompt_tokens")}
    assert shapes == {
        ("oai-ok", False),
        ("oai-ok", True),
        ("native-ok", False),
        ("native-ok", True),
    }
    assert all(line.get("completion_tokens") == 4 for line in lines[-4:])


class TestStore:
    def test_get_returns_the_stored_response(self, client: openai.OpenAI) -> None:
        """GET /v1/responses/{id} gives back what POST answered."""
        created = client.responses.create(model="oai-ok", input="keep me")
        fetched = client.responses.retrieve(created.id)
        assert fetched.id == created.id
        assert fetched.output_text == "echo: keep me"

    def test_a_streamed_response_is_stored_too(self, client: openai.OpenAI) -> None:
        final = list(client.responses.create(model="claude-ok", input="streamed", stream=True))[-1]
        assert final.type == "response.completed"
        assert client.responses.retrieve(final.response.id).output_text == "echo: streamed"

    def test_only_the_key_that_created_it_may_read_or_continue_it(
        self, daemon: RunningDaemon, client: openai.OpenAI
    ) -> None:
        created = client.responses.create(model="mock", input="mine")
        other = openai.OpenAI(base_url=daemon.url + "/v1", api_key=OTHER_KEY, max_retries=0)
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(created.id)
        with pytest.raises(openai.BadRequestError) as refused:
            other.responses.create(model="mock", input="x", previous_response_id=created.id)
        assert refused.value.param == "previous_response_id"

    def test_unknown_previous_response_id_is_a_400_naming_it(self, daemon: RunningDaemon) -> None:
        reply = post(daemon, {"model": "oai-ok", "input": "x", "previous_response_id": "resp_nope"})
        assert reply.status_code == 400
        error = reply.json()["error"]
        assert error["param"] == "previous_response_id"
        assert "resp_nope" in error["message"]

    def test_store_false_keeps_nothing(self, daemon: RunningDaemon, client: openai.OpenAI) -> None:
        created = client.responses.create(model="gem-ok", input="forget me", store=False)
        assert created.store is False
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(created.id)
        reply = post(daemon, {"model": "gem-ok", "input": "x", "previous_response_id": created.id})
        assert reply.status_code == 400

    def test_a_conversation_continues_across_provider_types(
        self, client: openai.OpenAI, upstream: FakeUpstream
    ) -> None:
        """A response made by a pass-through provider continued by a translated one."""
        first = client.responses.create(model="native-ok", input="first turn")
        second = client.responses.create(
            model="oai-ok", input="second turn", previous_response_id=first.id
        )
        assert second.output_text == "echo: second turn"
        messages = model_requests(upstream)[-1].json["messages"]
        assert messages == [
            {"role": "user", "content": "first turn"},
            {"role": "assistant", "content": "echo: first turn"},
            {"role": "user", "content": "second turn"},
        ]


class TestRefusals:
    def test_hosted_tools_to_a_chat_provider_are_a_400_naming_field_and_provider(
        self, daemon: RunningDaemon, upstream: FakeUpstream
    ) -> None:
        upstream.clear()
        body = {"model": "oai-ok", "input": "x", "tools": [{"type": "web_search"}]}
        reply = post(daemon, body)
        assert reply.status_code == 400
        message = reply.json()["error"]["message"]
        assert "tools[0].type = 'web_search'" in message and "'oai' (openai)" in message
        assert 'web_search = \\"disabled\\"' in json.dumps(message) or "disabled" in message
        assert model_requests(upstream) == []

    def test_hosted_tools_pass_through_to_a_responses_provider(self, daemon: RunningDaemon) -> None:
        body = {"model": "native-ok", "input": "x", "tools": [{"type": "web_search"}]}
        assert post(daemon, body).status_code == 200

    def test_unknown_fields_are_refused_by_name_when_translated(
        self, daemon: RunningDaemon
    ) -> None:
        reply = post(daemon, {"model": "claude-ok", "input": "x", "background": True})
        assert reply.status_code == 400
        error = reply.json()["error"]
        assert error["param"] == "background" and "'claude' (anthropic)" in error["message"]

    def test_errors_in_openais_shape(self, daemon: RunningDaemon) -> None:
        """Malformed JSON, a wrong type, an unknown model, a wrong key."""
        assert post(daemon, b"{nope").status_code == 400
        wrong = post(daemon, {"model": "mock", "input": 5})
        assert wrong.status_code == 400 and "input" in wrong.json()["error"]["message"]
        unknown = post(daemon, {"model": "nope", "input": "x"})
        assert unknown.status_code == 404 and set(unknown.json()["error"]) >= {"message", "type"}
        assert post(daemon, {"model": "mock", "input": "x"}, key="sk-wrong").status_code == 401

    def test_get_unknown_id_is_a_404(self, daemon: RunningDaemon) -> None:
        reply = httpx.get(daemon.url + "/v1/responses/resp_unknown", headers=daemon.headers())
        assert reply.status_code == 404
        assert reply.json()["error"]["code"] == "response_not_found"
