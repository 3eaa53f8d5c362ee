"""The ``vertex`` provider end to end: real daemon, fake Vertex AI and token endpoint.

The service-account key is a throwaway whose ``token_uri`` is the fake's ``/token``, so
google-auth's real JWT-bearer flow runs; tests check the bearer token Vertex received
came from that endpoint and that one token serves many requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from fkllmproxy.testing.fake_upstream import FakeUpstream, RecordedRequest
from tests.conftest import MASTER_KEY, RunningDaemon

CONFIG = """
# One attempt per request: these tests pin what a single upstream failure looks like
# (with retries, the refused token request would simply be made again).
[retry]
max_attempts = 1

[[providers]]
name = "vtx"
type = "vertex"
base_url = "{url}"
credentials_file = "{credentials}"
location = "europe-west4"

[[providers]]
name = "vtx-other-project"
type = "vertex"
base_url = "{url}"
project = "billing-project"

[[models]]
name = "gemini-flash"
targets = [{{ provider = "vtx", model = "gemini-2.5-flash" }}]

[[models]]
name = "elsewhere"
targets = [{{ provider = "vtx-other-project", model = "gemini-2.5-flash" }}]

[[models]]
name = "tools"
targets = [{{ provider = "vtx", model = "tools" }}]

[[models]]
name = "embed"
targets = [{{ provider = "vtx", model = "text-embedding-005" }}]
"""

PREFIX = "/v1/projects/fake-project/locations/europe-west4/publishers/google/models"

WEATHER: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def daemon(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDaemon]:
    tmp = tmp_path_factory.mktemp("vertex")
    credentials = upstream.write_service_account(tmp / "sa.json")
    with RunningDaemon(
        tmp,
        CONFIG.format(url=upstream.url, credentials=credentials),
        # The second provider names no file: it takes the standard variable.
        env={"GOOGLE_APPLICATION_CREDENTIALS": str(credentials)},
    ) as running:
        yield running


def model_calls(upstream: FakeUpstream) -> list[RecordedRequest]:
    return [r for r in upstream.requests if r.path != "/token"]


def token_calls(upstream: FakeUpstream) -> list[RecordedRequest]:
    return [r for r in upstream.requests if r.path == "/token"]


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_completion_with_a_bearer_token_from_the_token_endpoint(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    before = upstream.tokens_issued
    reply = client.chat.completions.create(
        model="gemini-flash",
        messages=[{"role": "system", "content": "Be brief."}, *user("hello vertex")],
    )
    assert reply.choices[0].message.content == "echo: hello vertex"
    (seen,) = model_calls(upstream)
    assert seen.path == f"{PREFIX}/gemini-2.5-flash:generateContent"
    scheme, _, token = seen.headers["authorization"].partition(" ")
    assert scheme == "Bearer" and upstream.tokens.valid(token)
    assert seen.json["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert "x-goog-api-key" not in seen.headers
    assert upstream.tokens_issued <= before + 1


def test_one_token_serves_many_requests(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    client.chat.completions.create(model="gemini-flash", messages=user("warm up"))
    upstream.clear()
    issued = upstream.tokens_issued
    for text in ("one", "two", "three"):
        client.chat.completions.create(model="gemini-flash", messages=user(text))
    assert token_calls(upstream) == []
    assert upstream.tokens_issued == issued
    tokens = {r.headers["authorization"] for r in model_calls(upstream)}
    assert len(tokens) == 1


def test_the_token_request_is_a_signed_service_account_grant(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    client.chat.completions.create(model="gemini-flash", messages=user("x"))
    claims = upstream.token_claims[-1]
    assert claims["iss"].endswith("@fake-project.iam.gserviceaccount.com")
    assert "https://www.googleapis.com/auth/cloud-platform" in claims["scope"]


def test_project_from_config_and_credentials_from_the_environment(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    client.chat.completions.create(model="elsewhere", messages=user("x"))
    (seen,) = model_calls(upstream)
    assert seen.path == (
        "/v1/projects/billing-project/locations/us-central1/publishers/google/models/"
        "gemini-2.5-flash:generateContent"
    )


async def test_async_streaming_with_usage(daemon: RunningDaemon, upstream: FakeUpstream) -> None:
    upstream.clear()
    async with openai.AsyncOpenAI(
        base_url=daemon.url + "/v1", api_key=MASTER_KEY, max_retries=0
    ) as client:
        stream = await client.chat.completions.create(
            model="gemini-flash",
            messages=user("stream this please"),
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream this please"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    (seen,) = model_calls(upstream)
    assert seen.path == f"{PREFIX}/gemini-2.5-flash:streamGenerateContent"
    assert seen.query == {"alt": "sse"}


def test_tools(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    reply = client.chat.completions.create(model="tools", messages=user("Rome"), tools=WEATHER)
    (call,) = reply.choices[0].message.tool_calls or []
    assert (call.function.name, call.function.arguments) == ("get_weather", '{"city":"Rome"}')
    (seen,) = model_calls(upstream)
    assert seen.json["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"


def test_embeddings_through_predict(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    result = client.embeddings.create(model="embed", input=["a b", "c"], dimensions=4)
    assert [len(item.embedding) for item in result.data] == [4, 4]
    assert result.usage.prompt_tokens == 3
    (seen,) = model_calls(upstream)
    assert seen.path == f"{PREFIX}/text-embedding-005:predict"
    assert seen.json == {
        "instances": [{"content": "a b"}, {"content": "c"}],
        "parameters": {"outputDimensionality": 4},
    }


def test_a_token_refused_early_is_replaced_transparently(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    client.chat.completions.create(model="gemini-flash", messages=user("warm up"))
    upstream.expire_tokens()  # revoked upstream while still fresh in the proxy's cache
    upstream.clear()
    reply = client.chat.completions.create(model="gemini-flash", messages=user("again"))
    assert reply.choices[0].message.content == "echo: again"
    first, second = model_calls(upstream)
    assert first.headers["authorization"] != second.headers["authorization"]
    assert len(token_calls(upstream)) == 1


def test_token_endpoint_refusal_is_a_502_then_recovers(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    client.chat.completions.create(model="gemini-flash", messages=user("warm up"))
    upstream.expire_tokens()
    upstream.script("/token", ["401"])
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gemini-flash", messages=user("x"))
    assert caught.value.status_code == 502
    assert "could not get an access token" in str(caught.value.message)
    reply = client.chat.completions.create(model="gemini-flash", messages=user("later"))
    assert reply.choices[0].message.content == "echo: later"


def test_missing_credentials_file_stops_the_daemon(start_daemon: Any, tmp_path: Path) -> None:
    config = CONFIG.split("[[providers]]")[1]
    bad = "[[providers]]" + config.format(url="http://127.0.0.1:9", credentials=tmp_path / "no")
    bad += '\n[[models]]\nname = "m"\ntargets = [{ provider = "vtx", model = "x" }]\n'
    daemon = start_daemon(bad, wait=False)
    assert daemon.process.wait(30) == 78
    assert "credentials_file" in daemon.stderr_text() + "\n".join(daemon.stdout_lines())
