"""The real-client tier: the official SDKs and agent CLIs, pointed at a running proxy.

The agent CLIs come from npm, pinned in ``.ci/clients.sh`` (which ``.ci/run`` runs) and
installed into ``$FKLLM_CLIENTS_DIR`` (default ``~/.cache/fkllm-clients``). Where they are
missing a test is skipped with the command that installs them; under CI, where that
script has run, a missing client fails the test instead of hiding it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_DIR = Path(os.environ.get("FKLLM_CLIENTS_DIR", Path.home() / ".cache" / "fkllm-clients"))


def agent_cli(name: str) -> Path:
    """The path of the npm-installed program ``name`` (``claude``, ``codex``, ``gemini``)."""
    path = _DIR / "node_modules" / ".bin" / name
    if not path.exists():
        message = f"{name} is not installed in {_DIR}; run: bash .ci/clients.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def agent_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment for an agent CLI: its own HOME, no telemetry, nothing inherited
    that would point it at a real provider."""
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "LANG", "LC_ALL", "TZ"}}
    return {
        **keep,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "NO_COLOR": "1",
        "DISABLE_TELEMETRY": "1",
        **extra,
    }
