"""The Gemini API inbound (``/v1beta/models/...``) through a real daemon.

One daemon serves the mock, an ``openai``, an ``anthropic``, a ``gemini`` and a
``vertex`` provider, all but the mock on the fake upstream. Tests check what the
client got (with plain HTTP here; the google-genai SDK in tests/clients) and what the
upstream was sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fkllmproxy.testing.fake_upstream import FakeUpstream, RecordedRequest
from tests.conftest import MASTER_KEY, RunningDaemon, wait_until

CONFIG = """
[cache]
enabled = true

[[models]]
name = "gem-remembered"
targets = [{{ provider = "gem", model = "ok" }}]
cache = true

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

[[auth.keys]]
name = "limited"
key_sha256 = "{limited_sha}"
models = ["mock"]
{models}
"""

LIMITED_KEY = "sk-limited-gemini-0123"
BEHAVIOURS = ("ok", "tools", "cut-stream", "error-midstream", "fault-400", "cached")
MODELS = "".join(
    f'\n[[models]]\nname = "{provider}-{behaviour}"\n'
    f'targets = [{{ provider = "{provider}", model = "{behaviour}" }}]\n'
    for provider in ("oai", "claude", "gem", "vtx", "az")
    for behaviour in BEHAVIOURS
)
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {
        "type": "OBJECT",
        "properties": {"city": {"type": "STRING", "nullable": True}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def daemon(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDaemon]:
    import hashlib

    tmp = tmp_path_factory.mktemp("gemini-api")
    credentials = upstream.write_service_account(tmp / "sa.json")
    config = CONFIG.format(
        url=upstream.url,
        models=MODELS,
        credentials=credentials,
        limited_sha=hashlib.sha256(LIMITED_KEY.encode()).hexdigest(),
    )
    with RunningDaemon(
        tmp,
        config,
        env={
            "FAKE_OPENAI_KEY": "sk-upstream-openai",
            "FAKE_ANTHROPIC_KEY": "sk-ant-upstream",
            "FAKE_GOOGLE_KEY": "google-upstream-key",
            "FAKE_AZURE_KEY": "azure-upstream-key",
        },
    ) as running:
        yield running


@pytest.fixture
def up(upstream: FakeUpstream) -> FakeUpstream:
    upstream.clear()
    return upstream


def call(
    daemon: RunningDaemon,
    model: str,
    method: str,
    body: Any,
    *,
    version: str = "v1beta",
    query: str = "",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    url = f"{daemon.url}/{version}/models/{model}:{method}{query}"
    all_headers = {"x-goog-api-key": MASTER_KEY, "content-type": "application/json"}
    all_headers.update(headers or {})
    return httpx.post(url, content=content, headers=all_headers, timeout=20)


def hello(text: str = "Hello there") -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


def sse_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def model_requests(up: FakeUpstream) -> list[RecordedRequest]:
    return [r for r in up.requests if r.path != "/token"]


class TestPassthrough:
    def test_body_goes_up_as_sent_and_answer_comes_back(
        self, daemon: RunningDaemon, up: FakeUpstream
    ) -> None:
        """safetySettings, thought signatures and unknown-to-us fields reach Google untouched."""
        body = {
            "contents": [
                {"role": "user", "parts": [{"text": "Weather?"}]},
                {
                    "role": "model",
                    "parts": [
                        {
                            "functionCall": {"name": "get_weather", "args": {"city": "Oslo"}},
                            "thoughtSignature": "c2lnbmF0dXJl",
                        },
                    ],
                },
                {
                    "role": "user",
                    "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": 3}}}],
                },
            ],
            "tools": [{"functionDeclarations": [WEATHER]}],
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
            "generationConfig": {"temperature": 0.2, "thinkingConfig": {"thinkingBudget": 128}},
        }
        raw = json.dumps(body).encode()
        reply = call(daemon, "gem-ok", "generateContent", raw)
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        assert answer["candidates"][0]["content"]["parts"][0]["text"] == "tool said: 3"
        assert answer["usageMetadata"]["promptTokenCount"] > 0
        (seen,) = model_requests(up)
        assert seen.path == "/v1beta/models/ok:generateContent"
        assert seen.body == raw
        assert seen.headers["x-goog-api-key"] == "google-upstream-key"

    @pytest.mark.parametrize("provider", ["gem", "vtx"])
    def test_stream_sse_relays_events(
        self, daemon: RunningDaemon, up: FakeUpstream, provider: str
    ) -> None:
        reply = call(
            daemon,
            f"{provider}-ok",
            "streamGenerateContent",
            hello("one two three"),
            query="?alt=sse",
        )
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = sse_events(reply.text)
        text = "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events)
        assert text == "echo: one two three"
        assert events[-1]["candidates"][0]["finishReason"] == "STOP"
        (seen,) = model_requests(up)
        assert seen.query == {"alt": "sse"}

    def test_stream_without_alt_is_one_json_array(self, daemon: RunningDaemon) -> None:
        reply = call(daemon, "gem-ok", "streamGenerateContent", hello("a b"))
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("application/json")
        events = reply.json()
        assert isinstance(events, list) and len(events) >= 2
        assert events[-1]["candidates"][0]["finishReason"] == "STOP"

    def test_vertex_gets_the_same_body(self, daemon: RunningDaemon, up: FakeUpstream) -> None:
        raw = json.dumps(hello("to vertex")).encode()
        reply = call(daemon, "models/vtx-ok", "generateContent", raw, version="v1")
        assert reply.status_code == 200, reply.text
        assert reply.json()["candidates"][0]["content"]["parts"][0]["text"] == "echo: to vertex"
        (seen,) = model_requests(up)
        assert seen.path.endswith("/publishers/google/models/ok:generateContent")
        assert seen.body == raw

    def test_upstream_refusal_is_googles_own(self, daemon: RunningDaemon) -> None:
        reply = call(daemon, "gem-fault-400", "generateContent", hello())
        assert reply.status_code == 400
        assert reply.json()["error"]["status"] == "INVALID_ARGUMENT"

    def test_cut_stream_ends_with_an_error_event(self, daemon: RunningDaemon) -> None:
        reply = call(
            daemon, "gem-cut-stream", "streamGenerateContent", hello("a b c d"), query="?alt=sse"
        )
        events = sse_events(reply.text)
        assert events[-1]["error"]["status"] == "UNAVAILABLE"

    def test_count_tokens_and_embeddings(self, daemon: RunningDaemon, up: FakeUpstream) -> None:
        count = call(daemon, "gem-ok", "countTokens", hello("one two three"))
        assert count.status_code == 200 and count.json()["totalTokens"] == 3
        batch = {
            "requests": [
                {"model": "models/gem-ok", "content": {"parts": [{"text": "a"}]}},
                {"model": "models/gem-ok", "content": {"parts": [{"text": "b"}]}},
            ]
        }
        embedded = call(daemon, "gem-ok", "batchEmbedContents", batch)
        assert embedded.status_code == 200, embedded.text
        assert len(embedded.json()["embeddings"]) == 2
        sent = json.loads(up.requests[-1].body)
        assert [r["model"] for r in sent["requests"]] == ["models/ok", "models/ok"]


class TestTranslated:
    @pytest.mark.parametrize("provider", ["oai", "claude", "az"])
    def test_text(self, daemon: RunningDaemon, up: FakeUpstream, provider: str) -> None:
        body = {
            **hello("Hi translated"),
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "generationConfig": {"maxOutputTokens": 50, "temperature": 0.5, "topK": 40},
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        }
        reply = call(daemon, f"{provider}-ok", "generateContent", body)
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        candidate = answer["candidates"][0]
        assert candidate["content"] == {"role": "model", "parts": [{"text": "echo: Hi translated"}]}
        assert candidate["finishReason"] == "STOP"
        usage = answer["usageMetadata"]
        assert usage["promptTokenCount"] > 0 and usage["candidatesTokenCount"] == 3
        assert usage["totalTokenCount"] == usage["promptTokenCount"] + 3
        (seen,) = model_requests(up)
        if provider in ("oai", "az"):
            assert seen.json["messages"][0] == {"role": "system", "content": "Be brief."}
            assert seen.json["max_completion_tokens"] == 50 and "top_k" not in seen.json
        else:
            assert seen.json["system"] and seen.json["top_k"] == 40

    @pytest.mark.parametrize("provider", ["oai", "claude"])
    def test_stream(self, daemon: RunningDaemon, provider: str) -> None:
        reply = call(
            daemon,
            f"{provider}-ok",
            "streamGenerateContent",
            hello("one two three"),
            query="?alt=sse",
        )
        assert reply.status_code == 200
        events = sse_events(reply.text)
        text = "".join(
            p.get("text", "") for e in events for p in e["candidates"][0]["content"]["parts"]
        )
        assert text == "echo: one two three"
        assert events[-1]["candidates"][0]["finishReason"] == "STOP"
        assert events[-1]["usageMetadata"]["candidatesTokenCount"] == 4

    @pytest.mark.parametrize("provider", ["oai", "claude"])
    def test_tool_round_trip(self, daemon: RunningDaemon, up: FakeUpstream, provider: str) -> None:
        tools = [{"functionDeclarations": [WEATHER]}]
        first = call(
            daemon, f"{provider}-tools", "generateContent", {**hello("Oslo"), "tools": tools}
        )
        assert first.status_code == 200, first.text
        part = first.json()["candidates"][0]["content"]["parts"][0]
        assert part["functionCall"]["name"] == "get_weather"
        assert part["functionCall"]["args"] == {"city": "Oslo"}
        sent_tools = model_requests(up)[0].json["tools"]
        if provider == "oai":
            schema = sent_tools[0]["function"]["parameters"]
            assert schema["properties"]["city"]["type"] == ["string", "null"]
        follow = {
            "contents": [
                {"role": "user", "parts": [{"text": "Oslo"}]},
                {"role": "model", "parts": [part]},
                {
                    "role": "user",
                    "parts": [
                        {
                            "functionResponse": {
                                "name": "get_weather",
                                "id": part["functionCall"].get("id"),
                                "response": {"output": "sunny"},
                            }
                        }
                    ],
                },
            ],
            "tools": tools,
        }
        second = call(daemon, f"{provider}-tools", "generateContent", follow)
        assert second.status_code == 200, second.text
        assert second.json()["candidates"][0]["content"]["parts"][0]["text"] == "tool said: sunny"

    def test_stream_tool_call_comes_whole(self, daemon: RunningDaemon) -> None:
        body = {**hello("Paris"), "tools": [{"functionDeclarations": [WEATHER]}]}
        reply = call(daemon, "oai-tools", "streamGenerateContent", body, query="?alt=sse")
        events = sse_events(reply.text)
        calls = [
            p["functionCall"]
            for e in events
            for p in e["candidates"][0]["content"]["parts"]
            if "functionCall" in p
        ]
        assert [c["args"] for c in calls] == [{"city": "Paris"}]

    @pytest.mark.parametrize("provider", ["oai", "claude"])
    def test_json_schema_output(
        self, daemon: RunningDaemon, up: FakeUpstream, provider: str
    ) -> None:
        schema = {"type": "OBJECT", "properties": {"echo": {"type": "STRING"}}}
        body = {
            **hello("json please"),
            "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema},
        }
        reply = call(daemon, f"{provider}-ok", "generateContent", body)
        assert reply.status_code == 200, reply.text
        (seen,) = model_requests(up)
        expected = {"type": "object", "properties": {"echo": {"type": "string"}}}
        if provider == "claude":
            # The fake's Anthropic API does not model structured output: what it is sent.
            assert seen.json["output_config"]["format"]["schema"] == expected
            return
        text = reply.json()["candidates"][0]["content"]["parts"][0]["text"]
        assert json.loads(text) == {"echo": "json please"}
        assert seen.json["response_format"]["json_schema"]["schema"] == expected

    def test_thinking_becomes_reasoning_effort(
        self, daemon: RunningDaemon, up: FakeUpstream
    ) -> None:
        body = {
            **hello(),
            "generationConfig": {
                "thinkingConfig": {"thinkingBudget": 8192, "includeThoughts": True}
            },
        }
        assert call(daemon, "oai-ok", "generateContent", body).status_code == 200
        assert model_requests(up)[0].json["reasoning_effort"] == "medium"

    @pytest.mark.parametrize("provider", ["oai", "claude"])
    def test_image_goes_as_a_data_url(
        self, daemon: RunningDaemon, up: FakeUpstream, provider: str
    ) -> None:
        image = {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
        body = {"contents": [{"role": "user", "parts": [{"text": "What is this?"}, image]}]}
        reply = call(daemon, f"{provider}-ok", "generateContent", body)
        assert reply.status_code == 200, reply.text
        content = model_requests(up)[0].json["messages"][0]["content"]
        if provider == "claude":
            source = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
            assert content[1] == {"type": "image", "source": source}
            return
        url = "data:image/png;base64,iVBORw0KGgo="
        assert content[1] == {"type": "image_url", "image_url": {"url": url}}

    def test_what_cannot_be_carried_is_a_named_400(self, daemon: RunningDaemon) -> None:
        video = {
            "contents": [{"parts": [{"inlineData": {"mimeType": "video/mp4", "data": "AAAA"}}]}]
        }
        reply = call(daemon, "claude-ok", "generateContent", video)
        assert reply.status_code == 400
        error = reply.json()["error"]
        assert error["status"] == "INVALID_ARGUMENT"
        assert (
            "contents[0].parts[0].inlineData" in error["message"] and "claude" in error["message"]
        )
        search = {**hello(), "tools": [{"googleSearch": {}}]}
        reply = call(daemon, "oai-ok", "generateContent", search)
        assert (
            reply.status_code == 400 and "tools[0].googleSearch" in reply.json()["error"]["message"]
        )
        cached = {**hello(), "cachedContent": "cachedContents/x"}
        reply = call(daemon, "oai-ok", "generateContent", cached)
        assert reply.status_code == 400 and "cachedContent" in reply.json()["error"]["message"]

    def test_midstream_failure_ends_with_an_error_event(self, daemon: RunningDaemon) -> None:
        reply = call(
            daemon,
            "oai-error-midstream",
            "streamGenerateContent",
            hello("a b c d e"),
            query="?alt=sse",
        )
        events = sse_events(reply.text)
        assert "error" in events[-1] and events[-1]["error"]["code"] >= 500

    def test_count_tokens_is_estimated(self, daemon: RunningDaemon) -> None:
        reply = call(
            daemon, "oai-ok", "countTokens", {"contents": [{"parts": [{"text": "x" * 400}]}]}
        )
        assert reply.status_code == 200 and reply.json() == {"totalTokens": 104}

    def test_embeddings_use_the_providers(self, daemon: RunningDaemon, up: FakeUpstream) -> None:
        single = call(daemon, "oai-ok", "embedContent", {"content": {"parts": [{"text": "hi"}]}})
        assert single.status_code == 200, single.text
        assert len(single.json()["embedding"]["values"]) > 0
        assert model_requests(up)[0].json["input"] == ["hi"]

    def test_mock_answers(self, daemon: RunningDaemon) -> None:
        """With what the Gemini CLI always sends: topK and a thinking budget."""
        config = {"topK": 64, "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 8192}}
        body = {**hello("Hello mock"), "generationConfig": config}
        reply = call(daemon, "mock", "generateContent", body)
        assert reply.status_code == 200, reply.text
        text = reply.json()["candidates"][0]["content"]["parts"][0]["text"]
        assert text == "This is the fkllmproxy mock. You said: Hello mock"


class TestKeysModelsAndErrors:
    def test_key_in_the_query_is_accepted_and_not_logged(self, daemon: RunningDaemon) -> None:
        url = f"{daemon.url}/v1beta/models/mock:generateContent?key={MASTER_KEY}"
        reply = httpx.post(url, json=hello(), timeout=20)
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-ratelimit-limit"] and reply.headers["x-request-id"]
        lines = [line for line in daemon.logs() if line.get("path", "").startswith("/v1beta/")]
        assert lines and all(MASTER_KEY not in json.dumps(line) for line in lines)
        assert MASTER_KEY not in "".join(daemon.stdout_lines())

    def test_errors_are_googles_shape(self, daemon: RunningDaemon) -> None:
        wrong = call(daemon, "mock", "generateContent", hello(), headers={"x-goog-api-key": "nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["status"] == "UNAUTHENTICATED"
        assert wrong.json()["error"]["code"] == 401
        missing = httpx.post(f"{daemon.url}/v1beta/models/mock:generateContent", json=hello())
        assert missing.status_code == 401 and "x-goog-api-key" in missing.json()["error"]["message"]
        assert missing.headers["www-authenticate"]
        unknown = call(daemon, "nope", "generateContent", hello())
        assert unknown.status_code == 404 and unknown.json()["error"]["status"] == "NOT_FOUND"
        forbidden = call(
            daemon, "oai-ok", "generateContent", hello(), headers={"x-goog-api-key": LIMITED_KEY}
        )
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["status"] == "PERMISSION_DENIED"
        bad = call(daemon, "mock", "generateContent", b"{not json")
        assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"
        wrong_type = call(daemon, "mock", "generateContent", {"contents": "hi"})
        assert wrong_type.status_code == 400 and "contents" in wrong_type.json()["error"]["message"]
        method = call(daemon, "mock", "fooBar", hello())
        assert method.status_code == 404 and method.json()["error"]["status"] == "NOT_FOUND"

    def test_model_list_and_one_model(self, daemon: RunningDaemon) -> None:
        headers = {"x-goog-api-key": LIMITED_KEY}
        listed = httpx.get(f"{daemon.url}/v1beta/models", headers=headers)
        assert listed.status_code == 200
        assert [m["name"] for m in listed.json()["models"]] == ["models/mock"]
        one = httpx.get(f"{daemon.url}/v1beta/models/mock", headers=headers)
        assert one.json()["name"] == "models/mock"
        assert "generateContent" in one.json()["supportedGenerationMethods"]

    def test_v1_models_is_openai_unless_the_key_comes_googles_way(
        self, daemon: RunningDaemon
    ) -> None:
        openai = httpx.get(
            f"{daemon.url}/v1/models", headers={"authorization": f"Bearer {MASTER_KEY}"}
        )
        assert openai.json()["object"] == "list"
        google = httpx.get(f"{daemon.url}/v1/models", headers={"x-goog-api-key": MASTER_KEY})
        assert "models" in google.json()
        by_query = httpx.get(f"{daemon.url}/v1/models?key={MASTER_KEY}")
        assert "models" in by_query.json()


class TestStreamsAndAccounting:
    def test_passthrough_error_event_is_relayed(self, daemon: RunningDaemon) -> None:
        """Google's own mid-stream error event reaches the client as Google sent it."""
        reply = call(
            daemon,
            "gem-error-midstream",
            "streamGenerateContent",
            hello("a b c d"),
            query="?alt=sse",
        )
        events = sse_events(reply.text)
        assert events[0]["candidates"][0]["content"]["parts"][0]["text"]
        assert events[-1]["error"]["status"] == "INTERNAL"

    def test_array_stream_failure_still_closes_the_array(self, daemon: RunningDaemon) -> None:
        """Without alt=sse a cut stream ends with an error element and a valid JSON array."""
        reply = call(daemon, "oai-cut-stream", "streamGenerateContent", hello("a b c d e f"))
        elements = reply.json()
        assert elements[0]["candidates"][0]["content"]["parts"][0]["text"]
        assert elements[-1]["error"]["code"] == 502
        assert elements[-1]["error"]["status"] == "UNAVAILABLE"

    def test_translated_array_stream(self, daemon: RunningDaemon) -> None:
        reply = call(daemon, "claude-ok", "streamGenerateContent", hello("x y"))
        elements = reply.json()
        text = "".join(
            p.get("text", "") for e in elements for p in e["candidates"][0]["content"]["parts"]
        )
        assert text == "echo: x y"

    def test_vertex_embeddings_are_translated_to_predict(
        self, daemon: RunningDaemon, up: FakeUpstream
    ) -> None:
        reply = call(daemon, "vtx-ok", "embedContent", {"content": {"parts": [{"text": "hi"}]}})
        assert reply.status_code == 200, reply.text
        assert reply.json()["embedding"]["values"]
        assert model_requests(up)[0].path.endswith("/publishers/google/models/ok:predict")

    def test_cached_tokens_and_usage_are_logged_and_counted(self, daemon: RunningDaemon) -> None:
        for model in ("gem-cached", "oai-cached"):
            reply = call(daemon, model, "generateContent", hello("one two three four"))
            assert reply.status_code == 200, reply.text
            usage = reply.json()["usageMetadata"]
            assert usage["cachedContentTokenCount"] == usage["promptTokenCount"] // 2

        def logged() -> list[dict[str, Any]]:
            wanted = ("gem-cached", "oai-cached")
            return [line for line in daemon.logs() if line.get("model") in wanted]

        # The request line is written once the answer has gone out: wait for it (bounded).
        assert wait_until(lambda: len(logged()) >= 2, timeout=10)
        lines = logged()
        assert len(lines) >= 2 and all(line.get("provider") in ("gem", "oai") for line in lines)
        assert all(line["prompt_tokens"] > 0 and line["completion_tokens"] > 0 for line in lines)
        assert all(
            line["path"] == "/v1beta/models/" + line["model"] + ":generateContent" for line in lines
        )
        metrics = httpx.get(f"{daemon.url}/metrics/prometheus").text
        assert 'route="/v1beta/models/{model}:generateContent"' in metrics

    def test_cache_answers_the_same_request_once(
        self, daemon: RunningDaemon, up: FakeUpstream
    ) -> None:
        raw = json.dumps(hello("remember me")).encode()
        first = call(daemon, "gem-remembered", "generateContent", raw)
        second = call(daemon, "gem-remembered", "generateContent", raw)
        assert first.status_code == second.status_code == 200
        assert first.content == second.content
        assert len(model_requests(up)) == 1
