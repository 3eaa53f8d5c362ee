"""``/admin/circuits``: see every provider's circuit and close one by hand (master key only).

An operator who has fixed a provider should not have to wait out its cooldown::

    curl -s -H "Authorization: Bearer $KEY" http://127.0.0.1:4000/admin/circuits
    curl -s -X POST -H "Authorization: Bearer $KEY" \\
        http://127.0.0.1:4000/admin/circuits/primary/reset
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post

from fkllmproxy.errors import Forbidden, NotFound
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.routing.breaker import CircuitBreaker
from fkllmproxy.server.runtime import Runtime, RuntimeHolder

__all__ = ["circuit_routes", "list_circuits", "reset_circuit", "reset_provider_circuit"]

_encode = msgspec.json.Encoder().encode
_log = get_logger("admin")


def _master_runtime(request: Request[Any, Any, Any]) -> Runtime:
    """The current runtime, once the caller has shown the master key (401 / 403 otherwise)."""
    holder: RuntimeHolder = request.app.state.holder
    runtime = holder.runtime
    headers = request.headers
    caller = runtime.auth.authenticate(headers.get("authorization"), headers.get("x-api-key"))
    if not caller.is_master:
        error = Forbidden("The admin API needs the master key.")
        error.code = "admin_only"
        raise error
    return runtime


def _describe(breaker: CircuitBreaker, runtime: Runtime) -> dict[str, Any]:
    state = breaker.state
    return {
        "provider": breaker.name,
        "type": runtime.providers[breaker.name].type,
        "state": state,
        "consecutive_failures": breaker.consecutive_failures,
        "cooldown_secs": breaker.cooldown,
        "retry_in_secs": round(breaker.retry_in(), 3) if state == "open" else None,
    }


def _json(data: Any) -> Response[bytes]:
    return Response(content=_encode(data), status_code=200, media_type="application/json")


@get("/admin/circuits")
async def list_circuits(request: Request[Any, Any, Any]) -> Response[bytes]:
    runtime = _master_runtime(request)
    return _json({"circuits": [_describe(b, runtime) for b in runtime.router.breakers]})


def reset_provider_circuit(
    runtime: Runtime, provider: str, *, via: str = "admin"
) -> CircuitBreaker:
    """Close ``provider``'s circuit now and log it; ``NotFound`` naming the providers if unknown.

    The one place a circuit is reset by hand: the admin API and the web console both call it.
    """
    breakers = runtime.router.breakers
    if provider not in breakers:
        known = ", ".join(b.name for b in breakers)
        error = NotFound(f"No provider named {provider!r}. Providers: {known}")
        error.code = "provider_not_found"
        raise error
    previous = breakers[provider].state
    breaker = breakers.reset(provider)
    _log.warning(
        "circuit reset by an operator",
        extra={"provider": provider, "previous": previous, "state": breaker.state, "via": via},
    )
    return breaker


@post("/admin/circuits/{provider:str}/reset", status_code=200)
async def reset_circuit(request: Request[Any, Any, Any], provider: str) -> Response[bytes]:
    runtime = _master_runtime(request)
    return _json(_describe(reset_provider_circuit(runtime, provider), runtime))


circuit_routes = [list_circuits, reset_circuit]
