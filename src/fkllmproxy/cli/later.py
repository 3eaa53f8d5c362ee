"""Commands whose implementation has not landed yet: they say so and exit non-zero."""

from __future__ import annotations

from fkllmproxy.cli.app import app, fail


def _not_yet(name: str) -> None:
    fail(f"'{name}' is not yet available in this version", 1)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def status() -> None:
    """Show a running daemon's health and numbers (not yet available)."""
    _not_yet("status")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def metrics() -> None:
    """Print a running daemon's metrics (not yet available)."""
    _not_yet("metrics")
