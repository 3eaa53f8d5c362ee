"""The Config page: the effective configuration, redacted, and Reload."""

from __future__ import annotations

from typing import Any

import tomli_w
from litestar import Request, Response, get, post

from fkllmproxy.config import redacted
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.server.ui import pages
from fkllmproxy.server.ui.common import TO_LOGIN, change, render
from fkllmproxy.server.ui.console import Visit, redirect, signed_in
from fkllmproxy.server.ui.html import Html, notice

__all__ = ["config", "reload"]

_log = get_logger("console")


def _config_page(visit: Visit, status: int = 200, message: Html | None = None) -> Response[bytes]:
    holder = visit.console.holder
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
    body = pages.config_body(text, facts, visit.csrf)
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
    return _config_page(visit)


@post("/ui/config/reload", status_code=200)
async def reload(request: Request[Any, Any, Any]) -> Response[bytes]:
    checked = await change(request)
    if isinstance(checked, Response):
        return checked
    visit, _ = checked
    holder = visit.console.holder
    if holder.reloader is None:
        message = notice(
            "This daemon runs several workers and cannot reload itself from one of them: "
            "use 'systemctl reload fkllmproxy' (SIGHUP) instead.",
            "error",
        )
        return _config_page(visit, 501, message)
    problems = await holder.reloader()
    _log.info("reload asked for in the console", extra={"refused": bool(problems)})
    # The reload may have changed the master key: a new one ends this session.
    after = await signed_in(request)
    if after is None:
        return redirect(TO_LOGIN)
    if problems:
        return _config_page(after, 422, pages.problems_notice(problems))
    config = holder.runtime.config
    text = (
        f"Reloaded: {len(config.providers)} provider(s), {len(config.models)} model(s), "
        f"{holder.runtime.auth.key_count} client key(s)."
    )
    return _config_page(after, 200, notice(text, "success"))
