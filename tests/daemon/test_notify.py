"""sd_notify as systemd sees it: a real ``fkllm serve`` talking to a socket we bind."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fkllmproxy.daemon.notify import Notifier, watchdog_interval
from tests.conftest import MOCK_CONFIG


class FakeSystemd:
    """The receiving end of ``$NOTIFY_SOCKET``: a datagram socket collecting messages."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.messages: list[dict[str, str]] = []
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind("\0" + address[1:] if address.startswith("@") else address)

    def wait_for(self, key: str, value: str = "1", timeout: float = 20.0) -> dict[str, str]:
        """The first message not yet seen that sets ``key=value``; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._socket.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self._socket.recv(4096)
            except TimeoutError:
                break
            message = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.messages.append(message)
            if message.get(key) == value:
                return message
        raise AssertionError(f"no {key}={value} within {timeout}s; got {self.messages}")

    def close(self) -> None:
        self._socket.close()


@pytest.fixture
def fake_systemd() -> Iterator[FakeSystemd]:
    listener = FakeSystemd(f"@fkllm-test-{uuid.uuid4().hex}")
    yield listener
    listener.close()


def _env(listener: FakeSystemd) -> dict[str, str]:
    # 200 ms: the daemon should ping every 100 ms.
    return {"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "200000"}


def test_ready_watchdog_reload_and_stopping(
    start_daemon: object, fake_systemd: FakeSystemd
) -> None:
    """The whole life: READY, WATCHDOG pings, RELOADING then READY on SIGHUP, STOPPING."""
    daemon = start_daemon(env=_env(fake_systemd))  # type: ignore[operator]
    ready = fake_systemd.wait_for("READY")
    assert "serving" in ready["STATUS"]
    fake_systemd.wait_for("WATCHDOG")
    fake_systemd.wait_for("WATCHDOG")

    daemon.signal(signal.SIGHUP)
    reloading = fake_systemd.wait_for("RELOADING")
    assert int(reloading["MONOTONIC_USEC"]) > 0
    assert fake_systemd.wait_for("READY")["STATUS"] == "serving (reloaded)"

    daemon.signal(signal.SIGTERM)
    fake_systemd.wait_for("STOPPING")
    assert daemon.stop() == 0


def test_refused_reload_still_ends_in_ready(
    start_daemon: object, fake_systemd: FakeSystemd
) -> None:
    """A broken config on reload: READY again (old config kept), the daemon still serves."""
    daemon = start_daemon(env=_env(fake_systemd))  # type: ignore[operator]
    fake_systemd.wait_for("READY")
    daemon.config_path.write_text(MOCK_CONFIG + "\n[rate_limit]\ncapacity = 0\n")
    daemon.signal(signal.SIGHUP)
    fake_systemd.wait_for("RELOADING")
    assert "refused" in fake_systemd.wait_for("READY")["STATUS"]
    assert httpx.get(daemon.url + "/health", timeout=5).status_code == 200
    assert daemon.stop() == 0


def test_path_socket_and_multiple_workers(
    start_daemon: object, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``--workers 2`` (Granian supervises): READY, WATCHDOG and STOPPING still arrive."""
    # AF_UNIX paths are limited to 108 bytes: keep it short.
    directory = Path(f"/tmp/fk-{uuid.uuid4().hex[:8]}")
    directory.mkdir()
    listener = FakeSystemd(str(directory / "notify"))
    try:
        # A worker still starting up when SIGTERM comes only stops at Granian's kill
        # timeout (our drain grace): keep that short so the test does not wait 30 s.
        env = {**_env(listener), "APP_SERVER__DRAIN_TIMEOUT_SECS": "3"}
        daemon = start_daemon(env=env, args=["--workers", "2"])  # type: ignore[operator]
        assert "2 workers" in listener.wait_for("READY")["STATUS"]
        listener.wait_for("WATCHDOG")
        daemon.signal(signal.SIGTERM)
        listener.wait_for("STOPPING")
        assert daemon.stop() == 0
    finally:
        listener.close()
        (directory / "notify").unlink(missing_ok=True)
        directory.rmdir()


class TestNotifier:
    def test_without_notify_socket_sending_is_a_no_op(self) -> None:
        """Outside systemd nothing is sent and nothing fails."""
        notifier = Notifier(address="")
        assert not notifier.enabled
        notifier.send("READY=1")

    def test_a_vanished_socket_is_not_an_error(self, tmp_path: Path) -> None:
        """systemd gone (socket path missing): the daemon must keep running."""
        notifier = Notifier(address=str(tmp_path / "gone"))
        notifier.send("WATCHDOG=1")
        notifier.close()


class TestWatchdogInterval:
    def test_half_of_watchdog_usec(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("WATCHDOG_USEC", "30000000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        assert watchdog_interval() == 15.0

    def test_meant_for_another_process(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """WATCHDOG_PID names the process systemd watches; anyone else stays quiet."""
        monkeypatch.setenv("WATCHDOG_USEC", "30000000")
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
        assert watchdog_interval() is None

    def test_unset_or_garbage(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("WATCHDOG_USEC", "soon")
        assert watchdog_interval() is None
        monkeypatch.delenv("WATCHDOG_USEC")
        assert watchdog_interval() is None
