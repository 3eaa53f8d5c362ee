"""The semantic cache's index and stores: the bound, expiry, partitions, Redis sharing."""

from __future__ import annotations

import numpy as np
import pytest

from fkllmproxy.state.redis import RedisState
from fkllmproxy.state.semantic import MemorySemanticStore, SemanticEntry
from fkllmproxy.state.vector_index import VectorIndex, unit_vector
from tests.state.conftest import RedisServer

PART_A = "a" * 64
PART_B = "b" * 64


def unit(*values: float) -> np.ndarray:
    vector = unit_vector(values)
    assert vector is not None
    return vector


def entry(vector: np.ndarray, content: str, partition: str = PART_A) -> SemanticEntry:
    return SemanticEntry(
        partition=partition,
        vector=vector.tobytes(),
        content=content,
        finish_reason="stop",
        expires_at=0.0,
        prompt_tokens=3,
        completion_tokens=7,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestVectorIndex:
    def test_nearest_is_the_most_similar_live_row_of_the_partition(self) -> None:
        index = VectorIndex(10)
        index.add(1, unit(1, 0, 0), 7, expires=100)
        index.add(2, unit(1, 1, 0), 7, expires=100)
        index.add(3, unit(1, 0.1, 0), 8, expires=100)  # closer, but another partition
        found = index.nearest(unit(1, 0.05, 0), 7, now=0)
        assert found is not None and found[0] == 1 and found[1] == pytest.approx(0.99875, 1e-4)
        assert index.nearest(unit(1, 0, 0), 9, now=0) is None
        assert index.nearest(unit(1, 0, 0), 7, now=100) is None  # expired

    def test_the_bound_evicts_the_oldest(self) -> None:
        """Past capacity each add overwrites the oldest row and says which id it evicted."""
        index = VectorIndex(3)
        evicted = [index.add(i, unit(1, i, 0), 1, expires=10) for i in range(1, 6)]
        assert evicted == [None, None, None, 1, 2] and len(index) == 3
        found = index.nearest(unit(1, 1, 0), 1, now=0)
        assert found is not None and found[0] == 3  # 1 and 2 are gone

    def test_it_grows_past_its_first_allocation_and_forgets(self) -> None:
        index = VectorIndex(5000)
        vectors = np.random.default_rng(7).standard_normal((3000, 16))
        for i, vector in enumerate(vectors):
            index.add(i, unit(*vector), 1, expires=10)
        assert len(index) == 3000
        target = unit(*vectors[2999])
        assert index.nearest(target, 1, now=0) == (2999, pytest.approx(1.0, abs=1e-5))
        index.forget(2999)
        found = index.nearest(target, 1, now=0)
        assert found is not None and found[0] != 2999

    def test_a_new_dimension_starts_afresh(self) -> None:
        index = VectorIndex(4)
        index.add(1, unit(1, 0), 1, expires=10)
        index.add(2, unit(1, 0, 0), 1, expires=10)
        assert len(index) == 1 and index.dimension == 3
        assert index.nearest(unit(1, 0), 1, now=0) is None

    def test_unusable_vectors_are_refused(self) -> None:
        assert unit_vector([]) is None
        assert unit_vector([0.0, 0.0]) is None
        assert unit_vector([float("nan"), 1.0]) is None
        assert unit_vector(["x"]) is None


class TestMemoryStore:
    async def test_entries_expire_on_the_injected_clock(self) -> None:
        clock = Clock()
        store = MemorySemanticStore(10, clock=clock)
        await store.add(entry(unit(1, 0), "answer"), ttl_secs=60)
        found = await store.nearest(unit(1, 0.01), PART_A)
        assert (
            found is not None and found[0].content == "answer" and found[0].completion_tokens == 7
        )
        clock.now += 59.9
        assert await store.nearest(unit(1, 0), PART_A) is not None
        clock.now += 0.2
        assert await store.nearest(unit(1, 0), PART_A) is None

    async def test_the_size_bound_evicts_the_oldest(self) -> None:
        store = MemorySemanticStore(2)
        for i in range(3):
            await store.add(entry(unit(1, i), f"answer {i}"), ttl_secs=60)
        assert len(store) == 2
        found = await store.nearest(unit(1, 0), PART_A)
        assert found is not None and found[0].content == "answer 1"  # answer 0 was evicted

    async def test_partitions_never_mix(self) -> None:
        store = MemorySemanticStore(10)
        await store.add(entry(unit(1, 0), "for a"), ttl_secs=60)
        assert await store.nearest(unit(1, 0), PART_B) is None


class TestRedisStore:
    async def test_two_daemons_share_entries_and_one_bound(self, redis_server: RedisServer) -> None:
        """What one process stores another finds; the bound holds over both writers."""
        a = RedisState(redis_server.url, key_prefix="sem1:")
        b = RedisState(redis_server.url, key_prefix="sem1:")
        store_a, store_b = a.semantic("chat", 3), b.semantic("chat", 3)
        await store_a.add(entry(unit(1, 0), "from a"), ttl_secs=60)
        found = await store_b.nearest(unit(1, 0.02), PART_A)
        assert found is not None and found[0].content == "from a"
        for i in range(1, 4):  # b writes three more: a's entry is evicted from Redis
            await store_b.add(entry(unit(0, 1, i), f"from b {i}"), ttl_secs=60)
        assert await a._redis.llen("sem1:sem:chat:ids") == 3
        assert await a._redis.exists("sem1:sem:chat:e:1") == 0
        # a's index still has its own entry, but it is checked against Redis before it serves.
        stale = await store_b.nearest(unit(1, 0), PART_A)
        assert stale is None or stale[0].content != "from a"
        found = await store_a.nearest(unit(0, 1, 3), PART_A)
        assert found is not None and found[0].content == "from b 3"
        await a.aclose()
        await b.aclose()

    async def test_expiry_follows_the_clock_and_redis(self, redis_server: RedisServer) -> None:
        state = RedisState(redis_server.url, key_prefix="sem2:")
        store = state.semantic("chat", 10)
        clock = Clock()
        store.clock = clock
        await store.add(entry(unit(1, 0), "soon gone"), ttl_secs=30)
        assert await store.nearest(unit(1, 0), PART_A) is not None
        assert 0 < await state._redis.pttl("sem2:sem:chat:e:1") <= 30_000
        clock.now += 31
        assert await store.nearest(unit(1, 0), PART_A) is None
        await state.aclose()

    async def test_a_new_process_loads_what_is_there(self, redis_server: RedisServer) -> None:
        writer = RedisState(redis_server.url, key_prefix="sem3:")
        for i in range(5):
            await writer.semantic("chat", 100).add(entry(unit(1, i), f"n{i}"), ttl_secs=60)
        reader = RedisState(redis_server.url, key_prefix="sem3:")
        store = reader.semantic("chat", 100)
        found = await store.nearest(unit(1, 4), PART_A)
        assert found is not None and found[0].content == "n4" and len(store.index) == 5
        await writer.aclose()
        await reader.aclose()
