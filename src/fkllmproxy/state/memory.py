"""Per-process state: token buckets and an LRU response cache with expiry."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from fkllmproxy.state.base import StateBackend, TakeNow
from fkllmproxy.state.buckets import Decision, RateLimiter

__all__ = ["MemoryState"]


class MemoryState(StateBackend):
    name = "memory"

    def __init__(
        self,
        *,
        max_tracked_callers: int = 100_000,
        max_cache_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limiter = RateLimiter(1, 1.0, max_tracked=max_tracked_callers, clock=clock)
        self._cache: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max_entries = max_cache_entries
        self._clock = clock

    def take_now(self) -> TakeNow:
        return self._limiter.take

    async def take_token(self, bucket: str, capacity: int, refill_per_second: float) -> Decision:
        return self._limiter.take(bucket, capacity, refill_per_second)

    async def cache_get(self, key: str) -> bytes | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self._clock():
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return value

    async def cache_set(self, key: str, value: bytes, ttl_secs: float) -> None:
        self._cache[key] = (self._clock() + ttl_secs, value)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
