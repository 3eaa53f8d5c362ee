"""Two `fkllm serve` processes sharing one Redis share the semantic cache's entries."""

from __future__ import annotations

from typing import Any

from fkllmproxy.testing.fake_upstream import FakeUpstream
from tests.server.test_semantic_cache import PARAPHRASE, QUESTION, ask, chat_calls, config
from tests.state.conftest import RedisServer


def redis_config(upstream_url: str, redis_url: str) -> str:
    state = f'[state]\nbackend = "redis"\nurl = "{redis_url}"\nkey_prefix = "semscale:"\n'
    return state + config(upstream_url)


def test_a_question_answered_by_one_daemon_hits_on_the_other(
    start_daemon: Any, redis_server: RedisServer, fake_upstream: FakeUpstream
) -> None:
    """a stores, b finds it (and a finds what b stored): one set of entries in Redis."""
    a = start_daemon(redis_config(fake_upstream.url, redis_server.url))
    b = start_daemon(redis_config(fake_upstream.url, redis_server.url))
    first = ask(a, QUESTION)
    assert first.headers["x-fkllm-cache"] == "miss"
    second = ask(b, PARAPHRASE)
    assert second.headers["x-fkllm-cache"] == "semantic-hit"
    replayed, original = (r.json()["choices"][0]["message"]["content"] for r in (second, first))
    assert replayed == original
    assert ask(b, "Which planet is the largest?").headers["x-fkllm-cache"] == "miss"
    assert ask(a, "which planet is the LARGEST").headers["x-fkllm-cache"] == "semantic-hit"
    assert chat_calls(fake_upstream) == 2
