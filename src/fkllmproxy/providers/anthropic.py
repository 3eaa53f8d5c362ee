"""Anthropic's Messages API (``type = "anthropic"``).

Two ways in:

* ``messages`` / ``count_tokens`` for ``/v1/messages`` clients: the client's bytes go up
  untouched (only ``model`` rewritten when the client's name differs) and the answer
  comes back untouched, streamed frame by frame as it arrives.
* ``chat`` for clients of every other API: the request, as the canonical conversation,
  is written as a Messages request (``translate/codecs/messages.py``) and the answer
  comes back canonical (``api == "canonical"``), streams as canonical events, for the
  client's handler to write in its own API.

``base_url`` is the host root (default ``https://api.anthropic.com``; a trailing
``/v1`` is tolerated); the key goes in ``x-api-key`` and ``api_version`` sets
``anthropic-version`` (default ``2023-06-01``) unless an Anthropic client sent its own,
which is forwarded as sent, as is its ``anthropic-beta``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec

from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.errors import UpstreamUnavailable
from fkllmproxy.providers.answers import not_an_event_stream
from fkllmproxy.providers.base import (
    ChatRequest,
    Completion,
    MessagesCall,
    MessagesProvider,
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
from fkllmproxy.translate._common import Unsupported, provider_label
from fkllmproxy.translate.canonical import Finish, StreamEvent, UsageUpdate
from fkllmproxy.translate.codecs import messages as codec
from fkllmproxy.wire.anthropic import ResponseUsage

__all__ = ["DEFAULT_API_VERSION", "DEFAULT_BASE_URL", "SPEC", "AnthropicProvider"]

DEFAULT_BASE_URL = "https://api.anthropic.com"

DEFAULT_API_VERSION = "2023-06-01"
_MESSAGES = "/v1/messages"
_COUNT_TOKENS = "/v1/messages/count_tokens"
_JSON = {"content-type": "application/json"}
_encode = msgspec.json.Encoder().encode


class _UsageHolder(msgspec.Struct):
    usage: ResponseUsage | None = None


class _Event(msgspec.Struct):
    """Just enough of a stream event to find usage: at the top or in ``message``."""

    usage: ResponseUsage | None = None
    message: _UsageHolder | None = None


class _Block(msgspec.Struct):
    """Any content block (its fields skipped)."""


class _Message(msgspec.Struct):
    """The shape a whole Message must have to be an answer (providers/answers.py)."""

    content: list[_Block]
    usage: ResponseUsage | None = None


_usage_decoder = msgspec.json.Decoder(_Message)
_event_decoder = msgspec.json.Decoder(_Event)


def _merge_usage(found: ResponseUsage | None, seen: ResponseUsage, usage: Usage) -> None:
    """Fold counts ``found`` in an answer or event into ``seen`` (later counts are
    cumulative and overwrite; absent ones keep their value), then set ``usage`` from
    them in OpenAI's sense: the prompt count includes cache reads and writes."""
    if found is None:
        return
    for name in ResponseUsage.__struct_fields__:
        value = getattr(found, name)
        if value is not None:
            setattr(seen, name, value)
    cache_read = seen.cache_read_input_tokens or 0
    cache_write = seen.cache_creation_input_tokens or 0
    usage.prompt_tokens = (seen.input_tokens or 0) + cache_read + cache_write
    usage.cached_tokens = cache_read
    usage.cache_write_tokens = cache_write
    usage.completion_tokens = seen.output_tokens or 0


def _message_usage(body: bytes, label: str) -> Usage:
    """Usage of a whole Message; a body without a ``content`` list is not an answer."""
    try:
        found = _usage_decoder.decode(body).usage
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        reason = str(exc).split(" - at ", 1)[0][:120]
        raise UpstreamUnavailable(
            f"provider {label} answered 200 with a body that is not a Message ({reason})"
        ) from None
    usage = Usage()
    _merge_usage(found, ResponseUsage(), usage)
    return usage


def _count(event: StreamEvent, usage: Usage) -> None:
    """Set ``usage`` from the counts a canonical event reports (the last one wins)."""
    counts = event.usage if isinstance(event, UsageUpdate | Finish) else None
    if counts is None:
        return
    usage.prompt_tokens = counts.input_tokens
    usage.completion_tokens = counts.output_tokens
    usage.cached_tokens = counts.cached_tokens
    usage.cache_write_tokens = counts.cache_write_tokens


def _read_event_usage(frame: bytes, seen: ResponseUsage, usage: Usage) -> None:
    for line in frame.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        try:
            event = _event_decoder.decode(line[5:])
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        _merge_usage(event.usage, seen, usage)
        if event.message is not None:
            _merge_usage(event.message.usage, seen, usage)


class AnthropicProvider(MessagesProvider):
    """An upstream speaking Anthropic's Messages API at ``base_url`` (the host root)."""

    type = "anthropic"

    def __init__(self, config: ProviderConfig, transport: TransportFactory) -> None:
        self.name = config.name
        self.config = config
        self.label = provider_label(config.name, self.type)
        self.unsupported = Unsupported(config.name, self.type)  # words every refusal
        base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        base_url = base_url.removesuffix("/v1")
        headers = {"anthropic-version": config.api_version or DEFAULT_API_VERSION}
        if config.api_key:
            headers["x-api-key"] = config.api_key
        self.client = build_client(config, transport, base_url=base_url, headers=headers)
        self._total = config.timeout_secs

    # ---- transport ------------------------------------------------------------------

    async def _post(
        self,
        path: str,
        content: bytes,
        *,
        stream: bool,
        beta: str | None = None,
        version: str | None = None,
    ) -> UpstreamResponse:
        headers = _JSON
        if beta or version:
            headers = dict(_JSON)
            if beta:
                headers["anthropic-beta"] = beta
            if version:
                headers["anthropic-version"] = version
        response = await post(
            self.client, path, content, provider=self.name, stream=stream, headers=headers
        )
        if response.status_code >= 300:
            body = await read_error_body(response)
            raise error_from_response(response, body, self.name)
        return response

    async def _post_whole(
        self, path: str, content: bytes, beta: str | None = None, version: str | None = None
    ) -> bytes:
        answer = self._post(path, content, stream=False, beta=beta, version=version)
        return await whole_body(answer, total=self._total, provider=self.name)

    # ---- clients of other APIs: translated -------------------------------------------

    async def chat(self, request: ChatRequest) -> Completion | StreamingCompletion:
        call = codec.encode_request(
            request.canonical(self.unsupported),
            model=request.model,
            unsupported=self.unsupported,
            default_max_tokens=self.config.default_max_tokens,
        )
        content = _encode(call.body)
        if not request.stream:
            body = await self._post_whole(_MESSAGES, content)
            # From Anthropic's own counts, before the answer is read, so that a body
            # that is not a Message is reported as such.
            usage = _message_usage(body, self.label)
            answer = codec.decode_answer(body, provider=self.label, json_tool=call.json_tool)
            return Completion(body=b"", usage=usage, api="canonical", answer=answer)
        response = await self._post(_MESSAGES, content, stream=True)
        decoder = codec.StreamDecoder(provider=self.label, json_tool=call.json_tool)
        usage = Usage()
        events = self._translate(response, decoder, usage)
        return StreamingCompletion(
            chunks=events, aclose=response.aclose, usage=usage, api="canonical"
        )

    async def _translate(
        self, response: UpstreamResponse, decoder: codec.StreamDecoder, usage: Usage
    ) -> AsyncIterator[StreamEvent]:
        """The canonical events of the upstream stream, keeping ``usage`` up to date."""
        try:
            async for frame in iter_frames(response.aiter_raw()):
                for event in decoder.feed(frame):
                    _count(event, usage)
                    yield event
        except httpx.HTTPError as exc:
            raise map_exception(exc, self.name) from exc
        for event in decoder.finish():
            yield event

    # ---- Anthropic clients: untouched -------------------------------------------------

    async def messages(self, call: MessagesCall) -> Completion | StreamingCompletion:
        content = call.upstream_bytes()
        if not call.stream:
            body = await self._post_whole(_MESSAGES, content, call.beta, call.version)
            return Completion(body=body, usage=_message_usage(body, self.label))
        response = await self._post(
            _MESSAGES, content, stream=True, beta=call.beta, version=call.version
        )
        usage = Usage()
        chunks = self._relay(response, usage)
        return StreamingCompletion(chunks=chunks, aclose=response.aclose, usage=usage)

    async def _relay(self, response: UpstreamResponse, usage: Usage) -> AsyncIterator[bytes]:
        """Frames as they arrive, reading usage on the way; a stream that stops before
        ``message_stop`` (and without an error event of its own) raises, and so does one
        whose first frame is not an event stream, before anything is relayed."""
        complete = False
        started = False
        seen = ResponseUsage()
        try:
            async for frame in iter_frames(response.aiter_raw()):
                if not started and frame.strip():
                    started = True
                    if not looks_like_sse(frame):
                        raise not_an_event_stream(self.name)
                if b'"usage"' in frame:
                    _read_event_usage(frame, seen, usage)
                if b"message_stop" in frame or b"event: error" in frame:
                    complete = True
                yield frame
        except httpx.HTTPError as exc:
            raise map_exception(exc, self.name) from exc
        if not complete:
            raise UpstreamUnavailable(
                f"provider {self.label} ended the stream before the answer was complete",
                provider=self.name,
            )

    async def count_tokens(self, call: MessagesCall) -> Completion:
        content = call.upstream_bytes()
        body = await self._post_whole(_COUNT_TOKENS, content, call.beta, call.version)
        return Completion(body=body)

    async def aclose(self) -> None:
        await self.client.aclose()


SPEC = ProviderSpec(
    type="anthropic",
    build=AnthropicProvider,
    key_env="ANTHROPIC_API_KEY",
    offers=(
        KeyOffer(
            "ANTHROPIC_API_KEY",
            "anthropic",
            {
                m: m
                for m in (
                    "claude-opus-5",
                    "claude-sonnet-5",
                    "claude-haiku-4-5",
                    "claude-opus-4-7",
                    "claude-sonnet-4-6",
                    "claude-sonnet-4-5",
                    "claude-opus-4-1",
                )
            },
        ),
    ),
)
