"""OpenAI and every OpenAI-compatible host (Groq, OpenRouter, vLLM, Ollama, ...).

Nothing to translate: the client's bytes go up untouched when they can, and the
provider's bytes come back untouched, streamed chunk by chunk as they arrive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import msgspec

from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.errors import UpstreamUnavailable
from fkllmproxy.providers.answers import (
    chat_answer_usage,
    embeddings_answer_usage,
    not_an_answer,
    not_an_event_stream,
)
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
from fkllmproxy.providers.responses import (
    ResponsesCall,
    configured_responses_api,
    relay_events,
    responses_answer_usage,
)
from fkllmproxy.providers.spec import KeyOffer, ProviderSpec
from fkllmproxy.providers.sse import looks_like_sse, read_usage_frame
from fkllmproxy.translate._common import Unsupported

__all__ = ["DEFAULT_BASE_URL", "SPEC", "OpenAIProvider"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"

_JSON = {"content-type": "application/json"}


class OpenAIProvider(Provider):
    """An upstream speaking OpenAI's API at ``base_url`` (up to and including ``/v1``)."""

    type = "openai"

    def __init__(self, config: ProviderConfig, transport: TransportFactory) -> None:
        self.name = config.name
        self.config = config
        self.unsupported = Unsupported(config.name, self.type)  # words every refusal
        base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        headers = {"authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self.client = build_client(config, transport, base_url=base_url, headers=headers)
        self._total = config.timeout_secs
        self.responses_api = configured_responses_api(config)

    async def _post(self, path: str, content: bytes, *, stream: bool) -> UpstreamResponse:
        response = await post(
            self.client, path, content, provider=self.name, stream=stream, headers=_JSON
        )
        if response.status_code >= 300:
            body = await read_error_body(response)
            raise error_from_response(response, body, self.name)
        return response

    async def _post_whole(self, path: str, content: bytes) -> bytes:
        answer = self._post(path, content, stream=False)
        return await whole_body(answer, total=self._total, provider=self.name)

    async def chat(self, request: ChatRequest) -> Completion | StreamingCompletion:
        content = request.upstream_bytes(self.unsupported)
        if not request.stream:
            body = await self._post_whole("/chat/completions", content)
            return Completion(body=body, usage=self._checked_usage(body, chat_answer_usage))
        response = await self._post("/chat/completions", content, stream=True)
        usage = Usage()
        return StreamingCompletion(
            chunks=self._relay(response, usage), aclose=response.aclose, usage=usage
        )

    def _checked_usage(self, body: bytes, read: Callable[[bytes], Usage | None]) -> Usage | None:
        """The answer's usage; a 200 whose body is not an answer (providers/answers.py)
        is a failed attempt, so the next target is tried."""
        try:
            return read(body)
        except msgspec.DecodeError as exc:
            raise not_an_answer(self.name, exc) from None

    async def _relay(self, response: UpstreamResponse, usage: Usage) -> AsyncIterator[bytes]:
        """The provider's SSE bytes as they come; a stream cut short raises ``UpstreamError``.

        OpenAI ends every stream with ``data: [DONE]``: a body that ends without it was
        cut off, even when the connection closed cleanly.
        """
        tail = b""
        started = False
        try:
            async for chunk in response.aiter_raw():
                if not started and chunk.strip():
                    started = True
                    if not looks_like_sse(chunk):
                        raise not_an_event_stream(self.name)
                read_usage_frame(chunk, usage)
                tail = (tail + chunk)[-32:]
                yield chunk
        except (httpx.ReadTimeout, httpx.PoolTimeout) as exc:
            raise map_exception(exc, self.name) from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"provider {self.name!r} broke off the stream ({type(exc).__name__})",
                provider=self.name,
            ) from exc
        if b"[DONE]" not in tail:
            raise UpstreamUnavailable(
                f"provider {self.name!r} ended the stream without its [DONE] terminator",
                provider=self.name,
            )

    async def embeddings(self, request: EmbeddingRequest) -> Completion:
        content = request.upstream_bytes()
        body = await self._post_whole("/embeddings", content)
        return Completion(body=body, usage=self._checked_usage(body, embeddings_answer_usage))

    def _responses_path(self, model: str) -> str:
        return "/responses"

    async def responses(self, call: ResponsesCall) -> Completion | StreamingCompletion:
        """``/v1/responses`` passed through (``providers/responses.py``); bytes both ways."""
        path = self._responses_path(call.model)
        content = call.upstream_bytes()
        if not call.stream:
            body = await self._post_whole(path, content)
            return Completion(body=body, usage=self._checked_usage(body, responses_answer_usage))
        response = await self._post(path, content, stream=True)
        usage = Usage()
        chunks = relay_events(response, usage, self.name)
        return StreamingCompletion(chunks=chunks, aclose=response.aclose, usage=usage)

    async def aclose(self) -> None:
        await self.client.aclose()


def _key_required(config: ProviderConfig) -> bool:
    # OpenAI itself needs a key; a server of its API elsewhere (vLLM, Ollama) may not,
    # unless the block names a variable for it.
    return config.base_url is None or bool(config.api_key_env)


SPEC = ProviderSpec(
    type="openai",
    build=OpenAIProvider,
    key_env="OPENAI_API_KEY",
    key_required=_key_required,
    offers=(
        KeyOffer(
            "OPENAI_API_KEY",
            "openai",
            {
                m: m
                for m in (
                    "gpt-4o",
                    "gpt-4o-mini",
                    "gpt-4.1",
                    "gpt-4.1-mini",
                    "gpt-4.1-nano",
                    "o3-mini",
                    "o4-mini",
                    "text-embedding-3-small",
                    "text-embedding-3-large",
                )
            },
        ),
        KeyOffer(
            "GROQ_API_KEY",
            "groq",
            {m: m for m in ("llama-3.3-70b-versatile", "llama-3.1-8b-instant")},
            base_url="https://api.groq.com/openai/v1",
        ),
        KeyOffer(
            "OPENROUTER_API_KEY",
            "openrouter",
            {"openrouter/auto": "openrouter/auto"},
            base_url="https://openrouter.ai/api/v1",
        ),
    ),
)
