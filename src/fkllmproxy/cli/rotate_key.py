"""``fkllm rotate-key``: a new master key, written into the env file atomically.

The new key is printed once on stdout and nowhere else, so ``KEY=$(fkllm rotate-key)``
captures it; what happened and what to do next goes to stderr. With
``--keep-previous`` the old key is written as ``APP_AUTH__PREVIOUS_MASTER_KEY`` and the
moment of rotation as ``APP_AUTH__ROTATED_AT``: after ``systemctl reload fkllmproxy``
the daemon accepts the old key for ``previous_key_grace_secs`` more, so clients can
move over without an outage. Without it, any previous key is removed: the old key
stops working at the reload (what a leaked key calls for).
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from fkllmproxy.cli.app import app, fail
from fkllmproxy.config import DEFAULT_ENV_FILE
from fkllmproxy.config.envfile import parse_env_text
from fkllmproxy.config.envwrite import locked_env_file, update_env_text, write_env_file
from fkllmproxy.errors import ConfigError

__all__ = ["Rotation", "rotate", "rotate_key"]

MASTER = "APP_AUTH__MASTER_KEY"
PREVIOUS = "APP_AUTH__PREVIOUS_MASTER_KEY"
ROTATED_AT = "APP_AUTH__ROTATED_AT"


def new_key() -> str:
    """256 random bits as 64 hex characters."""
    return secrets.token_hex(32)


@dataclass(frozen=True)
class Rotation:
    """What one rotation did: the new key, the key it replaced, whether that was kept."""

    key: str
    replaced: str | None
    kept: bool


def rotate(path: Path, *, keep_previous: bool) -> Rotation:
    """Write a new master key into ``path`` under the writer's lock."""
    key = new_key()
    with locked_env_file(path) as (text, info):
        old = parse_env_text(text, origin=f"env file {path}").get(MASTER) or None
        kept = keep_previous and old is not None
        rotated_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        changes: dict[str, str | None] = {
            MASTER: key,
            PREVIOUS: old if kept else None,
            ROTATED_AT: rotated_at if kept else None,
        }
        try:
            updated = update_env_text(text, changes)
        except ValueError:
            raise ConfigError(
                [f"the current {MASTER} in {path} has characters that cannot be kept unquoted"]
            ) from None
        write_env_file(path, updated, info)
    return Rotation(key=key, replaced=old, kept=kept)


@app.command("rotate-key")
def rotate_key(
    env_file: Annotated[
        Path,
        typer.Option("--env-file", help="The env file holding APP_AUTH__MASTER_KEY"),
    ] = DEFAULT_ENV_FILE,
    keep_previous: Annotated[
        bool,
        typer.Option(
            "--keep-previous",
            help="Keep the old key as APP_AUTH__PREVIOUS_MASTER_KEY, accepted for "
            "previous_key_grace_secs after the reload",
        ),
    ] = False,
) -> None:
    """Write a new 256-bit master key into the env file (mode 0600) and print it once."""
    path = Path(env_file).resolve()  # a symlinked env file: replace its target, keep the link
    if not path.parent.is_dir():
        fail(f"cannot rotate: directory {path.parent} does not exist", 1)
    try:
        rotation = rotate(path, keep_previous=keep_previous)
    except ConfigError as exc:
        fail(f"cannot rotate the key: {'; '.join(exc.problems)}", 1)
    sys.stdout.write(rotation.key + "\n")
    sys.stdout.flush()
    note = (
        "the old key stays valid for previous_key_grace_secs after the reload"
        if rotation.kept
        else "the old key stops working at the reload"
    )
    if keep_previous and not rotation.kept:
        note = f"there was no {MASTER} to keep; " + note
    sys.stderr.write(
        f"fkllm: new master key written to {path}; apply it with "
        f"'systemctl reload fkllmproxy' (or SIGHUP); {note}.\n"
    )
