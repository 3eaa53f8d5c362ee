"""The one ASGI middleware: request id, rate-limit headers, the request log line, and
the request's metrics and usage-ledger row.

Raw ASGI rather than a framework middleware, because it sits on every request and
costs only a dict entry and a wrapped ``send``. Probes and scrapes (``/health``,
``/ready``, ``/metrics``) are logged at DEBUG and left out of the request metrics, so
watching the proxy does not change its numbers; so is the web console (``/ui``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from fkllmproxy.observability.energy import JOULES_PER_WH
from fkllmproxy.observability.logging import get_logger, request_id_var
from fkllmproxy.observability.tracing import finish_request
from fkllmproxy.server.budget import HEADER as BUDGET_HEADER
from fkllmproxy.server.context import RequestContext
from fkllmproxy.server.host import host_is_valid, refuse_bad_host
from fkllmproxy.server.runtime import RuntimeHolder

__all__ = ["RequestMiddleware"]

_log = get_logger("access")
_QUIET_PATHS = frozenset({"/", "/health", "/ready", "/metrics", "/metrics/prometheus"})
# The web console is not API traffic: never in the request metrics; its polls and
# static files are logged at DEBUG like the probes.
_CONSOLE = "/ui"
_CONSOLE_QUIET = ("/ui/api/", "/ui/static/")
_REFUSALS = frozenset({"rate_limit_exceeded", "invalid_api_key"})
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


def _client_request_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if 0 < len(text) <= 128 and set(text) <= _ID_CHARS:
                return text
            return None
    return None


class RequestMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = RequestContext(
            request_id=_client_request_id(scope["headers"]) or uuid.uuid4().hex,
            started=time.perf_counter(),
        )
        scope["fkllm"] = context
        request_id_var.set(context.request_id)
        request_id = context.request_id.encode()
        state = {"status": 0, "logged": False, "unread_body": _declares_body(scope["headers"])}
        if state["unread_body"]:
            app_receive = receive

            async def receive() -> dict[str, Any]:
                message: dict[str, Any] = await app_receive()
                if message["type"] == "http.request" and not message.get("more_body"):
                    state["unread_body"] = False
                return message

        holder: RuntimeHolder = scope["app"].state.holder
        path = scope["path"]
        watched = path not in _QUIET_PATHS and not path.startswith(_CONSOLE)
        observed = watched and holder.runtime.config.metrics.enabled
        if observed:
            holder.metrics.request_started()
        tracing = holder.runtime.tracing
        span = tracing.start_request(scope) if watched and tracing is not None else None

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                headers = list(message.get("headers") or ())
                headers.append((b"x-request-id", request_id))
                if context.rate is not None:
                    headers.extend(context.rate.headers())
                if context.budget_left is not None:
                    headers.append((BUDGET_HEADER, b"%.6f" % context.budget_left))
                if state["unread_body"]:
                    # Answered before the body was read (401, 413, a GET with a body):
                    # the rest of it is still on the wire, so this connection cannot
                    # carry another request. Say so, or a keep-alive client reuses it
                    # and its next request meets a closed socket.
                    headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            elif context.budget is not None and not message.get("more_body"):
                # Settled before the last byte: the caller's next request sees this cost.
                await _settle_safely(holder, context)
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                state["logged"] = True
                _log_request(scope, context, state["status"])
                _observe_safely(holder, scope, context, state["status"], observed, span)

        # Count the request on the runtime it starts with: a reload closes that
        # runtime's providers only once its last request is done.
        runtime = scope["app"].state.holder.runtime
        runtime.in_flight += 1
        app = self.app if host_is_valid(scope["headers"]) else refuse_bad_host
        try:
            await app(scope, receive, send_with_headers)
        except asyncio.CancelledError:
            # Once a stream's last byte is out, only Litestar's disconnect listener is
            # still waiting in receive(); Granian cancels that wait when it stops, which
            # it would log as an application error. The response is complete: end quietly.
            if not state["logged"]:
                raise
        finally:
            runtime.in_flight -= 1
            if context.budget is not None and not context.budget.settled:
                await _settle_safely(holder, context)
            if not state["logged"]:
                # The client went away or the stream broke before the last byte.
                status = state["status"] or 499
                if context.error_code is None and status == 499:
                    context.error_code = "client_disconnected"
                _log_request(scope, context, status)
                _observe_safely(holder, scope, context, status, observed, span)


async def _settle_safely(holder: RuntimeHolder, context: RequestContext) -> None:
    """Settle the request's budget hold; a fault in that never breaks the answer."""
    runtime = holder.runtime
    if runtime.budgets is None:
        return
    try:
        await runtime.budgets.settle(context)
    except Exception:
        _log.exception("settling the request's budget failed")


def _declares_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False


def _log_request(scope: dict[str, Any], context: RequestContext, status: int) -> None:
    path = scope["path"]
    quiet = path in _QUIET_PATHS or path.startswith(_CONSOLE_QUIET)
    level = logging.DEBUG if quiet else logging.INFO
    if not _log.isEnabledFor(level):
        return
    extra: dict[str, Any] = {
        "request_id": context.request_id,
        "method": scope["method"],
        "path": path,
        "status": status,
        "latency_ms": round((time.perf_counter() - context.started) * 1000, 3),
    }
    if context.model is not None:
        extra["model"] = context.model
        extra["provider"] = context.provider
        extra["attempts"] = context.attempts
        extra["stream"] = context.stream
    if context.client is not None:
        extra["client"] = context.client
    if context.cache is not None:
        extra["cache"] = context.cache
        if context.cache_similarity is not None:
            extra["cache_similarity"] = context.cache_similarity
    if context.usage is not None:
        extra["prompt_tokens"] = context.usage.prompt_tokens
        extra["completion_tokens"] = context.usage.completion_tokens
        if context.usage.cached_tokens:
            extra["cache_read_tokens"] = context.usage.cached_tokens
        if context.usage.cache_write_tokens:
            extra["cache_write_tokens"] = context.usage.cache_write_tokens
    if context.error_code is not None:
        extra["error"] = context.error_code
    _log.log(level, "request", extra=extra)


def _observe_safely(
    holder: RuntimeHolder,
    scope: dict[str, Any],
    context: RequestContext,
    status: int,
    observed: bool,
    span: Any,
) -> None:
    """``_observe``, but a fault in bookkeeping never breaks the answer the client gets."""
    try:
        _observe(holder, scope, context, status, observed)
        if span is not None:
            _trace(span, scope, context, status)
    except Exception:
        _log.exception("recording the request's metrics failed")


def _trace(span: Any, scope: dict[str, Any], context: RequestContext, status: int) -> None:
    usage = context.usage
    finish_request(
        span,
        scope.get("path_template") or "unmatched",
        status,
        {
            "fkllm.request_id": context.request_id,
            "fkllm.client": context.client,
            "gen_ai.request.model": context.model if isinstance(context.model, str) else None,
            "fkllm.provider": context.provider,
            "fkllm.attempts": context.attempts,
            "fkllm.error": context.error_code,
            "gen_ai.usage.input_tokens": usage.prompt_tokens if usage else None,
            "gen_ai.usage.output_tokens": usage.completion_tokens if usage else None,
        },
    )


def _observe(
    holder: RuntimeHolder,
    scope: dict[str, Any],
    context: RequestContext,
    status: int,
    observed: bool,
) -> None:
    """Metrics and the usage-ledger row for one finished request."""
    code = context.error_code
    metrics = holder.metrics
    # Refusals count wherever they happen, probes included: they are security signals.
    if code in _REFUSALS and holder.runtime.config.metrics.enabled:
        if code == "rate_limit_exceeded":
            metrics.rate_limited()
        else:
            metrics.auth_failed()
    sent = context.model
    if not observed and sent is None:
        return
    seconds = time.perf_counter() - context.started
    runtime = holder.runtime
    configured = runtime.router.models.get(sent) if isinstance(sent, str) else None
    provider = context.provider or ""
    usage = context.usage
    upstream = context.upstream_model
    # The energy estimate of an answered request: a dict lookup and two multiplications (observability/energy.py).
    energy_wh = None
    if usage is not None and provider and provider != "cache" and status < 400:
        energy_wh = runtime.energy.estimate_wh(
            provider, upstream, sent, usage.prompt_tokens, usage.completion_tokens
        )
    if observed:
        # Label values only from the configuration: a client's made-up model is "unknown".
        model = configured.name if configured is not None else ("" if sent is None else "unknown")
        metrics.request_finished(
            route=scope.get("path_template") or "unmatched",
            model=model,
            provider=provider,
            status=status,
            seconds=seconds,
            reason=code,
            broken=code is not None and status < 400,
        )
        if context.cache is not None:
            metrics.cache_lookup(model, hit=context.cache != "miss")
            replayed = context.replayed
            if replayed is not None and configured is not None:
                first = configured.targets[0]
                saved = runtime.energy.estimate_wh(
                    first.provider,
                    first.model,
                    sent,
                    replayed.prompt_tokens,
                    replayed.completion_tokens,
                )
                metrics.energy_saved(model, saved * JOULES_PER_WH)
        if provider:
            if context.first_token_at is not None:
                metrics.first_token(provider, context.first_token_at - context.started)
            if usage is not None:
                metrics.tokens(provider, model, usage.prompt_tokens, usage.completion_tokens)
                if usage.cached_tokens or usage.cache_write_tokens:
                    metrics.cache_tokens(
                        provider, model, usage.cached_tokens, usage.cache_write_tokens
                    )
            if energy_wh is not None:
                metrics.energy(provider, model, energy_wh * JOULES_PER_WH)
    ledger = holder.ledger
    if ledger is not None and sent is not None:
        held = context.budget
        charged = held.limits.budget_name if held and held.limits.budget_usd is not None else None
        ledger.record(
            request_id=context.request_id,
            key_name=context.client,
            model=str(sent)[:256],
            provider=context.provider,
            upstream_model=upstream,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            cache_read_tokens=usage.cached_tokens if usage else 0,
            cache_write_tokens=usage.cache_write_tokens if usage else 0,
            latency_ms=round(seconds * 1000, 3),
            status=status,
            energy_wh=energy_wh,
            budget_name=charged,
        )
