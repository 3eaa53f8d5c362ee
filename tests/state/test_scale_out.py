"""Two `fkllm serve` processes sharing one Redis: one rate limit, one cache; Redis outages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.conftest import MASTER_KEY, RunningDaemon, wait_until
from tests.state.conftest import RedisServer


def config(redis_url: str, *, on_failure: str = "open") -> str:
    return f"""
[state]
backend = "redis"
url = "{redis_url}"
on_failure = "{on_failure}"
key_prefix = "scale:"

[rate_limit]
capacity = 5
refill_per_second = 0.01

[cache]
enabled = true

[[providers]]
name = "mock"
type = "mock"

[[models]]
name = "mock"
targets = [{{ provider = "mock", model = "mock-1" }}]
cache = true
"""


def chat(daemon: RunningDaemon, text: str = "hello", **headers: str) -> httpx.Response:
    return httpx.post(
        daemon.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {MASTER_KEY}", **headers},
        json={"model": "mock", "messages": [{"role": "user", "content": text}]},
        timeout=10,
    )


def test_one_global_rate_limit_across_two_daemons(
    start_daemon: Any, redis_server: RedisServer
) -> None:
    a = start_daemon(config(redis_server.url))
    b = start_daemon(config(redis_server.url))
    statuses = [chat(d, f"n{i}").status_code for i, d in enumerate([a, b] * 4)]
    assert statuses.count(200) == 5
    assert statuses[5:] == [429, 429, 429]
    # Both daemons report the same shared bucket in their headers.
    assert chat(a).headers["x-ratelimit-remaining"] == "0"


def test_cache_hits_across_daemons(start_daemon: Any, redis_server: RedisServer) -> None:
    a = start_daemon(config(redis_server.url).replace("capacity = 5", "capacity = 100"))
    b = start_daemon(config(redis_server.url).replace("capacity = 5", "capacity = 100"))
    first = chat(a, "cache me")
    assert first.headers["x-fkllm-cache"] == "miss"
    second = chat(b, "cache me")
    assert second.headers["x-fkllm-cache"] == "hit"
    assert second.json() == first.json()
    assert chat(b, "cache me", **{"cache-control": "no-cache"}).headers["x-fkllm-cache"] == "miss"
    hit_line = next(line for line in b.logs() if line.get("msg") == "request")
    assert hit_line["provider"] == "cache"


def test_redis_outage_fail_open_then_recovery(
    tmp_path: Path, start_daemon: Any, redis_server: RedisServer
) -> None:
    daemon = start_daemon(config(redis_server.url).replace("capacity = 5", "capacity = 100"))
    assert chat(daemon).status_code == 200
    redis_server.stop()
    assert chat(daemon, "during outage").status_code == 200
    assert any(
        line.get("msg", "").startswith("state backend unavailable") for line in daemon.logs()
    )
    restarted = RedisServer(tmp_path, port=redis_server.port)
    restarted.start()
    try:

        def recovered() -> bool:
            chat(daemon, "after")
            return any(line.get("msg") == "state backend recovered" for line in daemon.logs())

        assert wait_until(recovered, timeout=15, interval=0.3)
    finally:
        restarted.stop()


def test_redis_outage_fail_closed_is_503(start_daemon: Any, redis_server: RedisServer) -> None:
    daemon = start_daemon(config(redis_server.url, on_failure="closed"))
    assert chat(daemon).status_code == 200
    redis_server.stop()
    response = chat(daemon, "refused")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "state_unavailable"


def test_memory_backend_with_two_workers_splits_the_limit(start_daemon: Any) -> None:
    """No silent N-times limit: two workers together allow at most the configured capacity."""
    text = """
[rate_limit]
capacity = 4
refill_per_second = 0.001

[[providers]]
name = "mock"
type = "mock"

[[models]]
name = "mock"
targets = [{ provider = "mock", model = "mock-1" }]
"""
    daemon = start_daemon(text, args=["--workers", "2"])
    statuses = []
    for i in range(16):
        with httpx.Client() as fresh:  # a new connection each time, so both workers see traffic
            statuses.append(
                fresh.post(
                    daemon.url + "/v1/chat/completions",
                    headers={"authorization": f"Bearer {MASTER_KEY}"},
                    json={"model": "mock", "messages": [{"role": "user", "content": str(i)}]},
                ).status_code
            )
    assert 2 <= statuses.count(200) <= 4
    assert statuses.count(429) == 16 - statuses.count(200)
