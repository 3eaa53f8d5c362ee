"""The Redis backend against a real redis-server: atomic buckets, namespaced expiring keys."""

from __future__ import annotations

import asyncio

import pytest

from fkllmproxy.state.base import StateUnavailable
from fkllmproxy.state.redis import RedisState
from tests.conftest import free_port
from tests.state.conftest import RedisServer


class TestRedisBuckets:
    async def test_concurrent_takes_never_exceed_capacity(self, redis_server: RedisServer) -> None:
        """Fifty takes at once from two clients: exactly `capacity` are allowed."""
        a = RedisState(redis_server.url, key_prefix="t1:")
        b = RedisState(redis_server.url, key_prefix="t1:")
        decisions = await asyncio.gather(*(s.take_token("caller", 10, 0.001) for s in [a, b] * 25))
        assert sum(d.allowed for d in decisions) == 10
        refused = [d for d in decisions if not d.allowed]
        assert all(d.retry_after > 0 and d.remaining == 0 for d in refused)
        await a.aclose()
        await b.aclose()

    async def test_keys_are_namespaced_and_expire(self, redis_server: RedisServer) -> None:
        from redis.asyncio import Redis

        state = RedisState(redis_server.url, key_prefix="ns:")
        await state.take_token("who", 5, 1.0)
        await state.cache_set("abc", b"answer", ttl_secs=30)
        raw = Redis.from_url(redis_server.url)
        keys = sorted(k.decode() for k in await raw.keys("*"))
        assert keys == ["ns:cache:abc", "ns:rl:who"]
        assert 0 < await raw.pttl("ns:rl:who") <= 2000  # refills fully in 1 s, plus slack
        assert 29_000 < await raw.pttl("ns:cache:abc") <= 30_000
        assert await state.cache_get("abc") == b"answer"
        await raw.aclose()
        await state.aclose()

    async def test_refill_uses_the_configured_rate(self, redis_server: RedisServer) -> None:
        state = RedisState(redis_server.url)
        first = await state.take_token("r", 1, 1000.0)
        second = await state.take_token("r", 1, 1000.0)
        assert first.allowed
        # 1000 tokens/s: the bucket is full again within a few milliseconds.
        assert second.allowed or second.retry_after <= 0.001
        await state.aclose()


async def test_unreachable_redis_raises_state_unavailable() -> None:
    state = RedisState(f"redis://127.0.0.1:{free_port()}/0", timeout_secs=0.2)
    with pytest.raises(StateUnavailable):
        await state.take_token("x", 1, 1.0)
    with pytest.raises(StateUnavailable):
        await state.cache_get("x")
    await state.aclose()
