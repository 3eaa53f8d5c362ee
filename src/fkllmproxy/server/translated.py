"""A provider's answer as the canonical model, for a handler to write in its client's API.

A provider that translates hands back canonical answers and events already
(``api == "canonical"``); an OpenAI-type host answers in Chat's shape, which the chat
codec reads here. Native pass-throughs never come here: their handler relays the bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from fkllmproxy.errors import UpstreamUnavailable
from fkllmproxy.providers import Completion, StreamingCompletion
from fkllmproxy.providers.sse import FrameSplitter
from fkllmproxy.translate.canonical import Answer, StreamEvent
from fkllmproxy.translate.codecs import chat

__all__ = [
    "StreamWriter",
    "canonical_answer",
    "chat_stream",
    "client_frames",
    "in_chat_shape",
    "joined",
]


def canonical_answer(result: Completion, *, provider: str) -> Answer:
    """The canonical answer of a whole ``result`` from ``provider`` (its label)."""
    if result.answer is not None:
        return result.answer
    if result.api == "chat":
        return chat.decode_answer(result.body, provider=provider)
    raise UpstreamUnavailable(f"provider {provider} answered in an unexpected shape ({result.api})")


class StreamWriter(Protocol):
    """A codec's ``StreamEncoder``: the client's frames for each canonical event."""

    def feed(self, event: StreamEvent) -> list[bytes]: ...

    def finish(self) -> list[bytes]: ...


async def client_frames(
    result: StreamingCompletion, *, provider: str, writer: StreamWriter
) -> AsyncIterator[list[bytes]]:
    """The client's frames for a streamed ``result``, written by ``writer``: one list
    for each read from the provider (none for a read that made no frame), then the
    closing frames.

    Everything one read brings goes out together: one send for a burst of upstream
    frames rather than one per event, as a pass-through sends them. A chat stream is
    cut into frames here (``providers.sse.FrameSplitter``) rather than through
    ``iter_frames``: one generator less between the upstream and the client.
    """
    feed = writer.feed
    if result.api == "canonical":
        async for event in result.chunks:
            out = feed(event)
            if out:
                yield out
    elif result.api == "chat":
        decoder = chat.StreamDecoder(provider=provider)
        splitter = FrameSplitter()
        async for chunk in result.chunks:
            out = [
                written
                for frame in splitter.push(chunk)
                for event in decoder.feed(frame)
                for written in feed(event)
            ]
            if out:
                yield out
        rest = splitter.rest()
        tail = decoder.feed(rest) if rest is not None else []
        tail.extend(decoder.finish())
        out = [written for event in tail for written in feed(event)]
        if out:
            yield out
    else:
        raise UpstreamUnavailable(
            f"provider {provider} streamed in an unexpected shape ({result.api})"
        )
    closing = writer.finish()
    if closing:
        yield closing


async def joined(
    result: StreamingCompletion, *, provider: str, writer: StreamWriter
) -> AsyncIterator[bytes]:
    """``client_frames``, each list as one write."""
    async for frames in client_frames(result, provider=provider, writer=writer):
        yield b"".join(frames)


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
    frames = joined(result, provider=result.api, writer=encoder)
    return StreamingCompletion(chunks=frames, aclose=result.aclose, usage=result.usage)
