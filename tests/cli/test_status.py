"""``fkllm status`` against a live daemon, a degraded one, and a dead port; its report
from each answer of /health and /metrics against httpx_mock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from tests.conftest import MASTER_KEY, MOCK_CONFIG, fkllm, free_port, send_chats, wait_until


class TestLiveDaemon:
    def test_screen_of_a_healthy_daemon(self, start_daemon: Any) -> None:
        daemon = start_daemon()
        send_chats(daemon, 3)
        result = fkllm("status", "--url", daemon.url, "--key", MASTER_KEY)
        assert result.returncode == 0, result.stderr
        screen = result.stdout
        assert "healthy" in screen and "v0.1.0" in screen and daemon.url in screen
        assert "3 total" in screen and "100.00% success" in screen
        assert "p50" in screen and "p95" in screen and "p99" in screen
        provider_row = next(line for line in screen.splitlines() if line.startswith("mock"))
        assert provider_row.split()[:4] == ["mock", "mock", "closed", "3"]
        assert result.stderr == ""

    def test_json_report(self, start_daemon: Any) -> None:
        daemon = start_daemon()
        send_chats(daemon, 2)
        result = fkllm("status", "--json", "--url", daemon.url, "--key", MASTER_KEY)
        assert result.returncode == 0
        report = json.loads(result.stdout)
        assert report["status"] == "healthy" and report["url"] == daemon.url
        assert report["providers"] == [{"name": "mock", "type": "mock", "circuit": "closed"}]
        assert report["metrics"]["total_requests"] == 2
        assert report["metrics"]["success_rate"] == 1.0

    def test_finds_the_daemon_and_key_from_the_config_layers(self, start_daemon: Any) -> None:
        """No --url, no --key: the port from APP_SERVER__PORT, the key from the env file."""
        daemon = start_daemon()
        daemon.env_file.write_text(f"APP_AUTH__MASTER_KEY={MASTER_KEY}\n")
        result = fkllm(
            "status",
            "--json",
            "--config",
            str(daemon.config_path),
            "--env-file",
            str(daemon.env_file),
            env={"APP_SERVER__PORT": str(daemon.port)},
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["url"] == daemon.url
        assert report["providers"] is not None, "the master key came from the env file"

    def test_without_the_key_it_says_what_is_missing(self, start_daemon: Any) -> None:
        daemon = start_daemon(MOCK_CONFIG + "\n[metrics]\nrequire_auth = true\n")
        result = fkllm("status", "--url", daemon.url)
        assert result.returncode == 0
        assert "metrics need the master key" in result.stdout

    def test_watch_refreshes_until_interrupted(self, start_daemon: Any) -> None:
        daemon = start_daemon()
        env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
        process = subprocess.Popen(
            [sys.executable, "-m", "fkllmproxy", "status", "--watch", "--interval", "0.3",
             "--url", daemon.url, "--key", MASTER_KEY],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )  # fmt: skip
        seen: list[bytes] = []

        def read() -> None:
            while chunk := os.read(process.stdout.fileno(), 65536):  # type: ignore[union-attr]
                seen.append(chunk)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            send_chats(daemon, 2)
            # Drawn, then redrawn at least once more with the two requests, then Ctrl-C.
            assert wait_until(lambda: b"".join(seen).count(b"2 total") >= 2, timeout=20)
            process.send_signal(signal.SIGINT)
            assert process.wait(15) == 0
            reader.join(10)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        output = b"".join(seen).decode()
        assert "healthy" in output and "mock" in output


class _FakeHealth(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        if self.path == "/health":
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)
        else:
            self.send_error(404)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def degraded_server() -> Iterator[str]:
    """A stand-in that answers /health as a degraded daemon would."""

    class Handler(_FakeHealth):
        body = json.dumps({"status": "degraded", "version": "0.1.0", "uptime": 5}).encode()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class TestExitCodes:
    def test_degraded_is_1(self, degraded_server: str) -> None:
        result = fkllm("status", "--url", degraded_server)
        assert result.returncode == 1
        assert "degraded" in result.stdout

    def test_dead_port_is_2_with_one_line(self) -> None:
        url = f"http://127.0.0.1:{free_port()}"
        result = fkllm("status", "--url", url)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1
        assert result.stderr.startswith("fkllm: cannot reach fkllmproxy at " + url)
        assert "unreachable" in result.stdout

    def test_dead_port_json(self) -> None:
        result = fkllm("status", "--json", "--url", f"http://127.0.0.1:{free_port()}")
        assert result.returncode == 2
        assert json.loads(result.stdout)["status"] == "unreachable"

    def test_not_fkllmproxy_is_2(self, degraded_server: str) -> None:
        result = fkllm("status", "--url", degraded_server + "/elsewhere")
        assert result.returncode == 2
        assert "is not fkllmproxy" in result.stderr


class TestWatchInterrupt:
    def test_ctrl_c_swallowed_mid_refresh_still_stops_the_screen(self, tmp_path: Any) -> None:
        """A SIGINT landing where its KeyboardInterrupt is swallowed (as in a finalizer,
        which Python reports as "Exception ignored" and carries on) still ends --watch."""
        import io
        from pathlib import Path

        from rich.console import Console

        from fkllmproxy.cli.locate import DaemonAddress
        from fkllmproxy.cli.status import _watch

        rounds: list[int] = []

        def refresh(address: DaemonAddress) -> dict[str, Any]:
            rounds.append(len(rounds))
            if len(rounds) == 2:
                try:
                    os.kill(os.getpid(), signal.SIGINT)
                    signal.sigtimedwait([], 0)  # let the handler run here, inside the try
                except BaseException:
                    pass
            assert len(rounds) < 6, "--watch went on refreshing after Ctrl-C"
            return {"url": address.url, "status": "unreachable", "error": "x", "notes": []}

        address = DaemonAddress(url="http://127.0.0.1:9", key=None, usage_path=Path(tmp_path))
        console = Console(file=io.StringIO(), force_terminal=False)
        report = _watch(address, console, 0.2, gather_report=refresh)
        assert report["status"] == "unreachable"
        assert len(rounds) == 2
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


class TestGatherAgainstHttpxMock:
    """``gather``'s report from each answer of /health and /metrics (httpx_mock)."""

    URL = "http://127.0.0.1:4000"
    HEALTH = {"status": "healthy", "version": "0.1.0", "uptime": 12.5, "providers": []}

    def gather(self) -> dict[str, Any]:
        from fkllmproxy.cli.locate import DaemonAddress
        from fkllmproxy.cli.status import gather

        return gather(DaemonAddress(url=self.URL, key="k", usage_path=None))  # type: ignore[arg-type]

    def test_health_and_metrics_make_one_report(self, httpx_mock: HTTPXMock) -> None:
        """Status, version and uptime from /health; the totals from /metrics."""
        httpx_mock.add_response(url=f"{self.URL}/health", json=self.HEALTH)
        httpx_mock.add_response(url=f"{self.URL}/metrics", json={"total_requests": 4})
        report = self.gather()
        assert report["status"] == "healthy" and report["version"] == "0.1.0"
        assert report["uptime"] == 12.5 and report["metrics"] == {"total_requests": 4}
        assert report["notes"] == []

    def test_no_providers_without_the_key(self, httpx_mock: HTTPXMock) -> None:
        """A /health without providers (no master key) and a 401 on /metrics are notes."""
        health = {k: v for k, v in self.HEALTH.items() if k != "providers"}
        httpx_mock.add_response(url=f"{self.URL}/health", json=health)
        httpx_mock.add_response(url=f"{self.URL}/metrics", status_code=401)
        report = self.gather()
        assert report["status"] == "healthy" and "metrics" not in report
        assert report["notes"] == [
            "providers' details need the master key (--key)",
            "metrics need the master key (--key)",
        ]

    @pytest.mark.parametrize(
        ("status", "note"),
        [(404, "metrics are turned off on this daemon"), (503, "metrics unavailable (HTTP 503)")],
    )
    def test_metrics_refused(self, httpx_mock: HTTPXMock, status: int, note: str) -> None:
        """A /metrics that answers otherwise leaves the health part standing, with a note."""
        httpx_mock.add_response(url=f"{self.URL}/health", json=self.HEALTH)
        httpx_mock.add_response(url=f"{self.URL}/metrics", status_code=status)
        report = self.gather()
        assert report["status"] == "healthy" and report["notes"] == [note]

    def test_metrics_timing_out(self, httpx_mock: HTTPXMock) -> None:
        """/metrics not answering in time is a note, not an unreachable daemon."""
        httpx_mock.add_response(url=f"{self.URL}/health", json=self.HEALTH)
        httpx_mock.add_exception(httpx.ReadTimeout("timed out"), url=f"{self.URL}/metrics")
        report = self.gather()
        assert report["status"] == "healthy"
        assert report["notes"] == [
            "metrics unavailable: cannot reach fkllmproxy at http://127.0.0.1:4000 "
            "(no answer in time)"
        ]

    def test_metrics_not_json(self, httpx_mock: HTTPXMock) -> None:
        """A 200 /metrics that is not JSON leaves no totals (the screen shows none)."""
        httpx_mock.add_response(url=f"{self.URL}/health", json=self.HEALTH)
        httpx_mock.add_response(url=f"{self.URL}/metrics", text="<html>")
        assert self.gather()["metrics"] is None

    @pytest.mark.parametrize(
        "answer",
        [
            {"text": "<html>it works</html>"},
            {"json": ["not", "an", "object"]},
            {"json": {"status": "ok"}},  # no version: some other service's /health
        ],
    )
    def test_health_not_fkllmproxy(self, httpx_mock: HTTPXMock, answer: dict[str, Any]) -> None:
        """A /health that is not fkllmproxy's makes the daemon unreachable (exit 2)."""
        httpx_mock.add_response(url=f"{self.URL}/health", **answer)
        report = self.gather()
        assert report["status"] == "unreachable"
        assert report["error"] == (
            "the server at http://127.0.0.1:4000 is not fkllmproxy (GET /health answered 200)"
        )

    @pytest.mark.parametrize(
        ("error", "why"),
        [
            (httpx.ConnectError("[Errno 111] Connection refused"), "connection refused"),
            (httpx.ReadTimeout("timed out"), "no answer in time"),
        ],
    )
    def test_health_failing(self, httpx_mock: HTTPXMock, error: Exception, why: str) -> None:
        """Refused or silent: unreachable, with the reason, and /metrics is not tried."""
        httpx_mock.add_exception(error, url=f"{self.URL}/health")
        report = self.gather()
        assert report["status"] == "unreachable"
        assert report["error"] == f"cannot reach fkllmproxy at http://127.0.0.1:4000 ({why})"
        assert len(httpx_mock.get_requests()) == 1
