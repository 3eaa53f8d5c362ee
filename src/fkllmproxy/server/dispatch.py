"""The steps every model-bound handler shares: admission, the response cache, the targets.

Each API handler decodes its own request shape and shapes its own answer; around
that, admitting the caller, reading the body, resolving the model, consulting the
cache and calling the model's targets (with fallback, and cancelled when the client
hangs up) are the same for all of them, and so is what the request log line learns
from them (model, cache outcome, provider, attempts).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import msgspec

from fkllmproxy.auth import Caller
from fkllmproxy.config import ModelConfig, Target
from fkllmproxy.errors import BadRequest
from fkllmproxy.providers import Provider, Usage
from fkllmproxy.routing import Attempted
from fkllmproxy.server.body import decode_body, read_body
from fkllmproxy.server.budget import reserve
from fkllmproxy.server.cache import CachePlan, plan_cache
from fkllmproxy.server.context import RequestContext
from fkllmproxy.server.disconnect import unless_disconnected
from fkllmproxy.server.exchange import ApiRequest, Reply, json_reply, sse_reply
from fkllmproxy.server.gate import admit
from fkllmproxy.server.runtime import Runtime

__all__ = ["accept", "call_targets", "consult_cache"]

T = TypeVar("T")


class _ForModel(Protocol):
    @property
    def model(self) -> str: ...


B = TypeVar("B", bound=_ForModel)


async def accept(
    request: ApiRequest, decoder: msgspec.json.Decoder[B]
) -> tuple[Runtime, Caller, bytes, B, ModelConfig]:
    """Admit the caller, read and decode the body, resolve the model the caller may use.

    Returns the runtime the request started on (the rest of the request keeps to it),
    the caller, the raw body, the decoded body and the configured model.
    """
    runtime = request.holder.runtime
    caller, context = await admit(request, runtime)
    server = runtime.config.server
    raw = await read_body(request, server.max_request_size, server.body_timeout_secs)
    try:
        parsed = decode_body(raw, decoder)
    except BadRequest:
        context.model = _named_model(raw)  # so the log line of the 400 says which model
        raise
    context.model = parsed.model
    model = runtime.router.resolve(parsed.model)
    caller.check_model(model.name)
    if caller.limits is not None:
        await reserve(runtime.budgets, caller, context, model, raw)
    return runtime, caller, raw, parsed, model


class _ModelOnly(msgspec.Struct):
    model: Any = None


_model_decoder = msgspec.json.Decoder(_ModelOnly)


def _named_model(raw: bytes) -> str | None:
    """The ``model`` a body that failed validation named, when it named one as a string."""
    try:
        model = _model_decoder.decode(raw).model
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError):
        return None
    return model if isinstance(model, str) and model else None


async def _replay(body: bytes) -> AsyncIterator[bytes]:
    yield body


def _cached_reply(plan: CachePlan) -> Reply:
    """Replay a cache hit in the form it was stored (whole JSON or an SSE stream)."""
    assert plan.hit is not None
    if plan.hit.streamed:
        return sse_reply(_replay(plan.hit.body), plan.headers)
    return json_reply(plan.hit.body, 200, plan.headers)


async def consult_cache(
    request: ApiRequest,
    runtime: Runtime,
    model: ModelConfig,
    caller: str,
    raw: bytes,
    *,
    namespace: str,
) -> tuple[CachePlan | None, Reply | None]:
    """The cache's plan for this request, and the reply when it is a hit.

    ``(None, None)`` when caching does not apply; ``(plan, None)`` on a miss, the plan
    saying where to store the answer.
    """
    context = request.context
    plan = await plan_cache(
        runtime.cache,
        cached_model=model.cache is True,
        caller=caller,
        namespace=namespace,
        raw=raw,
        cache_control=request.headers.get("cache-control"),
    )
    if plan is None:
        return None, None
    context.cache = plan.outcome
    if plan.hit is None:
        return plan, None
    context.provider = "cache"
    hit = plan.hit
    if hit.prompt_tokens or hit.completion_tokens:
        context.replayed = Usage(
            prompt_tokens=hit.prompt_tokens, completion_tokens=hit.completion_tokens
        )
    return plan, _cached_reply(plan)


async def call_targets(
    request: ApiRequest,
    runtime: Runtime,
    model: ModelConfig,
    attempt: Callable[[Provider, Target], Awaitable[T]],
    *,
    stream: bool = False,
) -> T:
    """``attempt`` on the model's targets in turn until one answers; stops if the client leaves.

    ``runtime`` is the one the handler started with: a reload meanwhile must not mix
    one runtime's model with another's router.
    """
    context: RequestContext = request.context
    attempted = Attempted()
    router = runtime.router
    affinity = router.affinity_of(model, request.scope["headers"])
    try:
        return await unless_disconnected(
            request.receive,
            router.call(model, attempt, attempted, stream=stream, affinity=affinity),
        )
    finally:
        context.provider = attempted.provider
        context.upstream_model = attempted.upstream_model
        context.attempts = attempted.attempts
