"""``/metrics`` (JSON for people and ``jq``) and ``/metrics/prometheus`` (for scrapers).

Both are open unless ``metrics.require_auth`` is set, then they want the master key;
``metrics.enabled = false`` turns both off (404). With several workers the numbers
are read from every worker's files, off the event loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from litestar import Request, Response, get

from fkllmproxy.errors import NotFound, Unauthorized
from fkllmproxy.server.health import overall_status, provider_states
from fkllmproxy.server.runtime import RuntimeHolder

__all__ = ["metrics_json", "metrics_prometheus"]

_encode = msgspec.json.Encoder().encode
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _guarded(request: Request[Any, Any, Any]) -> RuntimeHolder:
    holder: RuntimeHolder = request.app.state.holder
    runtime = holder.runtime
    settings = runtime.config.metrics
    if not settings.enabled:
        error = NotFound("Metrics are turned off on this proxy (metrics.enabled = false).")
        error.code = "route_not_found"
        raise error
    if settings.require_auth:
        headers = request.headers
        if not runtime.auth.is_master(headers.get("authorization"), headers.get("x-api-key")):
            raise Unauthorized(
                "The metrics need the master key (metrics.require_auth = true): send "
                "'Authorization: Bearer <master key>'."
            )
    # This process's breakers as they are now (the breaker also reports each change).
    holder.metrics.sync_providers(provider_states(holder))
    return holder


async def _off_loop(holder: RuntimeHolder, work: Any) -> Any:
    """Reading several workers' files is disk work: keep it off the event loop."""
    if holder.metrics.directory is None:
        return work()
    return await asyncio.to_thread(work)


@get("/metrics")
async def metrics_json(request: Request[Any, Any, Any]) -> Response[bytes]:
    holder = _guarded(request)
    uptime = time.time() - holder.started
    body = await _off_loop(holder, lambda: holder.metrics.snapshot(uptime=uptime))
    body["status"] = overall_status(holder)
    body["version"] = holder.version
    return Response(content=_encode(body), media_type="application/json")


@get("/metrics/prometheus")
async def metrics_prometheus(request: Request[Any, Any, Any]) -> Response[bytes]:
    holder = _guarded(request)
    text = await _off_loop(holder, holder.metrics.exposition)
    return Response(content=text, media_type=PROMETHEUS_CONTENT_TYPE)
