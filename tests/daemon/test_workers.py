"""``server.workers > 1``: numbers and the ledger cover every worker process."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import prometheus_samples, sample_sum

SLOW_MOCK = """
[[providers]]
name = "mock"
type = "mock"
mock_latency_ms = 40

[[models]]
name = "mock"
targets = [{ provider = "mock", model = "mock-1" }]
"""


def send(daemon: Any, count: int) -> None:
    def one(_: int) -> int:
        return httpx.post(  # a new connection each time, so the kernel spreads them
            daemon.url + "/v1/chat/completions",
            headers=daemon.headers(),
            json={"model": "mock", "messages": [{"role": "user", "content": "hello"}]},
            timeout=30,
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(one, range(count))) == {200}


def pids_of(daemon: Any, path: str) -> set[int]:
    return {
        line["pid"] for line in daemon.logs() if line["msg"] == "request" and line["path"] == path
    }


def check_totals(daemon: Any, sent: int) -> None:
    """Whichever worker answers, the numbers are those of every worker."""
    body = httpx.get(daemon.url + "/metrics").json()
    assert body["total_requests"] == sent
    assert body["successful_requests"] == sent
    assert body["latency_ms"]["samples"] == sent
    assert body["providers"]["mock"]["attempts"] == sent
    assert body["in_flight_requests"] == 0
    samples = prometheus_samples(httpx.get(daemon.url + "/metrics/prometheus").text)
    assert sample_sum(samples, "fkllm_requests_total", status="200", model="mock") == sent
    assert sample_sum(samples, "fkllm_upstream_requests_total", outcome="success") == sent
    assert sample_sum(samples, "fkllm_request_latency_seconds_count") == sent
    assert sample_sum(samples, "fkllm_circuit_breaker_state", provider="mock") == 0


def test_totals_cover_every_worker(start_daemon: Any, tmp_path: Path) -> None:
    """N requests, several scrapes: every scrape says N, and both workers took part
    (answered requests or scrapes), so some answer counted the other worker's requests."""
    ledger = tmp_path / "usage.sqlite3"
    config = (
        SLOW_MOCK
        + f'\n[usage]\nenabled = true\npath = "{ledger}"\nflush_interval_secs = 3600\n'
        + '\n[logging]\nlevel = "DEBUG"\n'  # scrapes are logged (with the pid) at DEBUG
    )
    runtime = tmp_path / "run"
    runtime.mkdir()
    daemon = start_daemon(config, args=["--workers", "2"], env={"RUNTIME_DIRECTORY": str(runtime)})
    assert len(list(runtime.glob("fkllm-metrics-*"))) == 1
    sent = 0
    for _ in range(10):  # until both workers have answered something (bounded)
        send(daemon, 24)
        sent += 24
        for _ in range(4):
            check_totals(daemon, sent)
        involved = pids_of(daemon, "/v1/chat/completions") | pids_of(daemon, "/metrics")
        if len(involved) == 2:
            break
    assert len(involved) == 2, "every request and scrape went to the same worker"
    samples = prometheus_samples(httpx.get(daemon.url + "/metrics/prometheus").text)
    pids = {dict(labels)["pid"] for name, labels in samples if name == "process_cpu_seconds_total"}
    assert len(pids) == 2

    # SIGTERM: each worker flushes its queue of ledger rows before it exits.
    assert daemon.stop() == 0
    with sqlite3.connect(ledger) as db:
        assert db.execute("SELECT COUNT(*) FROM usage WHERE status = 200").fetchone()[0] == sent
    assert sum(1 for line in daemon.logs() if line["msg"] == "worker stopped") == 2
    assert list(runtime.iterdir()) == [], "the per-start metrics directory is removed"
