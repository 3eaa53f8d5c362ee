"""Server-sent events: splitting a byte stream into frames, and reading usage from them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec

from fkllmproxy.providers.base import Usage

__all__ = [
    "DONE_FRAME",
    "FrameSplitter",
    "iter_frames",
    "looks_like_sse",
    "parse_usage",
    "read_usage",
    "read_usage_frame",
]

DONE_FRAME = b"data: [DONE]\n\n"
# What the first bytes of an event stream can be: a field name, a comment, a blank line.
_SSE_STARTS = (b"data:", b"event:", b"id:", b"retry:", b":")


def looks_like_sse(chunk: bytes) -> bool:
    """Whether the first non-blank bytes of a stream can begin an event stream.

    An HTML error page or a JSON body answered 200 to a streamed request fails this on
    its first chunk, before anything is relayed; a prefix too short to tell passes.
    """
    head = chunk.lstrip(b"\r\n")[:6]
    return any(head.startswith(start) or start.startswith(head) for start in _SSE_STARTS)


class _PromptDetails(msgspec.Struct):
    cached_tokens: int = 0


class _UsageBody(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: _PromptDetails | None = None


class _HasUsage(msgspec.Struct):
    usage: _UsageBody | None = None


_usage_decoder = msgspec.json.Decoder(_HasUsage)


def read_usage(body: bytes) -> Usage | None:
    """Usage from an OpenAI JSON body, decoding nothing else (msgspec skips the rest)."""
    try:
        return parse_usage(body)
    except msgspec.DecodeError:
        return None


def parse_usage(body: bytes) -> Usage | None:
    """Like ``read_usage``, but a body that is not a JSON object raises ``msgspec.DecodeError``."""
    found = _usage_decoder.decode(body).usage
    if found is None:
        return None
    cached = found.prompt_tokens_details.cached_tokens if found.prompt_tokens_details else 0
    return Usage(found.prompt_tokens, found.completion_tokens, cached)


def read_usage_frame(chunk: bytes, usage: Usage) -> None:
    """Update ``usage`` from any OpenAI SSE frame in ``chunk`` that carries usage."""
    if b'"usage"' not in chunk:
        return
    for line in chunk.split(b"\n"):
        if line.startswith(b"data: {") and b'"usage"' in line:
            found = read_usage(line[6:])
            if found is not None:
                usage.prompt_tokens = found.prompt_tokens
                usage.completion_tokens = found.completion_tokens
                usage.cached_tokens = found.cached_tokens


class FrameSplitter:
    """Whole SSE frames (without their blank line) out of arbitrarily split bytes."""

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = b""

    def push(self, chunk: bytes) -> list[bytes]:
        """The frames ``chunk`` completes, in order (none while a frame is still open)."""
        buffer = self.buffer + chunk
        if b"\n\n" not in buffer and b"\r\n\r\n" not in buffer:
            self.buffer = buffer
            return []
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        *frames, self.buffer = buffer.split(b"\n\n")
        return [frame for frame in frames if frame]

    def rest(self) -> bytes | None:
        """What the stream ended with after its last blank line, if anything."""
        return self.buffer if self.buffer.strip() else None


async def iter_frames(stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Whole SSE frames (ending in a blank line) from arbitrarily split bytes."""
    splitter = FrameSplitter()
    async for chunk in stream:
        for frame in splitter.push(chunk):
            yield frame + b"\n\n"
    rest = splitter.rest()
    if rest is not None:
        yield rest + b"\n\n"
