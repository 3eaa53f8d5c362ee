"""The unit's sandbox does not break the daemon: syscall filter, W^X, read-only system.

systemd is not running here, so the test rebuilds the sandbox from the unit's own lines:
``sandbox_fs.sh`` (in a private mount namespace) gives the file-system view of
``ProtectSystem=strict``, ``ProtectHome=yes`` and ``ProtectProc=invisible`` +
``ProcSubset=pid`` with only the cache directory writable; ``sandbox_exec.py`` installs
the seccomp filter systemd derives from ``SystemCallFilter=`` (groups expanded by this
systemd's ``systemd-analyze``), ``RestrictAddressFamilies=`` and
``SystemCallErrorNumber=``, applies ``MemoryDenyWriteExecute=`` through the kernel's
PR_SET_MDWE and ``NoNewPrivileges=``, then execs the single-file program. Change the
unit's filter and this test runs the daemon under the new one.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import MASTER_KEY, REPO
from tests.deploy.bare import BareRun

pytestmark = pytest.mark.timeout(1800)  # may build the program first (see dist_binary)

UNIT = REPO / "systemd" / "fkllmproxy.service"
LAUNCHER = Path(__file__).with_name("sandbox_exec.py")
FILE_SYSTEM = Path(__file__).with_name("sandbox_fs.sh")
SYSTEM_PYTHON = Path("/usr/bin/python3")


def _probe(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command, "/bin/true"], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def seccomp_sandbox() -> list[str]:
    """The syscall launcher command, or a skip saying what this machine lacks."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package: systemd)")
    command = [str(SYSTEM_PYTHON), str(LAUNCHER), str(UNIT), "--"]
    probe = _probe(command)
    if "No module named 'seccomp'" in probe.stderr:
        pytest.skip("the system python3 has no seccomp module (Debian package: python3-seccomp)")
    if probe.returncode != 0:
        pytest.skip(f"cannot sandbox here: {probe.stderr.strip().splitlines()[-1]}")
    return command


def file_system_sandbox(writable: Path) -> list[str]:
    """The mount-namespace wrapper, or a skip where namespaces are not ours to make."""
    command = ["unshare", "--mount", "--propagation", "private",
               "sh", str(FILE_SYSTEM), str(writable), "--"]  # fmt: skip
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed (Debian package: util-linux)")
    probe = _probe(command)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.strip()}")
    return command


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one writable directory (the unit's CacheDirectory), unpacked into once."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_daemon_serves_inside_the_units_sandbox(
    seccomp_sandbox: list[str], dist_binary: Path, tmp_path: Path, cache: Path, workers: str
) -> None:
    """Start, chat (plain and streamed), reload, drain and stop inside the sandbox."""
    sandbox = [*file_system_sandbox(cache), *seccomp_sandbox]
    # A worker still starting when SIGTERM comes waits out the drain grace: keep it short.
    run = BareRun(
        dist_binary,
        tmp_path,
        cache,
        prefix=sandbox,
        args=["--workers", workers],
        env={"APP_SERVER__DRAIN_TIMEOUT_SECS": "3"},
    )
    try:
        run.wait_healthy()
        status = Path(f"/proc/{run.process.pid}/status").read_text()
        assert "\nSeccomp:\t2\n" in status and "\nNoNewPrivs:\t1\n" in status
        mounts = Path(f"/proc/{run.process.pid}/mounts").read_text()
        assert " / " in mounts and any(
            line.split()[1] == "/" and "ro" in line.split()[3].split(",")
            for line in mounts.splitlines()
        )
        headers = {"Authorization": f"Bearer {MASTER_KEY}"}
        body = {"model": "mock", "messages": [{"role": "user", "content": "sandboxed"}]}
        answer = httpx.post(
            run.url + "/v1/chat/completions", json=body, headers=headers, timeout=30
        )
        assert answer.status_code == 200, answer.text
        assert "sandboxed" in answer.json()["choices"][0]["message"]["content"]
        with httpx.stream(
            "POST", run.url + "/v1/chat/completions", json={**body, "stream": True},
            headers=headers, timeout=30,
        ) as streamed:  # fmt: skip
            assert b"".join(streamed.iter_bytes()).endswith(b"data: [DONE]\n\n")
        run.process.send_signal(signal.SIGHUP)
        assert run.wait_healthy()["status"] == "healthy"
    finally:
        assert run.stop() == 0, run.stderr_text()
    assert "Operation not permitted" not in run.stderr_text()
