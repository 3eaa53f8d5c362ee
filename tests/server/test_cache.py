"""The response cache on the memory backend: opt-in per model, per key, headers, streams."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from tests.conftest import MASTER_KEY, RunningDaemon

TEAM_KEY = "sk-team-a-key"
CONFIG = f"""
[cache]
enabled = true
ttl_secs = 60

[[auth.keys]]
name = "team-a"
key_sha256 = "{hashlib.sha256(TEAM_KEY.encode()).hexdigest()}"

[[providers]]
name = "mock"
type = "mock"

[[models]]
name = "cached"
targets = [{{ provider = "mock", model = "m" }}]
cache = true

[[models]]
name = "uncached"
targets = [{{ provider = "mock", model = "m" }}]
"""


def ask(daemon: RunningDaemon, model: str, key: str = MASTER_KEY, **extra: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}", **extra.pop("headers", {})}
    body = {"model": model, "messages": [{"role": "user", "content": "same question"}], **extra}
    return httpx.post(daemon.url + "/v1/chat/completions", headers=headers, json=body)


def test_cache_is_opt_in_per_model_and_scoped_per_key(start_daemon: Any) -> None:
    daemon = start_daemon(CONFIG)
    assert ask(daemon, "cached").headers["x-fkllm-cache"] == "miss"
    hit = ask(daemon, "cached")
    assert hit.headers["x-fkllm-cache"] == "hit"
    assert "x-fkllm-cache" not in ask(daemon, "uncached").headers
    # Another key does not see the master key's cached answer.
    assert ask(daemon, "cached", key=TEAM_KEY).headers["x-fkllm-cache"] == "miss"
    # Key order and whitespace do not matter: the request is canonicalised.
    raw = b'{"messages":[{"content":"same question","role":"user"}],   "model":"cached"}'
    again = httpx.post(
        daemon.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"},
        content=raw,
    )
    assert again.headers["x-fkllm-cache"] == "hit"


def test_hits_and_misses_are_counted_per_model(start_daemon: Any) -> None:
    daemon = start_daemon(CONFIG)
    for _ in range(3):
        ask(daemon, "cached")
    ask(daemon, "uncached")
    text = httpx.get(
        daemon.url + "/metrics/prometheus", headers={"authorization": f"Bearer {MASTER_KEY}"}
    ).text
    assert 'fkllm_cache_hits_total{model="cached"} 2.0' in text
    assert 'fkllm_cache_misses_total{model="cached"} 1.0' in text
    assert 'model="uncached"' not in "".join(
        line for line in text.splitlines() if line.startswith("fkllm_cache_")
    )


def test_no_store_and_no_cache(start_daemon: Any) -> None:
    daemon = start_daemon(CONFIG)
    first = ask(daemon, "cached", headers={"cache-control": "no-store"})
    assert first.headers["x-fkllm-cache"] == "miss"
    assert ask(daemon, "cached").headers["x-fkllm-cache"] == "miss"  # nothing was stored
    assert (
        ask(daemon, "cached", headers={"cache-control": "no-cache"}).headers["x-fkllm-cache"]
        == "miss"
    )
    assert ask(daemon, "cached").headers["x-fkllm-cache"] == "hit"


def test_streams_are_cached_and_replayed(start_daemon: Any) -> None:
    daemon = start_daemon(CONFIG)
    first = ask(daemon, "cached", stream=True)
    assert first.headers["x-fkllm-cache"] == "miss"
    second = ask(daemon, "cached", stream=True)
    assert second.headers["x-fkllm-cache"] == "hit"
    assert second.headers["content-type"].startswith("text/event-stream")
    assert second.content == first.content and second.content.endswith(b"data: [DONE]\n\n")
    # A streamed answer never serves a whole-answer request, and vice versa.
    assert ask(daemon, "cached").headers["x-fkllm-cache"] == "miss"


def test_messages_answers_and_streams_are_cached_apart_from_chat(start_daemon: Any) -> None:
    """/v1/messages caches whole and streamed answers, never mixing them with chat ones."""
    daemon = start_daemon(CONFIG)
    body = {"model": "cached", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"}

    def messages(**extra: Any) -> httpx.Response:
        return httpx.post(daemon.url + "/v1/messages", headers=headers, json={**body, **extra})

    assert messages().headers["x-fkllm-cache"] == "miss"
    whole = messages()
    assert whole.headers["x-fkllm-cache"] == "hit" and whole.json()["type"] == "message"
    first = messages(stream=True)
    assert first.headers["x-fkllm-cache"] == "miss"
    second = messages(stream=True)
    assert second.headers["x-fkllm-cache"] == "hit"
    assert second.content == first.content and b"message_stop" in second.content
    # The same bytes on the chat route are a different cache entry.
    chat = httpx.post(
        daemon.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        json={"model": "cached", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.headers["x-fkllm-cache"] == "miss"


class TestEntries:
    """What a cache entry keeps: the answer, and its token counts for the energy saved."""

    async def test_an_answer_replays_with_the_tokens_it_was_stored_with(self) -> None:
        """Whole and streamed answers come back byte for byte, with their token counts."""
        from fkllmproxy.config.schema import CacheConfig
        from fkllmproxy.providers import Usage
        from fkllmproxy.server.cache import ResponseCache
        from fkllmproxy.state.memory import MemoryState

        cache = ResponseCache(MemoryState(), CacheConfig(enabled=True))
        await cache.store_body("whole", b'{"a":1}', Usage(prompt_tokens=7, completion_tokens=70))

        async def frames() -> Any:
            yield b"data: {}\n\n"
            yield b"data: [DONE]\n\n"

        counted = Usage(prompt_tokens=5, completion_tokens=50)
        async for _ in cache.recording("stream", frames(), b"[DONE]", lambda: counted):
            pass
        whole, streamed = await cache.lookup("whole"), await cache.lookup("stream")
        assert whole is not None and streamed is not None
        assert (whole.body, whole.streamed, whole.prompt_tokens, whole.completion_tokens) == (
            b'{"a":1}', False, 7, 70,
        )  # fmt: skip
        assert (streamed.body, streamed.streamed, streamed.completion_tokens) == (
            b"data: {}\n\ndata: [DONE]\n\n", True, 50,
        )  # fmt: skip

    async def test_an_entry_without_token_counts_still_replays(self) -> None:
        """An entry stored without counts (or in the previous layout) replays with zeros."""
        from fkllmproxy.config.schema import CacheConfig
        from fkllmproxy.server.cache import ResponseCache
        from fkllmproxy.state.memory import MemoryState

        state = MemoryState()
        cache = ResponseCache(state, CacheConfig(enabled=True))
        await cache.store_body("k", b'{"b":2}')
        await state.cache_set("old", b"S" + b"data: [DONE]\n\n", 60)
        plain, old = await cache.lookup("k"), await cache.lookup("old")
        assert plain is not None and (plain.body, plain.prompt_tokens) == (b'{"b":2}', 0)
        assert old is not None and (old.body, old.streamed) == (b"data: [DONE]\n\n", True)
