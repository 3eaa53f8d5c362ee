"""The names ps/top/pgrep see: the runbook runs ``top -p $(pgrep fkllmproxy)``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import wait_until


def comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return found


def test_daemon_is_found_by_pgrep(start_daemon: object) -> None:
    daemon = start_daemon()  # type: ignore[operator]
    assert comm(daemon.pid) == "fkllmproxy"
    if shutil.which("pgrep") is None:
        pytest.skip("pgrep is not installed")
    found = subprocess.run(["pgrep", "fkllmproxy"], capture_output=True, text=True).stdout
    assert str(daemon.pid) in found.split()


def test_workers_do_not_match_the_daemons_name(start_daemon: object) -> None:
    """With workers, `pgrep fkllmproxy` still names only the supervising process."""
    daemon = start_daemon(  # type: ignore[operator]
        args=["--workers", "2"], env={"APP_SERVER__DRAIN_TIMEOUT_SECS": "3"}
    )
    assert comm(daemon.pid) == "fkllmproxy"
    assert wait_until(
        lambda: sorted(comm(p) for p in children(daemon.pid)) == ["fkllm-worker", "fkllm-worker"],
        timeout=30,
    ), [comm(p) for p in children(daemon.pid)]
