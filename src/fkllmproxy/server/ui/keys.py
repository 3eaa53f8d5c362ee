"""The Keys page: the key store of ``fkllm keys`` with spend from the ledger; create, revoke."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.background_tasks import BackgroundTask

from fkllmproxy.auth import Authenticator
from fkllmproxy.auth.store import KeyStore, store_keys, store_path
from fkllmproxy.config.loader import unpriced_models
from fkllmproxy.config.schema import ClientKey, KeyRateLimit
from fkllmproxy.errors import ConfigError, FkllmError
from fkllmproxy.limits import build_budgets
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.server.runtime import RuntimeHolder
from fkllmproxy.server.ui import ledger, pages
from fkllmproxy.server.ui.common import TO_LOGIN, change, ledger_file, render, who
from fkllmproxy.server.ui.console import Visit, redirect, signed_in
from fkllmproxy.server.ui.html import Html, notice
from fkllmproxy.server.ui.reload_workers import reload_workers

__all__ = ["create_key", "keys", "revoke_key"]

_log = get_logger("console")


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
    activity = await asyncio.to_thread(ledger.key_activity, ledger_file(holder))
    rows = []
    configured = {k.name for k in config.auth.keys}
    for key in config.auth.keys:
        row = _key_row(key.name, "config", key.models, _limits(key), None, activity)
        rows.append({**row, "budget": await _budget(visit, key)})
    for entry in stored:
        if entry.name in configured:
            continue
        client = entry.as_client_key()
        row = _key_row(entry.name, "store", entry.models, _limits(client), entry.created_at,
                       activity)  # fmt: skip
        rows.append({**row, "budget": await _budget(visit, client)})
    models = [m.name for m in config.models]
    body = pages.keys_body(
        rows, visit.csrf, models, created=created, ledger=holder.ledger is not None
    )
    return render(visit, "keys", "Keys", body, status, message)


def _limits(key: ClientKey) -> str:
    """The key's request rate limit and its tokens per minute, as the table shows them."""
    limit = key.rate_limit
    text = f"{limit.capacity} burst, {limit.refill_per_second:g}/s" if limit else "default"
    if key.tokens_per_minute is not None:
        text += f"; {key.tokens_per_minute:,} tokens/min"
    return text


def _key_row(name: str, source: str, models: list[str], limits: str,
             created: float | None, activity: dict[str, ledger.KeyActivity]) -> dict[str, Any]:  # fmt: skip
    seen = activity.get(name)
    return {
        "name": name,
        "source": source,
        "models": models,
        "limit": limits,
        "requests": seen.requests if seen else 0,
        "spend": seen.cost_usd if seen else None,
        "last_used": seen.last_used if seen else None,
        "created": created,
    }


async def _budget(visit: Visit, key: ClientKey) -> str:
    """The key's budget, its spend this period and what is left (from the live budgets)."""
    if key.budget_usd is None:
        return "none"
    text = f"${key.budget_usd:.2f}/{key.budget_period}"
    budgets = visit.runtime.budgets
    limits = budgets.limits.get(key.name) if budgets is not None else None
    if budgets is None or limits is None:
        return f"{text} (applies after a reload)"
    try:
        spend = await budgets.read(limits)
    except FkllmError:
        return f"{text} (spend unavailable)"
    left = max(0.0, key.budget_usd - spend.spent)
    return f"{text}: spent ${spend.spent:.4f}, left ${left:.4f}"


def _budget_from(form: dict[str, str]) -> dict[str, Any]:
    """The create form's budget and tokens-per-minute fields as ``KeyStore.create`` takes
    them; a value that is no number is refused here with the field's name."""
    spend: dict[str, Any] = {}
    tokens = form.get("tokens_per_minute", "").strip()
    if tokens:
        try:
            spend["tokens_per_minute"] = int(tokens)
        except ValueError:
            spend["tokens_per_minute"] = 0
        if spend["tokens_per_minute"] < 1:
            raise ValueError("Tokens per minute must be a whole number of at least 1")
    amount = form.get("budget_usd", "").strip()
    if not amount:
        return spend
    try:
        value = float(amount)
    except ValueError:
        raise ValueError("Budget must be a number of US dollars above 0") from None
    return {**spend, "budget_usd": value, "budget_period": form.get("budget_period", "month")}


@get("/ui/keys")
async def keys(request: Request[Any, Any, Any]) -> Response[bytes]:
    visit = await signed_in(request)
    if visit is None:
        return redirect(TO_LOGIN)
    return await _keys_page(visit)


async def _apply_keys(
    holder: RuntimeHolder, done: str, now: str, soon: str
) -> tuple[Html, BackgroundTask | None]:
    """Let the key store's keys in now: in this process, or, with several workers, by
    having every worker reload (they read the store as they reload). The notice to
    show (``done``, then ``now`` or ``soon``), and the task that asks for the reload
    once the page is sent."""
    if holder.reloader is not None:
        runtime = holder.runtime
        extra = store_keys(runtime.config)
        runtime.auth = Authenticator(runtime.config.auth, extra_keys=extra, previous=runtime.auth)
        runtime.budgets = build_budgets(
            runtime.config,
            runtime.state,
            [*runtime.config.auth.keys, *extra],
            previous=runtime.budgets,
            same_state=True,
        )
        return notice(f"{done}: {now}.", "success"), None
    problems, task = await reload_workers(holder)
    if task is not None:
        return notice(f"{done}: every worker is reloading the key store; {soon}.",
                      "success"), task  # fmt: skip
    why = (
        f"the config on disk has problems ({'; '.join(problems)}); fix them, then reload"
        if problems
        else "apply it with 'systemctl reload fkllmproxy' (SIGHUP)"
    )
    return notice(f"{done} in the key store, but not yet in force: {why}.", "error"), None


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
    checked = await change(request)
    if isinstance(checked, Response):
        return checked
    visit, form = checked
    name = form.get("name", "").strip()
    models = [m.strip() for m in form.get("models", "").split(",") if m.strip()]
    try:
        limit = _limit_from(form)
        spend = _budget_from(form)
        missing = unpriced_models(visit.runtime.config, models) if "budget_usd" in spend else []
        if missing:
            raise ValueError(
                "a budgeted key may use models without a price: add [[pricing]] for "
                + ", ".join(repr(m) for m in missing)
            )
    except ValueError as exc:
        return await _keys_page(visit, status=400, message=notice(f"Not created: {exc}.", "error"))
    if name in {k.name for k in visit.runtime.config.auth.keys}:
        message = notice(f"Not created: the config file already has a key named {name!r}.",
                         "error")  # fmt: skip
        return await _keys_page(visit, status=409, message=message)
    try:
        key = await asyncio.to_thread(
            functools.partial(_store(visit).create, name, models, limit, **spend)
        )
    except ConfigError as exc:
        message = notice(f"Not created: {'; '.join(exc.problems)}.", "error")
        return await _keys_page(visit, status=400, message=message)
    _log.info(
        "client key created in the console",
        extra={"key_name": name, "models": models, "who": who(visit, request)},
    )
    message, task = await _apply_keys(
        visit.console.holder,
        f"Key {name!r} created",
        "it works now",
        "within a few seconds it works on every one of them",
    )
    response = await _keys_page(visit, created=(name, key), message=message)
    response.background = task
    return response


@post("/ui/keys/revoke", status_code=200)
async def revoke_key(request: Request[Any, Any, Any]) -> Response[bytes]:
    checked = await change(request)
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
    _log.warning(
        "client key revoked in the console", extra={"key_name": name, "who": who(visit, request)}
    )
    message, task = await _apply_keys(
        visit.console.holder,
        f"Key {name!r} revoked",
        "it no longer works",
        "within a few seconds it works on none of them",
    )
    response = await _keys_page(visit, message=message)
    response.background = task
    return response
