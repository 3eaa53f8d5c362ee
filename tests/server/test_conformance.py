"""The conformance matrix: every inbound API against every provider type, feature by feature.

One daemon serves one provider of each type (``openai``, ``azure``, ``anthropic``,
``gemini``, ``vertex`` with the fake's OAuth, ``cohere``, and the built-in ``mock``), all but the
mock on the fake upstream. Each case sends one request in the inbound API's own shape
and checks what the client got and what the upstream was sent. ``docs/compatibility.md``
cites these cases cell by cell, so keep the ids (``test_X[api-provider]``) stable.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fkllmproxy.testing.fake_upstream import FakeUpstream, RecordedRequest
from tests.conftest import MASTER_KEY, RunningDaemon

APIS = ("chat", "responses", "anthropic", "gemini")
PROVIDERS = ("openai", "azure", "anthropic", "gemini", "vertex", "cohere", "mock")
UPSTREAMS = PROVIDERS[:-1]
BEHAVIOURS = ("ok", "tools", "thinking", "cached")
# The wire format each provider type is sent, whichever API the client spoke.
WIRE = {
    "openai": "chat",
    "azure": "chat",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "vertex": "gemini",
    "cohere": "cohere",
}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 24).decode()
SCHEMA = {
    "type": "object",
    "properties": {"echo": {"type": "string"}},
    "required": ["echo"],
    "additionalProperties": False,
}
PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
MOCK_TEXT = "This is the fkllmproxy mock. You said: "

CONFIG = """
[[providers]]
name = "mock"
type = "mock"

[[providers]]
name = "openai"
type = "openai"
base_url = "{url}/v1"
api_key = "sk-upstream-openai"

[[providers]]
name = "azure"
type = "azure"
base_url = "{url}"
api_key = "azure-upstream-key"

[[providers]]
name = "anthropic"
type = "anthropic"
base_url = "{url}"
api_key = "sk-ant-upstream"

[[providers]]
name = "gemini"
type = "gemini"
base_url = "{url}"
api_key = "google-upstream-key"

[[providers]]
name = "vertex"
type = "vertex"
base_url = "{url}"
credentials_file = "{credentials}"

[[providers]]
name = "cohere"
type = "cohere"
base_url = "{url}"
api_key = "co-upstream-key"
{models}
"""
MODELS = "".join(
    f'\n[[models]]\nname = "{provider}-{behaviour}"\n'
    f'targets = [{{ provider = "{provider}", model = "{behaviour}" }}]\n'
    for provider in PROVIDERS
    for behaviour in BEHAVIOURS
)


@pytest.fixture(scope="module")
def daemon(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDaemon]:
    tmp = tmp_path_factory.mktemp("conformance")
    credentials = upstream.write_service_account(tmp / "sa.json")
    config = CONFIG.format(url=upstream.url, credentials=credentials, models=MODELS)
    with RunningDaemon(tmp, config) as running:
        yield running


@pytest.fixture
def up(upstream: FakeUpstream) -> FakeUpstream:
    upstream.clear()
    return upstream


def seen(up: FakeUpstream) -> RecordedRequest:
    """The one model request the upstream saw (Vertex's token fetches aside)."""
    (request,) = [r for r in up.requests if r.path != "/token"]
    return request


def sse_data(text: str) -> list[dict[str, Any]]:
    return [
        json.loads(line[6:])
        for line in text.splitlines()
        if line.startswith("data: ") and line[6:].strip() != "[DONE]"
    ]


# --- one client per inbound API: requests in its shape, answers read from its shape ---


class Chat:
    """OpenAI Chat Completions, ``/v1/chat/completions``."""

    def post(self, d: RunningDaemon, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            d.url + "/v1/chat/completions", json=body, headers=d.headers(), timeout=20
        )

    def body(self, model: str, prompt: str, **extra: Any) -> dict[str, Any]:
        return {"model": model, "messages": [{"role": "user", "content": prompt}], **extra}

    def text(self, answer: dict[str, Any]) -> str:
        return str(answer["choices"][0]["message"]["content"] or "")

    def stream(self, d: RunningDaemon, model: str, text: str) -> str:
        reply = self.post(d, self.body(model, text, stream=True))
        assert reply.status_code == 200, reply.text
        return "".join(
            chunk["choices"][0]["delta"].get("content") or ""
            for chunk in sse_data(reply.text)
            if chunk.get("choices")
        )

    def stream_thought(self, d: RunningDaemon, body: dict[str, Any]) -> tuple[str, str]:
        reply = self.post(d, {**body, "stream": True})
        assert reply.status_code == 200, reply.text
        deltas = [c["choices"][0]["delta"] for c in sse_data(reply.text) if c.get("choices")]
        text = "".join(delta.get("content") or "" for delta in deltas)
        return text, "".join(delta.get("reasoning_content") or "" for delta in deltas)

    def stream_tool_call(self, d: RunningDaemon, body: dict[str, Any]) -> tuple[str, Any]:
        reply = self.post(d, {**body, "stream": True})
        assert reply.status_code == 200, reply.text
        name, arguments = "", ""
        for chunk in sse_data(reply.text):
            for call in (chunk.get("choices") or [{}])[0].get("delta", {}).get("tool_calls") or []:
                name += call.get("function", {}).get("name") or ""
                arguments += call.get("function", {}).get("arguments") or ""
        return name, json.loads(arguments)

    def tools(self, model: str, text: str) -> dict[str, Any]:
        tool = {"type": "function", "function": {"name": "get_weather", "parameters": PARAMS}}
        return self.body(model, text, tools=[tool])

    def tool_call(self, answer: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        (call,) = answer["choices"][0]["message"]["tool_calls"]
        return call["function"]["name"], json.loads(call["function"]["arguments"])

    def image(self, model: str, text: str) -> dict[str, Any]:
        parts = [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        ]
        return {"model": model, "messages": [{"role": "user", "content": parts}]}

    def structured(self, model: str, text: str) -> dict[str, Any]:
        fmt = {"type": "json_schema", "json_schema": {"name": "echo", "schema": SCHEMA}}
        return self.body(model, text, response_format=fmt)

    def thinking(self, model: str, text: str) -> dict[str, Any]:
        return self.body(model, text, reasoning_effort="low")

    def thought(self, answer: dict[str, Any]) -> str:
        return str(answer["choices"][0]["message"].get("reasoning_content") or "")

    def cached(self, answer: dict[str, Any]) -> int:
        return int(answer["usage"]["prompt_tokens_details"]["cached_tokens"])

    def error_message(self, reply: httpx.Response) -> str:
        error = reply.json()["error"]
        assert isinstance(error["type"], str)
        return str(error["message"])


class Responses:
    """OpenAI Responses, ``/v1/responses``."""

    def post(self, d: RunningDaemon, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(d.url + "/v1/responses", json=body, headers=d.headers(), timeout=20)

    def body(self, model: str, prompt: str, **extra: Any) -> dict[str, Any]:
        return {"model": model, "input": prompt, **extra}

    def text(self, answer: dict[str, Any]) -> str:
        return "".join(
            part["text"]
            for item in answer["output"]
            if item["type"] == "message"
            for part in item["content"]
            if part["type"] == "output_text"
        )

    def stream(self, d: RunningDaemon, model: str, text: str) -> str:
        reply = self.post(d, self.body(model, text, stream=True))
        assert reply.status_code == 200, reply.text
        events = sse_data(reply.text)
        assert events[-1]["type"] == "response.completed"
        return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")

    def stream_thought(self, d: RunningDaemon, body: dict[str, Any]) -> tuple[str, str]:
        reply = self.post(d, {**body, "stream": True})
        assert reply.status_code == 200, reply.text
        final = sse_data(reply.text)[-1]
        assert final["type"] == "response.completed"
        return self.text(final["response"]), self.thought(final["response"])

    def stream_tool_call(self, d: RunningDaemon, body: dict[str, Any]) -> tuple[str, Any]:
        reply = self.post(d, {**body, "stream": True})
        assert reply.status_code == 200, reply.text
        events = sse_data(reply.text)
        (done,) = [e for e in events if e["type"] == "response.function_call_arguments.done"]
        assert events[-1]["type"] == "response.completed"
        return done["name"], json.loads(done["arguments"])

    def tools(self, model: str, text: str) -> dict[str, Any]:
        tool = {"type": "function", "name": "get_weather", "parameters": PARAMS}
        return self.body(model, text, tools=[tool])

    def tool_call(self, answer: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        (call,) = [item for item in answer["output"] if item["type"] == "function_call"]
        return call["name"], json.loads(call["arguments"])

    def image(self, model: str, text: str) -> dict[str, Any]:
        parts = [
            {"type": "input_text", "text": text},
            {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
        ]
        return {"model": model, "input": [{"role": "user", "content": parts}]}

    def structured(self, model: str, text: str) -> dict[str, Any]:
        fmt = {"type": "json_schema", "name": "echo", "schema": SCHEMA}
        return self.body(model, text, text={"format": fmt})

    def thinking(self, model: str, text: str) -> dict[str, Any]:
        return self.body(model, text, reasoning={"effort": "low"})

    def thought(self, answer: dict[str, Any]) -> str:
        return "".join(
            part.get("text", "")
            for item in answer["output"]
            if item["type"] == "reasoning"
            for part in (item.get("summary") or []) + (item.get("content") or [])
        )

    def cached(self, answer: dict[str, Any]) -> int:
        return int(answer["usage"]["input_tokens_details"]["cached_tokens"])

    def error_message(self, reply: httpx.Response) -> str:
        error = reply.json()["error"]
        assert isinstance(error["type"], str)
        return str(error["message"])


class Messages:
    """Anthropic Messages, ``/v1/messages``."""

    headers = {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"}

    def post(self, d: RunningDaemon, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(d.url + "/v1/messages", json=body, headers=self.headers, timeout=20)

    def body(self, model: str, prompt: str, **extra: Any) -> dict[str, Any]:
        message = {"role": "user", "content": prompt}
        return {"model": model, "max_tokens": 4096, "messages": [message], **extra}

    def text(self, answer: dict[str, Any]) -> str:
        return "".join(b["text"] for b in answer["content"] if b["type"] == "text")

    def stream(self, d: RunningDaemon, model: str, text: str) -> str:
        reply = self.post(d, self.body(model, text, stream=True))
        assert reply.status_code == 200, reply.text
        events = sse_data(reply.text)
        assert events[-1]["type"] == "message_stop"
        return "".join(
            e["delta"]["text"]
            for e in events
            if e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta"
        )

    def stream_thought(self, d: RunningDaemon, body: dict[str, Any]) -> tuple[str, str]:
        reply = self.post(d, {**body, "stream": True})
        assert reply.status_code == 200, reply.text
        deltas = [e["delta"] for e in sse_data(reply.text) if e["type"] == "content_block_delta"]
        text = "".join(delta.get("text", "") for delta in deltas)
        return text, "".join(delta.get("thinking", "") for delta in deltas)

    def stream_tool_call(self, d: RunningDaemon, body: dict[str, Any]) -> tuple[str, Any]:
        reply = self.post(d, {**body, "stream": True})
        assert reply.status_code == 200, reply.text
        events = sse_data(reply.text)
        (start,) = [
            e["content_block"]
            for e in events
            if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use"
        ]
        arguments = "".join(
            e["delta"]["partial_json"]
            for e in events
            if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
        )
        return start["name"], json.loads(arguments)

    def tools(self, model: str, text: str) -> dict[str, Any]:
        return self.body(model, text, tools=[{"name": "get_weather", "input_schema": PARAMS}])

    def tool_call(self, answer: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        (call,) = [b for b in answer["content"] if b["type"] == "tool_use"]
        assert answer["stop_reason"] == "tool_use"
        return call["name"], call["input"]

    def image(self, model: str, text: str) -> dict[str, Any]:
        source = {"type": "base64", "media_type": "image/png", "data": PNG}
        parts = [{"type": "text", "text": text}, {"type": "image", "source": source}]
        return {"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": parts}]}

    def structured(self, model: str, text: str) -> dict[str, Any]:
        fmt = {"type": "json_schema", "schema": SCHEMA}
        return self.body(model, text, output_config={"format": fmt})

    def thinking(self, model: str, text: str) -> dict[str, Any]:
        return self.body(model, text, thinking={"type": "enabled", "budget_tokens": 2048})

    def thought(self, answer: dict[str, Any]) -> str:
        return "".join(b["thinking"] for b in answer["content"] if b["type"] == "thinking")

    def cached(self, answer: dict[str, Any]) -> int:
        return int(answer["usage"]["cache_read_input_tokens"])

    def error_message(self, reply: httpx.Response) -> str:
        answer = reply.json()
        assert answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
        return str(answer["error"]["message"])


class Gemini:
    """Google's Gemini API, ``/v1beta/models/{model}:generateContent``."""

    headers = {"x-goog-api-key": MASTER_KEY}

    def post(self, d: RunningDaemon, body: dict[str, Any]) -> httpx.Response:
        url = f"{d.url}/v1beta/models/{body.pop('model')}:generateContent"
        return httpx.post(url, json=body, headers=self.headers, timeout=20)

    def body(self, model: str, prompt: str, **extra: Any) -> dict[str, Any]:
        return {
            "model": model,
            "contents": [{"role": "user", "parts": [{"text": prompt}]}],
            **extra,
        }

    def _parts(self, answer: dict[str, Any]) -> list[dict[str, Any]]:
        return list(answer["candidates"][0]["content"]["parts"])

    def text(self, answer: dict[str, Any]) -> str:
        return "".join(p.get("text", "") for p in self._parts(answer) if not p.get("thought"))

    def stream(self, d: RunningDaemon, model: str, text: str) -> str:
        url = f"{d.url}/v1beta/models/{model}:streamGenerateContent?alt=sse"
        body = self.body(model, text)
        del body["model"]
        reply = httpx.post(url, json=body, headers=self.headers, timeout=20)
        assert reply.status_code == 200, reply.text
        return "".join(
            part.get("text", "")
            for event in sse_data(reply.text)
            for candidate in event.get("candidates", [])
            for part in candidate.get("content", {}).get("parts", [])
        )

    def stream_thought(self, d: RunningDaemon, body: dict[str, Any]) -> tuple[str, str]:
        body = dict(body)
        url = f"{d.url}/v1beta/models/{body.pop('model')}:streamGenerateContent?alt=sse"
        reply = httpx.post(url, json=body, headers=self.headers, timeout=20)
        assert reply.status_code == 200, reply.text
        parts = [
            part
            for event in sse_data(reply.text)
            for candidate in event.get("candidates", [])
            for part in candidate.get("content", {}).get("parts", [])
        ]
        text = "".join(p.get("text", "") for p in parts if not p.get("thought"))
        return text, "".join(p.get("text", "") for p in parts if p.get("thought"))

    def stream_tool_call(self, d: RunningDaemon, body: dict[str, Any]) -> tuple[str, Any]:
        body = dict(body)
        url = f"{d.url}/v1beta/models/{body.pop('model')}:streamGenerateContent?alt=sse"
        reply = httpx.post(url, json=body, headers=self.headers, timeout=20)
        assert reply.status_code == 200, reply.text
        (call,) = [
            part["functionCall"]
            for event in sse_data(reply.text)
            for candidate in event.get("candidates", [])
            for part in candidate.get("content", {}).get("parts", [])
            if "functionCall" in part
        ]
        return call["name"], call["args"]

    def tools(self, model: str, text: str) -> dict[str, Any]:
        tool = {"functionDeclarations": [{"name": "get_weather", "parameters": PARAMS}]}
        return self.body(model, text, tools=[tool])

    def tool_call(self, answer: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        (call,) = [p["functionCall"] for p in self._parts(answer) if "functionCall" in p]
        return call["name"], call["args"]

    def image(self, model: str, text: str) -> dict[str, Any]:
        parts = [{"text": text}, {"inlineData": {"mimeType": "image/png", "data": PNG}}]
        return {"model": model, "contents": [{"role": "user", "parts": parts}]}

    def structured(self, model: str, text: str) -> dict[str, Any]:
        config = {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA}
        return self.body(model, text, generationConfig=config)

    def thinking(self, model: str, text: str) -> dict[str, Any]:
        config = {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 1024}}
        return self.body(model, text, generationConfig=config)

    def thought(self, answer: dict[str, Any]) -> str:
        return "".join(p.get("text", "") for p in self._parts(answer) if p.get("thought"))

    def cached(self, answer: dict[str, Any]) -> int:
        return int(answer["usageMetadata"].get("cachedContentTokenCount", 0))

    def error_message(self, reply: httpx.Response) -> str:
        error = reply.json()["error"]
        assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
        return str(error["message"])


CLIENTS: dict[str, Any] = {
    "chat": Chat(),
    "responses": Responses(),
    "anthropic": Messages(),
    "gemini": Gemini(),
}
MATRIX = [
    pytest.param(api, provider, id=f"{api}-{provider}") for api in APIS for provider in PROVIDERS
]
UPSTREAM_MATRIX = [p for p in MATRIX if p.values[1] != "mock"]


def ok(reply: httpx.Response) -> dict[str, Any]:
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert isinstance(answer, dict)
    return answer


# --- what the upstream was sent, read in the provider's own wire format ---


def upstream_texts(request: RecordedRequest) -> str:
    """Every text the upstream request carries, as one string (for containment checks)."""
    return json.dumps(request.json)


def upstream_image(provider: str, request: RecordedRequest) -> bool:
    body = request.json
    if WIRE[provider] in ("chat", "cohere"):  # Cohere takes OpenAI's image_url block
        parts = body["messages"][-1]["content"]
        return any(
            p.get("type") == "image_url" and p["image_url"]["url"] == f"data:image/png;base64,{PNG}"
            for p in parts
        )
    if WIRE[provider] == "anthropic":
        blocks = body["messages"][-1]["content"]
        return any(
            b.get("type") == "image"
            and b["source"] == {"type": "base64", "media_type": "image/png", "data": PNG}
            for b in blocks
        )
    parts = body["contents"][-1]["parts"]
    return any(p.get("inlineData") == {"mimeType": "image/png", "data": PNG} for p in parts)


def upstream_schema(provider: str, request: RecordedRequest) -> Any:
    body = request.json
    if WIRE[provider] == "chat":
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema"
        return fmt["json_schema"]["schema"]
    if WIRE[provider] == "anthropic":
        fmt = body["output_config"]["format"]
        assert fmt["type"] == "json_schema"
        return fmt["schema"]
    if WIRE[provider] == "cohere":
        fmt = body["response_format"]
        assert fmt["type"] == "json_object"
        return fmt["json_schema"]
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    return config.get("responseJsonSchema") or config.get("responseSchema")


def upstream_thinking(provider: str, request: RecordedRequest) -> bool:
    body = request.json
    if WIRE[provider] == "chat":
        return body.get("reasoning_effort") not in (None, "none")
    if WIRE[provider] == "anthropic":
        return body.get("thinking", {}).get("type") in ("enabled", "adaptive")
    if WIRE[provider] == "cohere":
        return body.get("thinking", {}).get("type") == "enabled"
    thinking = body["generationConfig"]["thinkingConfig"]
    return thinking.get("includeThoughts") is True or thinking.get("thinkingBudget", 0) > 0


# --- the matrix: text, stream, tools, images, structured output, thinking, cache tokens ---


@pytest.mark.parametrize(("api", "provider"), MATRIX)
def test_text(daemon: RunningDaemon, up: FakeUpstream, api: str, provider: str) -> None:
    """A plain non-streamed answer in the client's own shape."""
    client = CLIENTS[api]
    answer = ok(client.post(daemon, client.body(f"{provider}-ok", "Hello conform")))
    if provider == "mock":
        assert client.text(answer) == MOCK_TEXT + "Hello conform"
        return
    assert client.text(answer) == "echo: Hello conform"
    assert "Hello conform" in upstream_texts(seen(up))


@pytest.mark.parametrize(("api", "provider"), MATRIX)
def test_stream(daemon: RunningDaemon, up: FakeUpstream, api: str, provider: str) -> None:
    """A streamed answer in the client's own event shape, its text whole."""
    text = CLIENTS[api].stream(daemon, f"{provider}-ok", "Hello stream")
    if provider == "mock":
        assert text == MOCK_TEXT + "Hello stream"
        return
    assert text == "echo: Hello stream"
    request = seen(up)
    if WIRE[provider] == "gemini":
        assert request.path.endswith(":streamGenerateContent")
    else:
        assert request.json["stream"] is True


@pytest.mark.parametrize(("api", "provider"), MATRIX)
def test_tools(daemon: RunningDaemon, up: FakeUpstream, api: str, provider: str) -> None:
    """A function tool offered in the client's shape comes back as a call in that shape."""
    client = CLIENTS[api]
    answer = ok(client.post(daemon, client.tools(f"{provider}-tools", "Paris")))
    if provider == "mock":  # no model behind it: the tools are accepted, the answer is text
        assert client.text(answer) == MOCK_TEXT + "Paris"
        return
    assert client.tool_call(answer) == ("get_weather", {"city": "Paris"})
    assert "get_weather" in upstream_texts(seen(up))


@pytest.mark.parametrize(("api", "provider"), UPSTREAM_MATRIX)
def test_stream_tools(daemon: RunningDaemon, up: FakeUpstream, api: str, provider: str) -> None:
    """Streamed, the tool call comes whole out of the client's own events."""
    client = CLIENTS[api]
    call = client.stream_tool_call(daemon, client.tools(f"{provider}-tools", "Paris"))
    assert call == ("get_weather", {"city": "Paris"})


@pytest.mark.parametrize(("api", "provider"), MATRIX)
def test_images(daemon: RunningDaemon, up: FakeUpstream, api: str, provider: str) -> None:
    """An inline PNG reaches the provider in its own image form, bytes intact."""
    client = CLIENTS[api]
    answer = ok(client.post(daemon, client.image(f"{provider}-ok", "Describe this")))
    if provider == "mock":
        assert client.text(answer) == MOCK_TEXT + "Describe this"
        return
    assert client.text(answer) == "echo: Describe this"
    assert upstream_image(provider, seen(up))


@pytest.mark.parametrize(("api", "provider"), MATRIX)
def test_structured_output(
    daemon: RunningDaemon, up: FakeUpstream, api: str, provider: str
) -> None:
    """A JSON schema in the client's shape reaches the provider as its own schema setting."""
    client = CLIENTS[api]
    answer = ok(client.post(daemon, client.structured(f"{provider}-ok", "Hello json")))
    if provider == "mock":
        assert client.text(answer) == MOCK_TEXT + "Hello json"
        return
    assert upstream_schema(provider, seen(up)) == SCHEMA
    assert json.loads(client.text(answer)) == {"echo": "Hello json"}


# Where the thoughts do not come back, and why (docs/compatibility.md says the same).
THOUGHTS_NOT_RETURNED = {
    # OpenAI's Chat API has no thoughts to ask for: reasoning_effort sets Gemini's budget,
    # and Gemini returns thoughts only when asked (includeThoughts).
    ("chat", "gemini"),
    ("chat", "vertex"),
}
REASONING_REFUSED = {("chat", "anthropic"), ("responses", "anthropic")}


@pytest.mark.parametrize(("api", "provider"), UPSTREAM_MATRIX)
def test_thinking(daemon: RunningDaemon, up: FakeUpstream, api: str, provider: str) -> None:
    """Asking to think reaches the provider as its reasoning setting; the thoughts come back."""
    client = CLIENTS[api]
    reply = client.post(daemon, client.thinking(f"{provider}-thinking", "Hello think"))
    if (api, provider) in REASONING_REFUSED:
        # Anthropic's thinking needs its signed blocks replayed on every tool turn, which
        # OpenAI's history cannot carry: refused by name, not half-done.
        assert reply.status_code == 400, reply.text
        message = client.error_message(reply)
        field = "reasoning.effort" if api == "responses" else "reasoning_effort"
        assert f"'{field}'" in message and "'anthropic'" in message
        assert not [r for r in up.requests if r.path != "/token"]
        return
    answer = ok(reply)
    assert client.text(answer) == "echo: Hello think"
    if (api, provider) == ("gemini", "anthropic"):
        # thinkingConfig is a hint the README names: left out for Anthropic.
        assert "thinking" not in seen(up).json
        assert client.thought(answer) == ""
        return
    assert upstream_thinking(provider, seen(up))
    if (api, provider) in THOUGHTS_NOT_RETURNED:
        assert client.thought(answer) == ""
    else:
        assert client.thought(answer) == "The user wrote 'Hello think'; answer it."


STREAMED_THOUGHTS = [
    p for p in UPSTREAM_MATRIX if (p.values[0], p.values[1]) not in REASONING_REFUSED
]


@pytest.mark.parametrize(("api", "provider"), STREAMED_THOUGHTS)
def test_stream_thinking(daemon: RunningDaemon, up: FakeUpstream, api: str, provider: str) -> None:
    """Streamed, the thoughts come back as the non-streamed answer has them."""
    client = CLIENTS[api]
    body = client.thinking(f"{provider}-thinking", "Hello think")
    text, thought = client.stream_thought(daemon, body)
    assert text == "echo: Hello think"
    if (api, provider) in THOUGHTS_NOT_RETURNED or (api, provider) == ("gemini", "anthropic"):
        assert thought == ""
    else:
        assert thought == "The user wrote 'Hello think'; answer it."


@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_openai_sdk_reads_streamed_reasoning(daemon: RunningDaemon, provider: str) -> None:
    """The openai SDK's typed parser reads the reasoning events of a translated stream."""
    import openai

    client = openai.OpenAI(base_url=daemon.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    stream = client.responses.create(
        model=f"{provider}-thinking", input="Hello think", reasoning={"effort": "low"}, stream=True
    )
    events = list(stream)
    deltas = [e.delta for e in events if e.type == "response.reasoning_text.delta"]
    assert "".join(deltas) == "The user wrote 'Hello think'; answer it."
    final = events[-1]
    assert final.type == "response.completed"
    reasoning = final.response.output[0]
    assert reasoning.type == "reasoning" and reasoning.content is not None
    assert reasoning.content[0].text == "The user wrote 'Hello think'; answer it."
    assert final.response.output_text == "echo: Hello think"


@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_stored_reasoning_continues_a_conversation(
    daemon: RunningDaemon, up: FakeUpstream, provider: str
) -> None:
    """A stored answer with a reasoning item continues by previous_response_id."""
    client = CLIENTS["responses"]
    first = ok(client.post(daemon, client.thinking(f"{provider}-thinking", "Hello think")))
    assert [item["type"] for item in first["output"]] == ["reasoning", "message"]
    up.clear()
    body = client.body(f"{provider}-ok", "And again", previous_response_id=first["id"])
    second = ok(client.post(daemon, body))
    assert client.text(second) == "echo: And again"
    sent = upstream_texts(seen(up))
    assert "echo: Hello think" in sent and "The user wrote" not in sent


@pytest.mark.parametrize(("api", "provider"), UPSTREAM_MATRIX)
def test_cache_tokens(daemon: RunningDaemon, up: FakeUpstream, api: str, provider: str) -> None:
    """Prompt-cache reads the provider reports reach the client's usage in its shape."""
    client = CLIENTS[api]
    prompt = "one two three four five six seven eight"
    answer = ok(client.post(daemon, client.body(f"{provider}-cached", prompt)))
    assert client.cached(answer) > 0


# --- nothing silently dropped: what the provider cannot carry is a 400 naming it ---

# A field each inbound API has that a translated provider cannot carry.
UNCARRIABLE: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": ("logprobs", {"logprobs": True}),
    "responses": ("web_search", {"tools": [{"type": "web_search"}]}),
    "anthropic": (
        "mcp_servers",
        {"mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "x"}]},
    ),
    "gemini": ("cachedContent", {"cachedContent": "cachedContents/abc"}),
}
# The pairs where the client's API is the provider's own: the request passes through.
PASSTHROUGH = {
    ("chat", "openai"),
    ("chat", "azure"),
    ("anthropic", "anthropic"),
    ("gemini", "gemini"),
    ("gemini", "vertex"),
    ("chat", "mock"),  # the mock speaks Chat itself and ignores what it has no use for
}
TRANSLATED = [p for p in MATRIX if (p.values[0], p.values[1]) not in PASSTHROUGH]


@pytest.mark.parametrize(("api", "provider"), TRANSLATED)
def test_uncarriable_field_is_refused(
    daemon: RunningDaemon, up: FakeUpstream, api: str, provider: str
) -> None:
    """A field the provider has no place for: 400 naming it and the provider, in the API's shape."""
    client = CLIENTS[api]
    field, extra = UNCARRIABLE[api]
    reply = client.post(daemon, client.body(f"{provider}-ok", "Hello refuse", **extra))
    assert reply.status_code == 400, reply.text
    message = client.error_message(reply)
    assert field in message and f"'{provider}'" in message
    assert not [r for r in up.requests if r.path != "/token"]


# Hints the contract and the README name as left out for providers without the setting.
HINTS: dict[tuple[str, str], tuple[dict[str, Any], str]] = {
    ("anthropic", "openai"): (
        {"system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]},
        "cache_control",
    ),
    ("anthropic", "gemini"): ({"service_tier": "auto"}, "service_tier"),
    ("gemini", "openai"): (
        {"safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]},
        "safetySettings",
    ),
    ("gemini", "anthropic"): (
        {"generationConfig": {"thinkingConfig": {"thinkingBudget": 1024}}},
        "thinking",
    ),
    ("responses", "anthropic"): ({"truncation": "auto"}, "truncation"),
    ("responses", "gemini"): ({"include": ["reasoning.encrypted_content"]}, "include"),
}


@pytest.mark.parametrize(
    ("api", "provider"), [pytest.param(*pair, id="-".join(pair)) for pair in HINTS]
)
def test_named_hints_are_left_out(
    daemon: RunningDaemon, up: FakeUpstream, api: str, provider: str
) -> None:
    """The hints the README names go nowhere for a provider without them; the answer is whole."""
    client = CLIENTS[api]
    extra, hint = HINTS[(api, provider)]
    answer = ok(client.post(daemon, client.body(f"{provider}-ok", "Hello hint", **extra)))
    assert client.text(answer) == "echo: Hello hint"
    assert hint not in upstream_texts(seen(up))


def test_compatibility_doc_cites_real_cases() -> None:
    """Every case docs/compatibility.md cites is one of this module's, and every case is cited."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "compatibility.md").read_text()
    cited = set(re.findall(r"`(test_\w+)\[([\w-]+)\]`", doc))

    def ids(params: list[Any]) -> set[str]:
        return {p.id for p in params}

    cases = {
        "test_text": ids(MATRIX),
        "test_stream": ids(MATRIX),
        "test_tools": ids(MATRIX),
        "test_stream_tools": ids(UPSTREAM_MATRIX),
        "test_images": ids(MATRIX),
        "test_structured_output": ids(MATRIX),
        "test_thinking": ids(UPSTREAM_MATRIX),
        "test_stream_thinking": ids(STREAMED_THOUGHTS),
        "test_cache_tokens": ids(UPSTREAM_MATRIX),
        "test_uncarriable_field_is_refused": ids(TRANSLATED),
        "test_named_hints_are_left_out": {"-".join(pair) for pair in HINTS},
        "test_openai_sdk_reads_streamed_reasoning": {"openai", "gemini"},
        "test_stored_reasoning_continues_a_conversation": {"openai", "gemini"},
    }
    existing = {(name, case) for name, found in cases.items() for case in found}
    assert cited <= existing, sorted(cited - existing)
    assert existing <= cited, sorted(existing - cited)
