"""Redis down: fail open to per-process state or fail closed, log once, recover."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fkllmproxy.state import MemoryState
from fkllmproxy.state.base import StateUnavailable
from fkllmproxy.state.redis import RedisState
from fkllmproxy.state.resilient import ResilientState
from tests.conftest import free_port
from tests.state.conftest import RedisServer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def resilient(url: str, on_failure: str, clock: Clock) -> ResilientState:
    return ResilientState(
        RedisState(url, timeout_secs=0.2),
        MemoryState(),
        on_failure=on_failure,  # type: ignore[arg-type]
        retry_secs=5.0,
        clock=clock,
    )


async def test_fail_open_uses_memory_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    state = resilient(f"redis://127.0.0.1:{free_port()}/0", "open", clock)
    with caplog.at_level(logging.WARNING):
        decisions = [await state.take_token("c", 2, 0.001) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    unavailable = [r for r in caplog.records if "state backend unavailable" in r.getMessage()]
    assert len(unavailable) == 1
    assert state.degraded and state.failures == 1  # retried once per retry_secs, not per call
    await state.cache_set("k", b"v", 60)
    assert await state.cache_get("k") == b"v"
    await state.aclose()


async def test_fail_closed_refuses_rate_limits_but_cache_is_a_miss() -> None:
    clock = Clock()
    state = resilient(f"redis://127.0.0.1:{free_port()}/0", "closed", clock)
    with pytest.raises(StateUnavailable):
        await state.take_token("c", 2, 1.0)
    await state.cache_set("k", b"v", 60)
    assert await state.cache_get("k") is None
    await state.aclose()


async def test_recovers_when_redis_returns(
    tmp_path: Path, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    state = resilient(redis_server.url, "open", clock)
    assert (await state.take_token("c", 5, 1.0)).allowed
    redis_server.stop()
    await state.take_token("c", 5, 1.0)
    assert state.degraded
    restarted = RedisServer(tmp_path, port=redis_server.port)
    restarted.start()
    try:
        clock.now += 5.0
        with caplog.at_level(logging.WARNING):
            await state.take_token("c", 5, 1.0)
        assert not state.degraded
        assert any("state backend recovered" in r.getMessage() for r in caplog.records)
    finally:
        await state.aclose()
        restarted.stop()
