"""Redis-backed state shared by every worker and host using the same Redis.

A token bucket is one Redis hash updated by one Lua script, so a take is atomic and
costs one round trip; the script reads Redis's own clock, so hosts whose clocks
disagree still share one refill rate. Every key is namespaced (``key_prefix``) and
expires: an idle bucket once it would be full again, a cached answer after its TTL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fkllmproxy.state.base import CircuitParams, SharedCircuit, StateBackend, StateUnavailable
from fkllmproxy.state.buckets import Decision

if TYPE_CHECKING:
    from fkllmproxy.state.budgets import BudgetStore
    from fkllmproxy.state.semantic import SemanticStore

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


# The breaker's transitions (routing/breaker.py), applied to one shared hash in Redis
# time. KEYS[1] circuit; ARGV failed (1/0), threshold, base cooldown, max cooldown,
# ttl ms. Returns {state, failures, cooldown, retry_in}.
_CIRCUIT_RECORD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local threshold = tonumber(ARGV[2])
local base = tonumber(ARGV[3])
local max_cooldown = tonumber(ARGV[4])
local h = redis.call('HMGET', KEYS[1], 'state', 'failures', 'opened_at', 'cooldown')
local state = h[1] or 'closed'
local failures = tonumber(h[2]) or 0
local opened = tonumber(h[3]) or 0
local cooldown = tonumber(h[4]) or base
if state == 'open' and now >= opened + cooldown then state = 'half_open' end
if ARGV[1] == '1' then
  failures = failures + 1
  if state == 'half_open' then
    cooldown = math.min(cooldown * 2, max_cooldown)
    opened = now
    state = 'open'
  elseif state == 'closed' and failures >= threshold then
    opened = now
    state = 'open'
  end
else
  failures = 0
  state = 'closed'
  cooldown = base
  opened = 0
end
redis.call('HSET', KEYS[1], 'state', state, 'failures', failures,
  'opened_at', tostring(opened), 'cooldown', tostring(cooldown))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
local retry_in = 0
if state == 'open' then retry_in = math.max(0, opened + cooldown - now) end
return {state, failures, tostring(cooldown), tostring(retry_in)}
"""

# KEYS: circuits. Returns for each {state or '', failures, cooldown, retry_in}.
_CIRCUIT_READ = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out = {}
for i, key in ipairs(KEYS) do
  local h = redis.call('HMGET', key, 'state', 'failures', 'opened_at', 'cooldown')
  local state = h[1] or ''
  local opened = tonumber(h[3]) or 0
  local cooldown = tonumber(h[4]) or 0
  local retry_in = 0
  if state == 'open' then
    retry_in = math.max(0, opened + cooldown - now)
    if retry_in == 0 then state = 'half_open' end
  end
  out[i] = {state, tonumber(h[2]) or 0, tostring(cooldown), tostring(retry_in)}
end
return out
"""


def _shared(row: list[Any]) -> SharedCircuit:
    state = row[0].decode() if isinstance(row[0], bytes) else str(row[0])
    return SharedCircuit(
        state=state,  # type: ignore[arg-type]
        failures=int(row[1]),
        cooldown=float(row[2]),
        retry_in=float(row[3]),
    )


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
        self._circuit_record = self._redis.register_script(_CIRCUIT_RECORD)
        self._circuit_read = self._redis.register_script(_CIRCUIT_READ)

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

    async def circuit_record(
        self, provider: str, failed: bool, params: CircuitParams
    ) -> SharedCircuit:
        ttl_ms = int((params.max_cooldown * 2 + 3600) * 1000)
        args = [1 if failed else 0, params.failure_threshold, params.base_cooldown]
        row = await self._run(
            self._circuit_record(
                keys=[f"{self._prefix}cb:{provider}"], args=[*args, params.max_cooldown, ttl_ms]
            )
        )
        return _shared(row)

    async def circuit_read(
        self, providers: list[str], params: CircuitParams
    ) -> dict[str, SharedCircuit]:
        if not providers:
            return {}
        keys = [f"{self._prefix}cb:{name}" for name in providers]
        rows = await self._run(self._circuit_read(keys=keys))
        return {
            name: _shared(row)
            for name, row in zip(providers, rows, strict=True)
            if row[0] not in (b"", "")
        }

    def shared_budgets(self) -> BudgetStore:
        """Budgets and token buckets on this Redis (state/budgets.py)."""
        from fkllmproxy.state.budgets import RedisBudgets

        return RedisBudgets(self._redis, self._prefix)

    def semantic(self, model: str, max_entries: int) -> SemanticStore:
        """One model's semantic cache entries on this Redis (state/semantic_redis.py)."""
        from fkllmproxy.state.semantic_redis import RedisSemanticStore

        return RedisSemanticStore(self._redis, self._prefix, model, max_entries)

    def shared_semantic(self, model: str, max_entries: int) -> SemanticStore:
        return self.semantic(model, max_entries)

    async def ping(self) -> None:
        await self._run(self._redis.ping())

    async def aclose(self) -> None:
        await self._redis.aclose()
