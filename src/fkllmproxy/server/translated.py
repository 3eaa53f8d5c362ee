"""A provider's answer as the canonical model, for a handler to write in its client's API.

A provider that translates hands back canonical answers and events already
(``api == "canonical"``); an OpenAI-type host answers in Chat's shape, which the chat
codec reads here. Native pass-throughs never come here: their handler relays the bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fkllmproxy.errors import UpstreamUnavailable
from fkllmproxy.providers import Completion, StreamingCompletion
from fkllmproxy.providers.sse import iter_frames
from fkllmproxy.translate.canonical import Answer, StreamEvent
from fkllmproxy.translate.codecs import chat

__all__ = [
    "canonical_answer",
    "canonical_events",
    "chat_stream",
    "in_chat_shape",
]


def canonical_answer(result: Completion, *, provider: str) -> Answer:
    """The canonical answer of a whole ``result`` from ``provider`` (its label)."""
    if result.answer is not None:
        return result.answer
    if result.api == "chat":
        return chat.decode_answer(result.body, provider=provider)
    raise UpstreamUnavailable(f"provider {provider} answered in an unexpected shape ({result.api})")


async def canonical_events(
    result: StreamingCompletion, *, provider: str
) -> AsyncIterator[StreamEvent]:
    """The canonical events of a streamed ``result``, as they arrive."""
    if result.api == "canonical":
        async for event in result.chunks:
            yield event
        return
    if result.api != "chat":
        raise UpstreamUnavailable(
            f"provider {provider} streamed in an unexpected shape ({result.api})"
        )
    decoder = chat.StreamDecoder(provider=provider)
    async for frame in iter_frames(result.chunks):
        for event in decoder.feed(frame):
            yield event
    for event in decoder.finish():
        yield event


def in_chat_shape(result: Completion, client_model: str) -> bytes:
    """A whole answer as a ``chat.completion``: a translating provider's canonical
    answer written by the chat codec, an OpenAI-type host's bytes as they are."""
    if result.api == "chat":
        return result.body
    answer = canonical_answer(result, provider=result.api)
    return chat.encode_answer(answer, model=answer.model or client_model)


def chat_stream(
    result: StreamingCompletion, client_model: str, *, include_usage: bool
) -> StreamingCompletion:
    """A stream as chat chunks (``in_chat_shape`` for streams)."""
    if result.api == "chat":
        return result
    encoder = chat.StreamEncoder(model=client_model, include_usage=include_usage)

    async def frames() -> AsyncIterator[bytes]:
        async for event in canonical_events(result, provider=result.api):
            for frame in encoder.feed(event):
                yield frame
        for frame in encoder.finish():
            yield frame

    return StreamingCompletion(chunks=frames(), aclose=result.aclose, usage=result.usage)
