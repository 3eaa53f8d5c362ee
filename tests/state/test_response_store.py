"""Stored responses: per key, expiring after their TTL, the oldest evicted past the byte bound."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import msgspec

from fkllmproxy.state.memory import MemoryState
from fkllmproxy.state.response_store import ResponseStore, StoredResponse
from tests.conftest import MASTER_KEY
from tests.state.conftest import RedisServer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(owner: str = "a", size: int = 10) -> StoredResponse:
    return StoredResponse(
        owner=owner,
        response=msgspec.Raw(b'{"id":"x","pad":"' + b"p" * size + b'"}'),
        history=msgspec.Raw(b"[]"),
    )


def test_only_the_owner_reads_it() -> None:
    async def go() -> None:
        store = ResponseStore(MemoryState())
        await store.save("r1", record("a"), ttl_secs=60, max_bytes=10_000)
        assert (await store.load("r1", "a")) is not None
        assert await store.load("r1", "b") is None
        assert await store.load("missing", "a") is None

    asyncio.run(go())


def test_it_expires_after_its_ttl() -> None:
    async def go() -> None:
        clock = Clock()
        store = ResponseStore(MemoryState(clock=clock), clock=clock)
        await store.save("r1", record(), ttl_secs=60, max_bytes=10_000)
        clock.now = 59
        assert await store.load("r1", "a") is not None
        clock.now = 61
        assert await store.load("r1", "a") is None

    asyncio.run(go())


def test_the_oldest_is_evicted_past_the_byte_bound() -> None:
    async def go() -> None:
        store = ResponseStore(MemoryState())
        size = len(msgspec.json.encode(record()))
        for name in ("r1", "r2", "r3"):
            await store.save(name, record(), ttl_secs=60, max_bytes=2 * size)
        await asyncio.sleep(0.01)  # the tombstone's own millisecond
        assert await store.load("r1", "a") is None
        assert await store.load("r2", "a") is not None
        assert await store.load("r3", "a") is not None

    asyncio.run(go())


def test_a_record_larger_than_the_bound_is_not_kept() -> None:
    async def go() -> None:
        store = ResponseStore(MemoryState())
        await store.save("big", record(size=1000), ttl_secs=60, max_bytes=100)
        assert await store.load("big", "a") is None

    asyncio.run(go())


def test_two_daemons_on_one_redis_share_stored_responses(
    start_daemon: Any, redis_server: RedisServer
) -> None:
    """Created on one daemon, read and continued on another; other keys still see nothing."""
    config = f"""
[state]
backend = "redis"
url = "{redis_server.url}"
key_prefix = "responses-test:"

[[providers]]
name = "mock"
type = "mock"

[[models]]
name = "mock"
targets = [{{ provider = "mock", model = "mock-1" }}]
"""
    a, b = start_daemon(config), start_daemon(config)
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    created = httpx.post(
        a.url + "/v1/responses", headers=headers, json={"model": "mock", "input": "one"}, timeout=10
    ).json()
    fetched = httpx.get(b.url + f"/v1/responses/{created['id']}", headers=headers, timeout=10)
    assert fetched.status_code == 200 and fetched.json()["id"] == created["id"]
    follow = httpx.post(
        b.url + "/v1/responses",
        headers=headers,
        json={"model": "mock", "input": "two", "previous_response_id": created["id"]},
        timeout=10,
    )
    assert follow.status_code == 200
    assert follow.json()["previous_response_id"] == created["id"]
