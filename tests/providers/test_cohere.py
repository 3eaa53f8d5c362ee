"""The ``cohere`` provider end to end: real daemon, fake Cohere v2 upstream, real SDKs.

Each test checks what the client got and what Cohere was sent (the fake records every
request as it arrived on the socket). The same Cohere-backed model is also reached
through the Anthropic Messages, Responses and Gemini inbound APIs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from fkllmproxy.providers.exchange import Transport
from fkllmproxy.testing._cohere import TEMPLATE_TOKENS
from fkllmproxy.testing.fake_upstream import FakeUpstream
from tests.conftest import MASTER_KEY, RunningDaemon, mock_transport, only_request, wait_until

COHERE_KEY = "co-fake-cohere-key-0123"

CONFIG = """
[[providers]]
name = "co"
type = "cohere"
base_url = "{url}"

[[models]]
name = "command"
targets = [{{ provider = "co", model = "command-a-03-2025" }}]

[[models]]
name = "tools"
targets = [{{ provider = "co", model = "tools" }}]

[[models]]
name = "thinking"
targets = [{{ provider = "co", model = "thinking" }}]

[[models]]
name = "cached"
targets = [{{ provider = "co", model = "cached" }}]

[[models]]
name = "cut"
targets = [{{ provider = "co", model = "cut-stream" }}]

[[models]]
name = "midstream"
targets = [{{ provider = "co", model = "error-midstream" }}]

[[models]]
name = "rejects"
targets = [{{ provider = "co", model = "fault-400" }}]

[[models]]
name = "overloaded"
targets = [{{ provider = "co", model = "fault-503" }}]

[[models]]
name = "embed"
targets = [{{ provider = "co", model = "embed-v4.0" }}]
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
        tmp_path_factory.mktemp("cohere"),
        CONFIG.format(url=upstream.url),
        env={"COHERE_API_KEY": COHERE_KEY},
    ) as running:
        yield running


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def sse_data(text: str) -> list[dict[str, Any]]:
    return [
        json.loads(line[6:])
        for line in text.splitlines()
        if line.startswith("data: ") and line[6:].strip() != "[DONE]"
    ]


class TestChat:
    def test_completion_and_what_cohere_was_sent(
        self, client: openai.OpenAI, upstream: FakeUpstream
    ) -> None:
        """System, sampling and limits reach /v2/chat under Cohere's names, with the key."""
        reply = client.chat.completions.create(
            model="command",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hello cohere"},
            ],
            max_tokens=50,
            temperature=0.3,
            top_p=0.9,
            stop=["zzz"],
            seed=7,
        )
        assert reply.choices[0].message.content == "echo: hello cohere"
        assert reply.choices[0].finish_reason == "stop"
        assert reply.usage is not None
        assert reply.usage.completion_tokens == 3
        seen = only_request(upstream)
        assert seen.path == "/v2/chat"
        assert seen.headers["authorization"] == f"Bearer {COHERE_KEY}"
        assert seen.json == {
            "model": "command-a-03-2025",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hello cohere"},
            ],
            "max_tokens": 50,
            "stop_sequences": ["zzz"],
            "temperature": 0.3,
            "seed": 7,
            "p": 0.9,
        }

    def test_usage_is_the_billed_units(self, client: openai.OpenAI) -> None:
        """Prompt tokens are what Cohere bills, not the tokens of its prompt template."""
        reply = client.chat.completions.create(model="command", messages=user("a b c d"))
        assert reply.usage is not None
        assert reply.usage.prompt_tokens == 4  # billed; ``tokens`` says 4 + TEMPLATE_TOKENS
        assert TEMPLATE_TOKENS > 0

    def test_streaming_with_usage(self, client: openai.OpenAI, upstream: FakeUpstream) -> None:
        """Cohere's typed events become chat chunks as they come, usage last."""
        stream = client.chat.completions.create(
            model="command",
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
        assert chunks[-1].usage.prompt_tokens == 3
        assert only_request(upstream).json["stream"] is True

    def test_streamed_usage_reaches_the_request_log(
        self, client: openai.OpenAI, daemon: RunningDaemon
    ) -> None:
        """The ledger's token fields come from message-end's usage."""
        stream = client.chat.completions.create(
            model="command", messages=user("count these five words"), stream=True
        )
        assert list(stream)

        def logged() -> list[dict[str, Any]]:
            return [
                line
                for line in daemon.logs()
                if line.get("path") == "/v1/chat/completions" and line.get("provider") == "co"
            ]

        assert wait_until(lambda: logged() and logged()[-1].get("completion_tokens") == 5)
        assert logged()[-1]["prompt_tokens"] == 4

    def test_cached_tokens_are_reported(self, client: openai.OpenAI) -> None:
        """Cohere's ``cached_tokens`` reach OpenAI's ``prompt_tokens_details``."""
        reply = client.chat.completions.create(model="cached", messages=user("a b c d e f g h"))
        assert reply.usage is not None and reply.usage.prompt_tokens_details is not None
        assert reply.usage.prompt_tokens_details.cached_tokens == 4

    def test_json_schema_output(self, client: openai.OpenAI, upstream: FakeUpstream) -> None:
        """A JSON schema becomes Cohere's json_object format with its json_schema."""
        schema = {"type": "object", "properties": {"echo": {"type": "string"}}}
        reply = client.chat.completions.create(
            model="command",
            messages=user("json please"),
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "out", "schema": schema},
            },
        )
        assert reply.choices[0].message.content == '{"echo": "json please"}'
        sent = only_request(upstream).json["response_format"]
        assert sent == {"type": "json_object", "json_schema": schema}

    def test_image_is_sent_as_cohere_image_url(
        self, client: openai.OpenAI, upstream: FakeUpstream
    ) -> None:
        """An inline image keeps its data URL and detail in Cohere's image_url block."""
        url = "data:image/png;base64,iVBORw0KGgo="
        client.chat.completions.create(
            model="command",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this"},
                        {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
                    ],
                }
            ],
        )
        assert only_request(upstream).json["messages"][0]["content"] == [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
        ]

    def test_reasoning_comes_back_as_reasoning_content(
        self, client: openai.OpenAI, upstream: FakeUpstream
    ) -> None:
        """reasoning_effort turns thinking on; Cohere's thinking block is reasoning_content."""
        reply = client.chat.completions.create(
            model="thinking", messages=user("Hello think"), reasoning_effort="low"
        )
        message = reply.choices[0].message.model_dump()
        assert message["reasoning_content"] == "The user wrote 'Hello think'; answer it."
        assert only_request(upstream).json["thinking"] == {"type": "enabled", "token_budget": 1024}


class TestTools:
    def test_tool_call_then_result(self, client: openai.OpenAI, upstream: FakeUpstream) -> None:
        """A call comes back with Cohere's id; the result goes back to it by that id."""
        first = client.chat.completions.create(
            model="tools", messages=user("Paris"), tools=WEATHER, tool_choice="auto"
        )
        assert first.choices[0].finish_reason == "tool_calls"
        (call,) = first.choices[0].message.tool_calls or []
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Paris"}
        assert call.id.startswith("get_weather_")
        assert first.choices[0].message.content == "I will use get_weather to answer this."
        sent = only_request(upstream).json
        assert sent["tools"] == WEATHER
        assert "tool_choice" not in sent

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
        assert second.choices[0].finish_reason == "stop"
        messages = only_request(upstream).json["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
        assert messages[1] == {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.function.arguments},
                }
            ],
            "tool_plan": "I will use get_weather to answer this.",
        }
        assert messages[2] == {
            "role": "tool",
            "tool_call_id": call.id,
            "content": [{"type": "text", "text": "18C"}],
        }

    def test_streamed_tool_call(self, client: openai.OpenAI) -> None:
        """tool-call-start/-delta become one tool call whose arguments arrive in pieces."""
        stream = client.chat.completions.create(
            model="tools", messages=user("Oslo"), tools=WEATHER, stream=True
        )
        chunks = list(stream)
        calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
        assert [tc.function.name for tc in calls if tc.function and tc.function.name] == [
            "get_weather"
        ]
        arguments = "".join(tc.function.arguments or "" for tc in calls if tc.function)
        assert json.loads(arguments) == {"city": "Oslo"}
        assert len([tc for tc in calls if tc.function and tc.function.arguments]) >= 2
        plan = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert plan == "I will use get_weather to answer this."
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"

    def test_streamed_answer_to_a_tool_result_skips_citations(self, client: openai.OpenAI) -> None:
        """Cohere cites tool results; the citation events add nothing to the text."""
        first = client.chat.completions.create(model="tools", messages=user("Rome"), tools=WEATHER)
        (call,) = first.choices[0].message.tool_calls or []
        stream = client.chat.completions.create(
            model="tools",
            messages=[
                *user("Rome"),
                first.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
            ],
            tools=WEATHER,
            stream=True,
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "tool said: sunny"

    def test_named_tool_choice_offers_only_that_tool(
        self, client: openai.OpenAI, upstream: FakeUpstream
    ) -> None:
        """Cohere cannot name a tool: only that one is offered, and a call is REQUIRED."""
        other = {**WEATHER[0], "function": {**WEATHER[0]["function"], "name": "get_time"}}
        client.chat.completions.create(
            model="command",
            messages=user("x"),
            tools=[*WEATHER, other],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
        sent = only_request(upstream).json
        assert sent["tool_choice"] == "REQUIRED"
        assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]


class TestFailures:
    def test_stream_cut_short_ends_with_an_error(self, client: openai.OpenAI) -> None:
        """A stream without message-end is an error, not a short answer."""
        stream = client.chat.completions.create(
            model="cut", messages=user("a b c d e f"), stream=True
        )
        with pytest.raises(openai.APIError) as caught:
            list(stream)
        assert "co" in str(caught.value.message)

    def test_error_midstream_ends_with_an_error(self, client: openai.OpenAI) -> None:
        """message-end with finish_reason ERROR carries Cohere's error to the client."""
        stream = client.chat.completions.create(
            model="midstream", messages=user("a b c d e f"), stream=True
        )
        with pytest.raises(openai.APIError) as caught:
            list(stream)
        assert "error-midstream" in str(caught.value.message)

    def test_rejection_carries_coheres_message(self, client: openai.OpenAI) -> None:
        """A 400 from Cohere is the client's, with Cohere's message."""
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="rejects", messages=user("x"))
        assert "fault-400" in str(caught.value.message)

    def test_server_error_is_a_502(self, client: openai.OpenAI) -> None:
        """Cohere's 5xx is an upstream failure: 502 for a model with no other target."""
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="overloaded", messages=user("x"))
        assert caught.value.status_code == 502

    def test_unsupported_field_is_refused_before_any_upstream_call(
        self, client: openai.OpenAI, upstream: FakeUpstream
    ) -> None:
        """logprobs cannot be carried: a 400 naming it and the provider, nothing sent."""
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="command", messages=user("x"), logprobs=True)
        assert "'logprobs'" in str(caught.value.message)
        assert "'co'" in str(caught.value.message)
        assert upstream.requests == []

    def test_several_choices_are_refused(
        self, client: openai.OpenAI, upstream: FakeUpstream
    ) -> None:
        """n > 1 has no Cohere equivalent."""
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="command", messages=user("x"), n=2)
        assert "'n'" in str(caught.value.message)
        assert upstream.requests == []


class TestEmbeddings:
    def test_batch_embeddings_as_the_sdk_asks(
        self, client: openai.OpenAI, upstream: FakeUpstream
    ) -> None:
        """texts, input_type and output_dimension reach /v2/embed; base64 is packed here."""
        result = client.embeddings.create(model="embed", input=["alpha", "beta"], dimensions=4)
        assert [item.index for item in result.data] == [0, 1]
        assert [len(item.embedding) for item in result.data] == [4, 4]
        assert result.data[0].embedding != result.data[1].embedding
        assert result.usage.prompt_tokens == 2
        seen = only_request(upstream)
        assert seen.path == "/v2/embed"
        assert seen.json == {
            "model": "embed-v4.0",
            "texts": ["alpha", "beta"],
            "input_type": "search_document",
            "embedding_types": ["float"],
            "output_dimension": 4,
        }

    def test_input_type_and_float_encoding(
        self, daemon: RunningDaemon, upstream: FakeUpstream
    ) -> None:
        """Cohere's own input_type may be sent in the body; floats come back as floats."""
        upstream.clear()
        answer = httpx.post(
            daemon.url + "/v1/embeddings",
            headers=daemon.headers(),
            json={
                "model": "embed",
                "input": "alpha",
                "encoding_format": "float",
                "input_type": "search_query",
            },
        )
        assert answer.status_code == 200, answer.text
        (item,) = answer.json()["data"]
        assert len(item["embedding"]) == 8 and all(isinstance(x, float) for x in item["embedding"])
        assert only_request(upstream).json["input_type"] == "search_query"

    def test_more_than_96_texts_go_in_several_calls(
        self, client: openai.OpenAI, upstream: FakeUpstream
    ) -> None:
        """Cohere takes 96 texts a call: 100 inputs are two calls, answered in order."""
        texts = [f"text {i}" for i in range(100)]
        result = client.embeddings.create(model="embed", input=texts, encoding_format="float")
        assert len(result.data) == 100
        assert [len(r.json["texts"]) for r in upstream.requests] == [96, 4]
        single = client.embeddings.create(model="embed", input="text 99", encoding_format="float")
        assert result.data[99].embedding == single.data[0].embedding

    def test_bad_input_type_is_a_400(self, daemon: RunningDaemon, upstream: FakeUpstream) -> None:
        upstream.clear()
        answer = httpx.post(
            daemon.url + "/v1/embeddings",
            headers=daemon.headers(),
            json={"model": "embed", "input": "alpha", "input_type": "everything"},
        )
        assert answer.status_code == 400
        assert "input_type" in answer.json()["error"]["message"]
        assert upstream.requests == []


class TestOtherInboundApis:
    """The same Cohere-backed model through the Anthropic, Responses and Gemini APIs."""

    def test_anthropic_messages(self, daemon: RunningDaemon, upstream: FakeUpstream) -> None:
        upstream.clear()
        import anthropic

        client = anthropic.Anthropic(base_url=daemon.url, api_key=MASTER_KEY, max_retries=0)
        reply = client.messages.create(
            model="command",
            max_tokens=100,
            system="Be brief.",
            messages=[{"role": "user", "content": "hello anthropic"}],
        )
        assert reply.content[0].type == "text" and reply.content[0].text == "echo: hello anthropic"
        assert reply.stop_reason == "end_turn"
        sent = only_request(upstream).json
        assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
        assert sent["max_tokens"] == 100

    def test_anthropic_tool_round_trip_streamed(
        self, daemon: RunningDaemon, upstream: FakeUpstream
    ) -> None:
        """tool_use out of Cohere's tool events; the tool_result goes back by its id."""
        upstream.clear()
        import anthropic

        client = anthropic.Anthropic(base_url=daemon.url, api_key=MASTER_KEY, max_retries=0)
        tools: Any = [{"name": "get_weather", "input_schema": WEATHER[0]["function"]["parameters"]}]
        with client.messages.stream(
            model="tools",
            max_tokens=100,
            tools=tools,
            messages=[{"role": "user", "content": "Lima"}],
        ) as stream:
            first = stream.get_final_message()
        (use,) = [b for b in first.content if b.type == "tool_use"]
        assert use.name == "get_weather" and use.input == {"city": "Lima"}
        assert first.stop_reason == "tool_use"
        second = client.messages.create(
            model="tools",
            max_tokens=100,
            tools=tools,
            messages=[
                {"role": "user", "content": "Lima"},
                {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "warm"}],
                },
            ],
        )
        assert second.content[0].type == "text" and second.content[0].text == "tool said: warm"
        tool_message = upstream.requests[-1].json["messages"][-1]
        assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == use.id

    def test_responses(self, client: openai.OpenAI, upstream: FakeUpstream) -> None:
        reply = client.responses.create(model="command", input="hello responses")
        assert reply.output_text == "echo: hello responses"
        assert only_request(upstream).path == "/v2/chat"

    def test_responses_stream(self, client: openai.OpenAI) -> None:
        events = list(client.responses.create(model="command", input="a b c", stream=True))
        deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
        assert "".join(deltas) == "echo: a b c"
        assert events[-1].type == "response.completed"

    def test_gemini_generate_and_stream(
        self, daemon: RunningDaemon, upstream: FakeUpstream
    ) -> None:
        upstream.clear()
        headers = {"x-goog-api-key": MASTER_KEY}
        body = {"contents": [{"role": "user", "parts": [{"text": "hello gemini"}]}]}
        reply = httpx.post(
            f"{daemon.url}/v1beta/models/command:generateContent", json=body, headers=headers
        )
        assert reply.status_code == 200, reply.text
        parts = reply.json()["candidates"][0]["content"]["parts"]
        assert "".join(p.get("text", "") for p in parts) == "echo: hello gemini"
        streamed = httpx.post(
            f"{daemon.url}/v1beta/models/command:streamGenerateContent?alt=sse",
            json=body,
            headers=headers,
        )
        assert streamed.status_code == 200, streamed.text
        text = "".join(
            part.get("text", "")
            for event in sse_data(streamed.text)
            for candidate in event.get("candidates", [])
            for part in candidate.get("content", {}).get("parts", [])
        )
        assert text == "echo: hello gemini"
        assert [r.path for r in upstream.requests] == ["/v2/chat", "/v2/chat"]


class TestErrorMapping:
    """Cohere's statuses: the request's faults go back to the client; ours fall over."""

    @staticmethod
    async def call_with_answer(status: int, body: dict[str, Any]) -> Exception:
        from fkllmproxy.config.schema import ProviderConfig
        from fkllmproxy.providers import ChatRequest, build_provider

        def transport(_: ProviderConfig) -> Transport:
            return mock_transport(lambda request: httpx.Response(status, json=body))

        config = ProviderConfig(name="co", type="cohere", api_key="k")
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

    @pytest.mark.parametrize("status", [400, 422])
    async def test_invalid_request_is_the_clients(self, status: int) -> None:
        from fkllmproxy.errors import UpstreamRejected

        error = await self.call_with_answer(status, {"id": "x", "message": "invalid request: k"})
        assert isinstance(error, UpstreamRejected) and error.status == status
        assert b"invalid request: k" in error.body

    @pytest.mark.parametrize("status", [401, 402, 429, 498, 500, 503])
    async def test_our_account_or_their_load_is_not_the_clients(self, status: int) -> None:
        from fkllmproxy.errors import UpstreamUnavailable

        found = await self.call_with_answer(status, {"id": "x", "message": "no"})
        assert isinstance(found, UpstreamUnavailable) and found.retryable
        assert found.upstream_status == status

    async def test_a_200_that_is_not_an_answer_falls_over(self) -> None:
        from fkllmproxy.errors import UpstreamUnavailable

        found = await self.call_with_answer(200, {"text": "not a v2 answer"})
        assert isinstance(found, UpstreamUnavailable) and found.upstream_status == 200
