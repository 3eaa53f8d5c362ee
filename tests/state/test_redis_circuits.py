"""Circuit state shared through Redis: the breaker's transitions on one hash, in Redis time."""

from __future__ import annotations

from typing import Any

import httpx

from fkllmproxy.state.base import CircuitParams
from fkllmproxy.state.redis import RedisState
from fkllmproxy.testing.fake_upstream import FakeUpstream
from tests.conftest import MASTER_KEY, RunningDaemon, wait_until
from tests.state.conftest import RedisServer

PARAMS = CircuitParams(failure_threshold=3, base_cooldown=60.0, max_cooldown=600.0)


class TestSharedTransitions:
    async def test_failures_from_two_clients_add_up_and_open(
        self, redis_server: RedisServer
    ) -> None:
        a, b = RedisState(redis_server.url), RedisState(redis_server.url)
        assert (await a.circuit_record("p", True, PARAMS)).state == "closed"
        assert (await b.circuit_record("p", True, PARAMS)).failures == 2
        opened = await a.circuit_record("p", True, PARAMS)
        assert (opened.state, opened.failures) == ("open", 3)
        assert 59 < opened.retry_in <= 60
        seen = await b.circuit_read(["p", "never-failed"], PARAMS)
        assert list(seen) == ["p"] and seen["p"].state == "open"
        await a.aclose()
        await b.aclose()

    async def test_success_closes_and_forgets(self, redis_server: RedisServer) -> None:
        state = RedisState(redis_server.url)
        for _ in range(3):
            await state.circuit_record("p", True, PARAMS)
        closed = await state.circuit_record("p", False, PARAMS)
        assert (closed.state, closed.failures, closed.cooldown) == ("closed", 0, 60.0)
        await state.aclose()

    async def test_failed_probe_doubles_the_cooldown(self, redis_server: RedisServer) -> None:
        quick = CircuitParams(failure_threshold=1, base_cooldown=0.05, max_cooldown=0.15)
        state = RedisState(redis_server.url)
        assert (await state.circuit_record("p", True, quick)).state == "open"
        assert wait_until(lambda: True, 0.1) and True
        import asyncio

        await asyncio.sleep(0.06)  # Redis's own clock decides the cooldown; no injected one
        assert (await state.circuit_read(["p"], quick))["p"].state == "half_open"
        reopened = await state.circuit_record("p", True, quick)
        assert (reopened.state, reopened.cooldown) == ("open", 0.1)
        await state.aclose()


def config(redis_url: str, upstream: str) -> str:
    return f"""
[state]
backend = "redis"
url = "{redis_url}"
key_prefix = "cb-test:"

[circuit_breaker]
failure_threshold = 3
timeout_secs = 60

[retry]
max_attempts = 1

[[providers]]
name = "flaky"
type = "openai"
base_url = "{upstream}/v1"

[[models]]
name = "m"
targets = [{{ provider = "flaky", model = "fault-500" }}]
"""


def ask(daemon: RunningDaemon) -> httpx.Response:
    return httpx.post(
        daemon.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )


def circuit(daemon: RunningDaemon) -> str:
    body = httpx.get(daemon.url + "/health", headers=daemon.headers()).json()
    return next(p["circuit"] for p in body["providers"] if p["name"] == "flaky")


def test_failures_seen_by_one_daemon_open_the_circuit_for_both(
    start_daemon: Any, redis_server: RedisServer, fake_upstream: FakeUpstream
) -> None:
    a = start_daemon(config(redis_server.url, fake_upstream.url))
    b = start_daemon(config(redis_server.url, fake_upstream.url))
    # Two failures on A and one on B: neither alone reaches the threshold of 3.
    assert [ask(a).status_code, ask(a).status_code, ask(b).status_code] == [502, 502, 502]
    assert wait_until(lambda: circuit(a) == "open" and circuit(b) == "open", timeout=10)
    sent = len(fake_upstream.requests)
    assert ask(a).status_code == 503 and ask(b).status_code == 503
    assert len(fake_upstream.requests) == sent  # neither called the provider again
    assert any(line.get("msg") == "circuit opened" for line in b.logs())

    # An operator's reset on one daemon closes it for both.
    reset = httpx.post(a.url + "/admin/circuits/flaky/reset", headers=a.headers())
    assert reset.status_code == 200
    assert wait_until(lambda: circuit(b) == "closed", timeout=10)
