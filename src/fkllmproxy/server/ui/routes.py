"""``/ui/``: the web console's routes (Litestar handlers, off the API's fast path).

Pages are rendered here from the same objects the API uses: the runtime's breakers and
authenticator, the metrics snapshot of ``/metrics``, the key store of ``fkllm keys``,
the usage ledger of ``fkllm usage``, and the reload that SIGHUP runs. Signed-out
requests are sent to ``/ui/login``; every POST but the sign-in itself needs the
session's CSRF token. The request middleware leaves ``/ui`` out of the request metrics.
"""

from __future__ import annotations

import asyncio
import hmac
import time
import urllib.parse
from typing import Any

import msgspec
import tomli_w
from litestar import Request, Response, get, post

from fkllmproxy.auth import Authenticator
from fkllmproxy.auth.keys import key_digest
from fkllmproxy.auth.store import KeyStore, store_keys, store_path
from fkllmproxy.config import redacted
from fkllmproxy.config.schema import KeyRateLimit
from fkllmproxy.errors import ConfigError, NotFound, Unauthorized
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.observability.usage import GROUPINGS
from fkllmproxy.server.admin_circuits import reset_provider_circuit
from fkllmproxy.server.health import overall_status, provider_states
from fkllmproxy.server.runtime import RuntimeHolder
from fkllmproxy.server.ui import ledger, pages
from fkllmproxy.server.ui.console import (
    Console,
    Visit,
    console_of,
    page,
    read_form,
    redirect,
    session_cookie,
    sign_out,
    signed_in,
)
from fkllmproxy.server.ui.html import Html, asset, layout, login_page, notice
from fkllmproxy.state import StateUnavailable

__all__ = ["ui_routes"]

_log = get_logger("console")
_encode = msgspec.json.Encoder().encode
_LOGIN_BUCKET = (10, 0.1)  # ten attempts, then one more every ten seconds, per client IP
_PERIOD_DAYS = {"1d": 1, "7d": 7, "30d": 30, "90d": 90}
_ASSET_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
_TO_LOGIN = "/ui/login"


def _render(visit: Visit, page_key: str, title: str, body: Html, status: int = 200,
            message: Html | None = None) -> Response[bytes]:  # fmt: skip
    return page(layout(page_key, title, body, csrf=visit.csrf, message=message), status)


async def _change(
    request: Request[Any, Any, Any],
) -> tuple[Visit, dict[str, str]] | Response[bytes]:
    """A signed-in, same-origin POST with this session's CSRF token, and its form."""
    visit = await signed_in(request)
    if visit is None:
        return redirect(_TO_LOGIN)
    form = await read_form(request)
    presented = form.get("csrf") or request.headers.get("x-csrf-token")
    if not _same_origin(request) or not visit.keys.csrf_ok(visit.session, presented):
        _log.warning(
            "console change refused: missing or wrong CSRF token",
            extra={"path": request.url.path, "client_ip": _client_ip(request)},
        )
        body = notice(
            "This form was refused: it did not carry this session's CSRF token "
            "(an old page, or a page from another site). Reload the page and try again.",
            "error",
        )
        return _render(visit, "overview", "Refused", body, 403)
    return visit, form


def _same_origin(request: Request[Any, Any, Any]) -> bool:
    """No ``Origin`` (an old browser) or one naming this host."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return urllib.parse.urlsplit(origin).netloc == host and host != ""


def _client_ip(request: Request[Any, Any, Any]) -> str:
    client = request.scope.get("client")
    return str(client[0]) if client else "unknown"


# -- sign-in ----------------------------------------------------------------------------


@get("/ui/login")
async def login_form(request: Request[Any, Any, Any]) -> Response[bytes]:
    console = console_of(request)
    if await signed_in(request) is not None:
        return redirect("/ui/")
    message = None
    if console.session_keys() is None:
        message = _no_master_key()
    return page(login_page(message))


def _no_master_key() -> Html:
    return notice(
        "The console signs in with the master key, and none is set: set "
        "APP_AUTH__MASTER_KEY (fkllm rotate-key writes one) and reload.",
        "error",
    )


@post("/ui/login", status_code=200)
async def login(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Check the master key from the form; on success set the session cookie."""
    console = console_of(request)
    form = await read_form(request)
    runtime = console.holder.runtime
    keys = console.session_keys()
    if keys is None:
        return page(login_page(_no_master_key()), 403)
    try:
        decision = await runtime.state.take_token(
            "ui-login:ip:" + _client_ip(request), *_LOGIN_BUCKET
        )
    except StateUnavailable:
        return page(login_page(notice("Sign-in is unavailable: the state store is down.",
                                      "error")), 503)  # fmt: skip
    context: Any = request.scope.get("fkllm")
    if not decision.allowed:
        if context is not None:
            context.error_code = "rate_limit_exceeded"
        console.holder.access.rate_limited()
        wait = max(1, round(decision.retry_after))
        message = notice(f"Too many sign-in attempts: try again in {wait} s.", "error")
        return page(login_page(message), 429, headers={"retry-after": str(wait)})
    master = runtime.config.auth.master_key or ""
    given = form.get("key", "").strip()
    if not given or not hmac.compare_digest(key_digest(given), key_digest(master)):
        if context is not None:
            context.error_code = "invalid_api_key"  # counted with the API's auth failures
        console.holder.access.auth_failed()
        _log.warning(
            "unauthorized console sign-in refused",
            extra={"path": "/ui/login", "client_ip": _client_ip(request)},
        )
        return page(login_page(notice("That is not the master key.", "error")), 401)
    hours = runtime.config.ui.session_hours
    token, session = keys.issue(hours)
    _log.info("console signed in", extra={"client_ip": _client_ip(request)})
    cookie = session_cookie(request, token, session.expires - session.issued)
    return redirect("/ui/", cookies=[cookie])


@post("/ui/logout", status_code=200)
async def logout(request: Request[Any, Any, Any]) -> Response[bytes]:
    checked = await _change(request)
    if isinstance(checked, Response):
        return checked
    visit, _ = checked
    await sign_out(visit)
    _log.info("console signed out", extra={"client_ip": _client_ip(request)})
    gone = session_cookie(request, "", 0)
    return redirect(_TO_LOGIN + "?signed_out=1", cookies=[gone])


# -- overview ---------------------------------------------------------------------------


async def _snapshot(holder: RuntimeHolder) -> dict[str, Any]:
    """``/metrics``' snapshot (every worker's totals), taken in a thread.

    It sorts thousands of recent latencies and may read every worker's files: tens of
    milliseconds on a busy machine, which would stall the API's requests on the loop.
    """
    holder.metrics.sync_providers(provider_states(holder))
    uptime = time.time() - holder.started
    return await asyncio.to_thread(holder.metrics.snapshot, uptime=uptime)


def _ledger_file(holder: RuntimeHolder) -> Any:
    return holder.ledger.path if holder.ledger is not None else None


async def _overview(console: Console, since: float) -> dict[str, Any]:
    holder = console.holder
    console.series.start(lambda: console.snapshot(_snapshot))
    snapshot = await console.snapshot(_snapshot)
    points = console.series.rates(since)
    latest = console.series.rates(0.0)[-1:] if console.series.points else []
    path = _ledger_file(holder)
    cost, _ = await asyncio.to_thread(ledger.cost_since, path, ledger.start_of_day())
    tokens = snapshot.get("tokens") or {}
    return {
        "status": overall_status(holder),
        "rps": latest[0]["rps"] if latest else None,
        "success_rate": snapshot.get("success_rate"),
        "latency_ms": snapshot.get("latency_ms"),
        "total_requests": snapshot.get("total_requests", 0),
        "tokens": int(tokens.get("prompt", 0)) + int(tokens.get("completion", 0)),
        "cost_today": cost,
        "ledger": path is not None,
        "points": points,
        "now": round(time.time(), 3),
        "interval": console.series.interval,
    }


@get("/ui")
async def overview(request: Request[Any, Any, Any]) -> Response[bytes]:
    visit = await signed_in(request)
    if visit is None:
        return redirect(_TO_LOGIN)
    data = await _overview(visit.console, time.time())
    data["updated_text"] = "Updated " + time.strftime("%H:%M:%S UTC", time.gmtime())
    return _render(visit, "overview", "Overview", pages.overview_body(data))


async def _api_visit(request: Request[Any, Any, Any]) -> Visit:
    visit = await signed_in(request)
    if visit is None:
        raise Unauthorized("The console session has ended: sign in again at /ui/login.")
    return visit


def _json(data: Any) -> Response[bytes]:
    return page(_encode(data), media_type="application/json")


@get("/ui/api/overview")
async def overview_data(request: Request[Any, Any, Any]) -> Response[bytes]:
    visit = await _api_visit(request)
    try:
        since = float(request.query_params.get("since") or 0.0)
    except ValueError:
        since = 0.0
    return _json(await _overview(visit.console, since))


# -- providers --------------------------------------------------------------------------


async def _provider_rows(console: Console) -> list[dict[str, Any]]:
    holder = console.holder
    snapshot = await console.snapshot(_snapshot)
    seen = snapshot.get("providers") or {}
    runtime = holder.runtime
    several = holder.metrics.directory is not None
    rows = []
    for breaker in runtime.router.breakers:
        recent = seen.get(breaker.name) or {}
        provider = runtime.providers.get(breaker.name)
        rows.append(
            {
                "name": breaker.name,
                "type": getattr(provider, "type", ""),
                # With several workers the snapshot's is the worst of them.
                "circuit": (recent.get("circuit") if several else None) or breaker.state,
                "consecutive_failures": breaker.consecutive_failures,
                "recent_error_rate": recent.get("recent_error_rate"),
                "latency_ms": recent.get("latency_ms") or {},
            }
        )
    return rows


@get("/ui/providers")
async def providers(request: Request[Any, Any, Any]) -> Response[bytes]:
    visit = await signed_in(request)
    if visit is None:
        return redirect(_TO_LOGIN)
    rows = await _provider_rows(visit.console)
    return _render(visit, "providers", "Providers", pages.providers_body(rows, visit.csrf))


@get("/ui/api/providers")
async def providers_data(request: Request[Any, Any, Any]) -> Response[bytes]:
    visit = await _api_visit(request)
    return _json({"providers": await _provider_rows(visit.console)})


@post("/ui/providers/reset", status_code=200)
async def reset_provider(request: Request[Any, Any, Any]) -> Response[bytes]:
    checked = await _change(request)
    if isinstance(checked, Response):
        return checked
    visit, form = checked
    name = form.get("provider", "")
    try:
        breaker = reset_provider_circuit(visit.runtime, name, via="console")
        visit.console.forget_snapshot()
        message = notice(f"The circuit of {name!r} is now {breaker.state.replace('_', '-')}.",
                         "success")  # fmt: skip
        status = 200
    except NotFound as exc:
        message, status = notice(exc.message, "error"), 404
    rows = await _provider_rows(visit.console)
    body = pages.providers_body(rows, visit.csrf)
    return _render(visit, "providers", "Providers", body, status, message)


# -- keys -------------------------------------------------------------------------------


def _store(visit: Visit) -> KeyStore:
    return KeyStore(store_path(visit.runtime.config.state.directory))


async def _keys_page(visit: Visit, *, status: int = 200, message: Html | None = None,
                     created: tuple[str, str] | None = None) -> Response[bytes]:  # fmt: skip
    config = visit.runtime.config
    holder = visit.console.holder
    try:
        stored = await asyncio.to_thread(_store(visit).list)
    except ConfigError as exc:
        stored = []
        message = notice(f"The key store cannot be read: {'; '.join(exc.problems)}", "error")
    activity = await asyncio.to_thread(ledger.key_activity, _ledger_file(holder))
    rows = []
    configured = {k.name for k in config.auth.keys}
    for key in config.auth.keys:
        rows.append(_key_row(key.name, "config", key.models, key.rate_limit, None, activity))
    for entry in stored:
        if entry.name in configured:
            continue
        limit = entry.as_client_key().rate_limit
        rows.append(_key_row(entry.name, "store", entry.models, limit, entry.created_at, activity))
    models = [m.name for m in config.models]
    body = pages.keys_body(
        rows, visit.csrf, models, created=created, ledger=holder.ledger is not None
    )
    return _render(visit, "keys", "Keys", body, status, message)


def _key_row(name: str, source: str, models: list[str], limit: KeyRateLimit | None,
             created: float | None, activity: dict[str, ledger.KeyActivity]) -> dict[str, Any]:  # fmt: skip
    seen = activity.get(name)
    return {
        "name": name,
        "source": source,
        "models": models,
        "limit": f"{limit.capacity} burst, {limit.refill_per_second:g}/s" if limit else "default",
        "requests": seen.requests if seen else 0,
        "spend": seen.cost_usd if seen else None,
        "last_used": seen.last_used if seen else None,
        "created": created,
    }


@get("/ui/keys")
async def keys(request: Request[Any, Any, Any]) -> Response[bytes]:
    visit = await signed_in(request)
    if visit is None:
        return redirect(_TO_LOGIN)
    return await _keys_page(visit)


def _apply_keys(holder: RuntimeHolder) -> str | None:
    """Let the key store's keys in now (single process); else say how to apply them."""
    if holder.reloader is None:
        return (
            "This daemon runs several workers: apply the change to all of them with "
            "'systemctl reload fkllmproxy' (SIGHUP)."
        )
    runtime = holder.runtime
    runtime.auth = Authenticator(
        runtime.config.auth, extra_keys=store_keys(runtime.config), previous=runtime.auth
    )
    return None


def _limit_from(form: dict[str, str]) -> KeyRateLimit | None:
    capacity = form.get("capacity", "").strip()
    refill = form.get("refill_per_second", "").strip()
    if not capacity and not refill:
        return None
    if not capacity or not refill:
        raise ValueError("give both Burst and Refill per second, or neither")
    try:
        return msgspec.convert(
            {"capacity": capacity, "refill_per_second": refill}, KeyRateLimit, strict=False
        )
    except msgspec.ValidationError:
        raise ValueError(
            "Burst must be a whole number of at least 1 and Refill per second a number above 0"
        ) from None


@post("/ui/keys", status_code=200)
async def create_key(request: Request[Any, Any, Any]) -> Response[bytes]:
    checked = await _change(request)
    if isinstance(checked, Response):
        return checked
    visit, form = checked
    name = form.get("name", "").strip()
    models = [m.strip() for m in form.get("models", "").split(",") if m.strip()]
    try:
        limit = _limit_from(form)
    except ValueError as exc:
        return await _keys_page(visit, status=400, message=notice(f"Not created: {exc}.", "error"))
    if name in {k.name for k in visit.runtime.config.auth.keys}:
        message = notice(f"Not created: the config file already has a key named {name!r}.",
                         "error")  # fmt: skip
        return await _keys_page(visit, status=409, message=message)
    try:
        key = await asyncio.to_thread(_store(visit).create, name, models, limit)
    except ConfigError as exc:
        message = notice(f"Not created: {'; '.join(exc.problems)}.", "error")
        return await _keys_page(visit, status=400, message=message)
    _log.info("client key created in the console", extra={"key_name": name, "models": models})
    pending = _apply_keys(visit.console.holder)
    return await _keys_page(
        visit, created=(name, key), message=notice(pending, "info") if pending else None
    )


@post("/ui/keys/revoke", status_code=200)
async def revoke_key(request: Request[Any, Any, Any]) -> Response[bytes]:
    checked = await _change(request)
    if isinstance(checked, Response):
        return checked
    visit, form = checked
    name = form.get("name", "")
    try:
        removed = await asyncio.to_thread(_store(visit).revoke, name)
    except ConfigError as exc:
        message = notice(f"Not revoked: {'; '.join(exc.problems)}.", "error")
        return await _keys_page(visit, status=400, message=message)
    if not removed:
        return await _keys_page(
            visit, status=404, message=notice(f"No stored key named {name!r}.", "error")
        )
    _log.warning("client key revoked in the console", extra={"key_name": name})
    pending = _apply_keys(visit.console.holder)
    text = f"Key {name!r} revoked." + (f" {pending}" if pending else " It no longer works.")
    return await _keys_page(visit, message=notice(text, "success"))


# -- usage ------------------------------------------------------------------------------


def _usage_query(request: Request[Any, Any, Any]) -> tuple[str, str, float]:
    by = request.query_params.get("by") or "key"
    period = request.query_params.get("since") or "30d"
    if by not in GROUPINGS:
        by = "key"
    if period != "all" and period not in _PERIOD_DAYS:
        period = "30d"
    days = _PERIOD_DAYS.get(period, 0)
    since = ledger.start_of_day() - (days - 1) * 86_400 if days else 0.0
    return by, period, since


@get("/ui/usage")
async def usage(request: Request[Any, Any, Any]) -> Response[bytes]:
    visit = await signed_in(request)
    if visit is None:
        return redirect(_TO_LOGIN)
    by, period, since = _usage_query(request)
    path = _ledger_file(visit.console.holder)
    lines = await asyncio.to_thread(ledger.usage_lines, path, by, since)
    body = pages.usage_body(lines, by, period, ledger=path is not None)
    return _render(visit, "usage", "Usage", body)


@get("/ui/usage.csv")
async def usage_csv(request: Request[Any, Any, Any]) -> Response[bytes]:
    visit = await signed_in(request)
    if visit is None:
        return redirect(_TO_LOGIN)
    by, period, since = _usage_query(request)
    lines = await asyncio.to_thread(
        ledger.usage_lines, _ledger_file(visit.console.holder), by, since
    )
    filename = f"fkllm-usage-by-{by}-{period}.csv"
    return page(
        ledger.usage_csv(lines, by),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


# -- config -----------------------------------------------------------------------------


def _config_page(visit: Visit, status: int = 200, message: Html | None = None) -> Response[bytes]:
    holder = visit.console.holder
    runtime = holder.runtime
    loaded = runtime.loaded
    text = tomli_w.dumps(_without_none(redacted(runtime.config)))
    server = runtime.config.server
    facts = [
        ("Config file", str(loaded.config_path) if loaded.config_path else "none (defaults)"),
        ("Env file", str(loaded.env_file) if loaded.env_file else "none"),
        ("Listening on", f"{server.host}:{server.port}, {server.workers} worker(s)"),
        ("Client keys", str(runtime.auth.key_count)),
        ("Version", holder.version),
    ]
    body = pages.config_body(text, facts, visit.csrf)
    return _render(visit, "config", "Config", body, status, message)


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
        return redirect(_TO_LOGIN)
    return _config_page(visit)


@post("/ui/config/reload", status_code=200)
async def reload(request: Request[Any, Any, Any]) -> Response[bytes]:
    checked = await _change(request)
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
        return redirect(_TO_LOGIN)
    if problems:
        return _config_page(after, 422, pages.problems_notice(problems))
    config = holder.runtime.config
    text = (
        f"Reloaded: {len(config.providers)} provider(s), {len(config.models)} model(s), "
        f"{holder.runtime.auth.key_count} client key(s)."
    )
    return _config_page(after, 200, notice(text, "success"))


# -- static files -----------------------------------------------------------------------


@get("/ui/static/{name:str}")
async def static(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
    console_of(request)
    found = asset(name)
    kind = _ASSET_TYPES.get(name[name.rfind(".") :]) if "." in name else None
    if found is None or kind is None:
        error = NotFound(f"No console file named {name!r}.")
        error.code = "route_not_found"
        raise error
    return page(found[0], media_type=kind, headers={"cache-control": "public, max-age=3600"})


ui_routes = [
    login_form,
    login,
    logout,
    overview,
    overview_data,
    providers,
    providers_data,
    reset_provider,
    keys,
    create_key,
    revoke_key,
    usage,
    usage_csv,
    config,
    reload,
    static,
]
