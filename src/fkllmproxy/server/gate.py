"""The checks every API request passes before routing: key, rate limit, model access."""

from __future__ import annotations

from fkllmproxy.auth import Caller
from fkllmproxy.auth.events import AccessEvents
from fkllmproxy.errors import Forbidden, RateLimited, Unauthorized
from fkllmproxy.limits import Decision, refusal
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.server.budget import check as check_budget
from fkllmproxy.server.context import RequestContext
from fkllmproxy.server.exchange import ApiRequest
from fkllmproxy.server.runtime import Runtime

__all__ = ["admit", "admit_master"]

_log = get_logger("auth")


def _caller_ip(request: ApiRequest) -> str:
    ip = request.client_ip
    return f"ip:{ip}" if ip else "ip:unknown"


def _events(request: ApiRequest) -> AccessEvents | None:
    return getattr(request.holder, "access", None)


def _refused(decision: Decision, who: str, events: AccessEvents | None) -> RateLimited:
    if events is not None:
        events.rate_limited()
    return refusal(decision, who)


async def admit(request: ApiRequest, runtime: Runtime) -> tuple[Caller, RequestContext]:
    """Authenticate and take a rate-limit token; raise 401 or 429 as needed.

    A caller with a key is limited per key (its own limits, else the defaults); with no
    keys configured, per client IP. Failed attempts also draw on the client IP's
    bucket, so a client guessing keys is slowed to 429s instead of an endless 401 log.
    The decisions are ``limits``' (``RateLimits.take``, then a budgeted caller's
    ``Budgets.check``); the refusals are counted here, on the access events.
    """
    context = request.context
    headers = request.headers
    rates = runtime.rates
    events = _events(request)
    try:
        # Gemini clients send their key as ``x-goog-api-key`` (or ``?key=``, which the
        # Gemini API routes move into that header before admission).
        x_api_key = headers.get("x-api-key") or headers.get("x-goog-api-key")
        caller = await runtime.auth.authenticate_request(headers.get("authorization"), x_api_key)
    except Unauthorized as exc:
        if events is not None:
            events.auth_failed()
        context.error_code = exc.code
        _log.warning(
            "unauthorized request refused",
            extra={
                "request_id": context.request_id,
                "path": request.path,
                "client_ip": _caller_ip(request)[3:],
                "reason": exc.message,
            },
        )
        if rates is not None:
            decision = await rates.take(_caller_ip(request), None)
            if not decision.allowed:
                context.rate = decision  # the 429's headers; a 401 carries none
                raise _refused(decision, "this client address", events) from exc
        raise
    context.client = caller.name
    if rates is not None:
        bucket = caller.name if runtime.auth.required else _caller_ip(request)
        decision = context.rate = await rates.take(bucket, caller.rate_limit)
        if not decision.allowed:
            raise _refused(decision, repr(caller.name), events)
    if caller.limits is not None:
        await check_budget(runtime.budgets, caller, context)
    return caller, context


async def admit_master(request: ApiRequest, runtime: Runtime) -> tuple[Caller, RequestContext]:
    """``admit``, then ``Forbidden`` unless the caller holds the master key."""
    caller, context = await admit(request, runtime)
    if not caller.is_master:
        if runtime.auth.required:
            error = Forbidden(f"The key {caller.name!r} is not the master key; /admin needs it.")
        else:
            error = Forbidden("The /admin routes need the master key; set APP_AUTH__MASTER_KEY.")
        error.code = "master_key_required"
        raise error
    return caller, context
