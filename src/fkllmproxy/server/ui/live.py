"""The live pages: Overview and Providers, and the JSON their scripts poll."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from litestar import Request, Response, get, post

from fkllmproxy.errors import NotFound
from fkllmproxy.server.admin_circuits import reset_provider_circuit
from fkllmproxy.server.health import overall_status
from fkllmproxy.server.ui import ledger, pages
from fkllmproxy.server.ui.common import (
    TO_LOGIN,
    api_visit,
    change,
    json_reply,
    ledger_file,
    render,
    take_snapshot,
)
from fkllmproxy.server.ui.console import Console, redirect, signed_in
from fkllmproxy.server.ui.html import notice

__all__ = ["overview", "overview_data", "providers", "providers_data", "reset_provider"]


async def _overview(console: Console, since: float) -> dict[str, Any]:
    holder = console.holder
    console.series.start(lambda: console.snapshot(take_snapshot))
    snapshot = await console.snapshot(take_snapshot)
    points = console.series.rates(since)
    latest = console.series.rates(0.0)[-1:] if console.series.points else []
    path = ledger_file(holder)
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
        return redirect(TO_LOGIN)
    data = await _overview(visit.console, time.time())
    data["updated_text"] = "Updated " + time.strftime("%H:%M:%S UTC", time.gmtime())
    return render(visit, "overview", "Overview", pages.overview_body(data))


@get("/ui/api/overview")
async def overview_data(request: Request[Any, Any, Any]) -> Response[bytes]:
    visit = await api_visit(request)
    try:
        since = float(request.query_params.get("since") or 0.0)
    except ValueError:
        since = 0.0
    return json_reply(await _overview(visit.console, since))


# -- providers --------------------------------------------------------------------------


async def _provider_rows(console: Console) -> list[dict[str, Any]]:
    holder = console.holder
    snapshot = await console.snapshot(take_snapshot)
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
        return redirect(TO_LOGIN)
    rows = await _provider_rows(visit.console)
    return render(visit, "providers", "Providers", pages.providers_body(rows, visit.csrf))


@get("/ui/api/providers")
async def providers_data(request: Request[Any, Any, Any]) -> Response[bytes]:
    visit = await api_visit(request)
    return json_reply({"providers": await _provider_rows(visit.console)})


@post("/ui/providers/reset", status_code=200)
async def reset_provider(request: Request[Any, Any, Any]) -> Response[bytes]:
    checked = await change(request)
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
    return render(visit, "providers", "Providers", body, status, message)
