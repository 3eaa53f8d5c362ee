"""``fkllm metrics``: table, JSON and exposition text of a live daemon; a dead port; and
the client side against httpx_mock (each refusal, a timeout, an answer that is not JSON)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

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


class TestAgainstHttpxMock:
    """The command's client side in process: each answer and failure of /metrics."""

    URL = "http://127.0.0.1:4000"

    def run(self, *args: str) -> Any:
        from typer.testing import CliRunner

        from fkllmproxy.cli.commands import app

        return CliRunner().invoke(app, ["metrics", "--url", self.URL, "--key", "k", *args])

    def test_json_answer_printed_as_json(self, httpx_mock: HTTPXMock) -> None:
        """--json prints the daemon's /metrics document."""
        httpx_mock.add_response(url=f"{self.URL}/metrics", json={"total_requests": 7})
        result = self.run("--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == {"total_requests": 7}
        assert httpx_mock.get_requests()[0].headers["authorization"] == "Bearer k"

    def test_prometheus_text_passes_through(self, httpx_mock: HTTPXMock) -> None:
        """--prometheus asks /metrics/prometheus and prints its text as it came."""
        text = "# TYPE fkllm_requests_total counter\nfkllm_requests_total 3\n"
        httpx_mock.add_response(url=f"{self.URL}/metrics/prometheus", text=text)
        result = self.run("--prometheus")
        assert result.exit_code == 0 and result.stdout == text

    @pytest.mark.parametrize(
        ("status", "said"),
        [
            (401, "wants the master key"),
            (404, "no metrics at http://127.0.0.1:4000/metrics"),
            (500, "/metrics answered HTTP 500"),
        ],
    )
    def test_refusals_exit_1_with_one_line(
        self, httpx_mock: HTTPXMock, status: int, said: str
    ) -> None:
        """401, 404 and other statuses each say what they mean, on one line, exit 1."""
        httpx_mock.add_response(url=f"{self.URL}/metrics", status_code=status)
        result = self.run()
        assert result.exit_code == 1
        assert said in result.stderr and result.stderr.count("\n") == 1

    def test_not_json_exits_1(self, httpx_mock: HTTPXMock) -> None:
        """A 200 that is not JSON is not fkllmproxy's /metrics."""
        httpx_mock.add_response(url=f"{self.URL}/metrics", text="<html>hello</html>")
        result = self.run("--json")
        assert result.exit_code == 1
        assert "did not answer JSON" in result.stderr

    def test_timeout_exits_2(self, httpx_mock: HTTPXMock) -> None:
        """A daemon that never answers is unreachable: exit 2, one line."""
        httpx_mock.add_exception(httpx.ReadTimeout("timed out"))
        result = self.run()
        assert result.exit_code == 2
        assert result.stderr == (
            "fkllm: cannot reach fkllmproxy at http://127.0.0.1:4000 (no answer in time)\n"
        )
