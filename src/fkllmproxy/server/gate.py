"""The checks every API request passes before routing: key, rate limit, model access."""

from __future__ import annotations

from typing import Any

from litestar import Request

from fkllmproxy.auth import Caller
from fkllmproxy.errors import RateLimited, StateStoreUnavailable, Unauthorized
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.server.context import RequestContext
from fkllmproxy.server.runtime import Runtime
from fkllmproxy.state import MemoryState, StateUnavailable

__all__ = ["admit"]

_log = get_logger("auth")


def _caller_ip(request: Request[Any, Any, Any]) -> str:
    client = request.scope.get("client")
    return f"ip:{client[0]}" if client else "ip:unknown"


async def admit(request: Request[Any, Any, Any], runtime: Runtime) -> tuple[Caller, RequestContext]:
    """Authenticate and take a rate-limit token; raise 401 or 429 as needed."""
    context: RequestContext = request.scope["fkllm"]  # type: ignore[typeddict-item]
    headers = request.headers
    try:
        caller = runtime.auth.authenticate(headers.get("authorization"), headers.get("x-api-key"))
    except Unauthorized as exc:
        _log.warning(
            "unauthorized request refused",
            extra={
                "request_id": context.request_id,
                "path": request.url.path,
                "reason": exc.message,
            },
        )
        raise
    context.client = caller.name
    limits = runtime.limits
    if limits is not None:
        bucket = caller.name if runtime.auth.required else _caller_ip(request)
        own = caller.rate_limit
        capacity, refill = limits.share(
            own.capacity if own else limits.capacity,
            own.refill_per_second if own else limits.refill_per_second,
        )
        state = runtime.state
        if isinstance(state, MemoryState):
            decision = state.take_now(bucket, capacity, refill)
        else:
            try:
                decision = await state.take_token(bucket, capacity, refill)
            except StateUnavailable:
                raise StateStoreUnavailable(
                    "Rate limiting is unavailable (shared state store unreachable); "
                    "try again shortly."
                ) from None
        context.rate = decision
        if not decision.allowed:
            raise RateLimited(
                f"Rate limit exceeded for {caller.name!r}; retry in {decision.retry_after:.1f}s.",
                retry_after=decision.retry_after,
            )
    return caller, context
