"""Cohere (``type = "cohere"``): its v2 API at ``https://api.cohere.com``.

Chat goes to ``POST /v2/chat`` (``stream: true`` for server-sent events), embeddings
to ``POST /v2/embed``; the key travels as ``Authorization: Bearer``. The translation
itself lives in ``fkllmproxy.translate`` (the ``cohere`` codec, which answers in the
canonical model, and ``cohere_embeddings``); this module only moves bytes.

Cohere's statuses beyond the common ones: 402 (the account's billing) and 498 (an
invalid token) are ours to fix, not the client's, so another target is tried; 422 is
the request's own fault and goes back to the client like a 400.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec

from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.errors import UpstreamError, UpstreamUnavailable
from fkllmproxy.providers.answers import not_an_answer, not_an_event_stream
from fkllmproxy.providers.base import (
    ChatRequest,
    Completion,
    EmbeddingRequest,
    Provider,
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
from fkllmproxy.translate.canonical import Finish, StreamEvent
from fkllmproxy.translate.canonical import Usage as CanonicalUsage
from fkllmproxy.translate.codecs import cohere
from fkllmproxy.translate.cohere_embeddings import (
    cohere_embedding_inputs,
    from_cohere_embed,
    to_cohere_embed,
)
from fkllmproxy.translate.gemini_embeddings import openai_embeddings
from fkllmproxy.wire.cohere import decode_embed, encode

__all__ = ["DEFAULT_BASE_URL", "SPEC", "CohereProvider"]

DEFAULT_BASE_URL = "https://api.cohere.com"

_JSON = {"content-type": "application/json"}
# Statuses Cohere answers for our account or key, not the client's request.
_NOT_THE_CLIENTS_FAULT = {402: "payment required", 498: "invalid token"}


def _fill(usage: Usage, reported: CanonicalUsage | None) -> None:
    if reported is not None:
        usage.prompt_tokens = reported.input_tokens
        usage.completion_tokens = reported.output_tokens
        usage.cached_tokens = reported.cached_tokens


class CohereProvider(Provider):
    """Cohere's chat and embed models; ``base_url`` is the host root."""

    type = "cohere"

    def __init__(self, config: ProviderConfig, transport: TransportFactory) -> None:
        self.name = config.name
        self.config = config
        self.unsupported = Unsupported(config.name, "Cohere")  # words every refusal
        base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        headers = {"authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self.client = build_client(config, transport, base_url=base_url, headers=headers)
        self._total = config.timeout_secs

    # --- transport ------------------------------------------------------------------

    async def _post(self, path: str, content: bytes, *, stream: bool) -> UpstreamResponse:
        response = await post(
            self.client, path, content, provider=self.name, stream=stream, headers=_JSON
        )
        if response.status_code >= 300:
            raise self._error(response, await read_error_body(response))
        return response

    def _error(self, response: UpstreamResponse, body: bytes) -> UpstreamError:
        reason = _NOT_THE_CLIENTS_FAULT.get(response.status_code)
        if reason is not None:
            return UpstreamUnavailable(
                f"provider {self.name!r} answered {response.status_code} ({reason})",
                provider=self.name,
                upstream_status=response.status_code,
            )
        return error_from_response(response, body, self.name)

    async def _post_whole(self, path: str, content: bytes) -> bytes:
        answer = self._post(path, content, stream=False)
        return await whole_body(answer, total=self._total, provider=self.name)

    # --- chat -----------------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> Completion | StreamingCompletion:
        """The answer as canonical data (``api == "canonical"``): an ``Answer``, or a
        stream of ``StreamEvent``s."""
        conversation = request.canonical(self.unsupported)
        call = cohere.encode_request(conversation, model=request.model, provider=self.name)
        # The route says whether to stream (Gemini clients ask in the URL, not the body).
        call.stream = True if request.stream else None
        payload = encode(call)
        if not request.stream:
            raw = await self._post_whole("/v2/chat", payload)
            answer = cohere.decode_answer(raw, provider=self.name)
            usage = Usage()
            _fill(usage, answer.usage)
            return Completion(body=b"", usage=usage, api="canonical", answer=answer)
        response = await self._post("/v2/chat", payload, stream=True)
        usage = Usage()
        return StreamingCompletion(
            chunks=self._relay(response, usage),
            aclose=response.aclose,
            usage=usage,
            api="canonical",
        )

    async def _relay(self, response: UpstreamResponse, usage: Usage) -> AsyncIterator[StreamEvent]:
        """Canonical events for Cohere's as they arrive; a first frame that is not an
        event stream, an unreadable event or a stream cut before ``message-end`` raises."""
        decoder = cohere.StreamDecoder(provider=self.name)
        started = False
        try:
            async for frame in iter_frames(response.aiter_raw()):
                if not started and frame.strip():
                    started = True
                    if not looks_like_sse(frame):
                        raise not_an_event_stream(self.name)
                for event in decoder.feed(frame):
                    if isinstance(event, Finish):
                        _fill(usage, event.usage)
                    yield event
            for event in decoder.finish():
                yield event
        except httpx.HTTPError as exc:
            raise map_exception(exc, self.name) from exc

    # --- embeddings -----------------------------------------------------------------

    async def embeddings(self, request: EmbeddingRequest) -> Completion:
        body = request.body
        texts, input_type = cohere_embedding_inputs(body, provider=self.name)
        calls = to_cohere_embed(
            texts, model=request.model, input_type=input_type, dimensions=body.get("dimensions")
        )
        vectors: list[list[float]] = []
        tokens = 0
        for call in calls:
            raw = await self._post_whole("/v2/embed", encode(call))
            try:
                answer = decode_embed(raw)
            except msgspec.DecodeError as exc:
                raise not_an_answer(self.name, exc) from None
            found, billed = from_cohere_embed(answer, expected=len(call.texts), provider=self.name)
            vectors.extend(found)
            tokens += billed
        out = openai_embeddings(
            vectors,
            model=request.model,
            encoding_format=body.get("encoding_format"),
            prompt_tokens=tokens,
        )
        return Completion(body=out, usage=Usage(prompt_tokens=tokens))

    async def aclose(self) -> None:
        await self.client.aclose()


SPEC = ProviderSpec(
    type="cohere",
    build=CohereProvider,
    key_env="COHERE_API_KEY",
    offers=(
        KeyOffer(
            "COHERE_API_KEY",
            "cohere",
            {
                m: m
                for m in (
                    "command-a-03-2025",
                    "command-r-plus-08-2024",
                    "command-r-08-2024",
                    "command-r7b-12-2024",
                    "embed-v4.0",
                    "embed-english-v3.0",
                    "embed-multilingual-v3.0",
                )
            },
        ),
    ),
)
