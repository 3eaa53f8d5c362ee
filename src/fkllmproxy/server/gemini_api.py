"""Google's Gemini API: ``/v1beta/models/{model}:{method}`` and the model list.

As the google-genai SDKs and the Gemini CLI call it: ``:generateContent``,
``:streamGenerateContent`` (``?alt=sse`` for server-sent events, else one JSON array
streamed element by element, as Google answers), ``:countTokens``, ``:embedContent``,
``:batchEmbedContents``; ``GET /v1beta/models`` and ``GET /v1beta/models/{model}``.
The same methods answer under ``/v1/models/{model}:{method}`` (google-genai's default
API version). ``GET /v1/models`` is OpenAI's model list unless the request carries the
key the way Gemini clients do (``x-goog-api-key`` or ``?key=``): then it is Google's.
``{model}`` is a configured model name, with or without ``models/``.

Routing and fallback are those of every route. Per target:

* a Google provider (``gemini``, ``vertex``) that has the method gets the client's
  bytes untouched (the model goes in the URL) and its answer or events go back as
  they come; its own refusals go back verbatim;
* any other provider gets the request as a canonical conversation (decoded once, on
  the first such target, by ``translate/codecs/gemini.py``), which its adapter writes
  in its own API; its answer or events come back canonical (``server/translated.py``)
  and the same codec writes them in Google's shape. ``countTokens`` is estimated there
  and the embedding methods use the provider's embeddings.

A model with ``cache = "semantic"`` may be answered by the semantic cache on both
generate methods (``server/semantic_cache.py``), in Google's shape.

Errors are Google's shape (``server/errors.py``); a failure after a stream has started
ends it with an error element. ``GeminiRoutes`` is the ASGI router for these paths; it
sits between ``FastRoutes`` and Litestar and hands every other path on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import msgspec

from fkllmproxy.auth import Caller
from fkllmproxy.config import ModelConfig, Target
from fkllmproxy.errors import BadRequest, FkllmError, NotFound, Unauthorized, UpstreamRejected
from fkllmproxy.providers import (
    ChatRequest,
    Completion,
    EmbeddingRequest,
    GeminiApiProvider,
    GeminiCall,
    Provider,
    StreamingCompletion,
)
from fkllmproxy.server.body import decode_body, read_body
from fkllmproxy.server.budget import reserve
from fkllmproxy.server.dispatch import call_targets, consult_cache
from fkllmproxy.server.errors import google_error_body, reply_for_exception
from fkllmproxy.server.exchange import ApiRequest, Receive, Reply, json_reply, sse_reply
from fkllmproxy.server.fast_routes import Send, send_reply
from fkllmproxy.server.gate import admit
from fkllmproxy.server.openai_api import relay_stream
from fkllmproxy.server.runtime import Runtime, RuntimeHolder
from fkllmproxy.server.semantic_shapes import (
    answer_of_gemini,
    answer_of_gemini_stream,
    gemini_body,
    gemini_events,
)
from fkllmproxy.server.translated import canonical_answer, client_frames
from fkllmproxy.translate._common import in_client_terms, provider_label
from fkllmproxy.translate.canonical import Conversation
from fkllmproxy.translate.codecs import gemini as codec
from fkllmproxy.translate.codecs.proofs import without_foreign_thoughts
from fkllmproxy.translate.token_estimate import estimate_gemini_tokens
from fkllmproxy.wire.gemini_inbound import (
    EmbedContentBody,
    InContent,
    batch_embed_decoder,
    count_tokens_decoder,
    embed_content_decoder,
    generate_content_decoder,
)

if TYPE_CHECKING:
    from fkllmproxy.server.semantic_cache import SemanticPlan

__all__ = ["METHODS", "GeminiRoutes", "parse_path"]

_encode = msgspec.json.Encoder().encode
METHODS = (
    "generateContent",
    "streamGenerateContent",
    "countTokens",
    "embedContent",
    "batchEmbedContents",
)
_GENERATE = ("generateContent", "streamGenerateContent")
# Chat has no top_k: for the providers that speak it Gemini's topK is a sampling hint left out.
_NO_TOP_K = frozenset({"openai", "azure", "mock"})
_MISSING_KEY = (
    "Missing API key: send 'x-goog-api-key: <key>' (GEMINI_API_KEY for the Gemini CLI), "
    "the 'key' query parameter, or 'Authorization: Bearer <key>'."
)


@dataclass(frozen=True, slots=True)
class _Route:
    """A parsed Gemini API path: ``name`` is None for the list, ``method`` None for a model."""

    version: str
    name: str | None
    method: str | None


def parse_path(path: str) -> _Route | None:
    """The Gemini route of ``path``, or None when it is not one (``/v1/...`` besides models)."""
    if path.startswith("/v1beta/"):
        version, rest = "v1beta", path[7:]
    elif path == "/v1/models" or path.startswith("/v1/models/"):
        version, rest = "v1", path[3:]
    else:
        return None
    if rest in ("/models", "/models/"):
        return _Route(version, None, None)
    if not rest.startswith("/models/"):
        return _Route(version, "", None)  # some other Gemini API resource: not served
    name = rest[8:]
    method = None
    if ":" in name:
        name, _, method = name.rpartition(":")
    return _Route(version, name.removeprefix("models/"), method)


def _query_key(scope: dict[str, Any]) -> str | None:
    query = scope.get("query_string") or b""
    if b"key=" not in query:
        return None
    values = parse_qs(query.decode("latin-1")).get("key")
    return values[0] if values else None


def _wants_sse(scope: dict[str, Any]) -> bool:
    query = scope.get("query_string") or b""
    return b"alt=sse" in query


class GeminiRoutes:
    """ASGI app: the Gemini API's paths are answered here, the rest by ``app``."""

    __slots__ = ("_holder", "app")

    def __init__(self, app: Any, holder: RuntimeHolder) -> None:
        self.app = app
        self._holder = holder

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        route = parse_path(scope["path"]) if scope["type"] == "http" else None
        key = _query_key(scope) if route is not None else None
        if route is not None and route.version == "v1" and route.method is None:
            # /v1/models[/{id}] is OpenAI's unless the key came the way Gemini clients send it.
            google = key is not None or any(n == b"x-goog-api-key" for n, _ in scope["headers"])
            if not google:
                route = None
        if route is None:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        scope["path_template"] = _template(route)
        context = scope["fkllm"]
        request = ApiRequest(scope, receive, self._holder)
        if key is not None and "x-goog-api-key" not in request.headers:
            request.headers["x-goog-api-key"] = key
        try:
            reply = await _handle(request, scope["method"], route)
        except Exception as exc:
            if isinstance(exc, Unauthorized) and exc.message.startswith("Missing API key"):
                exc.message = _MISSING_KEY
            reply = reply_for_exception(exc, path, context, google=True)
        await send_reply(reply, receive, send, context, path)


def _template(route: _Route) -> str:
    """The metrics' route label: bounded, whatever model names clients put in paths."""
    base = f"/{route.version}/models"
    if route.name is None:
        return base
    if route.name == "":
        return f"/{route.version}/unmatched"
    if route.method in METHODS:
        return f"{base}/{{model}}:{route.method}"
    return f"{base}/{{model}}" if route.method is None else f"/{route.version}/unmatched"


def _not_found(message: str) -> NotFound:
    error = NotFound(message)
    error.code = "route_not_found"
    return error


async def _handle(request: ApiRequest, http_method: str, route: _Route) -> Reply:
    path = request.path
    if route.name == "" or (route.method is not None and route.method not in METHODS):
        raise _not_found(f"No Gemini API method at {path}; this proxy serves {', '.join(METHODS)}.")
    if route.method is None:
        if http_method != "GET":
            raise _not_found(f"No route for {http_method} {path}; use GET.")
        if route.name is None:
            return await _list_models(request)
        return await _get_model(request, route.name)
    if http_method != "POST":
        raise _not_found(f"No route for {http_method} {path}; use POST.")
    assert route.name is not None
    if route.method in _GENERATE:
        return await _generate(request, route.name, route.method)
    if route.method == "countTokens":
        return await _count_tokens(request, route.name)
    return await _embed(request, route.name, route.method)


# ---------------------------------------------------------------- admission


async def _accept(
    request: ApiRequest, name: str, decoder: msgspec.json.Decoder[Any]
) -> tuple[Runtime, Caller, bytes, Any, ModelConfig]:
    """As ``dispatch.accept``, with the model taken from the path instead of the body."""
    runtime = request.holder.runtime
    caller, context = await admit(request, runtime)
    server = runtime.config.server
    raw = await read_body(request, server.max_request_size, server.body_timeout_secs)
    parsed = decode_body(raw, decoder)
    context.model = name
    model = runtime.router.resolve(name)
    caller.check_model(model.name)
    if caller.limits is not None:
        await reserve(runtime.budgets, caller, context, model, raw)
    return runtime, caller, raw, parsed, model


@dataclass(slots=True)
class _Shape:
    """How the answer of the target that answered must be read."""

    native: bool = False
    label: str = ""


# ---------------------------------------------------------------- generateContent


async def _generate(request: ApiRequest, name: str, method: str) -> Reply:
    runtime, caller, raw, _, model = await _accept(request, name, generate_content_decoder)
    context = request.context
    stream = method == "streamGenerateContent"
    context.stream = stream
    sse = _wants_sse(request.scope)
    plan = None
    if not stream:
        plan, hit = await consult_cache(
            request, runtime, model, caller.name, raw, namespace="gemini:" + model.name
        )
        if hit is not None:
            return hit
    semantic = None
    if model.cache == "semantic":
        semantic, hit = await _consult_semantic(request, runtime, model, caller, raw, name, sse)
        if hit is not None:
            return hit
    headers = plan.headers if plan else semantic.headers if semantic else None
    shape = _Shape()
    decoded: Conversation | None = None

    async def attempt(provider: Provider, target: Target) -> Completion | StreamingCompletion:
        nonlocal decoded
        shape.label = provider_label(provider.name, provider.type)
        shape.native = isinstance(provider, GeminiApiProvider) and method in provider.gemini_methods
        if isinstance(provider, GeminiApiProvider) and shape.native:
            call = GeminiCall(
                raw=without_foreign_thoughts(raw),
                model=target.model,
                method=method,
                stream=stream,
                client_model=name,
            )
            return await _native(provider, call)
        if decoded is None:
            decoded = codec.decode_request(raw, model=name, stream=stream)
        conversation = decoded
        if provider.type in _NO_TOP_K and conversation.top_k is not None:
            conversation = msgspec.structs.replace(conversation, top_k=None)
        request_for = ChatRequest(
            raw=None,
            model=target.model,
            stream=stream,
            client_model=name,
            include_usage=stream,
            conversation=conversation,
        )
        try:
            return await provider.chat(request_for)
        except BadRequest as exc:
            raise in_client_terms(exc, conversation.paths) from None

    result = await call_targets(request, runtime, model, attempt, stream=stream)
    if isinstance(result, Completion):
        context.usage = result.usage
        answer = result.body
        if not shape.native and result.status == 200:
            canonical = canonical_answer(result, provider=shape.label)
            answer = codec.encode_answer(canonical, model=name, provider=shape.label)
        cache = runtime.cache
        if cache is not None and plan is not None and plan.store_key and result.status == 200:
            await cache.store_body(plan.store_key, answer, result.usage)
        if semantic is not None:
            await semantic.remember_body(result.status, answer, result.usage, answer_of_gemini)
        return json_reply(answer, result.status, headers)
    if shape.native:
        events = _native_events(result.chunks)
    else:
        events = _translated_events(result, shape.label, name)
    framing = _Framing(sse)
    relayed = StreamingCompletion(
        chunks=framing.frames(events), aclose=result.aclose, usage=result.usage
    )
    frames = relay_stream(relayed, context, error_frame=framing.error_frame)
    if not sse:
        frames = _closing(frames, framing)
    if semantic is not None:
        frames = semantic.recording(frames, lambda: context.usage, answer_of_gemini_stream)
    return _stream_reply(frames, sse, headers)


def _stream_reply(frames: AsyncIterator[bytes], sse: bool, headers: dict[str, str] | None) -> Reply:
    if sse:
        return sse_reply(frames, headers)
    return Reply(200, frames, headers, content_type="application/json")


async def _consult_semantic(
    request: ApiRequest,
    runtime: Runtime,
    model: ModelConfig,
    caller: Caller,
    raw: bytes,
    name: str,
    sse: bool,
) -> tuple[SemanticPlan | None, Reply | None]:
    """The semantic cache's plan, and a hit as a response or its stream (semantic_cache.py)."""
    from fkllmproxy.server.semantic_cache import consult_semantic, replayed  # numpy

    plan, hit = await consult_semantic(request, runtime, model, caller, raw, api="gemini")
    if hit is None:
        return plan, None
    if not request.context.stream:
        return None, json_reply(gemini_body(name, hit.answer, hit.tokens), 200, hit.headers)
    framing = _Framing(sse)
    events = [framing.frame(event) for event in gemini_events(name, hit.answer, hit.tokens)]
    return None, _stream_reply(replayed(b"".join([*events, framing.close()])), sse, hit.headers)


async def _native(
    provider: GeminiApiProvider, call: GeminiCall
) -> Completion | StreamingCompletion:
    try:
        return await provider.gemini(call)
    except UpstreamRejected as exc:
        exc.same_api = True  # Google's own refusal, in the shape the client reads
        raise


async def _native_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The JSON of each event of a Google SSE stream (frames come whole from the provider)."""
    async for frame in chunks:
        lines = [line[5:].strip() for line in frame.split(b"\n") if line.startswith(b"data:")]
        if lines:
            yield b"\n".join(lines)


async def _translated_events(
    result: StreamingCompletion, label: str, model: str
) -> AsyncIterator[bytes]:
    """Another provider's stream as Google's events (unframed), through the canonical one."""
    encoder = codec.StreamEncoder(model=model, provider=label)
    async for events in client_frames(result, provider=label, writer=encoder):
        for out in events:
            yield out


class _Framing:
    """Events framed as SSE (``alt=sse``) or as the elements of one streamed JSON array."""

    def __init__(self, sse: bool) -> None:
        self.sse = sse
        self.opened = False

    def frame(self, event: bytes) -> bytes:
        if self.sse:
            return b"data: " + event + b"\r\n\r\n"
        if self.opened:
            return b",\r\n" + event
        self.opened = True
        return b"[" + event

    async def frames(self, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for event in events:
            yield self.frame(event)

    def error_frame(self, error: FkllmError) -> bytes:
        return self.frame(google_error_body(error))

    def close(self) -> bytes:
        return b"" if self.sse else (b"]" if self.opened else b"[]")


async def _closing(frames: AsyncIterator[bytes], framing: _Framing) -> AsyncIterator[bytes]:
    """The array's frames, then its closing bracket once the last element is out."""
    try:
        async for frame in frames:
            yield frame
        yield framing.close()
    finally:
        aclose = getattr(frames, "aclose", None)
        if aclose is not None:
            await aclose()


# ---------------------------------------------------------------- countTokens


async def _count_tokens(request: ApiRequest, name: str) -> Reply:
    runtime, _, raw, parsed, model = await _accept(request, name, count_tokens_decoder)
    if parsed.contents is None and parsed.generate_content_request is None:
        raise BadRequest("Missing required field 'contents'.", param="contents")

    async def attempt(provider: Provider, target: Target) -> Completion:
        if isinstance(provider, GeminiApiProvider) and "countTokens" in provider.gemini_methods:
            call = GeminiCall(raw=raw, model=target.model, method="countTokens", client_model=name)
            result = await _native(provider, call)
            assert isinstance(result, Completion)
            return result
        inner = parsed.generate_content_request
        contents = parsed.contents if parsed.contents is not None else inner.contents
        total = estimate_gemini_tokens(contents, inner)
        return Completion(body=_encode({"totalTokens": total}))

    result = await call_targets(request, runtime, model, attempt)
    return json_reply(result.body, result.status)


# ---------------------------------------------------------------- embeddings


def _embed_text(content: InContent, where: str, provider: str) -> str:
    texts = []
    for j, part in enumerate(content.parts):
        if part.text is None:
            raise BadRequest(
                f"'{where}.parts[{j}]' is not supported by provider {provider!r} "
                "(only text is embedded there).",
                param=f"{where}.parts[{j}]",
            )
        texts.append(part.text)
    return "\n".join(texts)


def _openai_embedding_input(
    items: list[EmbedContentBody], where: str, provider: str, model: str
) -> dict[str, Any]:
    texts = []
    dimensions = None
    for i, item in enumerate(items):
        here = where.format(i=i)
        for field, value in (("taskType", item.task_type), ("title", item.title)):
            if value is not None:
                raise BadRequest(
                    f"'{here}{field}' is not supported by provider {provider!r}.",
                    param=here + field,
                )
        if item.output_dimensionality is not None:
            if dimensions not in (None, item.output_dimensionality):
                raise BadRequest(
                    f"'{here}outputDimensionality' must be the same for every request "
                    f"with provider {provider!r}.",
                    param=here + "outputDimensionality",
                )
            dimensions = item.output_dimensionality
        texts.append(_embed_text(item.content, here + "content", provider))
    body: dict[str, Any] = {"model": model, "input": texts, "encoding_format": "float"}
    if dimensions is not None:
        body["dimensions"] = dimensions
    return body


def _vectors(body: bytes, provider: str) -> list[dict[str, Any]]:
    data = msgspec.json.decode(body)
    items = sorted(data.get("data") or (), key=lambda item: item.get("index", 0))
    return [{"values": item.get("embedding") or []} for item in items]


async def _embed(request: ApiRequest, name: str, method: str) -> Reply:
    single = method == "embedContent"
    decoder = embed_content_decoder if single else batch_embed_decoder
    runtime, _, raw, parsed, model = await _accept(request, name, decoder)
    context = request.context
    items: list[EmbedContentBody] = [parsed] if single else list(parsed.requests)
    if not items:
        raise BadRequest(
            "Invalid value for 'requests': expected at least one request.", param="requests"
        )

    async def attempt(provider: Provider, target: Target) -> Completion:
        if isinstance(provider, GeminiApiProvider) and method in provider.gemini_methods:
            call = GeminiCall(raw=raw, model=target.model, method=method, client_model=name)
            result = await _native(provider, call)
            assert isinstance(result, Completion)
            return result
        label = provider_label(provider.name, provider.type)
        where = "" if single else "requests[{i}]."
        openai = _openai_embedding_input(items, where, label, target.model)
        embedding = EmbeddingRequest(raw=b"", model=target.model, client_model=name, parsed=openai)
        result = await provider.embeddings(embedding)
        if result.status != 200:
            return result
        vectors = _vectors(result.body, label)
        answer = {"embedding": vectors[0]} if single and vectors else {"embeddings": vectors}
        return Completion(body=_encode(answer), usage=result.usage)

    result = await call_targets(request, runtime, model, attempt)
    context.usage = result.usage
    return json_reply(result.body, result.status)


# ---------------------------------------------------------------- models

_MODEL_METHODS = [
    "generateContent",
    "streamGenerateContent",
    "countTokens",
    "embedContent",
    "batchEmbedContents",
]


def _model_entry(name: str) -> dict[str, Any]:
    return {
        "name": f"models/{name}",
        "baseModelId": name,
        "version": "001",
        "displayName": name,
        "description": f"{name}, served by fkllmproxy",
        "supportedGenerationMethods": _MODEL_METHODS,
    }


async def _list_models(request: ApiRequest) -> Reply:
    runtime = request.holder.runtime
    caller, _ = await admit(request, runtime)
    names = runtime.router.model_names
    if caller.models:
        names = [n for n in names if n in caller.models]
    return json_reply(_encode({"models": [_model_entry(n) for n in names]}))


async def _get_model(request: ApiRequest, name: str) -> Reply:
    runtime = request.holder.runtime
    caller, context = await admit(request, runtime)
    context.model = name
    model = runtime.router.resolve(name)
    caller.check_model(model.name)
    return json_reply(_encode(_model_entry(model.name)))
