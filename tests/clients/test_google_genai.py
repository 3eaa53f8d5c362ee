"""The official google-genai SDK through a daemon, against Google and non-Google providers.

``genai.Client(api_key=<proxy key>, http_options={"base_url": <proxy>})``: the SDK's
default API version (``v1``) and ``v1beta`` both work. Each provider answers from the
fake upstream: ``gemini`` gets the SDK's bytes untouched, ``openai`` and ``anthropic``
get them translated. Tests check what the SDK returned and what the upstream received.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from google import genai
from google.genai import types
from pydantic import BaseModel

from fkllmproxy.testing.fake_upstream import FakeUpstream, RecordedRequest
from tests.conftest import MASTER_KEY, RunningDaemon

CONFIG = """
[[providers]]
name = "gem"
type = "gemini"
base_url = "{url}"
api_key_env = "FAKE_GOOGLE_KEY"

[[providers]]
name = "oai"
type = "openai"
base_url = "{url}/v1"
api_key_env = "FAKE_OPENAI_KEY"

[[providers]]
name = "claude"
type = "anthropic"
base_url = "{url}"
api_key_env = "FAKE_ANTHROPIC_KEY"
{models}
"""
PROVIDERS = ("gem", "oai", "claude")
MODELS = "".join(
    f'\n[[models]]\nname = "{provider}-{kind}"\n'
    f'targets = [{{ provider = "{provider}", model = "{model}" }}]\n'
    for provider in PROVIDERS
    for kind, model in (("ok", "ok"), ("tools", "tools"))
)


@pytest.fixture(scope="module")
def daemon(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDaemon]:
    with RunningDaemon(
        tmp_path_factory.mktemp("google-genai"),
        CONFIG.format(url=upstream.url, models=MODELS),
        env={
            "FAKE_GOOGLE_KEY": "google-upstream-key",
            "FAKE_OPENAI_KEY": "sk-upstream-openai",
            "FAKE_ANTHROPIC_KEY": "sk-ant-upstream",
        },
    ) as running:
        yield running


@pytest.fixture(params=["v1beta", "v1"])
def client(
    request: pytest.FixtureRequest, daemon: RunningDaemon, upstream: FakeUpstream
) -> genai.Client:
    upstream.clear()
    options = types.HttpOptions(base_url=daemon.url, api_version=request.param, timeout=30_000)
    return genai.Client(api_key=MASTER_KEY, http_options=options)


def calls(upstream: FakeUpstream) -> list[RecordedRequest]:
    return [r for r in upstream.requests if r.path != "/token"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_generate_content(client: genai.Client, upstream: FakeUpstream, provider: str) -> None:
    """A plain answer with its usage, and the system instruction reaching the provider."""
    reply = client.models.generate_content(
        model=f"{provider}-ok",
        contents="Hello from genai",
        config=types.GenerateContentConfig(system_instruction="Be kind.", max_output_tokens=40),
    )
    assert reply.text == "echo: Hello from genai"
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP
    usage = reply.usage_metadata
    assert usage.prompt_token_count and usage.candidates_token_count == 4
    assert usage.total_token_count == usage.prompt_token_count + 4
    (seen,) = calls(upstream)
    if provider == "gem":
        assert seen.path == "/v1beta/models/ok:generateContent"
        assert seen.json["systemInstruction"] == {"parts": [{"text": "Be kind."}], "role": "user"}
    elif provider == "oai":
        assert seen.json["messages"][0] == {"role": "system", "content": "Be kind."}
    else:
        assert seen.json["system"] in ("Be kind.", [{"type": "text", "text": "Be kind."}])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream(client: genai.Client, provider: str) -> None:
    pieces = [
        chunk.text or ""
        for chunk in client.models.generate_content_stream(
            model=f"{provider}-ok", contents="one two three four"
        )
    ]
    assert len(pieces) > 1
    assert "".join(pieces) == "echo: one two three four"


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_function_calling_round_trip(
    client: genai.Client, upstream: FakeUpstream, provider: str
) -> None:
    """The SDK's automatic function calling: the model calls, the SDK answers, the model ends."""
    reply = client.models.generate_content(
        model=f"{provider}-tools",
        contents="Oslo",
        config=types.GenerateContentConfig(tools=[get_weather]),
    )
    assert reply.text == "tool said: sunny in Oslo"
    history = reply.automatic_function_calling_history or []
    assert [p.function_call.name for c in history for p in c.parts or [] if p.function_call] == [
        "get_weather"
    ]
    first, second = calls(upstream)
    assert "tools" in (first.json or {})
    if provider == "gem":
        assert second.json["contents"][2]["parts"][0]["functionResponse"]["name"] == "get_weather"
    elif provider == "oai":
        assert second.json["messages"][-1]["role"] == "tool"
        assert "sunny in Oslo" in second.json["messages"][-1]["content"]


class Echo(BaseModel):
    echo: str


# The fake's Anthropic API does not model structured output (output_config), so the
# Anthropic leg of this pair is pinned by what it is sent, in tests/server.
@pytest.mark.parametrize("provider", ["gem", "oai"])
def test_json_schema_output(client: genai.Client, upstream: FakeUpstream, provider: str) -> None:
    reply = client.models.generate_content(
        model=f"{provider}-ok",
        contents="structured",
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=Echo
        ),
    )
    assert isinstance(reply.parsed, Echo) and reply.parsed.echo == "structured"
    (seen,) = calls(upstream)
    if provider == "oai":
        assert seen.json["response_format"]["type"] == "json_schema"
        assert (
            seen.json["response_format"]["json_schema"]["schema"]["properties"]["echo"]["type"]
            == "string"
        )


@pytest.mark.parametrize("provider", ["gem", "oai"])
def test_count_tokens(client: genai.Client, provider: str) -> None:
    counted = client.models.count_tokens(model=f"{provider}-ok", contents="x" * 40)
    assert counted.total_tokens == (1 if provider == "gem" else 14)


@pytest.mark.parametrize("provider", ["gem", "oai"])
def test_embed_content(client: genai.Client, upstream: FakeUpstream, provider: str) -> None:
    result = client.models.embed_content(model=f"{provider}-ok", contents=["first", "second"])
    assert result.embeddings is not None and len(result.embeddings) == 2
    assert all(e.values for e in result.embeddings)
    (seen,) = calls(upstream)
    if provider == "gem":
        assert seen.path == "/v1beta/models/ok:batchEmbedContents"
        assert [r["model"] for r in seen.json["requests"]] == ["models/ok", "models/ok"]
    else:
        assert seen.json["input"] == ["first", "second"]


def test_model_list(client: genai.Client) -> None:
    names = [model.name for model in client.models.list()]
    assert "models/gem-ok" in names and "models/oai-tools" in names
    one = client.models.get(model="oai-ok")
    assert one.name == "models/oai-ok"


def test_errors_are_sdk_errors(client: genai.Client) -> None:
    with pytest.raises(genai.errors.ClientError) as caught:
        client.models.generate_content(model="no-such-model", contents="x")
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"
    assert json.dumps(caught.value.details)
