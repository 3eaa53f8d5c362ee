"""The Responses API passed through to a provider that has it (``responses_api = true``).

``/v1/responses`` sends the client's bytes (model name aside) to an ``openai`` or
``azure`` provider whose config says it has the Responses API, and relays its answer
untouched: the JSON ``response``, or its event stream as the frames arrive. Whether a
provider has it: ``responses_api`` when set, else true only for api.openai.com.

Untouched is not unchecked (``providers/answers.py``): a 200 whose body is not a
Response, or a stream that is not an event stream, fails the attempt before a byte of
it reaches the client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec

from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.errors import UpstreamUnavailable
from fkllmproxy.providers.answers import not_an_event_stream
from fkllmproxy.providers.base import Provider, Usage, _decode_object
from fkllmproxy.providers.exchange import UpstreamResponse
from fkllmproxy.providers.http import map_exception
from fkllmproxy.providers.sse import looks_like_sse

__all__ = [
    "ResponsesCall",
    "configured_responses_api",
    "decode_object",
    "has_responses_api",
    "relay_events",
    "responses_answer_usage",
]

decode_object = _decode_object  # the client's body as plain data; BadRequest when it is not

_encode = msgspec.json.Encoder().encode
# The events that end a Responses stream; one must have come before the body ends.
_TERMINAL = (
    b'"response.completed"',
    b'"response.incomplete"',
    b'"response.failed"',
    b"event: error",
)


@dataclass(slots=True)
class ResponsesCall:
    """One Responses request forwarded as it is. ``body`` is set when the proxy changed it
    (a stored conversation expanded); otherwise ``raw`` goes up with only the model renamed."""

    raw: bytes
    model: str
    stream: bool
    client_model: str
    body: dict[str, Any] | None = None

    def upstream_bytes(self) -> bytes:
        if self.body is None and self.client_model == self.model:
            return self.raw
        data = self.body if self.body is not None else decode_object(self.raw)
        return _encode({**data, "model": self.model})


def has_responses_api(provider: Provider) -> bool:
    """Whether ``/v1/responses`` passes through to ``provider`` instead of being translated."""
    return getattr(provider, "responses_api", False) is True


def configured_responses_api(config: ProviderConfig) -> bool:
    """``responses_api`` when set; else true only for an ``openai`` provider of api.openai.com
    (or with no ``base_url``, which means it). Worked out once, when the provider is built."""
    if config.responses_api is not None:
        return config.responses_api
    if config.type != "openai":
        return False
    return config.base_url is None or urlsplit(config.base_url).hostname == "api.openai.com"


class _UsageDetails(msgspec.Struct):
    cached_tokens: int = 0


class _Usage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    input_tokens_details: _UsageDetails | None = None


class _HasUsage(msgspec.Struct):
    usage: _Usage | None = None


class _Item(msgspec.Struct):
    """Any output item (its fields skipped)."""


class _Response(msgspec.Struct):
    """The shape a whole ``response`` must have to be an answer: an ``output`` list of
    items (empty for a background response still queued)."""

    output: list[_Item]
    usage: _Usage | None = None


class _Event(msgspec.Struct):
    response: _HasUsage | None = None


_response_decoder = msgspec.json.Decoder(_Response)
_event_decoder = msgspec.json.Decoder(_Event)


def _fill(usage: Usage, found: _Usage | None) -> None:
    if found is None:
        return
    usage.prompt_tokens = found.input_tokens
    usage.completion_tokens = found.output_tokens
    details = found.input_tokens_details
    usage.cached_tokens = details.cached_tokens if details else 0


def responses_answer_usage(body: bytes) -> Usage | None:
    """Usage of a ``response`` JSON body (``None`` when it reports none);
    ``msgspec.DecodeError`` when the body is not a Response."""
    found = _response_decoder.decode(body).usage
    if found is None:
        return None
    usage = Usage()
    _fill(usage, found)
    return usage


async def relay_events(
    response: UpstreamResponse, usage: Usage, provider: str
) -> AsyncIterator[bytes]:
    """The provider's event-stream bytes as they come; usage read from its final event.

    A body that ends before a terminal event (completed, incomplete, failed, error) was
    cut short and raises ``UpstreamUnavailable``, so the client's stream ends with an error;
    one whose first bytes are not an event stream raises before anything is relayed.
    """
    tail = b""
    ended = False
    started = False
    try:
        async for chunk in response.aiter_raw():
            if not started and chunk.strip():
                started = True
                if not looks_like_sse(chunk):
                    raise not_an_event_stream(provider)
            window = tail + chunk
            if b'"response.completed"' in window or b'"response.incomplete"' in window:
                for line in window.split(b"\n"):
                    if line.startswith(b"data: {") and b'"usage"' in line:
                        try:
                            event = _event_decoder.decode(line[6:])
                        except (msgspec.DecodeError, msgspec.ValidationError):
                            continue
                        if event.response is not None:
                            _fill(usage, event.response.usage)
            if any(mark in window for mark in _TERMINAL):
                ended = True
            # Keep the partial last line: a terminal event split across chunks is still seen.
            tail = window[window.rfind(b"\n") + 1 :] if b"\n" in window else window
            if len(tail) > 1 << 20:
                tail = tail[-64:]
            yield chunk
    except (httpx.ReadTimeout, httpx.PoolTimeout) as exc:
        raise map_exception(exc, provider) from exc
    except httpx.HTTPError as exc:
        raise UpstreamUnavailable(
            f"provider {provider!r} broke off the stream ({type(exc).__name__})",
            provider=provider,
        ) from exc
    if not ended:
        raise UpstreamUnavailable(
            f"provider {provider!r} ended the stream before its final event", provider=provider
        )
