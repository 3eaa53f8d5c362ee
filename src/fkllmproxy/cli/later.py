"""Commands whose implementation has not landed yet: they say so and exit non-zero."""

from __future__ import annotations

from fkllmproxy.cli.app import app, fail


def _not_yet(name: str) -> None:
    fail(f"'{name}' is not yet available in this version", 1)


@app.command(
    "rotate-key", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def rotate_key() -> None:
    """Write a new master key into the env file (not yet available)."""
    _not_yet("rotate-key")
