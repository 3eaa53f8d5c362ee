"""What the daemon loads: terminal-only libraries cost resident memory in every process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import wait_until

TERMINAL_ONLY = ("rich", "click", "pygments", "typer")


def test_the_daemon_modules_load_no_terminal_libraries() -> None:
    """The serving code (app, daemon, an HTTP provider) leaves Rich, Click and Pygments
    unloaded; httpx would pull them in for its own command-line client otherwise."""
    probe = (
        "import sys\n"
        "import fkllmproxy.daemon.run, fkllmproxy.server.app, fkllmproxy.providers.openai\n"
        f"print(','.join(m for m in {TERMINAL_ONLY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""


def test_httpx_still_works_in_a_process_that_loaded_fkllmproxy() -> None:
    probe = "import fkllmproxy, httpx\nprint(httpx.Request('GET', 'http://127.0.0.1/').url.host)\n"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "127.0.0.1"


def _mapped(pid: int, library: str) -> bool:
    return library in Path(f"/proc/{pid}/maps").read_text()


def test_serve_hands_over_to_a_daemon_without_the_cli(start_daemon: Any) -> None:
    """``fkllm serve`` re-executes itself as the bare daemon: same PID (what systemd
    watches), and pydantic — which Typer brings and nothing serving needs — not loaded,
    nor the JWT libraries a daemon without OIDC has no use for."""
    daemon = start_daemon()

    def started_line() -> dict[str, Any] | None:
        return next((line for line in daemon.logs() if line["msg"] == "fkllmproxy started"), None)

    assert wait_until(lambda: started_line() is not None, 10), daemon.stdout_lines()
    started = started_line()
    assert started is not None
    assert started["pid"] == daemon.pid
    assert _mapped(daemon.pid, "_granian")  # the checks below look at the right process
    assert not _mapped(daemon.pid, "_pydantic_core")
    # Without [auth.oidc], no JWT library either (PyJWT's cryptography is ~20 MiB).
    assert not _mapped(daemon.pid, "cryptography/hazmat/bindings")
    with open(f"/proc/{daemon.pid}/cmdline", "rb") as cmdline:
        assert b"serve" in cmdline.read().split(b"\0")


def test_a_forged_handover_variable_is_refused(tmp_path: Path) -> None:
    """The variable the handover uses, set to anything else: a clear error, no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "fkllmproxy", "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "FKLLM_SERVE_SPEC": "not json"},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("fkllm: FKLLM_SERVE_SPEC is not what 'fkllm serve' sets")
    assert "Traceback" not in result.stderr
