"""The Config page: the effective configuration, redacted, Reload, and the file's editor."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import tomli_w
from litestar import Request, Response, get, post

from fkllmproxy.config import redacted
from fkllmproxy.config.writer import read_backup
from fkllmproxy.errors import ConfigError, Conflict, Forbidden, PreconditionFailed
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.server.admin_config_source import (
    Tally,
    apply,
    counted,
    outcome_of,
    refuse_if_read_only,
    write_config,
)
from fkllmproxy.server.ui import pages
from fkllmproxy.server.ui.common import TO_LOGIN, change, render, who
from fkllmproxy.server.ui.config_editor import Editor, diff_html, editor_body, read_editor
from fkllmproxy.server.ui.console import Visit, redirect, signed_in
from fkllmproxy.server.ui.html import Html, esc, notice
from fkllmproxy.server.ui.reload_workers import reload_workers

__all__ = ["config", "reload", "restore", "save"]

_log = get_logger("console")


async def _config_page(
    visit: Visit,
    status: int = 200,
    message: Html | None = None,
    editor: Editor | None = None,
    diff: dict[str, Any] | None = None,
) -> Response[bytes]:
    holder = visit.console.holder
    if editor is None:
        editor = await read_editor(holder)
    runtime = holder.runtime
    loaded = runtime.loaded
    data = _without_none(redacted(runtime.config))
    # tomli_w writes short arrays of tables inline, ahead of every section: put the
    # prices last, where a config file has them.
    prices = data.pop("pricing", None)
    text = tomli_w.dumps(data) + ("\n" + tomli_w.dumps({"pricing": prices}) if prices else "")
    server = runtime.config.server
    facts = [
        ("Config file", str(loaded.config_path) if loaded.config_path else "none (defaults)"),
        ("Env file", str(loaded.env_file) if loaded.env_file else "none"),
        ("Listening on", f"{server.host}:{server.port}, {server.workers} worker(s)"),
        ("Client keys", str(runtime.auth.key_count)),
        ("Version", holder.version),
    ]
    body = Html(pages.config_body(text, facts, visit.csrf) + editor_body(editor, visit.csrf, diff))
    return render(visit, "config", "Config", body, status, message)


def _without_none(value: Any) -> Any:
    """TOML has no null: leave unset keys out, as a config file would."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


@get("/ui/config")
async def config(request: Request[Any, Any, Any]) -> Response[bytes]:
    visit = await signed_in(request)
    if visit is None:
        return redirect(TO_LOGIN)
    return await _config_page(visit)


@post("/ui/config/reload", status_code=200)
async def reload(request: Request[Any, Any, Any]) -> Response[bytes]:
    checked = await change(request)
    if isinstance(checked, Response):
        return checked
    visit, _ = checked
    holder = visit.console.holder
    if holder.reloader is None:
        return await _every_worker(visit)
    problems = await holder.reloader()
    _log.info(
        "reload asked for in the console",
        extra={"who": who(visit, request), "refused": bool(problems)},
    )
    # The reload may have changed the master key: a new one ends this session.
    after = await signed_in(request)
    if after is None:
        return redirect(TO_LOGIN)
    if problems:
        return await _config_page(after, 422, pages.problems_notice(problems))
    config = holder.runtime.config
    text = (
        f"Reloaded: {len(config.providers)} provider(s), {len(config.models)} model(s), "
        f"{holder.runtime.auth.key_count} client key(s)."
    )
    return await _config_page(after, 200, notice(text, "success"))


async def _every_worker(visit: Visit) -> Response[bytes]:
    """Reload on several workers: check the files, then have every worker reload them."""
    problems, task = await reload_workers(visit.console.holder)
    extra = {"refused": bool(problems), "workers": "all"}
    _log.info("reload asked for in the console", extra=extra)
    if problems:
        return await _config_page(visit, 422, pages.problems_notice(problems))
    if task is None:
        message = notice(
            "This process cannot reload the daemon: use 'systemctl reload fkllmproxy' "
            "(SIGHUP) instead.",
            "error",
        )
        return await _config_page(visit, 501, message)
    message = notice(
        "Reloading: the configuration is valid and every worker is reloading it in place "
        "(requests keep being answered). Open this page again in a moment to see the new "
        "configuration.",
        "success",
    )
    response = await _config_page(visit, 200, message)
    response.background = task
    return response


def _refused(problems: list[str], what: str) -> Html:
    items = "".join(f"<li>{esc(p)}</li>" for p in problems)
    return Html(
        f'<div class="notice error" role="alert"><p>{esc(what)}: nothing was written. '
        f"The text has these problems:</p><ul>{items}</ul></div>"
    )


async def _written(
    visit: Visit, request: Request[Any, Any, Any], text: str, etag: str | None, what: str,
    tally: Tally,
) -> Response[bytes]:  # fmt: skip
    """Write ``text`` as PUT /admin/config/source does and show how it went."""
    holder = visit.console.holder
    kept = await read_editor(holder)
    posted = dataclasses.replace(kept, text=text, etag=etag or kept.etag)
    try:
        written = await asyncio.to_thread(write_config, holder, text, etag)
    except ConfigError as exc:
        tally.outcome = "invalid"
        return await _config_page(visit, 422, _refused(exc.problems, f"{what} refused"), posted)
    except (PreconditionFailed, Conflict, Forbidden) as exc:
        tally.outcome = outcome_of(exc)
        return await _config_page(visit, exc.status, notice(exc.message, "error"), posted)
    reload, task = await apply(holder, written)
    _log.info(
        "config file written in the console",
        extra={"action": what, "who": who(visit, request), "backup": written.backup,
               "diff": written.diff, "reload": reload["status"]},
    )  # fmt: skip
    after = await signed_in(request)  # a new master key ends this session
    if after is None:
        response = redirect(TO_LOGIN)
    else:
        state = {
            "reloaded": "and reloaded",
            "reloading": "; every worker is reloading it",
        }.get(reload["status"], f"but not applied: {'; '.join(reload.get('problems', []))}")
        message = Html(
            notice(f"{what}: written (the old file kept as {written.backup}) {state}.", "success")
            + diff_html(written.diff)
        )
        response = await _config_page(after, 200, message)
    response.background = task
    return response


@post("/ui/config/source", status_code=200)
async def save(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Validate (nothing written) or Save the posted text."""
    checked = await change(request)
    if isinstance(checked, Response):
        return checked
    visit, form = checked
    # Browsers send a textarea's lines ending in CRLF: the file keeps its own LF.
    text = form.get("text", "").replace("\r\n", "\n")
    if form.get("action") != "validate":
        with counted(visit.console.holder, "put") as tally:
            return await _written(visit, request, text, form.get("etag") or None, "Save", tally)
    holder = visit.console.holder
    kept = await read_editor(holder)
    posted = dataclasses.replace(kept, text=text, etag=form.get("etag") or kept.etag)
    try:
        checked_text = await asyncio.to_thread(write_config, holder, text, None, dry_run=True)
    except ConfigError as exc:
        return await _config_page(visit, 422, _refused(exc.problems, "Validation"), posted)
    except (Conflict, Forbidden) as exc:
        return await _config_page(visit, exc.status, notice(exc.message, "error"), posted)
    message = notice(
        "Valid: check-config would accept this text. Nothing is written yet.", "success"
    )
    return await _config_page(visit, 200, message, posted, checked_text.diff)


@post("/ui/config/restore", status_code=200)
async def restore(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Put a backup back, validated and applied as a save is."""
    checked = await change(request)
    if isinstance(checked, Response):
        return checked
    visit, form = checked
    with counted(visit.console.holder, "restore") as tally:
        try:
            refuse_if_read_only(visit.console.holder)
        except Forbidden as exc:
            tally.outcome = "refused"
            return await _config_page(visit, exc.status, notice(exc.message, "error"))
        path = visit.console.holder.runtime.loaded.config_path
        name = form.get("name", "")
        content = await asyncio.to_thread(read_backup, path, name) if path else None
        if content is None:
            tally.outcome = "refused"
            return await _config_page(visit, 404, notice(f"No backup called {name!r}.", "error"))
        text = content.decode("utf-8", "replace")
        return await _written(visit, request, text, None, f"Restore {name}", tally)
