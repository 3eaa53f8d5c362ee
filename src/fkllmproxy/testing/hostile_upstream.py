"""A hostile ``openai`` upstream: answers that a broken or malicious provider could send.

Tests point an ``openai`` provider at it and pick the misbehaviour with the upstream
model name (the target's ``model``), so one daemon in front of one server can meet
them all. The model is read from the request's JSON ``model`` or, for a Gemini API
call that carries it in its path (``/v1beta/models/{model}:generateContent``), from
there, so ``anthropic`` and ``gemini`` providers (``root_url``) can meet them too; the
answers are OpenAI-shaped whatever the path, which is not an answer in those formats::

    with HostileUpstream() as hostile:
        config = f'base_url = "{hostile.base_url}"' ...
        # [[models]] name = "bomb", targets = [{ provider = "hostile", model = "gzip-bomb" }]

It speaks raw HTTP/1.1 over asyncio streams (an HTTP server library would refuse to
send most of this), on a thread of its own, one answer per connection. Sizes are
arguments so tests can keep them small next to small limits: ``flood_bytes`` is how
much a flooding answer sends at most before it gives up (the proxy should hang up long
before), ``bomb_bytes`` how large the gzip bomb inflates.

Behaviours (``BEHAVIOURS``): ``huge-length`` (announces ``Content-Length`` of 1 GiB,
then floods), ``chunked-flood`` (a chunked body with no end), ``gzip-bomb`` (200 with
``Content-Encoding: gzip``, small on the wire), ``big-header`` (one 16 MiB header),
``many-headers`` (200,000 headers), ``empty-object`` (200 ``{}``),
``choices-not-list`` (200 ``{"choices": "not-a-list"}``), ``not-json`` (200 HTML),
``long-line`` (an event stream whose ``data:`` line never ends), ``stream-flood`` (an
event stream of valid chunks that never ends), ``slow-head`` (the head one byte a
second), ``reset-after-head`` (a head, then a reset), ``bad-utf8-stream`` (an event
stream with invalid UTF-8 inside a ``data:`` line, then ``[DONE]``), ``ok`` (a valid
completion).

``Transfer-Encoding`` tricks, each around a valid completion (a valid event stream when
the request asked for one), so only the framing is wrong: ``length-and-chunked``
(``Content-Length`` and ``Transfer-Encoding: chunked`` together), ``bad-chunk-size``
(a chunk size that is not hex), ``conflicting-lengths`` (two different
``Content-Length`` headers), ``negative-length`` (``Content-Length: -1``),
``gzip-chunked`` (``Transfer-Encoding: gzip, chunked``: the chunks hold gzip data).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import socket
import struct
import threading
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["BEHAVIOURS", "HostileUpstream"]

_GIB = 1024 * 1024 * 1024
_PIECE = 64 * 1024
_PATH_MODEL = re.compile(rb"/models/([^/:?\s]+):(\w+)")

Writer = asyncio.StreamWriter


def _completion(text: str = "fine") -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-hostile",
            "object": "chat.completion",
            "created": 0,
            "model": "ok",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()


def _stream_body() -> bytes:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "ok",
             "choices": [{"index": 0, "delta": {"content": "fine"}, "finish_reason": "stop"}]}  # fmt: skip
    return b"data: " + json.dumps(chunk).encode() + b"\n\ndata: [DONE]\n\n"


def _chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


_Framing = tuple[list[tuple[str, str]], bytes]  # the framing headers, and the bytes sent


def _length_and_chunked(body: bytes) -> _Framing:
    return [("Content-Length", "5"), ("Transfer-Encoding", "chunked")], _chunked(body)


def _bad_chunk_size(body: bytes) -> _Framing:
    return [("Transfer-Encoding", "chunked")], b"zz\r\n" + body + b"\r\n0\r\n\r\n"


def _conflicting_lengths(body: bytes) -> _Framing:
    return [("Content-Length", "5"), ("Content-Length", str(len(body)))], body


def _negative_length(body: bytes) -> _Framing:
    return [("Content-Length", "-1")], body


def _gzip_chunked(body: bytes) -> _Framing:
    return [("Transfer-Encoding", "gzip, chunked")], _chunked(gzip.compress(body))


def _head(status: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def gzip_bomb(inflated: int) -> bytes:
    """A gzip member that inflates to ``inflated`` zero bytes (about 1/1000 of it on the wire)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = bytes(1024 * 1024)
    parts = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"]
    left = inflated
    crc = 0
    while left > 0:
        piece = block if left >= len(block) else block[:left]
        parts.append(compressor.compress(piece))
        crc = zlib.crc32(piece, crc)
        left -= len(piece)
    parts.append(compressor.flush())
    parts.append(struct.pack("<II", crc, inflated & 0xFFFFFFFF))
    return b"".join(parts)


class HostileUpstream:
    """The server; ``base_url`` is what an ``openai`` provider's ``base_url`` should be."""

    def __init__(self, *, flood_bytes: int = 64 * 1024 * 1024, bomb_bytes: int = 256 * 1024 * 1024):
        self.flood_bytes = flood_bytes
        self._bomb_bytes = bomb_bytes
        self._bomb: bytes | None = None
        self.port = 0
        self.seen: list[str] = []  # the behaviour of each request, in order
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: dict[str, Callable[[Writer, bool], Awaitable[None]]] = {
            "huge-length": self._huge_length,
            "chunked-flood": self._chunked_flood,
            "gzip-bomb": self._gzip_bomb,
            "big-header": self._big_header,
            "many-headers": self._many_headers,
            "empty-object": self._fixed(b"{}"),
            "choices-not-list": self._fixed(b'{"choices": "not-a-list"}'),
            "not-json": self._fixed(b"<html>502 Bad Gateway</html>", "text/html"),
            "long-line": self._long_line,
            "stream-flood": self._stream_flood,
            "slow-head": self._slow_head,
            "reset-after-head": self._reset_after_head,
            "bad-utf8-stream": self._bad_utf8_stream,
            "length-and-chunked": self._framed(_length_and_chunked),
            "bad-chunk-size": self._framed(_bad_chunk_size),
            "conflicting-lengths": self._framed(_conflicting_lengths),
            "negative-length": self._framed(_negative_length),
            "gzip-chunked": self._framed(_gzip_chunked),
            "ok": self._ok,
        }

    def prepare_bomb(self) -> None:
        """Build the gzip bomb now (seconds for gigabytes) rather than on its first request."""
        if self._bomb is None:
            self._bomb = gzip_bomb(self._bomb_bytes)

    @property
    def base_url(self) -> str:
        """For an ``openai`` provider (up to ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        """For ``anthropic`` and ``gemini`` providers (the host root)."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HostileUpstream:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._serve, sock=sock, limit=1024 * 1024)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- one connection, one answer ------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            body: dict[str, Any] = json.loads(await reader.readexactly(length)) if length else {}
            in_path = _PATH_MODEL.search(head.split(b"\r\n", 1)[0])
            behaviour = str(body.get("model") or (in_path and in_path[1].decode()) or "ok")
            stream = bool(body.get("stream")) or bool(
                in_path and in_path[2] == b"streamGenerateContent"
            )
            self.seen.append(behaviour)
            handler = self._handlers.get(behaviour, self._handlers["ok"])
            await handler(writer, stream)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _flood(self, writer: Writer, piece: bytes, total: int | None = None) -> None:
        """Send ``piece`` again and again until ``total`` bytes or the proxy hangs up."""
        sent = 0
        limit = self.flood_bytes if total is None else total
        while sent < limit:
            writer.write(piece)
            await writer.drain()
            sent += len(piece)

    async def _huge_length(self, writer: Writer, stream: bool) -> None:
        writer.write(
            _head("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(_GIB))])
        )
        await self._flood(writer, b'{"a":"' + b"x" * (_PIECE - 6))

    async def _chunked_flood(self, writer: Writer, stream: bool) -> None:
        writer.write(
            _head(
                "200 OK", [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]
            )
        )
        piece = b"x" * _PIECE
        await self._flood(writer, f"{len(piece):x}\r\n".encode() + piece + b"\r\n")

    async def _gzip_bomb(self, writer: Writer, stream: bool) -> None:
        if self._bomb is None:
            self._bomb = await asyncio.to_thread(gzip_bomb, self._bomb_bytes)
        bomb = self._bomb
        headers = [
            ("Content-Type", "text/event-stream" if stream else "application/json"),
            ("Content-Encoding", "gzip"),
            ("Content-Length", str(len(bomb))),
        ]
        writer.write(_head("200 OK", headers) + bomb)
        await writer.drain()

    async def _big_header(self, writer: Writer, stream: bool) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Big: ")
        await self._flood(writer, b"a" * _PIECE, 16 * 1024 * 1024)
        body = _completion()
        writer.write(f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()

    async def _many_headers(self, writer: Writer, stream: bool) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        line = b"X-Many: 1\r\n"
        await self._flood(writer, line * 4096, 200_000 * len(line))
        body = _completion()
        writer.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()

    def _fixed(
        self, body: bytes, content_type: str = "application/json"
    ) -> Callable[[Writer, bool], Awaitable[None]]:
        async def answer(writer: Writer, stream: bool) -> None:
            headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
            writer.write(_head("200 OK", headers) + body)
            await writer.drain()

        return answer

    def _framed(
        self, frame: Callable[[bytes], _Framing]
    ) -> Callable[[Writer, bool], Awaitable[None]]:
        """A valid answer (or event stream) behind the headers and bytes ``frame`` makes of it."""

        async def answer(writer: Writer, stream: bool) -> None:
            body = _stream_body() if stream else _completion()
            content_type = "text/event-stream" if stream else "application/json"
            headers, wire = frame(body)
            writer.write(_head("200 OK", [("Content-Type", content_type), *headers]) + wire)
            await writer.drain()

        return answer

    async def _sse_head(self, writer: Writer) -> None:
        writer.write(
            _head("200 OK", [("Content-Type", "text/event-stream"), ("Connection", "close")])
        )

    async def _long_line(self, writer: Writer, stream: bool) -> None:
        await self._sse_head(writer)
        writer.write(b'data: {"choices": [{"delta": {"content": "')
        await self._flood(writer, b"a" * _PIECE)

    async def _stream_flood(self, writer: Writer, stream: bool) -> None:
        await self._sse_head(writer)
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": "x" * 200}}]}  # fmt: skip
        frame = b"data: " + json.dumps(chunk).encode() + b"\n\n"
        await self._flood(writer, frame * max(1, _PIECE // len(frame)))

    async def _slow_head(self, writer: Writer, stream: bool) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"s" * 3600:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(1.0)

    async def _reset_after_head(self, writer: Writer, stream: bool) -> None:
        writer.write(
            _head("200 OK", [("Content-Type", "application/json"), ("Content-Length", "1000")])
        )
        writer.write(b'{"id": "cut')
        await writer.drain()
        sock = writer.get_extra_info("socket")
        if sock is not None:  # SO_LINGER 0: close() sends a reset
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def _bad_utf8_stream(self, writer: Writer, stream: bool) -> None:
        await self._sse_head(writer)
        writer.write(b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m",'
                     b'"choices":[{"index":0,"delta":{"content":"\xff\xfe"}}]}\n\n'
                     b"data: [DONE]\n\n")  # fmt: skip
        await writer.drain()

    async def _ok(self, writer: Writer, stream: bool) -> None:
        if stream:
            await self._sse_head(writer)
            writer.write(_stream_body())
        else:
            body = _completion()
            writer.write(
                _head(
                    "200 OK",
                    [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
                )
                + body
            )
        await writer.drain()


BEHAVIOURS = (
    "huge-length",
    "chunked-flood",
    "gzip-bomb",
    "big-header",
    "many-headers",
    "empty-object",
    "choices-not-list",
    "not-json",
    "long-line",
    "stream-flood",
    "slow-head",
    "reset-after-head",
    "bad-utf8-stream",
    "length-and-chunked",
    "bad-chunk-size",
    "conflicting-lengths",
    "negative-length",
    "gzip-chunked",
    "ok",
)
