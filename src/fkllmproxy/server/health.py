"""Liveness and readiness: ``/health`` for people and monitors, ``/ready`` for balancers."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request, Response, get

from fkllmproxy.server.runtime import RuntimeHolder

__all__ = ["health", "ready"]

_encode = msgspec.json.Encoder().encode


def _holder(request: Request[Any, Any, Any]) -> RuntimeHolder:
    holder: RuntimeHolder = request.app.state.holder
    return holder


def provider_states(holder: RuntimeHolder) -> dict[str, str]:
    """Each provider's circuit state (``closed`` until the breaker says otherwise)."""
    runtime = holder.runtime
    states = getattr(runtime, "circuit_states", None)
    if callable(states):
        return dict(states())
    return {name: "closed" for name in runtime.providers}


def overall_status(holder: RuntimeHolder) -> str:
    states = provider_states(holder)
    if not states or all(s == "open" for s in states.values()):
        return "unhealthy"
    if holder.draining or any(s != "closed" for s in states.values()):
        return "degraded"
    return "healthy"


async def _refresh_shared_circuits(holder: RuntimeHolder) -> None:
    """With circuits shared through Redis, report what every process agreed on."""
    refresh = holder.runtime.router.refresh_circuits
    if refresh is not None:
        await refresh()


@get("/health")
async def health(request: Request[Any, Any, Any]) -> Response[bytes]:
    holder = _holder(request)
    await _refresh_shared_circuits(holder)
    status = overall_status(holder)
    body: dict[str, Any] = {
        "status": status,
        "version": holder.version,
        "uptime": round(time.time() - holder.started, 3),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    headers = request.headers
    if holder.runtime.auth.is_master(headers.get("authorization"), headers.get("x-api-key")):
        body["providers"] = [
            {"name": name, "type": holder.runtime.providers[name].type, "circuit": state}
            for name, state in provider_states(holder).items()
        ]
        body["models"] = holder.runtime.router.model_names
    code = 503 if status == "unhealthy" else 200
    return Response(content=_encode(body), status_code=code, media_type="application/json")


@get("/ready")
async def ready(request: Request[Any, Any, Any]) -> Response[bytes]:
    holder = _holder(request)
    await _refresh_shared_circuits(holder)
    states = provider_states(holder)
    can_serve = not holder.draining and any(s != "open" for s in states.values())
    body = {"status": "ready" if can_serve else "not ready"}
    if holder.draining:
        body["reason"] = "shutting down"
    elif not can_serve:
        body["reason"] = "no provider available"
    return Response(
        content=_encode(body), status_code=200 if can_serve else 503, media_type="application/json"
    )
