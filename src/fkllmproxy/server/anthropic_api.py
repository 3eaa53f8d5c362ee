"""The Anthropic-shaped API: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

Routing and fallback are the same as for chat completions. Per target:

* an Anthropic provider gets the client's bytes untouched (``model`` aside), with the
  client's ``anthropic-version`` and ``anthropic-beta``, and its answer (JSON or event
  stream) goes back untouched, as does a 4xx it refuses the request with (status and
  body);
* any other provider gets the request as a canonical conversation (decoded once, on
  the first such target, by ``translate/codecs/messages.py``) and its answer, read as
  canonical (``server/translated.py``), is written back as a Message or Anthropic
  events by the same codec.

Errors use Anthropic's shape (``server/errors.py`` renders it for these paths); a
failure after a stream has started ends it with an ``event: error`` frame.
``create_message`` is the handler core ``server/fast_routes.py`` serves from ASGI.
A model with ``cache = true`` goes through the exact cache (``server/cache.py``), one
with ``cache = "semantic"`` through the semantic cache (``server/semantic_cache.py``;
a hit is a Message or its events, ``server/semantic_shapes.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Request, Response, post

from fkllmproxy.auth import Caller
from fkllmproxy.config import ModelConfig, Target
from fkllmproxy.errors import BadRequest, FkllmError, UpstreamRejected
from fkllmproxy.providers import (
    ChatRequest,
    Completion,
    MessagesCall,
    MessagesProvider,
    Provider,
    StreamingCompletion,
)
from fkllmproxy.server.dispatch import accept, call_targets, consult_cache
from fkllmproxy.server.errors import error_body
from fkllmproxy.server.exchange import ApiRequest, Reply, json_reply, sse_reply
from fkllmproxy.server.openai_api import relay_stream
from fkllmproxy.server.runtime import Runtime
from fkllmproxy.server.semantic_shapes import (
    answer_of_message,
    answer_of_message_stream,
    message_body,
    message_events,
)
from fkllmproxy.server.translated import canonical_answer, joined
from fkllmproxy.translate._common import Unsupported, in_client_terms, provider_label
from fkllmproxy.translate.canonical import Conversation
from fkllmproxy.translate.codecs import messages
from fkllmproxy.translate.codecs.proofs import without_foreign_thinking
from fkllmproxy.translate.token_estimate import estimate_input_tokens
from fkllmproxy.wire.anthropic import count_tokens_decoder, messages_request_decoder

if TYPE_CHECKING:
    from fkllmproxy.server.semantic_cache import SemanticPlan

__all__ = ["count_tokens", "create_message"]

_encode = msgspec.json.Encoder().encode


def _error_event(error: FkllmError) -> bytes:
    return b"event: error\ndata: " + error_body(error, anthropic=True) + b"\n\n"


@dataclass(slots=True)
class _Answer:
    """What one target answered, and whether it is already in Anthropic's shape."""

    result: Completion | StreamingCompletion
    native: bool
    provider: str


class _Translation:
    """The request as a canonical conversation, decoded once when a target first needs
    it (``unsupported`` names that target in a refusal)."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.conversation: Conversation | None = None

    def for_provider(self, unsupported: Unsupported) -> Conversation:
        if self.conversation is None:
            self.conversation = messages.decode_request(self.raw, unsupported=unsupported)
        return self.conversation


def _as_sent(error: UpstreamRejected, context: Any) -> Reply:
    """Anthropic's own refusal of an Anthropic request: status and body as it sent them,
    so the client reacts as it would without the proxy."""
    context.error_code = error.code
    return json_reply(error.body, error.status, error.headers or None)


def _as_message(result: Completion, *, provider: str, client_model: str) -> bytes:
    """Another provider's whole answer as a Message."""
    answer = canonical_answer(result, provider=provider)
    return messages.encode_answer(answer, model=client_model, provider=provider)


def _message_stream(
    result: StreamingCompletion, *, provider: str, client_model: str
) -> StreamingCompletion:
    """Another provider's stream as Anthropic events."""
    encoder = messages.StreamEncoder(model=client_model, provider=provider)
    frames = joined(result, provider=provider, writer=encoder)
    return StreamingCompletion(
        chunks=frames, aclose=result.aclose, usage=result.usage, api="messages"
    )


async def create_message(request: ApiRequest) -> Reply:
    """``POST /v1/messages``."""
    runtime, caller, raw, parsed, model = await accept(request, messages_request_decoder)
    context = request.context
    stream = bool(parsed.stream)
    context.stream = stream
    beta = request.headers.get("anthropic-beta")
    version = request.headers.get("anthropic-version")
    translation = _Translation(raw)

    cache = runtime.cache
    plan, hit = await consult_cache(
        request, runtime, model, caller.name, raw, namespace="messages:" + model.name
    )
    if hit is not None:
        return hit
    semantic = None
    if model.cache == "semantic":
        semantic, hit = await _consult_semantic(request, runtime, model, caller, raw, parsed.model)
        if hit is not None:
            return hit
    headers = plan.headers if plan else semantic.headers if semantic else None

    # The router must see the provider's own result (it times a stream's first chunk
    # and falls back when it fails), so the attempt notes how to read it on the side.
    shape: dict[str, Any] = {}

    async def attempt(provider: Provider, target: Target) -> Completion | StreamingCompletion:
        label = provider_label(provider.name, provider.type)
        native = isinstance(provider, MessagesProvider)
        shape.update(native=native, provider=label)
        if isinstance(provider, MessagesProvider):
            call = MessagesCall(
                raw=without_foreign_thinking(raw),
                model=target.model,
                stream=stream,
                client_model=parsed.model,
                beta=beta,
                version=version,
            )
            return await provider.messages(call)
        conversation = translation.for_provider(Unsupported(provider.name, provider.type))
        if not target.reasoning and conversation.reasoning is not None:
            # The model takes no reasoning setting (a copy: other targets may).
            conversation = msgspec.structs.replace(conversation, reasoning=None)
        chat = ChatRequest(
            raw=None,
            model=target.model,
            stream=stream,
            client_model=parsed.model,
            include_usage=stream,
            conversation=conversation,
        )
        try:
            return await provider.chat(chat)
        except BadRequest as exc:
            raise in_client_terms(exc, conversation.paths) from None

    try:
        result = await call_targets(request, runtime, model, attempt, stream=stream)
    except UpstreamRejected as exc:
        if not shape.get("native") or not exc.body:
            raise
        return _as_sent(exc, context)
    answer = _Answer(result, native=shape["native"], provider=shape["provider"])
    if isinstance(result, Completion):
        context.usage = result.usage
        body = result.body
        if not answer.native:
            body = _as_message(result, provider=answer.provider, client_model=parsed.model)
        if cache is not None and plan is not None and plan.store_key and result.status == 200:
            await cache.store_body(plan.store_key, body, result.usage)
        if semantic is not None:
            await semantic.remember_body(result.status, body, result.usage, answer_of_message)
        return json_reply(body, result.status, headers)
    if not answer.native:
        result = _message_stream(result, provider=answer.provider, client_model=parsed.model)
    frames = relay_stream(result, context, error_frame=_error_event)
    if cache is not None and plan is not None and plan.store_key:
        frames = cache.recording(
            plan.store_key, frames, b'"type":"message_stop"', lambda: context.usage
        )
    if semantic is not None:
        frames = semantic.recording(frames, lambda: context.usage, answer_of_message_stream)
    return sse_reply(frames, headers)


async def _consult_semantic(
    request: ApiRequest,
    runtime: Runtime,
    model: ModelConfig,
    caller: Caller,
    raw: bytes,
    client_model: str,
) -> tuple[SemanticPlan | None, Reply | None]:
    """The semantic cache's plan, and a hit as a Message or its events (semantic_cache.py)."""
    from fkllmproxy.server.semantic_cache import consult_semantic, replayed  # numpy

    plan, hit = await consult_semantic(request, runtime, model, caller, raw, api="messages")
    if hit is None:
        return plan, None
    if request.context.stream:
        events = message_events(client_model, hit.answer, hit.tokens)
        return None, sse_reply(replayed(events), hit.headers)
    return None, json_reply(message_body(client_model, hit.answer, hit.tokens), 200, hit.headers)


@post("/v1/messages/count_tokens", status_code=200)
async def count_tokens(request: Request[Any, Any, Any]) -> Response[Any]:
    """Counted by the provider when it is Anthropic, else estimated (see token_estimate)."""
    view = ApiRequest.of(request)
    runtime, _, raw, parsed, model = await accept(view, count_tokens_decoder)
    beta = view.headers.get("anthropic-beta")
    version = view.headers.get("anthropic-version")

    async def attempt(provider: Provider, target: Target) -> Completion:
        if isinstance(provider, MessagesProvider):
            call = MessagesCall(
                raw=raw,
                model=target.model,
                client_model=parsed.model,
                beta=beta,
                version=version,
            )
            return await provider.count_tokens(call)
        return Completion(body=_encode({"input_tokens": estimate_input_tokens(parsed)}))

    try:
        result = await call_targets(view, runtime, model, attempt)
    except UpstreamRejected as exc:
        if not exc.body:  # only an Anthropic provider's refusal gets here with a body
            raise
        return _as_sent(exc, view.context).to_response()
    return json_reply(result.body, result.status).to_response()
