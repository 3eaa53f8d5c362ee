"""The Gemini API (``type = "gemini"``): Google's generativelanguage service.

Chat goes to ``/{version}/models/{model}:generateContent`` (``:streamGenerateContent
?alt=sse`` for streams), embeddings to ``:batchEmbedContents``; the key travels in the
``x-goog-api-key`` header, never in the URL, so it cannot leak into a log line. The
translation itself lives in ``fkllmproxy.translate``; this module only moves bytes.

``GeminiProvider`` is also the base of the Vertex AI provider, which speaks the same
JSON under other URLs and with OAuth2 tokens: it overrides ``model_path`` and
``auth_headers`` and its own embeddings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec

from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.errors import UpstreamError, UpstreamUnavailable
from fkllmproxy.providers.answers import (
    gemini_answer_metadata,
    not_an_answer,
    not_an_event_stream,
)
from fkllmproxy.providers.base import (
    ChatRequest,
    Completion,
    EmbeddingRequest,
    GeminiApiProvider,
    GeminiCall,
    StreamingCompletion,
    Usage,
)
from fkllmproxy.providers.exchange import UpstreamResponse
from fkllmproxy.providers.http import (
    TransportFactory,
    build_client,
    error_from_response,
    map_exception,
    post,
    read_error_body,
    whole_body,
)
from fkllmproxy.providers.spec import KeyOffer, ProviderSpec
from fkllmproxy.providers.sse import iter_frames, looks_like_sse
from fkllmproxy.translate._common import Unsupported
from fkllmproxy.translate.canonical import StreamEvent
from fkllmproxy.translate.canonical import Usage as CanonicalUsage
from fkllmproxy.translate.codecs import gemini as codec
from fkllmproxy.translate.gemini_embeddings import (
    embedding_inputs,
    from_gemini_embeddings,
    openai_embeddings,
    to_gemini_embeddings,
)
from fkllmproxy.wire.gemini import (
    UsageMetadata,
    decode_batch_embed_contents,
    decode_error,
    decode_response,
    encode,
)

__all__ = ["DEFAULT_BASE_URL", "GEMINI_MODELS", "SPEC", "GeminiProvider"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"

# The model names GOOGLE_API_KEY alone serves (client name -> upstream name).
GEMINI_MODELS = {
    "gemini-pro": "gemini-2.5-pro",
    "gemini-flash": "gemini-2.5-flash",
    "gemini-2.5-pro": "gemini-2.5-pro",
    "gemini-2.5-flash": "gemini-2.5-flash",
    "gemini-2.5-flash-lite": "gemini-2.5-flash-lite",
    "gemini-2.0-flash": "gemini-2.0-flash",
    "text-embedding-004": "text-embedding-004",
    "gemini-embedding-001": "gemini-embedding-001",
}

_JSON = {"content-type": "application/json"}
_SSE = {"alt": "sse"}
# Google answers 400 for some failures that are ours, not the client's: a bad key, or
# a region the API does not serve. Another target may work, so they are not passed on.
_NOT_THE_CLIENTS_FAULT = frozenset({"API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED"})


def _usage(metadata: UsageMetadata | None) -> Usage:
    return _counted(codec.usage_of(metadata))


def _counted(usage: CanonicalUsage) -> Usage:
    """The proxy's token counts of canonical usage (thinking counts as completion)."""
    return Usage(usage.input_tokens, usage.output_tokens, usage.cached_tokens)


def _event_data(frame: bytes) -> bytes | None:
    """The ``data`` of one SSE event (several ``data:`` lines join with newlines)."""
    lines = [line[5:].lstrip() for line in frame.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


class GeminiProvider(GeminiApiProvider):
    """Gemini through the Gemini API; ``base_url`` is the host root, ``api_version`` v1beta."""

    type = "gemini"
    default_version = "v1beta"
    gemini_methods = frozenset(
        {
            "generateContent",
            "streamGenerateContent",
            "countTokens",
            "embedContent",
            "batchEmbedContents",
        }
    )

    def __init__(self, config: ProviderConfig, transport: TransportFactory) -> None:
        self.name = config.name
        self.config = config
        self.unsupported = Unsupported(config.name, "Gemini")  # words every refusal
        self.version = config.api_version or self.default_version
        self.client = build_client(
            config, transport, base_url=self.base_url(config), headers=self.static_headers(config)
        )
        self._total = config.timeout_secs

    # --- what Vertex overrides ------------------------------------------------------

    def base_url(self, config: ProviderConfig) -> str:
        return (config.base_url or DEFAULT_BASE_URL).rstrip("/")

    def static_headers(self, config: ProviderConfig) -> dict[str, str]:
        return {"x-goog-api-key": config.api_key} if config.api_key else {}

    async def auth_headers(self) -> dict[str, str]:
        """Headers that change over time (Vertex's bearer token); none for an API key."""
        return {}

    def model_path(self, model: str, method: str) -> str:
        """``/v1beta/models/gemini-2.5-pro:generateContent``; tuned models keep their prefix."""
        name = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
        return f"/{self.version}/{name}:{method}"

    # --- transport ------------------------------------------------------------------

    async def renew_credentials(self, used: dict[str, str]) -> bool:
        """After a 401: drop the credentials ``used`` and say whether a retry may help."""
        return False

    async def _post(
        self, path: str, content: bytes, *, stream: bool, params: dict[str, str] | None = None
    ) -> UpstreamResponse:
        auth = await self.auth_headers()
        response = await self._send(path, content, auth, stream=stream, params=params)
        if response.status_code == 401 and await self.renew_credentials(auth):
            # A token can die before its time (revoked, rotated): one retry, fresh token.
            await response.aclose()
            auth = await self.auth_headers()
            response = await self._send(path, content, auth, stream=stream, params=params)
        if response.status_code >= 300:
            raise self._error(response, await read_error_body(response))
        return response

    async def _send(
        self,
        path: str,
        content: bytes,
        auth: dict[str, str],
        *,
        stream: bool,
        params: dict[str, str] | None,
    ) -> UpstreamResponse:
        headers = {**_JSON, **auth}
        return await post(
            self.client,
            path,
            content,
            provider=self.name,
            stream=stream,
            headers=headers,
            params=params,
        )

    def _error(self, response: UpstreamResponse, body: bytes) -> UpstreamError:
        if response.status_code == 400:
            try:
                info = decode_error(body).error
            except msgspec.DecodeError:
                info = None
            reasons = {d.reason for d in (info.details or [])} if info else set()
            if info and (reasons & _NOT_THE_CLIENTS_FAULT or info.status == "FAILED_PRECONDITION"):
                return UpstreamUnavailable(
                    f"provider {self.name!r} refused our credentials or region (400)",
                    provider=self.name,
                    upstream_status=400,
                )
        return error_from_response(response, body, self.name)

    async def _post_whole(self, path: str, content: bytes) -> bytes:
        answer = self._post(path, content, stream=False)
        return await whole_body(answer, total=self._total, provider=self.name)

    def _bad_answer(self) -> UpstreamUnavailable:
        return UpstreamUnavailable(
            f"provider {self.name!r} sent an answer that is not valid JSON of the expected shape",
            provider=self.name,
        )

    # --- chat -----------------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> Completion | StreamingCompletion:
        """Any client's conversation as a Gemini request; the answer in canonical form."""
        conversation = request.canonical(self.unsupported)
        payload = encode(
            codec.encode_request(conversation, model=request.model, provider=self.name)
        )
        if not request.stream:
            raw = await self._post_whole(self.model_path(request.model, "generateContent"), payload)
            answer = codec.decode_answer(raw, provider=self.name, model=request.model)
            usage = _counted(answer.usage) if answer.usage else Usage()
            return Completion(body=b"", usage=usage, api="canonical", answer=answer)
        path = self.model_path(request.model, "streamGenerateContent")
        response = await self._post(path, payload, stream=True, params=_SSE)
        usage = Usage()
        decoder = codec.StreamDecoder(provider=self.name, model=request.model)
        return StreamingCompletion(
            chunks=self._relay(response, decoder, usage),
            aclose=response.aclose,
            usage=usage,
            api="canonical",
        )

    async def _relay(
        self, response: UpstreamResponse, decoder: codec.StreamDecoder, usage: Usage
    ) -> AsyncIterator[StreamEvent]:
        try:
            async for frame in iter_frames(response.aiter_raw()):
                for event in decoder.feed(frame):
                    yield event
                if decoder.usage is not None:
                    counted = _counted(decoder.usage)
                    usage.prompt_tokens = counted.prompt_tokens
                    usage.completion_tokens = counted.completion_tokens
                    usage.cached_tokens = counted.cached_tokens
            for event in decoder.finish():
                yield event
        except httpx.HTTPError as exc:
            raise map_exception(exc, self.name) from exc

    # --- Gemini API clients: untouched ----------------------------------------------

    async def gemini(self, call: GeminiCall) -> Completion | StreamingCompletion:
        path = self.model_path(call.model, call.method)
        content = call.upstream_bytes()
        if not call.stream:
            body = await self._post_whole(path, content)
            return Completion(body=body, usage=self._native_usage(call.method, body))
        response = await self._post(path, content, stream=True, params=_SSE)
        usage = Usage()
        return StreamingCompletion(
            chunks=self._relay_native(response, usage), aclose=response.aclose, usage=usage
        )

    def _native_usage(self, method: str, body: bytes) -> Usage:
        """Usage of a whole Google answer (zeros when it reports none); a 200 whose body
        is not an answer to ``method`` (providers/answers.py) is a failed attempt."""
        try:
            return _usage(gemini_answer_metadata(method, body))
        except msgspec.DecodeError as exc:
            raise not_an_answer(self.name, exc) from None

    async def _relay_native(self, response: UpstreamResponse, usage: Usage) -> AsyncIterator[bytes]:
        """Google's SSE frames as they arrive, reading usage on the way; a stream that
        stops before a finish reason (and without an error event) raises, and so does
        one whose first frame is not an event stream, before anything is relayed."""
        complete = False
        started = False
        try:
            async for frame in iter_frames(response.aiter_raw()):
                if not started and frame.strip():
                    started = True
                    if not looks_like_sse(frame):
                        raise not_an_event_stream(self.name)
                if b'"usageMetadata"' in frame or b'"error"' in frame:
                    data = _event_data(frame)
                    try:
                        event = decode_response(data) if data else None
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        event = None
                    if event is not None and event.usage_metadata is not None:
                        counted = _usage(event.usage_metadata)
                        usage.prompt_tokens = counted.prompt_tokens
                        usage.completion_tokens = counted.completion_tokens
                        usage.cached_tokens = counted.cached_tokens
                    if event is not None and event.error is not None:
                        complete = True
                if b'"finishReason"' in frame or b'"blockReason"' in frame:
                    complete = True
                yield frame
        except httpx.HTTPError as exc:
            raise map_exception(exc, self.name) from exc
        if not complete:
            raise UpstreamUnavailable(
                f"provider {self.name!r} ended the stream before the answer was complete",
                provider=self.name,
            )

    # --- embeddings -----------------------------------------------------------------

    async def embeddings(self, request: EmbeddingRequest) -> Completion:
        body = request.body
        texts = embedding_inputs(body, provider=self.name)
        payload = encode(
            to_gemini_embeddings(texts, model=request.model, dimensions=body.get("dimensions"))
        )
        raw = await self._post_whole(self.model_path(request.model, "batchEmbedContents"), payload)
        try:
            answer = decode_batch_embed_contents(raw)
        except msgspec.DecodeError:
            raise self._bad_answer() from None
        vectors = from_gemini_embeddings(answer, expected=len(texts), provider=self.name)
        out = openai_embeddings(
            vectors,
            model=request.model,
            encoding_format=body.get("encoding_format"),
            prompt_tokens=0,
        )
        return Completion(body=out, usage=Usage())

    async def aclose(self) -> None:
        await self.client.aclose()


SPEC = ProviderSpec(
    type="gemini",
    build=GeminiProvider,
    key_env="GOOGLE_API_KEY",
    model_in_path=True,
    offers=(KeyOffer("GOOGLE_API_KEY", "gemini", GEMINI_MODELS),),
)
