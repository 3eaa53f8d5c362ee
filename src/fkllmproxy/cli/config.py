"""``fkllm config get|put|restore|backups``: a running daemon's config file, for scripts.

The commands call ``/admin/config/...`` (server/admin_config_source.py) with the master
key, found as ``status`` finds it. ``get`` prints the file's text alone on stdout (so
``fkllm config get > config.toml`` is the file, secrets redacted) and can keep the
version's ETag in a file for the ``put --if-match`` that follows.

Exit codes, as ``check-config`` for the config itself: 0 done, 1 the new config is
invalid (every problem printed) or the daemon refused for another reason it names (no
such backup, not the master key), 2 the daemon cannot be reached, 3 writes are refused
(``[admin] config_writable = false`` or a read-only file), 4 the file changed since it
was read (a stale ``--if-match``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import msgspec
import typer

from fkllmproxy.cli.app import app, fail, print_problems
from fkllmproxy.cli.locate import DaemonAddress, Unreachable, locate, send
from fkllmproxy.cli.options import ConfigOption, EnvFileOption
from fkllmproxy.cli.status import KeyOption, UrlOption

if TYPE_CHECKING:
    import httpx

__all__ = ["EXIT_INVALID", "EXIT_READ_ONLY", "EXIT_STALE", "EXIT_UNREACHABLE", "config_app"]

EXIT_INVALID = 1
EXIT_UNREACHABLE = 2
EXIT_READ_ONLY = 3
EXIT_STALE = 4
_WRITE_TIMEOUT_SECS = 60.0  # a write waits for the reload it starts

config_app = typer.Typer(
    name="config",
    help="Read and replace a running daemon's config file over its admin API "
    "(exit 0 done, 1 invalid or refused, 2 unreachable, 3 read-only, 4 stale --if-match).",
    no_args_is_help=True,
)
app.add_typer(config_app)

JsonOption = Annotated[bool, typer.Option("--json", help="Print the daemon's JSON answer")]


def _call(
    address: DaemonAddress,
    method: str,
    path: str,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[httpx.Response, dict[str, Any]]:
    """The daemon's answer and its JSON; every failure but a refused config ends here."""
    timeout = 10.0 if method == "GET" else _WRITE_TIMEOUT_SECS
    try:
        response = send(address, method, path, content=content, headers=headers, timeout=timeout)
    except Unreachable as exc:
        fail(str(exc), EXIT_UNREACHABLE)
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        body = None
    if not isinstance(body, dict):
        fail(f"{address.url}{path} answered HTTP {response.status_code}, not fkllmproxy's JSON")
    if response.status_code >= 400 and response.status_code != 422:
        _refused(address, response.status_code, body)
    return response, body


def _refused(address: DaemonAddress, status: int, body: dict[str, Any]) -> NoReturn:
    error = body.get("error")
    if not isinstance(error, dict):
        error = {}
    message = str(error.get("message") or f"HTTP {status}")
    code = error.get("code")
    if status == 401:
        fail(f"the daemon at {address.url} wants the master key (--key or APP_AUTH__MASTER_KEY)")
    if status == 403 and code in ("config_writes_disabled", "config_not_writable"):
        fail(message, EXIT_READ_ONLY)
    if status == 412:
        fail(message, EXIT_STALE)
    fail(message)


def _print_json(body: dict[str, Any]) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(body)).decode() + "\n")


def diff_lines(diff: dict[str, Any]) -> list[str]:
    """What a write changed, one line per kind of change (names, never values)."""
    lines = []
    for part in ("providers", "models", "keys", "pricing"):
        for change in ("added", "removed", "changed"):
            names = (diff.get(part) or {}).get(change) or []
            if names:
                lines.append(f"{part} {change}: {', '.join(names)}")
    if diff.get("settings"):
        lines.append(f"settings changed: {', '.join(diff['settings'])}")
    return lines or ["no change to the effective configuration"]


def _written(response: httpx.Response, body: dict[str, Any], as_json: bool) -> None:
    """Report a write (PUT or restore): what changed, the backup, the reload."""
    if as_json:
        _print_json(body)
    if response.status_code == 422:
        if not as_json:
            print_problems(
                list(body.get("problems") or []),
                "the new configuration is refused, nothing was written:",
            )
        raise typer.Exit(EXIT_INVALID)
    reload = body.get("reload") or {}
    if not as_json:
        sys.stdout.write(
            f"written {body.get('config_file')} (etag {body.get('etag')}; the old file kept "
            f"as {body.get('backup')}); reload: {reload.get('status')}\n"
        )
        for line in diff_lines(body.get("diff") or {}):
            sys.stdout.write(f"  {line}\n")
    if reload.get("status") == "refused":
        print_problems(
            list(reload.get("problems") or []),
            "the file is written but the daemon refused to apply it:",
        )
        raise typer.Exit(EXIT_INVALID)


@config_app.command("get")
def get(
    url: UrlOption = None,
    key: KeyOption = None,
    config: ConfigOption = None,
    env_file: EnvFileOption = None,
    etag_file: Annotated[
        Path | None,
        typer.Option("--etag-file", help="Also write the version's ETag to this file"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Print the daemon's config file as on disk, secrets shown as <redacted>."""
    address = locate(url, key, config, env_file)
    _, body = _call(address, "GET", "/admin/config/source")
    if etag_file is not None:
        try:
            etag_file.write_text(str(body.get("etag")) + "\n")
        except OSError as exc:
            fail(f"cannot write the ETag to {etag_file}: {exc.strerror}")
    if as_json:
        _print_json(body)
    else:
        sys.stdout.write(str(body.get("text", "")))


@config_app.command("put")
def put(
    file: Annotated[str, typer.Argument(help="The new config text (TOML); - reads stdin")],
    url: UrlOption = None,
    key: KeyOption = None,
    config: ConfigOption = None,
    env_file: EnvFileOption = None,
    if_match: Annotated[
        str | None,
        typer.Option(
            "--if-match",
            help="The ETag 'get' gave: refuse (exit 4) if the file has changed since",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Replace the config file (validated, backed up, applied) and print what changed."""
    try:
        text = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    address = locate(url, key, config, env_file)
    headers = {"If-Match": if_match.strip()} if if_match else None
    response, body = _call(address, "PUT", "/admin/config/source", text, headers)
    _written(response, body, as_json)


@config_app.command("restore")
def restore(
    name: Annotated[str, typer.Argument(help="A backup's name, as 'backups' lists it")],
    url: UrlOption = None,
    key: KeyOption = None,
    config: ConfigOption = None,
    env_file: EnvFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put a kept backup back (validated, the current file backed up, applied)."""
    address = locate(url, key, config, env_file)
    payload = msgspec.json.encode({"name": name})
    response, body = _call(address, "POST", "/admin/config/restore", payload)
    _written(response, body, as_json)


@config_app.command("backups")
def list_backups(
    url: UrlOption = None,
    key: KeyOption = None,
    config: ConfigOption = None,
    env_file: EnvFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the kept earlier versions of the config file, newest first."""
    address = locate(url, key, config, env_file)
    _, body = _call(address, "GET", "/admin/config/backups")
    if as_json:
        _print_json(body)
        return
    found = body.get("backups") or []
    if not found:
        sys.stdout.write(f"no backups of {body.get('config_file')} yet: each write keeps one\n")
        return
    for backup in found:
        sys.stdout.write(f"{backup['name']}\t{backup['created']}\t{backup['size']} bytes\n")
