"""Reload without restart: SIGHUP swaps keys, limits and routes; streams finish."""

from __future__ import annotations

import signal
import threading
from typing import Any

import httpx

from tests.conftest import MOCK_CONFIG, RunningDaemon, fkllm, wait_until

SLOW_CONFIG = """
[[providers]]
name = "slow"
type = "mock"
mock_latency_ms = 1500

[[models]]
name = "mock"
targets = [{ provider = "slow", model = "m" }]
"""
FIRST_KEY = "first-master-key-0123456789"


def reloads(daemon: RunningDaemon, message: str = "configuration reloaded") -> int:
    return sum(1 for line in daemon.logs() if line["msg"].startswith(message))


def sighup_and_wait(daemon: RunningDaemon, message: str = "configuration reloaded") -> None:
    before = reloads(daemon, message)
    daemon.signal(signal.SIGHUP)
    assert wait_until(lambda: reloads(daemon, message) > before, 15), daemon.stdout_lines()[-3:]


def status(daemon: RunningDaemon, key: str) -> int:
    response = httpx.get(daemon.url + "/v1/models", headers={"authorization": f"Bearer {key}"})
    return response.status_code


def test_rotation_and_sighup_with_a_stream_in_flight(start_daemon: Any) -> None:
    """Same PID throughout; the stream finishes; old key during grace only; new key works."""
    daemon = start_daemon(
        SLOW_CONFIG, env_file_text=f"# secrets\nAPP_AUTH__MASTER_KEY={FIRST_KEY}\n"
    )
    pid = daemon.pid
    assert status(daemon, FIRST_KEY) == 200
    result: dict[str, Any] = {}
    started = threading.Event()

    def consume() -> None:
        with httpx.stream(
            "POST",
            daemon.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {FIRST_KEY}"},
            json={"model": "mock", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        ) as response:
            result["status"] = response.status_code
            started.set()
            result["body"] = b"".join(response.iter_bytes())

    reader = threading.Thread(target=consume)
    reader.start()
    assert started.wait(10), "the stream did not start"

    rotated = fkllm("rotate-key", "--env-file", str(daemon.env_file), "--keep-previous")
    assert rotated.returncode == 0, rotated.stderr
    second_key = rotated.stdout.strip()
    sighup_and_wait(daemon)

    assert status(daemon, second_key) == 200
    assert status(daemon, FIRST_KEY) == 200  # within the grace period
    reader.join(20)
    assert result["status"] == 200
    assert result["body"].endswith(b"data: [DONE]\n\n"), result["body"][-200:]

    # The grace is over (set to 0 here rather than waiting an hour): the old key is refused.
    with daemon.env_file.open("a") as env:
        env.write("APP_AUTH__PREVIOUS_KEY_GRACE_SECS=0\n")
    sighup_and_wait(daemon)
    assert status(daemon, FIRST_KEY) == 401
    assert status(daemon, second_key) == 200

    # Rotating without --keep-previous cuts the old key off at the reload.
    third = fkllm("rotate-key", "--env-file", str(daemon.env_file)).stdout.strip()
    sighup_and_wait(daemon)
    assert status(daemon, second_key) == 401
    assert status(daemon, third) == 200
    assert daemon.pid == pid and daemon.process.poll() is None
    raw = "\n".join(daemon.stdout_lines())
    for key in (FIRST_KEY, second_key, third):
        assert key not in raw
    assert daemon.env_file.read_text().startswith("# secrets\n")


def test_invalid_config_is_refused_and_the_old_one_kept(start_daemon: Any) -> None:
    daemon = start_daemon(MOCK_CONFIG, env_file_text=f"APP_AUTH__MASTER_KEY={FIRST_KEY}\n")
    daemon.env_file.write_text(
        "APP_AUTH__MASTER_KEY=another-master-key-000\nAPP_RATE_LIMIT__CAPACITY=0\n"
    )
    sighup_and_wait(daemon, "reload refused")
    refused = next(line for line in daemon.logs() if line["msg"].startswith("reload refused"))
    assert refused["level"] == "ERROR"
    assert any("APP_RATE_LIMIT__CAPACITY" in p for p in refused["problems"])
    assert status(daemon, FIRST_KEY) == 200
    assert status(daemon, "another-master-key-000") == 401
    assert daemon.process.poll() is None


def test_limits_and_routes_swap_together(start_daemon: Any) -> None:
    daemon = start_daemon(
        MOCK_CONFIG,
        env_file_text=f"APP_AUTH__MASTER_KEY={FIRST_KEY}\nAPP_RATE_LIMIT__CAPACITY=10\n"
        "APP_RATE_LIMIT__REFILL_PER_SECOND=0.001\n",
    )
    headers = {"authorization": f"Bearer {FIRST_KEY}"}
    for _ in range(2):
        httpx.get(daemon.url + "/v1/models", headers=headers)
    before = httpx.get(daemon.url + "/v1/models", headers=headers)
    assert [m["id"] for m in before.json()["data"]] == ["mock"]
    assert (before.headers["x-ratelimit-limit"], before.headers["x-ratelimit-remaining"]) == (
        "10",
        "7",
    )
    daemon.config_path.write_text(
        MOCK_CONFIG
        + '\n[[models]]\nname = "extra"\ntargets = [{ provider = "mock", model = "x" }]\n'
    )
    daemon.env_file.write_text(daemon.env_file.read_text().replace("CAPACITY=10", "CAPACITY=50"))
    sighup_and_wait(daemon)
    after = httpx.get(daemon.url + "/v1/models", headers=headers)
    assert [m["id"] for m in after.json()["data"]] == ["extra", "mock"]
    assert after.headers["x-ratelimit-limit"] == "50"
    # The bucket carried over (7 tokens left, one taken now), not a fresh burst of 50.
    assert after.headers["x-ratelimit-remaining"] == "6"
