"""The OpenAI-shaped API: chat completions, embeddings, and the model list.

``complete_chat`` and ``embed`` are the handler cores: ``server/fast_routes.py`` serves
them straight from ASGI, and the Litestar routes of the same paths (which answer wrong
methods with 405 and describe the app's routes) call them too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from litestar import Request, Response, get

from fkllmproxy.auth import Caller
from fkllmproxy.config import ModelConfig, Target
from fkllmproxy.errors import ClientDisconnected, FkllmError
from fkllmproxy.providers import (
    ChatRequest,
    Completion,
    EmbeddingRequest,
    Provider,
    StreamingCompletion,
)
from fkllmproxy.providers.sse import DONE_FRAME
from fkllmproxy.server.context import RequestContext
from fkllmproxy.server.dispatch import accept, call_targets, consult_cache
from fkllmproxy.server.errors import error_body
from fkllmproxy.server.exchange import ApiRequest, Reply, json_reply, sse_reply
from fkllmproxy.server.gate import admit
from fkllmproxy.server.translated import chat_stream, in_chat_shape
from fkllmproxy.wire.openai import (
    ChatCompletionRequest,
    chat_request_decoder,
    embedding_request_decoder,
)

if TYPE_CHECKING:
    from fkllmproxy.server.runtime import Runtime

__all__ = ["complete_chat", "embed", "list_models", "relay_stream"]

_encode = msgspec.json.Encoder().encode


async def relay_stream(
    result: StreamingCompletion,
    context: RequestContext,
    *,
    error_frame: Any,
) -> AsyncIterator[bytes]:
    """Forward frames as they arrive; on a mid-stream failure end with an error frame.

    When the client hangs up, the stream is cancelled (by ``fast_routes``, or by
    Litestar inside an anyio cancel scope that would cancel every await in ``finally``
    too): the upstream response is closed under a shield so its connection is never
    left open.
    """
    context.usage = result.usage
    try:
        async for chunk in result.chunks:
            if context.first_token_at is None:
                context.first_token_at = time.perf_counter()
            yield chunk
    except FkllmError as exc:
        context.error_code = exc.code
        yield error_frame(exc)
    except asyncio.CancelledError:
        context.error_code = context.error_code or ClientDisconnected.code
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await result.aclose()


def _openai_error_frame(error: FkllmError) -> bytes:
    return b"\n\ndata: " + error_body(error, anthropic=False) + b"\n\n"


def _chat_attempt(
    raw: bytes, client_model: str, *, stream: bool, include_usage: bool
) -> Callable[[Provider, Target], Awaitable[Completion | StreamingCompletion]]:
    """One chat call on a target, for the router."""

    async def attempt(provider: Provider, target: Target) -> Completion | StreamingCompletion:
        call = ChatRequest(
            raw=raw,
            model=target.model,
            stream=stream,
            client_model=client_model,
            include_usage=include_usage,
        )
        return await provider.chat(call)

    return attempt


async def complete_chat(request: ApiRequest) -> Reply:
    """``POST /v1/chat/completions``."""
    runtime, caller, raw, parsed, model = await accept(request, chat_request_decoder)
    context = request.context
    stream = bool(parsed.stream)
    context.stream = stream
    include_usage = bool(parsed.stream_options and parsed.stream_options.include_usage)

    if model.cache == "semantic":
        return await _complete_semantic(request, runtime, caller, raw, parsed, model)
    cache = runtime.cache
    plan, hit = await consult_cache(request, runtime, model, caller.name, raw, namespace=model.name)
    if hit is not None:
        return hit

    attempt = _chat_attempt(raw, parsed.model, stream=stream, include_usage=include_usage)
    result = await call_targets(request, runtime, model, attempt, stream=stream)
    if isinstance(result, Completion):
        context.usage = result.usage
        body = in_chat_shape(result, parsed.model)
        if cache is not None and plan is not None and plan.store_key and result.status == 200:
            await cache.store_body(plan.store_key, body, result.usage)
        return json_reply(body, result.status, plan.headers if plan else None)
    result = chat_stream(result, parsed.model, include_usage=include_usage)
    frames = relay_stream(result, context, error_frame=_openai_error_frame)
    if cache is not None and plan is not None and plan.store_key:
        frames = cache.recording(plan.store_key, frames, DONE_FRAME.strip(), lambda: context.usage)
    return sse_reply(frames, plan.headers if plan else None)


async def _complete_semantic(
    request: ApiRequest,
    runtime: Runtime,
    caller: Caller,
    raw: bytes,
    parsed: ChatCompletionRequest,
    model: ModelConfig,
) -> Reply:
    """``complete_chat`` for a model with ``cache = "semantic"`` (server/semantic_cache.py)."""
    from fkllmproxy.server.semantic_answers import (  # numpy: semantic models only
        answer_of_completion,
        replay_body,
        replay_frames,
    )
    from fkllmproxy.server.semantic_cache import consult_semantic, replayed

    context = request.context
    stream = bool(parsed.stream)
    include_usage = bool(parsed.stream_options and parsed.stream_options.include_usage)
    plan, hit = await consult_semantic(request, runtime, model, caller, raw, api="chat")
    if hit is not None:
        if stream:
            replay = replay_frames(
                parsed.model, hit.answer, *hit.tokens, include_usage=include_usage
            )
            return sse_reply(replayed(replay), hit.headers)
        return json_reply(replay_body(parsed.model, hit.answer, *hit.tokens), 200, hit.headers)

    attempt = _chat_attempt(raw, parsed.model, stream=stream, include_usage=include_usage)
    result = await call_targets(request, runtime, model, attempt, stream=stream)
    headers = plan.headers if plan is not None else None
    if isinstance(result, Completion):
        context.usage = result.usage
        body = in_chat_shape(result, parsed.model)
        if plan is not None:
            await plan.remember_body(result.status, body, result.usage, answer_of_completion)
        return json_reply(body, result.status, headers)
    result = chat_stream(result, parsed.model, include_usage=include_usage)
    frames = relay_stream(result, context, error_frame=_openai_error_frame)
    if plan is not None:
        frames = plan.recording(frames, lambda: context.usage)
    return sse_reply(frames, headers)


async def embed(request: ApiRequest) -> Reply:
    """``POST /v1/embeddings``."""
    runtime, _, raw, parsed, model = await accept(request, embedding_request_decoder)
    context = request.context

    async def attempt(provider: Provider, target: Target) -> Completion:
        call = EmbeddingRequest(raw=raw, model=target.model, client_model=parsed.model)
        return await provider.embeddings(call)

    result = await call_targets(request, runtime, model, attempt)
    context.usage = result.usage
    return json_reply(result.body, result.status)


@get("/v1/models")
async def list_models(request: Request[Any, Any, Any]) -> Response[Any]:
    view = ApiRequest.of(request)
    holder = view.holder
    runtime = holder.runtime
    caller, _ = await admit(view, runtime)
    created = int(holder.started)
    names = runtime.router.model_names
    if caller.models:
        names = [n for n in names if n in caller.models]
    data = [
        {"id": n, "object": "model", "created": created, "owned_by": "fkllmproxy"} for n in names
    ]
    return json_reply(_encode({"object": "list", "data": data})).to_response()
