"""``/admin/config/source``: change the config file over HTTP, as safely as by hand.

``GET`` shows the file (secrets redacted, config/source.py) with an ``ETag``; ``PUT``
takes a whole new text; ``POST /admin/config/validate`` checks one without writing;
``GET /admin/config/backups`` and ``POST /admin/config/restore`` list and put back the
kept versions. A write is refused unless ``fkllm check-config`` would accept the new
file (422 with every problem, nothing written), then made atomically with a backup
(config/writer.py), then applied as SIGHUP applies it: the single-process daemon
reloads in place, and so does every worker of the multi-process daemon once the one
answering has asked them all to (daemon/reloading.py).

``If-Match`` with a stale ETag is 412 Precondition Failed (RFC 9110 13.1.1, the status
for exactly this), not 409: 409 is kept for "there is no config file to write".
All master key only; the file work runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from litestar import Request, Response, get, post, put
from litestar.background_tasks import BackgroundTask

from fkllmproxy.config import LoadedConfig, load_config
from fkllmproxy.config.source import config_diff, etag_of, redact_source, restore_secrets
from fkllmproxy.config.writer import backups, exclusive, read_backup, replace_file, staged
from fkllmproxy.errors import (
    BadRequest,
    ConfigError,
    Conflict,
    FkllmError,
    Forbidden,
    NotFound,
    PreconditionFailed,
)
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.server.body import read_body
from fkllmproxy.server.errors import error_body
from fkllmproxy.server.exchange import ApiRequest
from fkllmproxy.server.gate import admit_master
from fkllmproxy.server.runtime import RuntimeHolder

__all__ = [
    "Tally",
    "config_source_routes",
    "counted",
    "outcome_of",
    "refuse_if_read_only",
    "write_config",
]

_encode = msgspec.json.Encoder().encode
_log = get_logger("admin")
NOTE = (
    "Secrets written in the file are shown as <redacted>; leave a <redacted> in place to "
    "keep the value the file has now."
)


class _Restore(msgspec.Struct, forbid_unknown_fields=True):
    name: str


@dataclass(frozen=True)
class Written:
    """What a write did: the new file's tag, the backup kept, what changed, the reload."""

    etag: str
    backup: str | None
    diff: dict[str, Any]
    loaded: LoadedConfig


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None,
          background: BackgroundTask | None = None) -> Response[bytes]:  # fmt: skip
    return Response(
        content=_encode(body),
        status_code=status,
        media_type="application/json",
        headers=headers,
        background=background,
    )


def _problems(error: ConfigError, message: str) -> Response[bytes]:
    error.message = f"{message}: {error.message}"
    error.status = 422
    body = msgspec.json.decode(error_body(error, anthropic=False))
    body["problems"] = error.problems
    return _json(body, 422)


class Tally:
    """How one write ended, for ``fkllm_admin_writes_total``: ok unless told otherwise."""

    def __init__(self) -> None:
        self.outcome = "ok"


def outcome_of(exc: BaseException) -> str:
    """The metric's outcome for a write that ended in ``exc``."""
    if isinstance(exc, ConfigError):
        return "invalid"
    if isinstance(exc, PreconditionFailed):
        return "stale"
    if isinstance(exc, FkllmError) and exc.status < 500:
        return "refused"  # read-only, no such backup, no file or ledger, a bad body
    return "error"


@contextlib.contextmanager
def counted(holder: RuntimeHolder, action: str) -> Iterator[Tally]:
    """Count the write done inside (``action``: put, restore, usage_backup) once, with
    the outcome its exception says, or the one set on the ``Tally`` (an answered 422)."""
    tally = Tally()
    try:
        yield tally
    except BaseException as exc:
        tally.outcome = outcome_of(exc)
        raise
    finally:
        holder.metrics.admin_write(action, tally.outcome)


def config_file(holder: RuntimeHolder) -> Path:
    """The daemon's config file, or ``Conflict`` when it runs without one."""
    path = holder.runtime.loaded.config_path
    if path is None:
        raise Conflict(
            "This daemon runs on built-in defaults and the environment, with no config "
            "file to edit: start it with --config PATH (or FKLLM_CONFIG) naming a file."
        )
    return path


def _matches(if_match: str | None, etag: str) -> bool:
    if if_match is None:
        return True
    tags = [t.strip().removeprefix("W/") for t in if_match.split(",")]
    return "*" in tags or etag in tags


def _validate(loaded: LoadedConfig, path: Path, content: bytes) -> LoadedConfig:
    """``content`` loaded exactly as check-config would load it from ``path`` (same env
    file, environment and flags as the daemon), from memory: nothing is written."""
    return load_config(
        config_path=path,
        env_file=loaded.env_file,
        overrides=loaded.overrides,
        environ=loaded.environ,
        config_content=content,
    )


def refuse_if_read_only(holder: RuntimeHolder) -> None:
    """``Forbidden`` (``config_writes_disabled``) when ``[admin] config_writable = false``."""
    if not holder.runtime.config.admin.config_writable:
        error = Forbidden(
            f"Writing the config file {config_file(holder)} over the admin API is turned "
            "off ([admin] config_writable = false); edit it on the host, or set it to true."
        )
        error.code = "config_writes_disabled"
        raise error


def write_config(
    holder: RuntimeHolder, text: str, if_match: str | None, *, dry_run: bool = False
) -> Written:
    """Validate ``text`` and (unless ``dry_run``) put it in place; blocking.

    A dry run only reads the file: it takes no lock and stages nothing, so it answers on
    a read-only config directory too. A write the daemon may not make
    (``ProtectSystem=strict``, a root-owned ``/etc/fkllmproxy``) is a 403 saying so,
    never a 500.
    """
    path = config_file(holder)
    if dry_run:
        return _check(holder, path, text)
    refuse_if_read_only(holder)
    try:
        return _write_config(holder, path, text, if_match)
    except OSError as exc:
        error = Forbidden(
            f"The daemon cannot write its config file {path} ({exc.strerror}): under the "
            "shipped systemd unit allow it with a ReadWritePaths= drop-in "
            "(docs/operations.md, 'Editing the config over HTTP'), or edit it on the host."
        )
        error.code = "config_not_writable"
        raise error from None


def _current(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise Conflict(f"The config file {path} cannot be read: {exc.strerror}.") from None


def _check(holder: RuntimeHolder, path: Path, text: str) -> Written:
    current = _current(path)
    resolved = restore_secrets(text, current.decode("utf-8", "replace")).encode()
    new = _validate(holder.runtime.loaded, path, resolved)
    return Written(etag_of(current), None, config_diff(holder.runtime.config, new.config), new)


def _write_config(holder: RuntimeHolder, path: Path, text: str, if_match: str | None) -> Written:
    with exclusive(path):
        current = path.read_bytes()
        etag = etag_of(current)
        if not _matches(if_match, etag):
            raise PreconditionFailed(
                "The config file has changed since it was read (If-Match names an older "
                f"version; the current one is {etag}): read it again and redo the edit."
            )
        resolved = restore_secrets(text, current.decode("utf-8", "replace")).encode()
        new = _validate(holder.runtime.loaded, path, resolved)
        diff = config_diff(holder.runtime.config, new.config)
        with staged(path, resolved) as temp:
            backup = replace_file(path, temp, new.config.admin.config_backups)
    return Written(etag_of(resolved), backup, diff, new)


async def _text(request: Request[Any, Any, Any], holder: RuntimeHolder) -> str:
    server = holder.runtime.config.server
    body = await read_body(
        ApiRequest.of(request), server.max_request_size, server.body_timeout_secs
    )
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The config text must be UTF-8.") from None


async def apply(holder: RuntimeHolder, written: Written) -> tuple[dict[str, Any], Any]:
    """Apply a written file as SIGHUP would; the reload's report and, for workers, the
    request to send once the answer is out (every worker reloads, this one too)."""
    if holder.reloader is not None:
        problems = await holder.reloader()
        if problems:  # the environment changed under us: the file is written, not in force
            return {"status": "refused", "problems": problems}, None
        return {"status": "reloaded"}, None
    if holder.reload_workers is not None:
        return {"status": "reloading", "note": "every worker reloads the new file in place"}, (
            BackgroundTask(holder.reload_workers)
        )
    return {"status": "not reloaded", "note": "reload the daemon to apply it"}, None


async def _write(
    request: Request[Any, Any, Any], holder: RuntimeHolder, text: str, action: str,
    tally: Tally,
) -> Response[bytes]:  # fmt: skip
    if_match = request.headers.get("if-match")
    try:
        written = await asyncio.to_thread(write_config, holder, text, if_match)
    except ConfigError as exc:
        tally.outcome = "invalid"
        return _problems(exc, "the new configuration is refused, nothing was written")
    reload, task = await apply(holder, written)
    _log.info(
        "config file written over the admin API",
        extra={
            "action": action,
            "who": "master key",
            "backup": written.backup,
            "diff": written.diff,
            "reload": reload["status"],
        },
    )
    body = {
        "status": "written",
        "config_file": str(written.loaded.config_path),
        "etag": written.etag,
        "backup": written.backup,
        "diff": written.diff,
        "reload": reload,
    }
    return _json(body, headers={"ETag": written.etag}, background=task)


def _holder(request: Request[Any, Any, Any]) -> RuntimeHolder:
    holder: RuntimeHolder = request.app.state.holder
    return holder


@get("/admin/config/source")
async def config_source(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The config file as on disk, secrets redacted, with its ``ETag``."""
    holder = _holder(request)
    await admit_master(ApiRequest.of(request), holder.runtime)
    path = config_file(holder)
    content = await asyncio.to_thread(_current, path)
    etag = etag_of(content)
    text = redact_source(content.decode("utf-8", "replace"))
    body = {"config_file": str(path), "etag": etag, "text": text, "note": NOTE}
    return _json(body, headers={"ETag": etag})


@put("/admin/config/source", status_code=200)
async def put_config_source(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Replace the config file with the body (TOML text), validated, backed up, applied."""
    holder = _holder(request)
    await admit_master(ApiRequest.of(request), holder.runtime)
    with counted(holder, "put") as tally:
        return await _write(request, holder, await _text(request, holder), "put", tally)


@post("/admin/config/validate", status_code=200)
async def validate_config_source(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Check a TOML text as PUT would and say what it would change; nothing written."""
    holder = _holder(request)
    await admit_master(ApiRequest.of(request), holder.runtime)
    text = await _text(request, holder)
    try:
        written = await asyncio.to_thread(write_config, holder, text, None, dry_run=True)
    except ConfigError as exc:
        return _problems(exc, "the configuration is invalid")
    return _json({"valid": True, "diff": written.diff})


@get("/admin/config/backups")
async def config_backups(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The kept earlier versions of the config file, newest first."""
    holder = _holder(request)
    await admit_master(ApiRequest.of(request), holder.runtime)
    path = config_file(holder)
    found = await asyncio.to_thread(backups, path)
    return _json({"config_file": str(path), "backups": [dataclasses.asdict(b) for b in found]})


@post("/admin/config/restore", status_code=200)
async def restore_config(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Put a kept version back (``{"name": ...}``), validated and applied like a PUT."""
    holder = _holder(request)
    await admit_master(ApiRequest.of(request), holder.runtime)
    with counted(holder, "restore") as tally:
        server = holder.runtime.config.server
        raw = await read_body(
            ApiRequest.of(request), server.max_request_size, server.body_timeout_secs
        )
        try:
            name = msgspec.json.decode(raw, type=_Restore).name
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BadRequest(f'Expected {{"name": "<backup name>"}}: {exc}') from None
        path = config_file(holder)
        refuse_if_read_only(holder)  # before looking for the backup: no restore at all here
        content = await asyncio.to_thread(read_backup, path, name)
        if content is None:
            error = NotFound(f"No backup called {name!r}: GET /admin/config/backups lists them.")
            error.code = "backup_not_found"
            raise error
        text = content.decode("utf-8", "replace")
        return await _write(request, holder, text, f"restore {name}", tally)


config_source_routes = [
    config_source,
    put_config_source,
    validate_config_source,
    config_backups,
    restore_config,
]
