"""Shared fixtures: free ports, and a real ``fkllm serve`` process to drive.

Daemons are started as real processes (Granian on a real port on 127.0.0.1), every
wait is bounded, and each one is stopped by PID at the end of its test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import fkllmproxy.providers  # noqa: F401 - registers the provider types load_config checks against
from fkllmproxy.providers.httpx_transport import HttpxTransport
from fkllmproxy.testing.fake_upstream import FakeUpstream, RecordedRequest

MASTER_KEY = "sk-test-master-0123456789"


def mock_transport(handler: Callable[[httpx.Request], httpx.Response]) -> HttpxTransport:
    """A transport answering from ``handler`` (httpx's request and response models), as
    ``httpx.MockTransport`` does, behind the providers' transport interface."""
    return HttpxTransport(httpx.MockTransport(handler))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Any, timeout: float = 15.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return the last result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def worker_pids(supervisor: int) -> set[int]:
    """The worker processes of a multi-worker daemon (the supervisor's children)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return {int(pid) for pid in children}


MOCK_CONFIG = """
[[providers]]
name = "mock"
type = "mock"

[[models]]
name = "mock"
targets = [{ provider = "mock", model = "mock-1" }]
"""


class RunningDaemon:
    """A ``fkllm serve`` process on a free port, with its stdout captured to a file."""

    def __init__(
        self,
        tmp: Path,
        config: str,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        env_file_text: str | None = None,
        wrapper: list[str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = tmp / f"config-{self.port}.toml"
        self.config_path.write_text(config)
        self.env_file = tmp / f"env-{self.port}"
        self.env_file.write_text(env_file_text if env_file_text is not None else "")
        self.stdout_path = tmp / f"stdout-{self.port}.log"
        self.stderr_path = tmp / f"stderr-{self.port}.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
        base.update({"APP_AUTH__MASTER_KEY": MASTER_KEY, "PYTHONUNBUFFERED": "1"})
        base.update(env or {})
        self.env = base
        # ``wrapper`` runs the daemon through another program that ends by exec'ing it
        # (so ``pid`` is still the daemon's), e.g. ``unshare`` for a mount namespace.
        command = [
            *(wrapper or []),
            sys.executable, "-m", "fkllmproxy", "serve",
            "--config", str(self.config_path),
            "--env-file", str(self.env_file),
            "--port", str(self.port),
            *(args or []),
        ]  # fmt: skip
        self._stdout = self.stdout_path.open("wb")
        self._stderr = self.stderr_path.open("wb")
        self.process = subprocess.Popen(
            command, stdout=self._stdout, stderr=self._stderr, env=base, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 20.0) -> None:
        def up() -> bool:
            if self.process.poll() is not None:
                return True
            try:
                return httpx.get(self.url + "/health", timeout=1.0).status_code < 500
            except httpx.HTTPError:
                return False

        assert wait_until(up, timeout), f"daemon did not start: {self.stderr_text()}"
        assert self.process.poll() is None, (
            f"daemon exited {self.process.returncode}: {self.stderr_text()}"
        )

    def __enter__(self) -> RunningDaemon:
        """Ready to serve; stopped again (by PID) if it never gets there."""
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def headers(self, key: str = MASTER_KEY) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def stderr_text(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def stdout_lines(self) -> list[str]:
        """Every complete stdout line.

        The daemon writes each line with one write(), but a reader can still catch a line
        half copied when it straddles a page boundary of the file; whatever follows the
        last newline is still being written and is left for the next read.
        """
        if not self._stdout.closed:
            self._stdout.flush()
        complete = self.stdout_path.read_text().split("\n")[:-1]
        return [line for line in complete if line.strip()]

    def logs(self) -> list[dict[str, Any]]:
        """Every stdout line parsed as JSON (a non-JSON line fails the test)."""
        return [json.loads(line) for line in self.stdout_lines()]

    def signal(self, sig: int) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait, SIGKILL if needed; returns the exit status."""
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._stdout.close()
        self._stderr.close()
        return self.process.returncode


_READ_ONLY_MOUNT = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'


def read_only_mount(directory: Path) -> list[str]:
    """A prefix that runs a command with ``directory`` mounted read-only (a bind mount in
    a private mount namespace, as ``ProtectSystem=strict`` makes ``/etc``): the kernel
    answers EROFS, which ``chmod`` cannot show a test running as root. Skips where mount
    namespaces are not ours to make."""
    command = ["unshare", "--mount", "--propagation", "private",
               "sh", "-c", _READ_ONLY_MOUNT, "sh", str(directory)]  # fmt: skip
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed (Debian package: util-linux)")
    probe = subprocess.run([*command, "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.strip()}")
    return command


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Any]:
    """Start ``fkllm serve`` processes; all are stopped when the test ends."""
    started: list[RunningDaemon] = []

    def start(config: str = MOCK_CONFIG, *, wait: bool = True, **kwargs: Any) -> RunningDaemon:
        daemon = RunningDaemon(tmp_path, config, **kwargs)
        started.append(daemon)
        if wait:
            daemon.wait_ready()
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture(scope="module")
def mock_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    """One shared daemon on the mock provider, for tests that only read from it."""
    with RunningDaemon(tmp_path_factory.mktemp("mockd"), MOCK_CONFIG) as daemon:
        yield daemon


def only_request(upstream: FakeUpstream) -> RecordedRequest:
    """The one request the upstream saw (fails if it saw none or several)."""
    (seen,) = upstream.requests
    return seen


def prometheus_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Exposition text as ``{(sample name, frozenset of labels): value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def sample_sum(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and wanted <= lab)


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    """A fake provider on a free 127.0.0.1 port; see ``fkllmproxy.testing.fake_upstream``."""
    with FakeUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    """``fake_upstream`` shared by a module, for the modules that share one daemon in
    front of it (each test clears its record, see ``only_request``)."""
    with FakeUpstream() as up:
        yield up


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def dist_binary() -> Path:
    """``dist/fkllmproxy`` built by ``make dist`` once per session.

    make rebuilds only when a source changed since the last build, so a warm tree costs
    nothing; a fresh clone (CI) builds it here, from this virtualenv's pinned versions
    (about 2 minutes), and on a machine that has none yet, first makes the Debian 11
    build root it freezes in (deploy/buildroot.sh, about 5 more minutes on 2 cores).
    """
    result = subprocess.run(
        ["make", "-s", "dist", f"VENV={sys.prefix}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, f"make dist failed:\n{result.stdout}\n{result.stderr}"
    binary = REPO / "dist" / "fkllmproxy"
    assert os.access(binary, os.X_OK)
    return binary


def fkllm(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """``fkllm ARGS`` run as a user would, without the caller's provider keys or APP_ settings."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("APP_", "GOOGLE", "OPENAI", "ANTHROPIC", "GROQ", "OPENROUTER", "AZURE")
        )
    }
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "fkllmproxy", *args],
        capture_output=True,
        text=True,
        env=base,
        timeout=timeout,
    )


def send_chats(daemon: Any, count: int) -> None:
    """``count`` chat completions on the mock model, each one answered 200."""
    for _ in range(count):
        httpx.post(
            daemon.url + "/v1/chat/completions",
            headers=daemon.headers(),
            json={"model": "mock", "messages": [{"role": "user", "content": "hi"}]},
        ).raise_for_status()


class ChatLoad:
    """Chat requests to ``model`` from ``threads`` threads while the ``with`` block runs,
    each on a fresh connection (so any worker may answer); every outcome is kept, a status
    or the name of the error that stood for one."""

    def __init__(self, daemon: Any, *, threads: int = 2, model: str = "mock") -> None:
        self.daemon = daemon
        self.model = model
        self.statuses: list[int | str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    @property
    def failures(self) -> list[int | str]:
        return [status for status in self.statuses if status != 200]

    def _run(self) -> None:
        body = {"model": self.model, "messages": [{"role": "user", "content": "hi"}]}
        while not self._stop.is_set():
            try:
                with httpx.Client(timeout=10) as client:
                    response = client.post(
                        self.daemon.url + "/v1/chat/completions",
                        json=body,
                        headers=self.daemon.headers(),
                    )
                self.statuses.append(response.status_code)
            except httpx.HTTPError as exc:
                self.statuses.append(type(exc).__name__)

    def __enter__(self) -> ChatLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
