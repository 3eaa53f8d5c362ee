"""Per-process state: bounded LRU cache with expiry, token buckets."""

from __future__ import annotations

from fkllmproxy.state import MemoryState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestMemoryCache:
    async def test_entries_expire(self) -> None:
        clock = Clock()
        state = MemoryState(clock=clock)
        await state.cache_set("k", b"v", ttl_secs=10)
        assert await state.cache_get("k") == b"v"
        clock.now += 10.5
        assert await state.cache_get("k") is None

    async def test_size_is_bounded_least_recent_first(self) -> None:
        state = MemoryState(max_cache_entries=2)
        await state.cache_set("a", b"1", 60)
        await state.cache_set("b", b"2", 60)
        assert await state.cache_get("a") == b"1"  # a is now the most recent
        await state.cache_set("c", b"3", 60)
        assert await state.cache_get("b") is None
        assert await state.cache_get("a") == b"1"
        assert await state.cache_get("c") == b"3"


async def test_buckets_refill_with_the_clock() -> None:
    clock = Clock()
    state = MemoryState(clock=clock)
    assert [(await state.take_token("x", 2, 1.0)).allowed for _ in range(3)] == [True, True, False]
    clock.now += 1.0
    assert (await state.take_token("x", 2, 1.0)).allowed
