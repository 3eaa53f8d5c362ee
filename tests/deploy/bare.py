"""Running the single-file program the way a server would: nothing but the file and libc.

The process gets an empty environment except ``PATH=/usr/bin:/bin``, ``HOME`` and
``FKLLMPROXY_CACHE`` (where it unpacks, as the unit's CacheDirectory), runs from a
directory holding only its config, and is started by executing the file itself.
Tests share one cache per module: the first start unpacks ~100 MB, and a directory is
named after the build's digest, so different builds never share one.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import httpx

from tests.conftest import MASTER_KEY, MOCK_CONFIG, free_port, wait_until


class BareRun:
    """``fkllmproxy serve`` from ``program`` in a clean directory, on a free port."""

    def __init__(
        self,
        program: Path,
        workdir: Path,
        cache: Path,
        prefix: list[str] | None = None,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.program = program
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (workdir / "config.toml").write_text(MOCK_CONFIG)
        env_file = workdir / "env"
        env_file.write_text(f"APP_AUTH__MASTER_KEY={MASTER_KEY}\n")
        env_file.chmod(0o600)
        (workdir / "home").mkdir(exist_ok=True)
        self.environ = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(workdir / "home"),
            "FKLLMPROXY_CACHE": str(cache),
            **(env or {}),
        }
        command = [*(prefix or []), str(program), "serve", "--config", "config.toml",
                   "--env-file", "env", "--port", str(self.port), *(args or [])]  # fmt: skip
        self.stdout = (workdir / f"stdout-{self.port}.log").open("wb")
        self.stderr = (workdir / f"stderr-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=workdir,
            env=self.environ,
            stdout=self.stdout,
            stderr=self.stderr,
            start_new_session=True,
        )

    def stderr_text(self) -> str:
        if not self.stderr.closed:
            self.stderr.flush()
        return Path(self.stderr.name).read_text(errors="replace")

    def wait_healthy(self, timeout: float = 90.0) -> dict[str, object]:
        """The /health answer once it comes (the first run unpacks ~100 MB first)."""

        def healthy() -> bool:
            if self.process.poll() is not None:
                return True
            try:
                return httpx.get(self.url + "/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(healthy, timeout, interval=0.2), f"not healthy: {self.stderr_text()}"
        assert self.process.poll() is None, (
            f"exited {self.process.returncode}: {self.stderr_text()}"
        )
        answer: dict[str, object] = httpx.get(self.url + "/health", timeout=5).json()
        return answer

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.stdout.close()
        self.stderr.close()
        return self.process.returncode


def copy_program(source: Path, destination: Path) -> None:
    """``cp`` then ``chmod +x``, as the runbook does it (contents into the same inode)."""
    shutil.copyfile(source, destination)
    destination.chmod(0o755)
