"""The semantic cache on ``/v1/messages``, ``/v1/responses`` and the Gemini routes.

Against a real daemon and the fake upstream, as ``test_semantic_cache.py`` does for
chat: a miss then a paraphrase that hits, whole and streamed, answered in the API's
own shape; the eligibility rules; and one entry serving the same question whichever
API asked it. Each API is tried on a target that speaks it (the answer passes through)
and on an OpenAI target (the answer is translated), since a miss's answer is read in
the client's shape either way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fkllmproxy.testing.fake_upstream import FakeUpstream
from tests.conftest import MASTER_KEY, RunningDaemon
from tests.server.test_semantic_cache import cosine

TEAM_KEY = "sk-team-semantic-shapes-a"
OTHER_KEY = "sk-team-semantic-shapes-b"


def config(url: str) -> str:
    def key(name: str, secret: str) -> str:
        digest = hashlib.sha256(secret.encode()).hexdigest()
        return f'[[auth.keys]]\nname = "{name}"\nkey_sha256 = "{digest}"\n'

    semantic = 'cache = "semantic"\nsemantic = { embedding_model = "embed", threshold = 0.95 }'
    return f"""
[cache]
enabled = true

{key("team-a", TEAM_KEY)}
{key("team-b", OTHER_KEY)}
[[providers]]
name = "up"
type = "openai"
base_url = "{url}/v1"
api_key = "sk-upstream"

[[providers]]
name = "resp"
type = "openai"
base_url = "{url}/v1"
api_key = "sk-upstream"
responses_api = true

[[providers]]
name = "ant"
type = "anthropic"
base_url = "{url}"
api_key = "sk-ant-upstream"

[[providers]]
name = "gem"
type = "gemini"
base_url = "{url}"
api_key = "google-upstream"

[[models]]
name = "embed"
targets = [{{ provider = "up", model = "text-embedding-3-small" }}]

[[models]]
name = "chat"
targets = [{{ provider = "up", model = "gpt-4o-mini" }}]
{semantic}

[[models]]
name = "claude"
targets = [{{ provider = "ant", model = "ok" }}]
{semantic}

[[models]]
name = "gemini"
targets = [{{ provider = "gem", model = "ok" }}]
{semantic}

[[models]]
name = "responder"
targets = [{{ provider = "resp", model = "ok" }}]
{semantic}

[[models]]
name = "exact"
targets = [{{ provider = "up", model = "gpt-4o-mini" }}]
cache = true
"""


@pytest.fixture(scope="module")
def daemon(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One daemon for the module; each test asks its own questions (entries never collide)."""
    with RunningDaemon(tmp_path_factory.mktemp("semshapes"), config(upstream.url)) as running:
        yield running


def _headers(key: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **(extra or {})}


def generation_calls(upstream: FakeUpstream) -> int:
    """Upstream calls for an answer (every call but the embeddings)."""
    return sum(1 for r in upstream.requests if not r.path.endswith("/embeddings"))


def sse_payloads(body: bytes) -> list[dict[str, Any]]:
    lines = body.decode().replace("\r\n", "\n").split("\n")
    return [json.loads(line[5:]) for line in lines if line.startswith("data:") and "{" in line]


# ---------------------------------------------------------------- one client per API


class Messages:
    """``POST /v1/messages`` and how its answers read."""

    path = "/v1/messages"

    @staticmethod
    def body(model: str, text: str, system: str | None, stream: bool, **extra: Any) -> Any:
        body = {
            "model": model,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": text}],
            **extra,
        }
        if system:
            body["system"] = system
        if stream:
            body["stream"] = True
        return body

    @staticmethod
    def text(response: httpx.Response, stream: bool) -> str:
        if not stream:
            answer = response.json()
            assert answer["type"] == "message" and answer["role"] == "assistant"
            assert answer["stop_reason"] == "end_turn"
            return "".join(b["text"] for b in answer["content"] if b["type"] == "text")
        events = sse_payloads(response.content)
        kinds = [e["type"] for e in events]
        assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
        assert "content_block_start" in kinds and "message_delta" in kinds
        deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
        return "".join(d["text"] for d in deltas if d["type"] == "text_delta")


class Responses:
    """``POST /v1/responses`` and how its answers read."""

    path = "/v1/responses"

    @staticmethod
    def body(model: str, text: str, system: str | None, stream: bool, **extra: Any) -> Any:
        body = {"model": model, "input": text, "max_output_tokens": 64, **extra}
        if system:
            body["instructions"] = system
        if stream:
            body["stream"] = True
        return body

    @staticmethod
    def text(response: httpx.Response, stream: bool) -> str:
        if stream:
            events = sse_payloads(response.content)
            kinds = [e["type"] for e in events]
            assert kinds[:2] == ["response.created", "response.in_progress"]
            assert kinds[-1] == "response.completed"
            assert [e["sequence_number"] for e in events] == list(range(len(events)))
            answer = events[-1]["response"]
        else:
            answer = response.json()
        assert answer["object"] == "response" and answer["status"] == "completed"
        return "".join(
            part["text"]
            for item in answer["output"]
            if item["type"] == "message"
            for part in item["content"]
        )


class Gemini:
    """``:generateContent`` / ``:streamGenerateContent`` and how their answers read."""

    @staticmethod
    def url(model: str, stream: bool, sse: bool = True) -> str:
        method = "streamGenerateContent" if stream else "generateContent"
        return f"/v1beta/models/{model}:{method}" + ("?alt=sse" if stream and sse else "")

    @staticmethod
    def body(text: str, system: str | None, **extra: Any) -> Any:
        body = {
            "contents": [{"role": "user", "parts": [{"text": text}]}],
            "generationConfig": {"maxOutputTokens": 64},
            **extra,
        }
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        return body

    @staticmethod
    def text(response: httpx.Response, stream: bool, sse: bool = True) -> str:
        if not stream:
            events = [response.json()]
        elif sse:
            events = sse_payloads(response.content)
        else:
            events = response.json()
        assert events[-1]["candidates"][0]["finishReason"] == "STOP"
        return "".join(
            part["text"]
            for event in events
            for candidate in event.get("candidates") or ()
            for part in candidate["content"]["parts"]
        )


def ask(
    daemon: RunningDaemon,
    api: str,
    model: str,
    text: str,
    *,
    stream: bool = False,
    system: str | None = None,
    key: str = MASTER_KEY,
    headers: dict[str, str] | None = None,
    sse: bool = True,
    **extra: Any,
) -> tuple[httpx.Response, str | None]:
    """One request on ``api``; the response and its answer's text (``None`` unless 200)."""
    if api == "gemini":
        url = daemon.url + Gemini.url(model, stream, sse)
        body = Gemini.body(text, system, **extra)
    elif api == "chat":
        messages = [{"role": "system", "content": system}] if system else []
        url = daemon.url + "/v1/chat/completions"
        body = {
            "model": model,
            "max_tokens": 64,
            "messages": [*messages, {"role": "user", "content": text}],
            **extra,
        }
    else:
        client = Messages if api == "messages" else Responses
        url = daemon.url + client.path
        body = client.body(model, text, system, stream, **extra)
    response = httpx.post(url, headers=_headers(key, headers), json=body, timeout=10)
    if response.status_code != 200:
        return response, None
    if api == "gemini":
        return response, Gemini.text(response, stream, sse)
    if api == "chat":
        return response, response.json()["choices"][0]["message"]["content"]
    return response, (Messages if api == "messages" else Responses).text(response, stream)


# (api, model): each API on a target that speaks it and on an OpenAI one.
CASES = [
    ("messages", "claude"),
    ("messages", "chat"),
    ("responses", "responder"),
    ("responses", "chat"),
    ("gemini", "gemini"),
    ("gemini", "chat"),
]
IDS = [f"{api}-{model}" for api, model in CASES]


class TestHitsAndMisses:
    @pytest.mark.parametrize(("api", "model"), CASES, ids=IDS)
    def test_a_paraphrase_is_a_hit_in_the_apis_shape(
        self, daemon: RunningDaemon, upstream: FakeUpstream, api: str, model: str
    ) -> None:
        """Miss, then the same words in another order: a semantic hit with its similarity."""
        question = f"What colour is the sky over {api} {model} at noon?"
        paraphrase = f"At noon, over {model} {api}, what colour is the sky"
        upstream.clear()
        first, first_text = ask(daemon, api, model, question)
        assert first.status_code == 200, first.text
        assert first.headers["x-fkllm-cache"] == "miss"
        second, second_text = ask(daemon, api, model, paraphrase)
        assert second.status_code == 200
        assert second.headers["x-fkllm-cache"] == "semantic-hit"
        assert float(second.headers["x-fkllm-cache-similarity"]) == pytest.approx(
            cosine(question, paraphrase), abs=1e-3
        )
        assert second_text == first_text and first_text
        assert generation_calls(upstream) == 1  # the hit never went upstream

    @pytest.mark.parametrize(("api", "model"), CASES, ids=IDS)
    def test_a_streamed_answer_is_stored_and_a_stream_is_replayed(
        self, daemon: RunningDaemon, upstream: FakeUpstream, api: str, model: str
    ) -> None:
        """A streamed miss is kept; a whole request and a stream request both replay it."""
        question = f"List two rivers of {api} {model} land please"
        first, streamed = ask(daemon, api, model, question, stream=True)
        assert first.headers["x-fkllm-cache"] == "miss"
        assert streamed
        whole, whole_text = ask(daemon, api, model, question.upper())
        assert whole.headers["x-fkllm-cache"] == "semantic-hit"
        assert whole_text == streamed
        upstream.clear()
        replay, replay_text = ask(daemon, api, model, f"{question.lower()}?", stream=True)
        assert replay.headers["x-fkllm-cache"] == "semantic-hit"
        assert replay.headers["content-type"].startswith("text/event-stream")
        assert replay_text == streamed
        assert generation_calls(upstream) == 0

    def test_gemini_streams_as_one_json_array_without_alt_sse(self, daemon: RunningDaemon) -> None:
        """Without ``alt=sse`` the Gemini stream is a JSON array, replays included."""
        question = "How many legs does a spider have in gemini arrays?"
        first, streamed = ask(daemon, "gemini", "gemini", question, stream=True, sse=False)
        assert first.headers["x-fkllm-cache"] == "miss"
        replay, text = ask(daemon, "gemini", "gemini", question.lower(), stream=True, sse=False)
        assert replay.headers["x-fkllm-cache"] == "semantic-hit"
        assert replay.headers["content-type"].startswith("application/json")
        assert isinstance(replay.json(), list) and text == streamed

    def test_a_responses_hit_is_stored_for_previous_response_id(
        self, daemon: RunningDaemon
    ) -> None:
        """A replayed response gets a new id that GET /v1/responses/{id} returns."""
        question = "Which planet is closest to the sun in responses?"
        ask(daemon, "responses", "chat", question)
        hit, _ = ask(daemon, "responses", "chat", question.upper())
        assert hit.headers["x-fkllm-cache"] == "semantic-hit"
        response_id = hit.json()["id"]
        stored = httpx.get(
            f"{daemon.url}/v1/responses/{response_id}", headers=_headers(MASTER_KEY), timeout=10
        )
        assert stored.status_code == 200 and stored.json()["id"] == response_id


class TestAcrossApis:
    def test_one_entry_serves_the_same_question_on_every_api(
        self, daemon: RunningDaemon, upstream: FakeUpstream
    ) -> None:
        """Asked by chat, the same question (and system prompt, and token limit) is a hit
        through messages, responses and Gemini, each in its own shape."""
        question = "Why is the ocean salty across every api?"
        system = "Answer in one sentence."
        upstream.clear()
        first, text = ask(daemon, "chat", "chat", question, system=system)
        assert first.headers["x-fkllm-cache"] == "miss"
        for api in ("messages", "responses", "gemini"):
            hit, replayed = ask(daemon, api, "chat", question.lower(), system=system)
            assert hit.headers["x-fkllm-cache"] == "semantic-hit", api
            assert replayed == text
        assert generation_calls(upstream) == 1

    def test_an_api_specific_field_keeps_the_request_to_its_api(
        self, daemon: RunningDaemon
    ) -> None:
        """A field only Anthropic has (``top_k``) must match an Anthropic request's."""
        question = "What is the tallest tree species on earth?"
        assert ask(daemon, "chat", "chat", question)[0].headers["x-fkllm-cache"] == "miss"
        other, _ = ask(daemon, "messages", "chat", question, top_k=5)
        assert other.headers["x-fkllm-cache"] == "miss"
        again, _ = ask(daemon, "messages", "chat", question.upper(), top_k=5)
        assert again.headers["x-fkllm-cache"] == "semantic-hit"

    def test_different_parameters_do_not_share(self, daemon: RunningDaemon) -> None:
        """Another system prompt or token limit is another partition, on any API."""
        question = "Describe a rainbow for the parameters test"
        assert ask(daemon, "messages", "chat", question)[0].headers["x-fkllm-cache"] == "miss"
        other_system, _ = ask(daemon, "messages", "chat", question, system="Be terse.")
        assert other_system.headers["x-fkllm-cache"] == "miss"
        other_limit, _ = ask(daemon, "gemini", "chat", question, generationConfig={})
        assert other_limit.headers["x-fkllm-cache"] == "miss"


class TestScope:
    @pytest.mark.parametrize("api", ["messages", "responses", "gemini"])
    def test_per_key_and_never_across_models(self, daemon: RunningDaemon, api: str) -> None:
        question = f"How far is the moon from the earth via {api}?"
        assert (
            ask(daemon, api, "chat", question, key=TEAM_KEY)[0].headers["x-fkllm-cache"] == "miss"
        )
        hit, _ = ask(daemon, api, "chat", question, key=TEAM_KEY)
        assert hit.headers["x-fkllm-cache"] == "semantic-hit"
        foreign, _ = ask(daemon, api, "chat", question, key=OTHER_KEY)
        assert foreign.headers["x-fkllm-cache"] == "miss"
        model = {"messages": "claude", "responses": "responder", "gemini": "gemini"}[api]
        elsewhere, _ = ask(daemon, api, model, question, key=TEAM_KEY)
        assert elsewhere.headers["x-fkllm-cache"] == "miss"

    def test_cache_control_no_store_on_messages(self, daemon: RunningDaemon) -> None:
        question = "What is the melting point of iron in messages?"
        kept_not, _ = ask(
            daemon, "messages", "chat", question, headers={"cache-control": "no-store"}
        )
        assert kept_not.headers["x-fkllm-cache"] == "miss"
        assert ask(daemon, "messages", "chat", question)[0].headers["x-fkllm-cache"] == "miss"


IMAGE = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
INELIGIBLE: list[tuple[str, dict[str, Any]]] = [
    (
        "messages",
        {"tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}]},
    ),
    ("messages", {"temperature": 0.7}),
    (
        "messages",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": IMAGE},
                        },
                    ],
                }
            ]
        },
    ),
    (
        "messages",
        {
            "messages": [
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": "Hi"},
                {"role": "user", "content": "Hello"},
            ]
        },
    ),
    (
        "responses",
        {"tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]},
    ),
    ("responses", {"temperature": 0.7}),
    (
        "responses",
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {"type": "input_image", "image_url": f"data:image/png;base64,{IMAGE}"},
                    ],
                }
            ]
        },
    ),
    ("gemini", {"tools": [{"functionDeclarations": [{"name": "f", "description": "d"}]}]}),
    ("gemini", {"generationConfig": {"temperature": 0.7}}),
    (
        "gemini",
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"text": "What is this?"},
                        {"inlineData": {"mimeType": "image/png", "data": IMAGE}},
                    ],
                }
            ]
        },
    ),
]
INELIGIBLE_IDS = [
    "messages-tools",
    "messages-temperature",
    "messages-image",
    "messages-turns",
    "responses-tools",
    "responses-temperature",
    "responses-image",
    "gemini-tools",
    "gemini-temperature",
    "gemini-image",
]


class TestEligibility:
    @pytest.mark.parametrize(("api", "extra"), INELIGIBLE, ids=INELIGIBLE_IDS)
    def test_unsafe_requests_are_neither_answered_nor_stored(
        self, daemon: RunningDaemon, upstream: FakeUpstream, api: str, extra: dict[str, Any]
    ) -> None:
        """No x-fkllm-cache header, no embedding call: the cache was not consulted."""
        upstream.clear()
        for _ in range(2):
            response, _ = ask(daemon, api, "chat", "Is this one cacheable?", **extra)
            assert response.status_code == 200, response.text
            assert "x-fkllm-cache" not in response.headers
        assert not [r for r in upstream.requests if r.path.endswith("/embeddings")]
        assert generation_calls(upstream) == 2


class TestExactCache:
    @pytest.mark.parametrize("api", ["messages", "responses", "gemini"])
    def test_cache_true_still_replays_the_same_request(
        self, daemon: RunningDaemon, upstream: FakeUpstream, api: str
    ) -> None:
        """``cache = true`` on these routes: the same bytes are an exact hit, no embedding."""
        question = f"Exact question for {api}"
        upstream.clear()
        first, text = ask(daemon, api, "exact", question)
        assert first.headers["x-fkllm-cache"] == "miss"
        again, replayed = ask(daemon, api, "exact", question)
        assert again.headers["x-fkllm-cache"] == "hit" and replayed == text
        assert generation_calls(upstream) == 1
        assert not [r for r in upstream.requests if r.path.endswith("/embeddings")]

    @pytest.mark.parametrize("api", ["messages", "responses"])
    def test_cache_true_replays_a_stream_to_the_same_streaming_request(
        self, daemon: RunningDaemon, upstream: FakeUpstream, api: str
    ) -> None:
        """The exact cache keeps these routes' streams whole and replays them as sent."""
        question = f"Exact streamed question for {api}"
        first, text = ask(daemon, api, "exact", question, stream=True)
        assert first.headers["x-fkllm-cache"] == "miss"
        upstream.clear()
        again, replayed = ask(daemon, api, "exact", question, stream=True)
        assert again.headers["x-fkllm-cache"] == "hit"
        assert again.content == first.content and replayed == text
        assert generation_calls(upstream) == 0
