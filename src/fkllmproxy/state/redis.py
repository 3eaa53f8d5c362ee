"""Redis-backed state shared by every worker and host using the same Redis.

A token bucket is one Redis hash updated by one Lua script, so a take is atomic and
costs one round trip; the script reads Redis's own clock, so hosts whose clocks
disagree still share one refill rate. Every key is namespaced (``key_prefix``) and
expires: an idle bucket once it would be full again, a cached answer after its TTL.
"""

from __future__ import annotations

from typing import Any

from fkllmproxy.auth.ratelimit import Decision
from fkllmproxy.state.base import StateBackend, StateUnavailable

__all__ = ["RedisState"]

# KEYS[1] bucket; ARGV capacity, refill per second. Returns {allowed, tokens_left}.
_TAKE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(saved[1])
local ts = tonumber(saved[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


class RedisState(StateBackend):
    name = "redis"

    def __init__(self, url: str, *, key_prefix: str = "fkllm:", timeout_secs: float = 0.5) -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(
            url,
            socket_connect_timeout=timeout_secs,
            socket_timeout=timeout_secs,
            health_check_interval=15,
            retry_on_timeout=False,
        )
        self._prefix = key_prefix
        self._take = self._redis.register_script(_TAKE)

    async def _run(self, coro: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await coro
        except (RedisError, OSError) as exc:
            raise StateUnavailable(f"redis: {exc}") from exc

    async def take_token(self, bucket: str, capacity: int, refill_per_second: float) -> Decision:
        key = f"{self._prefix}rl:{bucket}"
        allowed, left_text = await self._run(
            self._take(keys=[key], args=[capacity, refill_per_second])
        )
        left = float(left_text)
        reset = (capacity - left) / refill_per_second
        if allowed:
            return Decision(True, capacity, int(left), reset)
        return Decision(False, capacity, 0, reset, retry_after=(1.0 - left) / refill_per_second)

    async def cache_get(self, key: str) -> bytes | None:
        value = await self._run(self._redis.get(f"{self._prefix}cache:{key}"))
        return bytes(value) if value is not None else None

    async def cache_set(self, key: str, value: bytes, ttl_secs: float) -> None:
        await self._run(
            self._redis.set(f"{self._prefix}cache:{key}", value, px=max(1, int(ttl_secs * 1000)))
        )

    async def ping(self) -> None:
        await self._run(self._redis.ping())

    async def aclose(self) -> None:
        await self._redis.aclose()
