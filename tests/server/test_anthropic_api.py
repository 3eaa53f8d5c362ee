"""``/v1/messages`` through a real daemon with the official anthropic SDK.

One daemon serves three kinds of provider: the built-in mock, a ``type = "openai"``
provider and a ``type = "anthropic"`` provider, both on the fake upstream. Tests check
what the client got and what the upstream was sent.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from fkllmproxy.testing.fake_upstream import FakeUpstream, RecordedRequest
from tests.conftest import MASTER_KEY, RunningDaemon, prometheus_samples, sample_sum, wait_until

OPENAI_KEY = "sk-upstream-openai"
ANTHROPIC_KEY = "sk-ant-upstream"

CONFIG = """
[cache]
enabled = true

[usage]
enabled = true
path = "{ledger}"

[[pricing]]
model = "cache-write"
input_per_mtok = 1_000_000
output_per_mtok = 0
cache_write_per_million = 2_000_000

[[providers]]
name = "mock"
type = "mock"

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

[[providers]]
name = "gem"
type = "gemini"
base_url = "{url}"
api_key_env = "FAKE_GOOGLE_KEY"

[[providers]]
name = "vtx"
type = "vertex"
base_url = "{url}"
credentials_file = "{credentials}"

[[providers]]
name = "az"
type = "azure"
base_url = "{url}"
api_key_env = "FAKE_AZURE_KEY"

[[models]]
name = "mock"
targets = [{{ provider = "mock", model = "mock-1" }}]

[[models]]
name = "cached"
targets = [{{ provider = "claude", model = "ok" }}]
cache = true

[[providers]]
name = "oai2"
type = "openai"
base_url = "{url}/v1"
api_key_env = "FAKE_OPENAI_KEY"

[[models]]
name = "oai-noreason"
targets = [{{ provider = "oai", model = "ok", reasoning = false }}]

[[models]]
name = "sticky"
targets = [{{ provider = "oai", model = "ok", weight = 1 }}, {{ provider = "oai2", model = "ok", weight = 1 }}]

[[models]]
name = "fallback"
targets = [{{ provider = "claude", model = "fault-500" }}, {{ provider = "oai", model = "gpt-4o-mini" }}]
{models}
"""

BEHAVIOURS = (
    "ok",
    "tools",
    "tools-all",
    "cut-stream",
    "error-midstream",
    "fault-400",
    "fault-nonjson",
    "cached",
    "cache-write",
)
MODELS = "".join(
    f'\n[[models]]\nname = "{prefix}-{behaviour}"\n'
    f'targets = [{{ provider = "{provider}", model = "{behaviour}" }}]\n'
    for prefix, provider in (("oai", "oai"), ("claude", "claude"))
    for behaviour in BEHAVIOURS
) + "".join(
    f'\n[[models]]\nname = "{provider}-{behaviour}"\n'
    f'targets = [{{ provider = "{provider}", model = "{model}" }}]\n'
    for provider in ("gem", "vtx", "az")
    for behaviour, model in (("ok", "gemini-2.5-flash"), ("tools", "tools"), ("cached", "cached"))
)

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def daemon(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDaemon]:
    tmp = tmp_path_factory.mktemp("anthropic-api")
    credentials = upstream.write_service_account(tmp / "sa.json")
    with RunningDaemon(
        tmp,
        CONFIG.format(
            url=upstream.url, models=MODELS, credentials=credentials, ledger=tmp / "usage.db"
        ),
        env={
            "FAKE_OPENAI_KEY": OPENAI_KEY,
            "FAKE_ANTHROPIC_KEY": ANTHROPIC_KEY,
            "FAKE_GOOGLE_KEY": "google-key",
            "FAKE_AZURE_KEY": "azure-key",
        },
    ) as running:
        yield running


@pytest.fixture
def client(daemon: RunningDaemon, upstream: FakeUpstream) -> anthropic.Anthropic:
    upstream.clear()
    return anthropic.Anthropic(base_url=daemon.url, api_key=MASTER_KEY, max_retries=0)


def sent(upstream: FakeUpstream, path: str) -> list[RecordedRequest]:
    return [r for r in upstream.requests if r.path == path]


def post_messages(daemon: RunningDaemon, body: Any, **headers: str) -> httpx.Response:
    all_headers = {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01", **headers}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(daemon.url + "/v1/messages", content=content, headers=all_headers)


def event_names(text: str) -> list[str]:
    return [line[7:] for line in text.splitlines() if line.startswith("event: ")]


class TestMockProvider:
    def test_message(self, client: anthropic.Anthropic) -> None:
        reply = client.messages.create(
            model="mock", max_tokens=64, messages=[{"role": "user", "content": "Hello there"}]
        )
        assert reply.content[0].type == "text"
        assert reply.content[0].text == "This is the fkllmproxy mock. You said: Hello there"
        assert reply.stop_reason == "end_turn"
        assert reply.usage.input_tokens == 2 and reply.usage.output_tokens > 0

    def test_stream(self, client: anthropic.Anthropic) -> None:
        with client.messages.stream(
            model="mock", max_tokens=64, messages=[{"role": "user", "content": "Hi stream"}]
        ) as stream:
            pieces = list(stream.text_stream)
            final = stream.get_final_message()
        assert len(pieces) > 3
        assert "".join(pieces) == "This is the fkllmproxy mock. You said: Hi stream"
        assert final.stop_reason == "end_turn"
        assert final.usage.output_tokens > 0

    def test_count_tokens_is_estimated(self, client: anthropic.Anthropic) -> None:
        """No tokenizer behind the mock: four characters a token, plus message framing."""
        count = client.messages.count_tokens(
            model="mock", messages=[{"role": "user", "content": "x" * 400}]
        )
        assert count.input_tokens == 104

    def test_errors_use_anthropics_shape(self, daemon: RunningDaemon) -> None:
        """401, 404 and 400 come as {"type": "error", "error": {...}}."""
        body = {"model": "mock", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
        wrong_key = post_messages(daemon, body, **{"x-api-key": "sk-wrong"})
        assert wrong_key.status_code == 401
        assert wrong_key.json()["error"]["type"] == "authentication_error"
        unknown = post_messages(daemon, {**body, "model": "nope"})
        assert unknown.status_code == 404
        assert unknown.json()["type"] == "error"
        assert "Available models" in unknown.json()["error"]["message"]
        no_max = post_messages(daemon, {"model": "mock", "messages": body["messages"]})
        assert no_max.status_code == 400
        assert no_max.json() == {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "Missing required field 'max_tokens'.",
            },
        }
        bad_json = post_messages(daemon, b"{not json")
        assert bad_json.status_code == 400 and bad_json.json()["type"] == "error"

    def test_bearer_auth_works_too(self, daemon: RunningDaemon) -> None:
        """Claude Code with ANTHROPIC_AUTH_TOKEN sends Authorization: Bearer."""
        client = anthropic.Anthropic(base_url=daemon.url, auth_token=MASTER_KEY, max_retries=0)
        reply = client.messages.create(
            model="mock", max_tokens=8, messages=[{"role": "user", "content": "bearer"}]
        )
        assert reply.content[0].text.endswith("You said: bearer")

    def test_unsupported_block_is_a_400_naming_it(self, client: anthropic.Anthropic) -> None:
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.messages.create(
                model="mock",
                max_tokens=8,
                messages=[{"role": "user", "content": "x"}],
                tools=[{"type": "web_search_20250305", "name": "web_search"}],
            )
        message = caught.value.body["error"]["message"]  # type: ignore[index]
        assert "tools[0].type" in message and "'mock' (mock)" in message


class TestOpenAIProvider:
    """Translated both ways: Anthropic in, OpenAI to the provider, Anthropic back."""

    def test_message_and_what_upstream_got(
        self, client: anthropic.Anthropic, upstream: FakeUpstream
    ) -> None:
        reply = client.messages.create(
            model="oai-ok",
            max_tokens=50,
            system=[{"type": "text", "text": "Be terse."}],
            extra_body={"temperature": 0.3},  # not a create() argument in newer SDKs
            stop_sequences=["STOP"],
            messages=[{"role": "user", "content": "hello world"}],
        )
        assert reply.content[0].text == "echo: hello world"  # type: ignore[union-attr]
        assert reply.stop_reason == "end_turn"
        assert (reply.usage.input_tokens, reply.usage.output_tokens) == (4, 3)
        (seen,) = sent(upstream, "/v1/chat/completions")
        assert seen.json["messages"] == [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "hello world"},
        ]
        assert seen.json["max_completion_tokens"] == 50
        assert seen.json["temperature"] == 0.3
        assert seen.json["stop"] == ["STOP"]
        assert seen.json["model"] == "ok"
        assert seen.headers["authorization"] == f"Bearer {OPENAI_KEY}"

    def test_stream_with_usage(self, client: anthropic.Anthropic, upstream: FakeUpstream) -> None:
        with client.messages.stream(
            model="oai-ok", max_tokens=50, messages=[{"role": "user", "content": "one two three"}]
        ) as stream:
            pieces = list(stream.text_stream)
            final = stream.get_final_message()
        assert len(pieces) >= 3 and "".join(pieces) == "echo: one two three"
        assert final.usage.input_tokens == 3 and final.usage.output_tokens == 4
        (seen,) = sent(upstream, "/v1/chat/completions")
        assert seen.json["stream"] is True
        assert seen.json["stream_options"] == {"include_usage": True}

    def test_tool_use_round_trip(self, client: anthropic.Anthropic, upstream: FakeUpstream) -> None:
        """A tool call comes back as tool_use; its result goes up as a tool message, same id."""
        question = {"role": "user", "content": "Oslo"}
        first = client.messages.create(
            model="oai-tools", max_tokens=50, tools=[WEATHER], messages=[question]
        )
        assert first.stop_reason == "tool_use"
        (use,) = [b for b in first.content if b.type == "tool_use"]
        assert use.name == "get_weather" and use.input == {"city": "Oslo"}
        second = client.messages.create(
            model="oai-tools",
            max_tokens=50,
            tools=[WEATHER],
            messages=[
                question,
                {"role": "assistant", "content": first.content},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "rain"}],
                },
            ],
        )
        assert second.content[0].text == "tool said: rain"  # type: ignore[union-attr]
        up_first, up_second = sent(upstream, "/v1/chat/completions")
        assert up_first.json["tools"] == [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": WEATHER["input_schema"],
                    "description": "Weather for a city.",
                },
            }
        ]
        assistant, tool = up_second.json["messages"][1:]
        assert assistant["tool_calls"][0]["id"] == use.id
        assert tool == {"role": "tool", "tool_call_id": use.id, "content": "rain"}

    def test_streamed_tool_calls(self, client: anthropic.Anthropic) -> None:
        """Two tool calls streamed: two tool_use blocks with their JSON input."""
        clock = {"name": "clock", "input_schema": {"type": "object", "properties": {"tz": {}}}}
        with client.messages.stream(
            model="oai-tools-all",
            max_tokens=50,
            tools=[WEATHER, clock],
            messages=[{"role": "user", "content": "Bergen"}],
        ) as stream:
            final = stream.get_final_message()
        uses = [(b.name, b.input) for b in final.content if b.type == "tool_use"]
        assert uses == [("get_weather", {"city": "Bergen"}), ("clock", {"tz": "Bergen"})]
        assert final.stop_reason == "tool_use"

    def test_cached_tokens(self, client: anthropic.Anthropic) -> None:
        reply = client.messages.create(
            model="oai-cached", max_tokens=50, messages=[{"role": "user", "content": "a b c d"}]
        )
        assert reply.usage.cache_read_input_tokens == 2
        assert reply.usage.input_tokens == 2

    def test_provider_400_in_anthropic_shape(self, client: anthropic.Anthropic) -> None:
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.messages.create(
                model="oai-fault-400", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        assert "fault-400" in caught.value.body["error"]["message"]  # type: ignore[index]

    @pytest.mark.parametrize("model", ["oai-cut-stream", "oai-error-midstream"])
    def test_broken_stream_ends_with_error_event(self, daemon: RunningDaemon, model: str) -> None:
        body = {
            "model": model,
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "one two three four five six"}],
        }
        response = post_messages(daemon, body)
        assert response.status_code == 200
        names = event_names(response.text)
        assert names[0] == "message_start"
        assert names[-1] == "error" and "message_stop" not in names
        error = json.loads(response.text.rstrip().splitlines()[-1][6:])
        assert error["type"] == "error" and error["error"]["type"] == "api_error"

    def test_sdk_raises_on_broken_stream(self, client: anthropic.Anthropic) -> None:
        with (
            pytest.raises(anthropic.APIStatusError, match="provider 'oai'"),
            client.messages.stream(
                model="oai-cut-stream",
                max_tokens=50,
                messages=[{"role": "user", "content": "one two three four"}],
            ) as stream,
        ):
            list(stream.text_stream)


class TestAnthropicProvider:
    """Native: the client's bytes go up untouched (model aside), the answer comes back as is."""

    def test_body_passes_through(self, daemon: RunningDaemon, upstream: FakeUpstream) -> None:
        body = {
            "model": "claude-ok",
            "max_tokens": 40,
            "system": [{"type": "text", "text": "Sys.", "cache_control": {"type": "ephemeral"}}],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [{"role": "user", "content": "pass me"}],
        }
        response = post_messages(daemon, body, **{"anthropic-beta": "context-1m-2025-08-07"})
        assert response.status_code == 200
        answer = response.json()
        assert answer["content"] == [{"type": "text", "text": "echo: pass me"}]
        assert answer["id"].startswith("msg_fake")
        (seen,) = sent(upstream, "/v1/messages")
        assert seen.json == {**body, "model": "ok"}
        assert seen.headers["x-api-key"] == ANTHROPIC_KEY
        assert seen.headers["anthropic-version"] == "2023-06-01"
        assert seen.headers["anthropic-beta"] == "context-1m-2025-08-07"
        assert MASTER_KEY not in str(seen.headers)

    def test_stream_passes_through(
        self, client: anthropic.Anthropic, daemon: RunningDaemon
    ) -> None:
        """Frames come back as the provider sent them; the log line still has the usage."""
        with client.messages.stream(
            model="claude-cached", max_tokens=40, messages=[{"role": "user", "content": "a b c d"}]
        ) as stream:
            pieces = list(stream.text_stream)
            final = stream.get_final_message()
        assert "".join(pieces) == "echo: a b c d"
        assert final.id.startswith("msg_fake") and final.usage.output_tokens == 5
        assert final.usage.cache_read_input_tokens == 2

        def logged() -> dict[str, Any] | None:
            lines = [line for line in daemon.logs() if line.get("model") == "claude-cached"]
            return lines[-1] if lines else None

        assert wait_until(lambda: logged() is not None, timeout=10)
        line = logged()
        assert line is not None and line["provider"] == "claude" and line["stream"] is True
        assert (line["prompt_tokens"], line["completion_tokens"]) == (4, 5)

    def test_beta_endpoint_passes_the_betas_on(
        self, client: anthropic.Anthropic, upstream: FakeUpstream
    ) -> None:
        """The SDK's beta namespace (what Claude Code uses) posts to /v1/messages?beta=true."""
        reply = client.beta.messages.create(
            model="claude-ok",
            max_tokens=20,
            betas=["interleaved-thinking-2025-05-14"],
            messages=[{"role": "user", "content": "beta"}],
        )
        assert reply.content[0].text == "echo: beta"  # type: ignore[union-attr]
        (seen,) = sent(upstream, "/v1/messages")
        assert seen.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"

    def test_tool_use(self, client: anthropic.Anthropic, upstream: FakeUpstream) -> None:
        reply = client.messages.create(
            model="claude-tools",
            max_tokens=40,
            tools=[WEATHER],
            tool_choice={"type": "auto"},
            messages=[{"role": "user", "content": "Rome"}],
        )
        (use,) = reply.content
        assert use.type == "tool_use" and use.input == {"city": "Rome"}
        (seen,) = sent(upstream, "/v1/messages")
        assert seen.json["tools"] == [WEATHER]

    def test_count_tokens_asks_the_provider(
        self, client: anthropic.Anthropic, upstream: FakeUpstream
    ) -> None:
        count = client.messages.count_tokens(
            model="claude-ok", system="s t", messages=[{"role": "user", "content": "one two three"}]
        )
        assert count.input_tokens == 5  # the fake's word count, not the proxy's estimate
        (seen,) = sent(upstream, "/v1/messages/count_tokens")
        assert seen.json["model"] == "ok"

    def test_provider_400_passes_its_message(self, client: anthropic.Anthropic) -> None:
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.messages.create(
                model="claude-fault-400", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        assert "fault-400" in caught.value.body["error"]["message"]  # type: ignore[index]

    def test_unreadable_answer_is_a_502(self, client: anthropic.Anthropic) -> None:
        """A 200 that is not a Message is the provider's failure, not passed on as an answer."""
        with pytest.raises(anthropic.APIStatusError) as caught:
            client.messages.create(
                model="claude-fault-nonjson",
                max_tokens=5,
                messages=[{"role": "user", "content": "x"}],
            )
        assert caught.value.status_code == 502
        assert caught.value.body["type"] == "error"  # type: ignore[index]

    def test_cut_stream_ends_with_error_event(self, daemon: RunningDaemon) -> None:
        body = {
            "model": "claude-cut-stream",
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "one two three four five six"}],
        }
        response = post_messages(daemon, body)
        names = event_names(response.text)
        assert names[0] == "message_start" and names[-1] == "error"
        assert "message_stop" not in names

    def test_providers_own_error_event_passes_once(self, daemon: RunningDaemon) -> None:
        body = {
            "model": "claude-error-midstream",
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "one two three four five six"}],
        }
        names = event_names(post_messages(daemon, body).text)
        assert names.count("error") == 1 and names[-1] == "error"


def test_fallback_from_anthropic_to_openai(
    client: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    """A failing Anthropic target falls back to an OpenAI one: translated on the way."""
    reply = client.messages.create(
        model="fallback", max_tokens=20, messages=[{"role": "user", "content": "still here"}]
    )
    assert reply.content[0].text == "echo: still here"  # type: ignore[union-attr]
    assert [r.path for r in upstream.requests] == ["/v1/messages", "/v1/chat/completions"]


def test_cache_serves_messages_and_keeps_apart_from_chat(
    daemon: RunningDaemon, upstream: FakeUpstream
) -> None:
    """A cached Message is served again; the same bytes on the chat route are not."""
    upstream.clear()
    body = {"model": "cached", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    first, second = post_messages(daemon, body), post_messages(daemon, body)
    assert first.headers["x-fkllm-cache"] == "miss" and second.headers["x-fkllm-cache"] == "hit"
    assert second.json() == first.json() and first.json()["type"] == "message"
    chat = httpx.post(daemon.url + "/v1/chat/completions", json=body, headers=daemon.headers())
    assert chat.status_code == 200 and chat.json()["object"] == "chat.completion"
    assert len(sent(upstream, "/v1/messages")) == 2


def model_calls(upstream: FakeUpstream) -> list[RecordedRequest]:
    return [r for r in upstream.requests if r.path != "/token"]


@pytest.mark.parametrize("provider", ["gem", "vtx", "az"])
class TestGoogleAndAzureProviders:
    """Anthropic in, through OpenAI's shape, to Gemini, Vertex AI and Azure OpenAI."""

    def test_message_with_system_prompt(
        self, client: anthropic.Anthropic, upstream: FakeUpstream, provider: str
    ) -> None:
        reply = client.messages.create(
            model=f"{provider}-ok",
            max_tokens=40,
            system="Be terse.",
            messages=[{"role": "user", "content": "hello there"}],
        )
        assert reply.content[0].text == "echo: hello there"  # type: ignore[union-attr]
        assert reply.stop_reason == "end_turn" and reply.usage.output_tokens == 3
        (seen,) = model_calls(upstream)
        if provider == "az":
            assert seen.path == "/openai/deployments/gemini-2.5-flash/chat/completions"
            assert seen.json["messages"][0] == {"role": "system", "content": "Be terse."}
        else:
            assert seen.json["systemInstruction"]["parts"] == [{"text": "Be terse."}]
            assert seen.json["contents"][0]["parts"] == [{"text": "hello there"}]

    def test_stream(self, client: anthropic.Anthropic, provider: str) -> None:
        with client.messages.stream(
            model=f"{provider}-ok",
            max_tokens=40,
            messages=[{"role": "user", "content": "one two three"}],
        ) as stream:
            pieces = list(stream.text_stream)
            final = stream.get_final_message()
        assert "".join(pieces) == "echo: one two three"
        assert final.stop_reason == "end_turn" and final.usage.output_tokens == 4

    def test_tool_use_round_trip(
        self, client: anthropic.Anthropic, upstream: FakeUpstream, provider: str
    ) -> None:
        question = {"role": "user", "content": "Lima"}
        first = client.messages.create(
            model=f"{provider}-tools", max_tokens=40, tools=[WEATHER], messages=[question]
        )
        (use,) = [b for b in first.content if b.type == "tool_use"]
        assert use.name == "get_weather" and use.input == {"city": "Lima"}
        assert first.stop_reason == "tool_use"
        result = {"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}
        second = client.messages.create(
            model=f"{provider}-tools",
            max_tokens=40,
            tools=[WEATHER],
            messages=[
                question,
                {"role": "assistant", "content": first.content},
                {"role": "user", "content": [result]},
            ],
        )
        assert second.content[0].text == "tool said: sunny"  # type: ignore[union-attr]
        up_first, up_second = model_calls(upstream)
        if provider == "az":
            assert up_first.json["tools"][0]["function"]["name"] == "get_weather"
            assert up_second.json["messages"][-1]["tool_call_id"] == use.id
        else:
            declarations = up_first.json["tools"][0]["functionDeclarations"]
            assert declarations[0]["name"] == "get_weather"
            response = up_second.json["contents"][-1]["parts"][0]["functionResponse"]
            assert response["name"] == "get_weather"


MID_SYSTEM_BETA = "mid-conversation-system-2026-04-07"
CLAUDE_CODE_BODY: dict[str, Any] = {
    "max_tokens": 64000,
    "stream": True,
    "system": [
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
    ],
    "messages": [
        {
            "role": "user",
            "content": [{"type": "text", "text": "say hi", "cache_control": {"type": "ephemeral"}}],
        },
        {"role": "system", "content": "Available agent types: Explore."},
    ],
    "thinking": {"type": "adaptive"},
    "output_config": {"effort": "high"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "metadata": {"user_id": "session-1"},
}


class TestClaudeCodeFidelity:
    """What Claude Code 2.1 sends for its newer model names, through each provider kind."""

    def test_system_message_in_messages_reaches_anthropic_as_sent(
        self, daemon: RunningDaemon, upstream: FakeUpstream
    ) -> None:
        """Role system inside messages, ?beta=true, the client's beta and version headers:
        all reach an Anthropic target untouched but for the model."""
        upstream.clear()
        body = {**CLAUDE_CODE_BODY, "model": "claude-ok"}
        response = httpx.post(
            daemon.url + "/v1/messages?beta=true",
            content=json.dumps(body).encode(),
            headers={
                "authorization": f"Bearer {MASTER_KEY}",
                "anthropic-version": "2023-06-01",
                "anthropic-beta": f"claude-code-20250219,{MID_SYSTEM_BETA}",
            },
        )
        assert response.status_code == 200, response.text
        assert "echo: say hi" in "".join(
            json.loads(line[5:]).get("delta", {}).get("text", "")
            for line in response.text.splitlines()
            if line.startswith("data:")
        )
        (seen,) = sent(upstream, "/v1/messages")
        assert seen.headers["anthropic-beta"] == f"claude-code-20250219,{MID_SYSTEM_BETA}"
        assert seen.headers["anthropic-version"] == "2023-06-01"
        assert seen.json == {**body, "model": "ok"}

    def test_client_anthropic_version_is_forwarded(
        self, daemon: RunningDaemon, upstream: FakeUpstream
    ) -> None:
        """The anthropic-version the client sent is the one the provider sees."""
        upstream.clear()
        body = {
            "model": "claude-ok",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "v"}],
        }
        assert post_messages(daemon, body, **{"anthropic-version": "2099-01-01"}).status_code == 200
        (seen,) = sent(upstream, "/v1/messages")
        assert seen.headers["anthropic-version"] == "2099-01-01"

    def test_anthropic_refusal_comes_back_verbatim(
        self, daemon: RunningDaemon, upstream: FakeUpstream
    ) -> None:
        """Without the beta the provider refuses the system role: its status and body, as sent."""
        upstream.clear()
        body = {**CLAUDE_CODE_BODY, "model": "claude-ok", "stream": False}
        response = post_messages(daemon, body)
        assert response.status_code == 400
        answer = response.json()
        assert answer["type"] == "error" and answer["request_id"].startswith("req_")
        assert 'Unexpected role "system"' in answer["error"]["message"]

    @pytest.mark.parametrize("model", ["oai-ok", "gem-ok"])
    def test_system_message_and_thinking_translate(
        self, daemon: RunningDaemon, upstream: FakeUpstream, model: str
    ) -> None:
        """To OpenAI and Gemini: the system message in place, thinking as reasoning effort or
        thinking budget, cache hints dropped; the client gets Anthropic events."""
        upstream.clear()
        body = {**CLAUDE_CODE_BODY, "model": model}
        response = post_messages(daemon, body, **{"anthropic-beta": MID_SYSTEM_BETA})
        assert response.status_code == 200, response.text
        assert event_names(response.text)[-1] == "message_stop"
        (seen,) = model_calls(upstream)
        if model == "oai-ok":
            roles = [m["role"] for m in seen.json["messages"]]
            assert roles == ["system", "user", "system"]
            assert seen.json["messages"][2]["content"] == "Available agent types: Explore."
            assert seen.json["reasoning_effort"] == "high"
        else:
            texts = [p["text"] for p in seen.json["systemInstruction"]["parts"]]
            assert texts == ["You are Claude Code.", "Available agent types: Explore."]
            config = seen.json["generationConfig"]["thinkingConfig"]
            assert config["thinkingBudget"] > 0
        assert "cache_control" not in seen.body.decode()

    @pytest.mark.parametrize("model", ["oai-ok", "gem-ok"])
    def test_pdf_and_image_blocks_translate(
        self, daemon: RunningDaemon, upstream: FakeUpstream, model: str
    ) -> None:
        """A base64 PDF document and a base64 image reach OpenAI and Gemini in their forms."""
        upstream.clear()
        pdf = {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}
        png = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
        content = [
            {"type": "document", "source": pdf, "title": "spec.pdf"},
            {"type": "image", "source": png},
            {"type": "text", "text": "summarise"},
        ]
        body = {
            "model": model,
            "max_tokens": 20,
            "messages": [{"role": "user", "content": content}],
        }
        response = post_messages(daemon, body)
        assert response.status_code == 200, response.text
        (seen,) = model_calls(upstream)
        if model == "oai-ok":
            parts = seen.json["messages"][0]["content"]
            assert parts[0]["file"]["file_data"] == "data:application/pdf;base64,JVBERi0xLjQK"
            assert parts[1]["image_url"]["url"] == "data:image/png;base64,iVBORw0KGgo="
        else:
            parts = seen.json["contents"][0]["parts"]
            assert parts[0]["inlineData"] == {"mimeType": "application/pdf", "data": "JVBERi0xLjQK"}
            assert parts[1]["inlineData"] == {"mimeType": "image/png", "data": "iVBORw0KGgo="}

    def test_pdf_by_url_to_openai_is_a_400_naming_it(self, daemon: RunningDaemon) -> None:
        """What a provider cannot take is refused by field and provider, in Anthropic's shape."""
        document = {"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}}
        body = {
            "model": "oai-ok",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": [document]}],
        }
        response = post_messages(daemon, body)
        assert response.status_code == 400
        message = response.json()["error"]["message"]
        assert "messages[0].content[0].source.type" in message and "'oai' (openai)" in message

    def test_a_target_without_reasoning_gets_no_effort(
        self, daemon: RunningDaemon, upstream: FakeUpstream
    ) -> None:
        """reasoning = false on a target: Claude Code's thinking is not sent to that model."""
        upstream.clear()
        body = {**CLAUDE_CODE_BODY, "model": "oai-noreason"}
        response = post_messages(daemon, body)
        assert response.status_code == 200, response.text
        (seen,) = model_calls(upstream)
        assert "reasoning_effort" not in seen.json

    def test_unknown_block_to_openai_is_a_400_naming_it(self, daemon: RunningDaemon) -> None:
        """A block type only Anthropic knows: 400 in Anthropic's shape naming path and provider."""
        block = {"type": "tool_addition", "tool": {"name": "x"}}
        body = {
            "model": "oai-ok",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": [block]}],
        }
        response = post_messages(daemon, body)
        assert response.status_code == 400
        error = response.json()
        assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
        assert "messages[0].content[0].type = 'tool_addition'" in error["error"]["message"]
        assert "'oai' (openai)" in error["error"]["message"]


def test_log_line_of_a_400_names_the_model(daemon: RunningDaemon) -> None:
    """A request refused at validation still logs the model its body named."""
    body = {"model": "claude-ok", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}
    response = post_messages(daemon, body, **{"x-request-id": "bad-max-tokens"})
    assert response.status_code == 400

    def line() -> dict[str, Any] | None:
        found = [e for e in daemon.logs() if e.get("request_id") == "bad-max-tokens"]
        return found[0] if found else None

    assert wait_until(lambda: line() is not None)
    logged = line()
    assert logged is not None and logged["status"] == 400 and logged["model"] == "claude-ok"


class TestCacheTokens:
    """Prompt-cache tokens: carried to the client, logged, counted and priced."""

    def line_for(self, daemon: RunningDaemon, request_id: str) -> dict[str, Any]:
        def found() -> list[dict[str, Any]]:
            return [e for e in daemon.logs() if e.get("request_id") == request_id]

        assert wait_until(lambda: bool(found()))
        return found()[0]

    @pytest.mark.parametrize("stream", [False, True])
    def test_anthropic_cache_write_is_logged_counted_and_priced(
        self, daemon: RunningDaemon, stream: bool
    ) -> None:
        """cache_creation_input_tokens: on the log line, in fkllm_tokens_total, in the cost."""
        request_id = f"cache-write-{stream}"
        body = {
            "model": "claude-cache-write",
            "max_tokens": 20,
            "stream": stream,
            "messages": [{"role": "user", "content": "a b c d"}],
        }
        before = prometheus_samples(httpx.get(daemon.url + "/metrics/prometheus").text)
        response = post_messages(daemon, body, **{"x-request-id": request_id})
        assert response.status_code == 200
        if not stream:
            usage = response.json()["usage"]
            assert (usage["input_tokens"], usage["cache_creation_input_tokens"]) == (2, 2)
        line = self.line_for(daemon, request_id)
        assert line["prompt_tokens"] == 4 and line["cache_write_tokens"] == 2
        assert "cache_read_tokens" not in line
        after = prometheus_samples(httpx.get(daemon.url + "/metrics/prometheus").text)
        labels = {"name": "fkllm_tokens_total", "provider": "claude", "kind": "cache_write"}
        assert sample_sum(after, **labels) - sample_sum(before, **labels) == 2

        def cost() -> Any:
            with sqlite3.connect(daemon.config_path.parent / "usage.db") as db:
                row = db.execute(
                    "SELECT cost_usd, cache_read_tokens, cache_write_tokens FROM usage"
                    " WHERE request_id = ?",
                    (request_id,),
                ).fetchone()
            return row

        assert wait_until(lambda: cost() is not None)
        # 4 prompt tokens at 1 USD each, the 2 written to the cache at 2 USD each.
        assert cost() == (pytest.approx(6.0), 0, 2)

    @pytest.mark.parametrize("model", ["claude-cached", "oai-cached", "gem-cached"])
    def test_cache_reads_reach_the_client_and_the_log(
        self, daemon: RunningDaemon, model: str
    ) -> None:
        """Anthropic's cache reads, OpenAI's cached_tokens and Gemini's
        cachedContentTokenCount translated: all read the same."""
        request_id = f"cache-read-{model}"
        body = {
            "model": model,
            "max_tokens": 20,
            "messages": [{"role": "user", "content": "a b c d"}],
        }
        response = post_messages(daemon, body, **{"x-request-id": request_id})
        assert response.json()["usage"]["cache_read_input_tokens"] == 2
        line = self.line_for(daemon, request_id)
        assert line["cache_read_tokens"] == 2 and line["prompt_tokens"] == 4


def test_a_claude_code_session_stays_on_one_target(daemon: RunningDaemon) -> None:
    """Same x-claude-code-session-id, same weighted target; other sessions spread."""
    body = {"model": "sticky", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}

    def provider_for(session: str, n: int) -> str:
        request_id = f"sticky-{session}-{n}"
        headers = {"x-claude-code-session-id": session, "x-request-id": request_id}
        assert post_messages(daemon, body, **headers).status_code == 200

        def line() -> list[dict[str, Any]]:
            return [e for e in daemon.logs() if e.get("request_id") == request_id]

        assert wait_until(lambda: bool(line()))
        return str(line()[0]["provider"])

    assert len({provider_for("session-one", n) for n in range(8)}) == 1
    assert {provider_for(f"session-{n}", 0) for n in range(16)} == {"oai", "oai2"}


def test_count_tokens_refusal_comes_back_verbatim(daemon: RunningDaemon) -> None:
    """Anthropic refusing a count_tokens call: its status and body reach the client as sent."""
    body = {"model": "claude-ok", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5}
    response = httpx.post(
        daemon.url + "/v1/messages/count_tokens",
        json=body,
        headers={"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"},
    )
    assert response.status_code == 400
    answer = response.json()
    assert answer["request_id"].startswith("req_")
    assert "max_tokens: Extra inputs are not permitted" in answer["error"]["message"]
