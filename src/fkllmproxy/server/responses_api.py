"""The OpenAI Responses API: ``POST /v1/responses`` and ``GET /v1/responses/{id}``.

Routing and fallback are the same as for chat completions. Per target:

* an ``openai`` / ``azure`` provider with the Responses API (``providers/responses.py``)
  gets the client's bytes (model aside) and its answer, JSON or events, goes back
  untouched;
* any other provider gets the request decoded into the canonical conversation
  (``translate/codecs/responses.py``, done once) and written in its own API by its
  adapter; its answer, read back into the canonical model (``server/translated.py``),
  is written as a ``response`` object or typed Responses events by the same codec.

``store`` (default true) keeps the answer in the state backend
(``state/response_store.py``) for the key that made it: ``previous_response_id`` then
continues the conversation (the stored items are put before the new input; a response
that the same pass-through provider made is left for it to continue itself), and the GET
returns it. An unknown, expired or foreign id is a 400 naming ``previous_response_id``
(404 for the GET). A model with ``cache = "semantic"`` may be answered by the semantic
cache (``server/semantic_cache.py``): a hit is a new response, kept like any other.
Errors use OpenAI's shape; a failure after a stream started ends it
with ``response.failed`` (translated) or an ``error`` event (passed through).
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Request, Response, get

from fkllmproxy.auth import Caller
from fkllmproxy.config import ModelConfig, Target
from fkllmproxy.errors import BadRequest, FkllmError, NotFound
from fkllmproxy.providers import ChatRequest, Completion, Provider, StreamingCompletion
from fkllmproxy.providers.responses import ResponsesCall, decode_object, has_responses_api
from fkllmproxy.server.dispatch import accept, call_targets, consult_cache
from fkllmproxy.server.exchange import ApiRequest, Reply, json_reply, sse_reply
from fkllmproxy.server.gate import admit
from fkllmproxy.server.openai_api import relay_stream
from fkllmproxy.server.runtime import Runtime
from fkllmproxy.server.semantic_answers import PlainAnswer
from fkllmproxy.server.semantic_shapes import (
    answer_of_response,
    answer_of_response_stream,
    response_body,
    response_events,
)
from fkllmproxy.server.translated import canonical_answer, client_frames
from fkllmproxy.state import StateBackend
from fkllmproxy.state.response_store import ResponseStore, StoredResponse
from fkllmproxy.translate._common import in_client_terms, provider_label
from fkllmproxy.translate.canonical import Conversation
from fkllmproxy.translate.codecs import responses
from fkllmproxy.wire.responses import ResponsesRequest, responses_request_decoder

if TYPE_CHECKING:
    from fkllmproxy.server.semantic_cache import SemanticPlan

__all__ = ["create_response", "retrieve_response"]

_encode = msgspec.json.Encoder().encode
_stores: weakref.WeakKeyDictionary[StateBackend, ResponseStore] = weakref.WeakKeyDictionary()


class _Id(msgspec.Struct):
    id: str = ""


_id_decoder = msgspec.json.Decoder(_Id)
_COMPLETED = b'"response.completed"'


def _store(runtime: Runtime) -> ResponseStore:
    """The store on the runtime's state backend (one per backend, kept across reloads)."""
    store = _stores.get(runtime.state)
    if store is None:
        store = _stores[runtime.state] = ResponseStore(runtime.state)
    return store


def _not_found(response_id: str) -> BadRequest:
    error = BadRequest(
        f"Previous response with id '{response_id}' not found.", param="previous_response_id"
    )
    error.code = "previous_response_not_found"
    return error


class _Conversation:
    """The request as plain data and the whole conversation, worked out once when needed."""

    def __init__(self, raw: bytes, previous: StoredResponse | None) -> None:
        self.raw = raw
        self.previous = previous
        self._data: dict[str, Any] | None = None
        self._items: list[Any] | None = None
        self._canonical: Conversation | None = None

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = decode_object(self.raw)
        return self._data

    def items(self) -> list[Any]:
        """Every input item: the stored conversation and its output first, then the new input."""
        if self._items is None:
            items: list[Any] = []
            if self.previous is not None:
                items.extend(msgspec.json.decode(self.previous.history))
                response = msgspec.json.decode(self.previous.response)
                items.extend(response.get("output") or [])
            items.extend(responses.input_items(self.data.get("input")))
            self._items = items
        return self._items

    def expanded(self) -> dict[str, Any]:
        """The request with the stored conversation spelled out, for a provider that lacks it."""
        body = {**self.data, "input": self.items()}
        body.pop("previous_response_id", None)
        return body

    def canonical_for(self, provider: str) -> Conversation:
        """The whole conversation decoded (once; ``provider`` is named in its 400s)."""
        if self._canonical is None:
            self._canonical = responses.decode_request(self.expanded(), provider=provider)
        return self._canonical


async def create_response(request: ApiRequest) -> Reply:
    """``POST /v1/responses``."""
    runtime, caller, raw, parsed, model = await accept(request, responses_request_decoder)
    context = request.context
    stream = bool(parsed.stream)
    context.stream = stream
    store = _store(runtime)
    previous: StoredResponse | None = None
    if parsed.previous_response_id is not None:
        previous = await store.load(parsed.previous_response_id, caller.name)
        if previous is None:
            raise _not_found(parsed.previous_response_id)
    conversation = _Conversation(raw, previous)

    cache = runtime.cache
    plan, hit = await consult_cache(
        request, runtime, model, caller.name, raw, namespace="responses:" + model.name
    )
    if hit is not None:
        return hit
    semantic = None
    if model.cache == "semantic":
        semantic, hit = await _consult_semantic(
            request,
            runtime,
            model,
            caller,
            parsed,
            _Keeper(runtime, store, caller.name, parsed, conversation, {}),
        )
        if hit is not None:
            return hit
    headers = plan.headers if plan else semantic.headers if semantic else None

    shape: dict[str, Any] = {}

    async def attempt(provider: Provider, target: Target) -> Completion | StreamingCompletion:
        label = provider_label(provider.name, provider.type)
        if has_responses_api(provider):
            shape.update(native=True, provider=provider.name)
            same = previous is None or previous.provider == provider.name
            body = None if same else conversation.expanded()
            call = ResponsesCall(raw, target.model, stream, parsed.model, body)
            return await provider.responses(call)  # type: ignore[attr-defined]
        shape.update(native=False, provider=label)
        canonical = conversation.canonical_for(label)
        chat = ChatRequest(
            raw=None,
            model=target.model,
            stream=stream,
            client_model=parsed.model,
            include_usage=stream,
            conversation=canonical,
        )
        try:
            return await provider.chat(chat)
        except BadRequest as exc:
            named = in_client_terms(exc, canonical.paths)
            raise responses.in_responses_terms(named) from None

    result = await call_targets(request, runtime, model, attempt, stream=stream)
    keep = _Keeper(runtime, store, caller.name, parsed, conversation, shape)
    if isinstance(result, Completion):
        context.usage = result.usage
        body = result.body
        if not shape["native"]:
            answer = canonical_answer(result, provider=shape["provider"])
            body = responses.encode_answer(
                answer, model=parsed.model, request=conversation.data, provider=shape["provider"]
            )
        if result.status == 200:
            await keep.save(body)
            if cache is not None and plan is not None and plan.store_key:
                await cache.store_body(plan.store_key, body, result.usage)
        if semantic is not None:
            await semantic.remember_body(result.status, body, result.usage, _answer_of_body)
        return json_reply(body, result.status, headers)
    if shape["native"]:
        frames = relay_stream(
            StreamingCompletion(
                _native_events(result.chunks, keep), aclose=result.aclose, usage=result.usage
            ),
            context,
            error_frame=keep.error_event,
        )
    else:
        encoder = responses.StreamEncoder(
            provider=shape["provider"], model=parsed.model, request=conversation.data
        )
        events = _translated_events(result, encoder, keep, shape["provider"])
        frames = relay_stream(
            StreamingCompletion(events, aclose=result.aclose, usage=result.usage),
            context,
            error_frame=encoder.failed,
        )
    if cache is not None and plan is not None and plan.store_key:
        frames = cache.recording(plan.store_key, frames, _COMPLETED, lambda: context.usage)
    if semantic is not None:
        frames = semantic.recording(frames, lambda: context.usage, answer_of_response_stream)
    return sse_reply(frames, headers)


def _answer_of_body(body: bytes) -> PlainAnswer | None:
    try:
        return answer_of_response(msgspec.json.decode(body))
    except (msgspec.DecodeError, RecursionError):
        return None


async def _consult_semantic(
    request: ApiRequest,
    runtime: Runtime,
    model: ModelConfig,
    caller: Caller,
    parsed: ResponsesRequest,
    keep: _Keeper,
) -> tuple[SemanticPlan | None, Reply | None]:
    """The semantic cache's plan, and a hit as a ``response`` or its events, kept (unless
    ``store: false``) like any answer so ``previous_response_id`` can continue from it."""
    from fkllmproxy.server.semantic_cache import consult_semantic, replayed  # numpy

    raw = keep.conversation.raw
    plan, hit = await consult_semantic(request, runtime, model, caller, raw, api="responses")
    if hit is None:
        return plan, None
    data = keep.conversation.data
    if request.context.stream:
        events, response = response_events(parsed.model, data, hit.answer, hit.tokens)
        await keep.save(_encode(response))
        return None, sse_reply(replayed(events), hit.headers)
    body = response_body(parsed.model, data, hit.answer, hit.tokens)
    await keep.save(body)
    return None, json_reply(body, 200, hit.headers)


class _Keeper:
    """Saves a finished response for its key, unless the request said ``store: false``."""

    def __init__(
        self,
        runtime: Runtime,
        store: ResponseStore,
        owner: str,
        parsed: ResponsesRequest,
        conversation: _Conversation,
        shape: dict[str, Any],
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.owner = owner
        self.enabled = parsed.store is not False
        self.conversation = conversation
        self.shape = shape
        self.events = 0  # frames relayed, for the sequence number of an error event

    async def save(self, response: bytes) -> None:
        if not self.enabled:
            return
        try:
            response_id = _id_decoder.decode(response).id
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        if not response_id:
            return
        provider = self.shape["provider"] if self.shape.get("native") else None
        record = StoredResponse(
            owner=self.owner,
            response=msgspec.Raw(response),
            history=msgspec.Raw(_encode(self.conversation.items())),
            provider=provider,
        )
        settings = self.runtime.config.responses
        await self.store.save(
            response_id, record, ttl_secs=settings.ttl_secs, max_bytes=settings.max_stored_bytes
        )

    def error_event(self, error: FkllmError) -> bytes:
        """The ``error`` event that ends a passed-through stream broken after its start."""
        payload = {
            "type": "error",
            "sequence_number": self.events,
            "code": error.code,
            "message": error.message,
            "param": error.param,
        }
        return b"\n\n" + responses.event_frame(payload)


class _Completed(msgspec.Struct):
    response: msgspec.Raw | None = None


_completed_decoder = msgspec.json.Decoder(_Completed)


async def _native_events(chunks: AsyncIterator[bytes], keep: _Keeper) -> AsyncIterator[bytes]:
    """The provider's bytes as they come; its final ``response`` is kept when storing."""
    pending = b""
    async for chunk in chunks:
        yield chunk
        keep.events += chunk.count(b"\n\n")
        if not keep.enabled:
            continue
        pending += chunk
        if b"\n\n" not in pending:
            continue
        *frames, pending = pending.replace(b"\r\n", b"\n").split(b"\n\n")
        for frame in frames:
            if _COMPLETED in frame:
                await _keep_completed(frame, keep)


async def _keep_completed(frame: bytes, keep: _Keeper) -> None:
    for line in frame.split(b"\n"):
        if line.startswith(b"data:"):
            try:
                event = _completed_decoder.decode(line[5:].strip())
            except (msgspec.DecodeError, msgspec.ValidationError):
                return
            if event.response is not None:
                await keep.save(bytes(event.response))
            return


async def _translated_events(
    result: StreamingCompletion, encoder: responses.StreamEncoder, keep: _Keeper, provider: str
) -> AsyncIterator[bytes]:
    """The Responses events of each canonical event as soon as it came, sent together in
    one write (one event becomes several frames; one send each would cost more than
    writing them); the finished response is kept."""
    async for frames in client_frames(result, provider=provider, writer=encoder):
        yield b"".join(frames)
    await keep.save(_encode(encoder.response))


@get("/v1/responses/{response_id:str}")
async def retrieve_response(request: Request[Any, Any, Any], response_id: str) -> Response[Any]:
    """``GET /v1/responses/{id}``: a stored response, for the key that created it."""
    view = ApiRequest.of(request)
    runtime = view.holder.runtime
    caller, _ = await admit(view, runtime)
    record = await _store(runtime).load(response_id, caller.name)
    if record is None:
        error = NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        error.code = "response_not_found"
        raise error
    return json_reply(bytes(record.response)).to_response()
