"""``fkllm metrics``: table, JSON and exposition text of a live daemon; a dead port."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import (
    MASTER_KEY,
    MOCK_CONFIG,
    fkllm,
    free_port,
    prometheus_samples,
    sample_sum,
    send_chats,
)


def test_table_json_and_prometheus(start_daemon: Any) -> None:
    daemon = start_daemon()
    send_chats(daemon, 4)

    table = fkllm("metrics", "--url", daemon.url)
    assert table.returncode == 0, table.stderr
    assert "4 total" in table.stdout and "Latency" in table.stdout
    assert any(line.startswith("mock") for line in table.stdout.splitlines())

    as_json = fkllm("metrics", "--json", "--url", daemon.url)
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)["total_requests"] == 4

    text = fkllm("metrics", "--prometheus", "--url", daemon.url)
    assert text.returncode == 0
    samples = prometheus_samples(text.stdout)
    assert sample_sum(samples, "fkllm_requests_total", status="200") == 4


def test_master_key_when_required(start_daemon: Any) -> None:
    daemon = start_daemon(MOCK_CONFIG + "\n[metrics]\nrequire_auth = true\n")
    refused = fkllm("metrics", "--url", daemon.url)
    assert refused.returncode == 1
    assert "master key" in refused.stderr and refused.stderr.count("\n") == 1
    allowed = fkllm("metrics", "--json", "--url", daemon.url, "--key", MASTER_KEY)
    assert allowed.returncode == 0


def test_dead_port_is_2() -> None:
    result = fkllm("metrics", "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 2
    assert result.stderr.startswith("fkllm: cannot reach fkllmproxy")
    assert result.stderr.count("\n") == 1


def test_json_and_prometheus_together_is_a_usage_error() -> None:
    result = fkllm("metrics", "--json", "--prometheus")
    assert result.returncode == 2
    assert "choose one" in result.stderr
