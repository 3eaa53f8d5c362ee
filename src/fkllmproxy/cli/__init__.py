"""The ``fkllm`` command line (also installed as ``fkllmproxy``).

``main`` stays light: ``fkllm serve`` validates the configuration with the full CLI and
then re-executes the same program in place (same PID, for systemd) as the bare daemon,
which this entry point recognises before anything of the CLI is imported. The serving
process so carries none of Typer, Click or Rich, nor the pydantic Typer brings.
"""

from __future__ import annotations

import os

__all__ = ["main"]


def main() -> None:
    """Entry point of the ``fkllm`` and ``fkllmproxy`` programs."""
    from fkllmproxy.daemon.reexec import SPEC_ENV, allow, serve_from_spec

    spec = os.environ.pop(SPEC_ENV, None)
    if spec is not None:
        serve_from_spec(spec)
    allow()
    from fkllmproxy.cli.commands import run

    run()
