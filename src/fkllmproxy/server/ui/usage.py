"""The Usage page and its CSV, from the ledger's daily rollups."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get

from fkllmproxy.observability.usage import GROUPINGS
from fkllmproxy.server.ui import ledger, pages
from fkllmproxy.server.ui.common import TO_LOGIN, ledger_file, render
from fkllmproxy.server.ui.console import page, redirect, signed_in

__all__ = ["usage", "usage_csv"]

_PERIOD_DAYS = {"1d": 1, "7d": 7, "30d": 30, "90d": 90}


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
        return redirect(TO_LOGIN)
    by, period, since = _usage_query(request)
    path = ledger_file(visit.console.holder)
    lines = await asyncio.to_thread(ledger.usage_lines, path, by, since)
    body = pages.usage_body(lines, by, period, ledger=path is not None)
    return render(visit, "usage", "Usage", body)


@get("/ui/usage.csv")
async def usage_csv(request: Request[Any, Any, Any]) -> Response[bytes]:
    visit = await signed_in(request)
    if visit is None:
        return redirect(TO_LOGIN)
    by, period, since = _usage_query(request)
    lines = await asyncio.to_thread(
        ledger.usage_lines, ledger_file(visit.console.holder), by, since
    )
    filename = f"fkllm-usage-by-{by}-{period}.csv"
    return page(
        ledger.usage_csv(lines, by),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )
