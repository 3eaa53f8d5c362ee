"""Cohere (``type = "cohere"``): its v2 API at ``https://api.cohere.com``.

Chat goes to ``POST /v2/chat`` (``stream: true`` for server-sent events), embeddings
to ``POST /v2/embed``; the key travels as ``Authorization: Bearer``. The translation
itself lives in ``fkllmproxy.translate`` (``cohere_chat``, ``cohere_stream``,
``cohere_embeddings``); this module only moves bytes.

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
from fkllmproxy.translate._common import split_frame
from fkllmproxy.translate.cohere_chat import from_cohere, to_cohere, token_counts
from fkllmproxy.translate.cohere_embeddings import (
    cohere_embedding_inputs,
    from_cohere_embed,
    to_cohere_embed,
)
from fkllmproxy.translate.cohere_stream import CohereStreamTranslator
from fkllmproxy.translate.gemini_embeddings import openai_embeddings
from fkllmproxy.wire.cohere import Usage as CohereUsage
from fkllmproxy.wire.cohere import decode_chat, decode_embed, decode_event, encode

__all__ = ["DEFAULT_BASE_URL", "SPEC", "CohereProvider"]

DEFAULT_BASE_URL = "https://api.cohere.com"

_JSON = {"content-type": "application/json"}
# Statuses Cohere answers for our account or key, not the client's request.
_NOT_THE_CLIENTS_FAULT = {402: "payment required", 498: "invalid token"}


def _fill(usage: Usage, reported: CohereUsage | None) -> None:
    usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens = token_counts(reported)


class CohereProvider(Provider):
    """Cohere's chat and embed models; ``base_url`` is the host root."""

    type = "cohere"

    def __init__(self, config: ProviderConfig, transport: TransportFactory) -> None:
        self.name = config.name
        self.config = config
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
        call = to_cohere(
            request.body, model=request.model, provider=self.name, stream=request.stream
        )
        payload = encode(call)
        if not request.stream:
            raw = await self._post_whole("/v2/chat", payload)
            try:
                answer = decode_chat(raw)
            except msgspec.DecodeError as exc:
                raise not_an_answer(self.name, exc) from None
            usage = Usage()
            _fill(usage, answer.usage)
            body = from_cohere(answer, model=request.model, provider=self.name)
            return Completion(body=body, usage=usage)
        response = await self._post("/v2/chat", payload, stream=True)
        usage = Usage()
        translator = CohereStreamTranslator(
            model=request.model, provider=self.name, include_usage=request.include_usage
        )
        return StreamingCompletion(
            chunks=self._relay(response, translator, usage), aclose=response.aclose, usage=usage
        )

    async def _relay(
        self, response: UpstreamResponse, translator: CohereStreamTranslator, usage: Usage
    ) -> AsyncIterator[bytes]:
        """OpenAI frames for Cohere's events as they arrive; a first frame that is not an
        event stream, an unreadable event or a stream cut before ``message-end`` raises."""
        started = False
        try:
            async for frame in iter_frames(response.aiter_raw()):
                if not started and frame.strip():
                    started = True
                    if not looks_like_sse(frame):
                        raise not_an_event_stream(self.name)
                _, data = split_frame(frame)
                if not data or data == b"[DONE]":
                    continue
                try:
                    event = decode_event(data)
                except msgspec.DecodeError:
                    raise UpstreamUnavailable(
                        f"provider {self.name!r} sent a stream event that is not JSON of the "
                        "expected shape",
                        provider=self.name,
                    ) from None
                for chunk in translator.feed(event):
                    yield chunk
                if translator.usage is not None:
                    _fill(usage, translator.usage)
            for chunk in translator.finish():
                yield chunk
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
