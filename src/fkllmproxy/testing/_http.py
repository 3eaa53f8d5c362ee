"""A minimal HTTP/1.1 server layer on asyncio streams, for the fake upstream only.

Deliberately independent of the proxy's own web stack: the fake must catch the proxy
misbehaving on the wire, so it parses requests itself. It supports what real clients
send to a provider: keep-alive, ``Content-Length`` and chunked request bodies (always
drained in full, or clients see sporadic resets), ``Expect: 100-continue``, and answers
either with a ``Content-Length`` body or as a chunked stream flushed piece by piece.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote

__all__ = ["HttpRequest", "ProtocolError", "Responder", "read_request"]

MAX_BODY = 64 * 1024 * 1024
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}
_REASONS[529] = b"Overloaded"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_LINGER_RESET = struct.pack("ii", 1, 0)


class ProtocolError(Exception):
    """Raised when the bytes on the connection are not an HTTP/1.1 request we accept."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpRequest:
    """One parsed request: method, path (percent-decoded), query, lower-case headers, body."""

    __slots__ = ("body", "headers", "keep_alive", "method", "path", "query", "target")

    def __init__(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.target = target
        raw_path, _, raw_query = target.partition("?")
        self.path = unquote(raw_path)
        self.query = dict(parse_qsl(raw_query, keep_blank_values=True))
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> HttpRequest | None:
    """Read one request, body included; ``None`` when the client closed between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise ProtocolError(400, "connection closed inside the request head") from None
    except asyncio.LimitOverrunError:
        raise ProtocolError(431, "request head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise ProtocolError(400, f"bad request line {lines[0]!r}") from None
    if not version.startswith("HTTP/1."):
        raise ProtocolError(505, f"unsupported version {version!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ProtocolError(400, f"bad header line {line!r}")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(_CONTINUE)
    body = await _read_body(reader, headers)
    return HttpRequest(method, target, headers, body, keep_alive)


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    length_text = headers.get("content-length")
    if not length_text:
        return b""
    try:
        length = int(length_text)
    except ValueError:
        raise ProtocolError(400, f"bad Content-Length {length_text!r}") from None
    if length < 0 or length > MAX_BODY:
        raise ProtocolError(413, "request body too large")
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ProtocolError(400, "connection closed inside the request body") from None


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    try:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError(400, "bad chunk size") from None
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers: read and ignore
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                raise ProtocolError(413, "request body too large")
            parts.append(await reader.readexactly(size))
            if await reader.readexactly(2) != b"\r\n":
                raise ProtocolError(400, "chunk not followed by CRLF")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise ProtocolError(400, "connection closed inside a chunked body") from None


class Responder:
    """Writes the answer to one request: a whole body, or a chunked stream, or nothing.

    ``closed`` tells the connection loop not to read another request on this socket.
    """

    __slots__ = ("closed", "keep_alive", "started", "writer")

    def __init__(self, writer: asyncio.StreamWriter, keep_alive: bool) -> None:
        self.writer = writer
        self.keep_alive = keep_alive
        self.started = False
        self.closed = False

    def _head(self, status: int, headers: list[tuple[str, str]], extra: bytes) -> bytes:
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))]
        lines.extend(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers)
        if not self.keep_alive:
            lines.append(b"connection: close\r\n")
        lines.append(extra)
        return b"".join(lines)

    async def send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        """Answer with the whole body at once (``Content-Length``)."""
        all_headers = [("content-type", content_type), *(headers or [])]
        extra = b"content-length: %d\r\n\r\n" % len(body)
        self.started = True
        self.writer.write(self._head(status, all_headers, extra) + body)
        await self.writer.drain()
        if not self.keep_alive:
            self.closed = True

    async def send_partial(self, status: int, body: bytes, content_type: str) -> None:
        """Announce the whole body's length, send half of it, then drop the connection."""
        extra = b"content-length: %d\r\n\r\n" % len(body)
        self.started = True
        self.writer.write(self._head(status, [("content-type", content_type)], extra))
        self.writer.write(body[: len(body) // 2])
        await self.writer.drain()
        self.cut()

    async def start_stream(
        self,
        status: int = 200,
        content_type: str = "text/event-stream",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        """Send the head of a chunked answer; follow with ``chunk`` calls and ``end``."""
        all_headers = [
            ("content-type", content_type),
            ("cache-control", "no-cache"),
            *(headers or []),
        ]
        self.started = True
        self.writer.write(self._head(status, all_headers, b"transfer-encoding: chunked\r\n\r\n"))
        await self.writer.drain()

    async def chunk(self, data: bytes) -> None:
        """Send one chunk of a streamed answer and flush it to the socket."""
        if data:
            self.writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            await self.writer.drain()

    async def end(self) -> None:
        """Terminate a chunked answer properly."""
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()
        if not self.keep_alive:
            self.closed = True

    def cut(self) -> None:
        """Close the connection (FIN) without finishing the answer."""
        self.closed = True
        self.writer.close()

    def reset(self) -> None:
        """Abort the connection with a TCP reset, as a crashed upstream would."""
        self.closed = True
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            except OSError:
                pass
        self.writer.transport.abort()

    async def hang(self, reader: asyncio.StreamReader) -> None:
        """Answer nothing until the client goes away (or the server is stopped)."""
        self.closed = True
        while await reader.read(65536):
            pass
        self.writer.close()
