"""What the daemon loads: terminal-only libraries cost resident memory in every process."""

from __future__ import annotations

import subprocess
import sys

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
