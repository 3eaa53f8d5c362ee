"""The ``gemini`` provider end to end: real daemon, fake Gemini API upstream, openai SDK.

Each test checks what the client got and what Gemini was sent (the fake records every
request as it arrived on the socket).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from fkllmproxy.providers.exchange import Transport
from fkllmproxy.testing.fake_upstream import FakeUpstream
from tests.conftest import MASTER_KEY, RunningDaemon, mock_transport, only_request, wait_until

GOOGLE_KEY = "AIza-fake-google-key-0123"

CONFIG = """
[[providers]]
name = "gem"
type = "gemini"
base_url = "{url}"

[[models]]
name = "gemini-pro"
targets = [{{ provider = "gem", model = "gemini-2.5-pro" }}]

[[models]]
name = "tools"
targets = [{{ provider = "gem", model = "tools" }}]

[[models]]
name = "blocked"
targets = [{{ provider = "gem", model = "fault-safety" }}]

[[models]]
name = "blocked-output"
targets = [{{ provider = "gem", model = "fault-safety-output" }}]

[[models]]
name = "cut"
targets = [{{ provider = "gem", model = "cut-stream" }}]

[[models]]
name = "midstream"
targets = [{{ provider = "gem", model = "error-midstream" }}]

[[models]]
name = "rejects"
targets = [{{ provider = "gem", model = "fault-400" }}]

[[models]]
name = "cached"
targets = [{{ provider = "gem", model = "cached" }}]

[[models]]
name = "embed"
targets = [{{ provider = "gem", model = "gemini-embedding-001" }}]
"""

WEATHER: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@pytest.fixture(scope="module")
def daemon(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDaemon]:
    with RunningDaemon(
        tmp_path_factory.mktemp("gemini"),
        CONFIG.format(url=upstream.url),
        env={"GOOGLE_API_KEY": GOOGLE_KEY},
    ) as running:
        yield running


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


class TestChat:
    def test_completion_and_what_gemini_was_sent(
        self, client: openai.OpenAI, upstream: FakeUpstream
    ) -> None:
        reply = client.chat.completions.create(
            model="gemini-pro",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hello gemini"},
            ],
            max_tokens=50,
            temperature=0.3,
            stop=["zzz"],
        )
        assert reply.choices[0].message.content == "echo: hello gemini"
        assert reply.choices[0].finish_reason == "stop"
        assert reply.usage is not None
        assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens == 3
        seen = only_request(upstream)
        assert seen.path == "/v1beta/models/gemini-2.5-pro:generateContent"
        assert seen.headers["x-goog-api-key"] == GOOGLE_KEY
        assert "key" not in seen.query and "authorization" not in seen.headers
        assert seen.json["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
        assert seen.json["contents"] == [{"role": "user", "parts": [{"text": "hello gemini"}]}]
        assert seen.json["generationConfig"] == {
            "stopSequences": ["zzz"],
            "maxOutputTokens": 50,
            "temperature": 0.3,
        }

    async def test_async_client(self, daemon: RunningDaemon, upstream: FakeUpstream) -> None:
        upstream.clear()
        async with openai.AsyncOpenAI(
            base_url=daemon.url + "/v1", api_key=MASTER_KEY, max_retries=0
        ) as client:
            reply = await client.chat.completions.create(model="gemini-pro", messages=user("async"))
        assert reply.choices[0].message.content == "echo: async"

    def test_streaming_with_usage(self, client: openai.OpenAI, upstream: FakeUpstream) -> None:
        stream = client.chat.completions.create(
            model="gemini-pro",
            messages=user("one two three"),
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert chunks[0].choices[0].delta.role == "assistant"
        pieces = [c.choices[0].delta.content for c in chunks if c.choices]
        assert "".join(p or "" for p in pieces) == "echo: one two three"
        assert len([p for p in pieces if p]) >= 2
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
        assert finishes[-1] == "stop" and finishes.count("stop") == 1
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == 4
        seen = only_request(upstream)
        assert seen.path == "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
        assert seen.query == {"alt": "sse"}

    def test_streamed_usage_reaches_the_request_log(
        self, client: openai.OpenAI, daemon: RunningDaemon
    ) -> None:
        stream = client.chat.completions.create(
            model="gemini-pro", messages=user("count these five words"), stream=True
        )
        assert list(stream)

        def logged() -> list[dict[str, Any]]:
            return [
                line
                for line in daemon.logs()
                if line.get("path") == "/v1/chat/completions" and line.get("provider") == "gem"
            ]

        assert wait_until(lambda: logged() and logged()[-1].get("completion_tokens") == 5)
        assert logged()[-1]["prompt_tokens"] == 4

    def test_cached_tokens_are_reported(self, client: openai.OpenAI) -> None:
        reply = client.chat.completions.create(model="cached", messages=user("a b c d e f g h i j"))
        assert reply.usage is not None and reply.usage.prompt_tokens_details is not None
        assert reply.usage.prompt_tokens_details.cached_tokens == reply.usage.prompt_tokens // 2
        assert reply.usage.prompt_tokens_details.cached_tokens > 0

    def test_json_schema_output(self, client: openai.OpenAI, upstream: FakeUpstream) -> None:
        schema = {"type": "object", "properties": {"echo": {"type": "string"}}}
        reply = client.chat.completions.create(
            model="gemini-pro",
            messages=user("json please"),
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "out", "schema": schema},
            },
        )
        assert reply.choices[0].message.content == '{"echo": "json please"}'
        config = only_request(upstream).json["generationConfig"]
        assert config == {"responseMimeType": "application/json", "responseJsonSchema": schema}


class TestTools:
    def test_tool_call_then_result(self, client: openai.OpenAI, upstream: FakeUpstream) -> None:
        first = client.chat.completions.create(
            model="tools", messages=user("Paris"), tools=WEATHER, tool_choice="auto"
        )
        assert first.choices[0].finish_reason == "tool_calls"
        (call,) = first.choices[0].message.tool_calls or []
        assert call.function.name == "get_weather"
        assert call.function.arguments == '{"city":"Paris"}'
        sent = only_request(upstream).json
        (declaration,) = sent["tools"][0]["functionDeclarations"]
        assert declaration["name"] == "get_weather"
        assert declaration["parametersJsonSchema"] == WEATHER[0]["function"]["parameters"]
        assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}

        upstream.clear()
        second = client.chat.completions.create(
            model="tools",
            messages=[
                *user("Paris"),
                first.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "18C"},
            ],
            tools=WEATHER,
        )
        assert second.choices[0].message.content == "tool said: 18C"
        contents = only_request(upstream).json["contents"]
        assert [c["role"] for c in contents] == ["user", "model", "user"]
        assert contents[1]["parts"] == [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
        ]
        assert contents[2]["parts"] == [
            {"functionResponse": {"name": "get_weather", "response": {"output": "18C"}}}
        ]

    def test_streamed_tool_call(self, client: openai.OpenAI) -> None:
        stream = client.chat.completions.create(
            model="tools", messages=user("Oslo"), tools=WEATHER, stream=True
        )
        chunks = list(stream)
        calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
        assert [tc.function.name for tc in calls if tc.function and tc.function.name] == [
            "get_weather"
        ]
        arguments = "".join(tc.function.arguments or "" for tc in calls if tc.function)
        assert arguments == '{"city":"Oslo"}'
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"

    def test_named_tool_choice(self, client: openai.OpenAI, upstream: FakeUpstream) -> None:
        client.chat.completions.create(
            model="gemini-pro",
            messages=user("x"),
            tools=WEATHER,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
        assert only_request(upstream).json["toolConfig"] == {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
        }


class TestFailures:
    def test_blocked_prompt_is_content_filter(self, client: openai.OpenAI) -> None:
        """An answer with no content, its refusal naming Google's block reason."""
        reply = client.chat.completions.create(model="blocked", messages=user("bad things"))
        assert reply.choices[0].finish_reason == "content_filter"
        assert not reply.choices[0].message.content
        assert "SAFETY" in (reply.choices[0].message.refusal or "")

    def test_blocked_output_is_content_filter(self, client: openai.OpenAI) -> None:
        reply = client.chat.completions.create(model="blocked-output", messages=user("x"))
        assert reply.choices[0].finish_reason == "content_filter"

    def test_blocked_prompt_while_streaming(self, client: openai.OpenAI) -> None:
        chunks = list(
            client.chat.completions.create(model="blocked", messages=user("x"), stream=True)
        )
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "content_filter"

    def test_stream_cut_short_ends_with_an_error(self, client: openai.OpenAI) -> None:
        stream = client.chat.completions.create(
            model="cut", messages=user("a b c d e f"), stream=True
        )
        with pytest.raises(openai.APIError) as caught:
            list(stream)
        assert "gem" in str(caught.value.message)

    def test_error_midstream_ends_with_an_error(self, client: openai.OpenAI) -> None:
        stream = client.chat.completions.create(
            model="midstream", messages=user("a b c d e f"), stream=True
        )
        with pytest.raises(openai.APIError) as caught:
            list(stream)
        assert "error-midstream" in str(caught.value.message)

    def test_rejection_carries_geminis_message(self, client: openai.OpenAI) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="rejects", messages=user("x"))
        assert "fault-400" in str(caught.value.message)

    def test_unsupported_field_is_refused_before_any_upstream_call(
        self, client: openai.OpenAI, upstream: FakeUpstream
    ) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="gemini-pro", messages=user("x"), logprobs=True)
        assert "'logprobs'" in str(caught.value.message)
        assert "'gem'" in str(caught.value.message)
        assert upstream.requests == []


class TestEmbeddings:
    def test_batch_embeddings_as_the_sdk_asks(
        self, client: openai.OpenAI, upstream: FakeUpstream
    ) -> None:
        result = client.embeddings.create(model="embed", input=["alpha", "beta"], dimensions=4)
        assert [item.index for item in result.data] == [0, 1]
        assert [len(item.embedding) for item in result.data] == [4, 4]
        assert result.data[0].embedding != result.data[1].embedding
        seen = only_request(upstream)
        assert seen.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
        assert [r["content"] for r in seen.json["requests"]] == [
            {"parts": [{"text": "alpha"}]},
            {"parts": [{"text": "beta"}]},
        ]

    def test_float_encoding(self, daemon: RunningDaemon) -> None:
        answer = httpx.post(
            daemon.url + "/v1/embeddings",
            headers=daemon.headers(),
            json={"model": "embed", "input": "alpha", "encoding_format": "float"},
        )
        assert answer.status_code == 200
        (item,) = answer.json()["data"]
        assert len(item["embedding"]) == 8 and all(isinstance(x, float) for x in item["embedding"])


def test_gemini_pro_out_of_the_box(start_daemon: Any) -> None:
    """With no providers configured, GOOGLE_API_KEY alone serves gemini-pro."""
    daemon = start_daemon("", env={"GOOGLE_API_KEY": GOOGLE_KEY})
    names = httpx.get(daemon.url + "/v1/models", headers=daemon.headers()).json()["data"]
    assert {"gemini-pro", "gemini-flash"} <= {m["id"] for m in names}


class TestErrorMapping:
    """Google's 400s: the client's fault goes back to it; a bad key of ours falls over."""

    @staticmethod
    async def call_with_answer(status: int, body: dict[str, Any]) -> Exception:
        from fkllmproxy.config.schema import ProviderConfig
        from fkllmproxy.providers import ChatRequest, build_provider

        def transport(_: ProviderConfig) -> Transport:
            return mock_transport(lambda request: httpx.Response(status, json=body))

        config = ProviderConfig(name="gem", type="gemini", api_key="k")
        provider = build_provider(config, transport)
        request = ChatRequest(
            raw=b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}',
            model="m",
            stream=False,
            client_model="m",
        )
        try:
            await provider.chat(request)
        except Exception as exc:
            return exc
        finally:
            await provider.aclose()
        raise AssertionError("the call should have failed")

    async def test_invalid_argument_is_the_clients(self) -> None:
        from fkllmproxy.errors import UpstreamRejected

        error = await self.call_with_answer(
            400, {"error": {"code": 400, "message": "bad schema", "status": "INVALID_ARGUMENT"}}
        )
        assert isinstance(error, UpstreamRejected) and error.status == 400
        assert b"bad schema" in error.body

    @pytest.mark.parametrize(
        "error",
        [
            {
                "code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
                "details": [{"reason": "API_KEY_INVALID", "domain": "googleapis.com"}],
            },
            {
                "code": 400,
                "message": "User location is not supported for the API use.",
                "status": "FAILED_PRECONDITION",
            },
        ],
    )
    async def test_our_key_or_region_is_not_the_clients(self, error: dict[str, Any]) -> None:
        from fkllmproxy.errors import UpstreamUnavailable

        found = await self.call_with_answer(400, {"error": error})
        assert isinstance(found, UpstreamUnavailable) and found.retryable
        assert found.upstream_status == 400
