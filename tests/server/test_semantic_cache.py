"""The semantic cache against a real daemon and the fake upstream.

The fake upstream's embeddings are a hashed bag of words (``testing.behaviour.
embedding_vector``), so the same words in another order, case or punctuation embed to
the same vector and a question with other words lands far away: paraphrases without a
model. The expected similarities are computed from that same function.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fkllmproxy.testing.behaviour import embedding_vector
from fkllmproxy.testing.fake_upstream import FakeUpstream
from tests.conftest import MASTER_KEY, RunningDaemon, prometheus_samples, sample_sum

TEAM_KEY = "sk-team-semantic-a"
OTHER_KEY = "sk-team-semantic-b"
QUESTION = "What is the capital of France?"
PARAPHRASE = "France -- what is the capital of?"  # the same words, another order
UNRELATED = "How do I bake sourdough bread at home?"


def cosine(a: str, b: str) -> float:
    va, vb = embedding_vector(a), embedding_vector(b)
    dot = sum(x * y for x, y in zip(va, vb, strict=True))
    return dot / math.sqrt(sum(x * x for x in va) * sum(y * y for y in vb))


def config(url: str, *, shared: bool = False, threshold: float = 0.95) -> str:
    def key(name: str, secret: str) -> str:
        digest = hashlib.sha256(secret.encode()).hexdigest()
        return f'[[auth.keys]]\nname = "{name}"\nkey_sha256 = "{digest}"\n'

    return f"""
{key("team-a", TEAM_KEY)}
{key("team-b", OTHER_KEY)}
[[providers]]
name = "up"
type = "openai"
base_url = "{url}/v1"
api_key = "sk-upstream"

[[models]]
name = "embed"
targets = [{{ provider = "up", model = "text-embedding-3-small" }}]

[[models]]
name = "broken-embed"
targets = [{{ provider = "up", model = "fault-500" }}]

[[models]]
name = "chat"
targets = [{{ provider = "up", model = "gpt-4o-mini" }}]
cache = "semantic"
semantic = {{ embedding_model = "embed", threshold = {threshold}, shared_across_keys = {str(shared).lower()} }}

[[models]]
name = "other-chat"
targets = [{{ provider = "up", model = "gpt-4o-mini" }}]
cache = "semantic"
semantic = {{ embedding_model = "embed", threshold = {threshold} }}

[[models]]
name = "warm-chat"
targets = [{{ provider = "up", model = "gpt-4o-mini" }}]
cache = "semantic"
semantic = {{ embedding_model = "embed", allow_temperature = true }}

[[models]]
name = "fragile-chat"
targets = [{{ provider = "up", model = "gpt-4o-mini" }}]
cache = "semantic"
semantic = {{ embedding_model = "broken-embed" }}

[[models]]
name = "plain"
targets = [{{ provider = "up", model = "gpt-4o-mini" }}]
"""


@pytest.fixture(scope="module")
def daemon(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One daemon for the tests that each use their own questions (entries never collide)."""
    with RunningDaemon(tmp_path_factory.mktemp("semantic"), config(upstream.url)) as running:
        yield running


def ask(
    daemon: RunningDaemon,
    text: str,
    *,
    model: str = "chat",
    key: str = MASTER_KEY,
    system: str | None = None,
    **extra: Any,
) -> httpx.Response:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": text})
    headers = {"authorization": f"Bearer {key}", **extra.pop("headers", {})}
    body = {"model": model, "messages": messages, **extra}
    return httpx.post(daemon.url + "/v1/chat/completions", headers=headers, json=body, timeout=10)


def chat_calls(upstream: FakeUpstream) -> int:
    return sum(1 for r in upstream.requests if r.path.endswith("/chat/completions"))


class TestHits:
    def test_a_paraphrase_is_answered_from_the_cache_with_its_similarity(
        self, daemon: RunningDaemon, upstream: FakeUpstream
    ) -> None:
        """The first question goes upstream (miss); its paraphrase is a semantic hit."""
        upstream.clear()
        first = ask(daemon, QUESTION)
        assert first.status_code == 200 and first.headers["x-fkllm-cache"] == "miss"
        assert "x-fkllm-cache-similarity" not in first.headers
        second = ask(daemon, PARAPHRASE)
        assert second.status_code == 200
        assert second.headers["x-fkllm-cache"] == "semantic-hit"
        assert float(second.headers["x-fkllm-cache-similarity"]) == pytest.approx(
            cosine(QUESTION, PARAPHRASE), abs=1e-3
        )
        answer = second.json()
        assert answer["object"] == "chat.completion" and answer["model"] == "chat"
        message = answer["choices"][0]["message"]
        assert message["content"] == first.json()["choices"][0]["message"]["content"]
        assert chat_calls(upstream) == 1  # the hit never went upstream
        embedding_calls = [r for r in upstream.requests if r.path.endswith("/embeddings")]
        assert [r.json["input"] for r in embedding_calls] == [QUESTION, PARAPHRASE]

    def test_a_different_question_is_a_miss(self, daemon: RunningDaemon) -> None:
        """Below the threshold the request goes upstream and its answer is kept too."""
        assert cosine("Which river flows through Paris?", UNRELATED) < 0.95
        assert ask(daemon, "Which river flows through Paris?").headers["x-fkllm-cache"] == "miss"
        assert ask(daemon, UNRELATED).headers["x-fkllm-cache"] == "miss"
        assert ask(daemon, UNRELATED.upper()).headers["x-fkllm-cache"] == "semantic-hit"

    def test_a_stream_is_stored_assembled_and_a_hit_replays_as_a_stream(
        self, daemon: RunningDaemon, upstream: FakeUpstream
    ) -> None:
        """A streamed answer serves a whole-answer request, and a stream request replays."""
        question = "Name three primary colours please"
        first = ask(daemon, question, stream=True, stream_options={"include_usage": True})
        assert first.headers["x-fkllm-cache"] == "miss"
        assert first.content.endswith(b"data: [DONE]\n\n")
        streamed_text = "".join(
            chunk["choices"][0]["delta"].get("content") or ""
            for chunk in _chunks(first.content)
            if chunk["choices"]
        )
        whole = ask(daemon, "please name three primary colours")
        assert whole.headers["x-fkllm-cache"] == "semantic-hit"
        assert whole.json()["choices"][0]["message"]["content"] == streamed_text
        upstream.clear()
        replay = ask(
            daemon,
            "Primary colours: name three, please",
            stream=True,
            stream_options={"include_usage": True},
        )
        assert replay.headers["x-fkllm-cache"] == "semantic-hit"
        assert replay.headers["content-type"].startswith("text/event-stream")
        chunks = _chunks(replay.content)
        assert replay.content.endswith(b"data: [DONE]\n\n")
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
        assert text == streamed_text
        assert chunks[-1]["usage"]["completion_tokens"] > 0
        assert chat_calls(upstream) == 0

    def test_energy_saved_hits_and_misses_are_recorded(self, daemon: RunningDaemon) -> None:
        """A semantic hit counts as a cache hit and observes fkllm_energy_saved_joules."""

        def samples() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
            text = httpx.get(daemon.url + "/metrics/prometheus", headers=daemon.headers()).text
            return prometheus_samples(text)

        before = samples()
        ask(daemon, "How tall is Mount Everest in metres?")
        ask(daemon, "in metres, how tall is mount everest")
        after = samples()

        def grew(name: str) -> float:
            return sample_sum(after, name, model="chat") - sample_sum(before, name, model="chat")

        assert grew("fkllm_cache_hits_total") == 1
        assert grew("fkllm_cache_misses_total") == 1
        assert grew("fkllm_energy_saved_joules_count") == 1
        assert grew("fkllm_energy_saved_joules_sum") > 0
        hit_line = [line for line in daemon.logs() if line.get("msg") == "request"][-1]
        assert hit_line["cache"] == "semantic-hit" and hit_line["provider"] == "cache"
        assert 0.95 <= hit_line["cache_similarity"] <= 1.0
        assert "everest" not in str(hit_line).lower()  # prompt text never reaches the logs


def _chunks(body: bytes) -> list[dict[str, Any]]:
    import json

    return [
        json.loads(line[6:]) for line in body.decode().split("\n") if line.startswith("data: {")
    ]


class TestScope:
    def test_keys_do_not_share_answers_unless_shared(self, daemon: RunningDaemon) -> None:
        """Per key by default: team-b misses on team-a's question."""
        question = "What is the boiling point of water at sea level?"
        assert ask(daemon, question, key=TEAM_KEY).headers["x-fkllm-cache"] == "miss"
        assert ask(daemon, question, key=TEAM_KEY).headers["x-fkllm-cache"] == "semantic-hit"
        assert ask(daemon, question, key=OTHER_KEY).headers["x-fkllm-cache"] == "miss"

    def test_never_across_models(self, daemon: RunningDaemon) -> None:
        question = "How many moons does Jupiter have?"
        assert ask(daemon, question).headers["x-fkllm-cache"] == "miss"
        assert ask(daemon, question, model="other-chat").headers["x-fkllm-cache"] == "miss"
        assert ask(daemon, question, model="other-chat").headers["x-fkllm-cache"] == "semantic-hit"

    def test_system_prompt_and_parameters_must_match_exactly(self, daemon: RunningDaemon) -> None:
        question = "Translate good morning into Spanish"
        assert ask(daemon, question, system="Be brief.").headers["x-fkllm-cache"] == "miss"
        assert ask(daemon, question, system="Be verbose.").headers["x-fkllm-cache"] == "miss"
        assert ask(daemon, question, max_tokens=5).headers["x-fkllm-cache"] == "miss"
        again = ask(daemon, question.lower(), system="Be brief.")
        assert again.headers["x-fkllm-cache"] == "semantic-hit"

    def test_cache_control_no_cache_and_no_store(self, daemon: RunningDaemon) -> None:
        question = "What is the speed of light in vacuum?"
        stored_not = ask(daemon, question, headers={"cache-control": "no-store"})
        assert stored_not.headers["x-fkllm-cache"] == "miss"
        assert ask(daemon, question).headers["x-fkllm-cache"] == "miss"
        skipped = ask(daemon, question, headers={"cache-control": "no-cache"})
        assert skipped.headers["x-fkllm-cache"] == "miss"
        assert ask(daemon, question).headers["x-fkllm-cache"] == "semantic-hit"


class TestEligibility:
    @pytest.mark.parametrize(
        "extra",
        [
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
            {"temperature": 0.7},
            {"n": 2},
            {"logprobs": True},
        ],
        ids=["tools", "temperature", "n", "logprobs"],
    )
    def test_unsafe_requests_are_neither_answered_nor_stored(
        self, daemon: RunningDaemon, extra: dict[str, Any]
    ) -> None:
        """No x-fkllm-cache header: the cache was not consulted, and stored nothing."""
        question = f"Is it safe to cache this one ({next(iter(extra))})?"
        assert ask(daemon, question).headers["x-fkllm-cache"] == "miss"
        unsafe = ask(daemon, question, **extra)
        assert unsafe.status_code == 200 and "x-fkllm-cache" not in unsafe.headers

    def test_images_and_several_turns_are_not_cached(self, daemon: RunningDaemon) -> None:
        image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        parts = [{"type": "text", "text": "What is in this picture?"}, image]
        body = {"model": "chat", "messages": [{"role": "user", "content": parts}]}
        headers = daemon.headers()
        url = daemon.url + "/v1/chat/completions"
        assert "x-fkllm-cache" not in httpx.post(url, headers=headers, json=body).headers
        turns = [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi"},
            {"role": "user", "content": "Hello"},
        ]
        body = {"model": "chat", "messages": turns}
        assert "x-fkllm-cache" not in httpx.post(url, headers=headers, json=body).headers

    def test_temperature_is_allowed_when_the_operator_says_so(self, daemon: RunningDaemon) -> None:
        question = "Suggest a name for a grey cat"
        first = ask(daemon, question, model="warm-chat", temperature=0.8)
        assert first.headers["x-fkllm-cache"] == "miss"
        again = ask(daemon, question, model="warm-chat", temperature=0.8)
        assert again.headers["x-fkllm-cache"] == "semantic-hit"

    def test_a_model_without_the_semantic_cache_is_untouched(
        self, daemon: RunningDaemon, upstream: FakeUpstream
    ) -> None:
        upstream.clear()
        for _ in range(2):
            answer = ask(daemon, "An uncached question", model="plain")
            assert answer.status_code == 200 and "x-fkllm-cache" not in answer.headers
        assert [r.path for r in upstream.requests] == ["/v1/chat/completions"] * 2

    def test_a_failed_embedding_call_never_hits_and_the_request_goes_upstream(
        self, daemon: RunningDaemon, upstream: FakeUpstream
    ) -> None:
        """The embedding model fails: each request is answered upstream, none from the cache."""
        upstream.clear()
        for _ in range(2):
            answer = ask(daemon, "Will this be cached?", model="fragile-chat")
            assert answer.status_code == 200
            assert answer.headers["x-fkllm-cache"] == "miss"
        assert chat_calls(upstream) == 2
        warnings = [line for line in daemon.logs() if "embedding call failed" in line["msg"]]
        assert warnings and warnings[-1]["embedding_model"] == "broken-embed"


def test_shared_across_keys(start_daemon: Any, fake_upstream: FakeUpstream) -> None:
    """With shared_across_keys, one key's answer serves another key's paraphrase."""
    daemon = start_daemon(config(fake_upstream.url, shared=True))
    assert ask(daemon, QUESTION, key=TEAM_KEY).headers["x-fkllm-cache"] == "miss"
    assert ask(daemon, PARAPHRASE, key=OTHER_KEY).headers["x-fkllm-cache"] == "semantic-hit"


def test_the_threshold_decides(start_daemon: Any, fake_upstream: FakeUpstream) -> None:
    """A near question hits at a threshold below its similarity and misses above it."""
    near = "What is the capital of Spain?"
    similarity = cosine(QUESTION, near)
    assert 0.3 < similarity < 0.99
    low = start_daemon(config(fake_upstream.url, threshold=round(similarity - 0.01, 4)))
    high = start_daemon(config(fake_upstream.url, threshold=round(similarity + 0.01, 4)))
    for daemon, outcome in ((low, "semantic-hit"), (high, "miss")):
        assert ask(daemon, QUESTION).headers["x-fkllm-cache"] == "miss"
        assert ask(daemon, near).headers["x-fkllm-cache"] == outcome
