"""A transport speaking HTTP/1.1 itself: asyncio protocols and httptools' parser.

The upstream exchange is most of what a proxied request costs once the rest of the path
is lean: in-process against nginx, aiohttp's ``ClientSession.request`` plus ``read()``
(the transport this one replaced) cost 65-67 µs of CPU per request, a bare asyncio
protocol feeding httptools (the llhttp parser uvicorn uses) 10-14 µs. A gateway needs
only a narrow slice of a general client (keep-alive connections to a few configured
hosts, a request written in one piece, the answer handed over as it arrives), so this
transport is that slice and nothing more: parsing is httptools', TLS and sockets are
asyncio's.

What a request gets: no cookie jar (an upstream's ``Set-Cookie`` must never reach the
next caller), no decompression (bytes are relayed as they came; we ask for
``identity``), no redirects, HTTP/1.1 only, at most ``max_connections`` connections (at
most ``connects_at_once`` of them being opened at a time per origin), idle ones kept
``keepalive_secs``, each origin's name looked up once per five minutes.
A forward proxy and the TLS settings come from the provider (``providers/egress.py``):
an https origin is reached through the proxy with a ``CONNECT`` tunnel and TLS inside
it, a plain-http one by asking the proxy for the absolute URL. The request's
``timeouts`` give ``connect`` (opening a connection), ``read`` (the longest
wait for any bytes of the answer, its head included) and ``pool`` (waiting for a free
connection); ``write`` is not enforced, and the router bounds first byte, idle gaps and
the total for every adapter. Requests and answers are ``providers/exchange.py``'s
``UpstreamRequest`` and ``UpstreamResponse``, written and read as they are.

Exceptions, as httpx's own transport would choose them:

- no connection (refused, unreachable, DNS, TLS, a proxy refusing the tunnel):
  ``ConnectError``;
- connecting took longer than ``connect``, or no connection was free within ``pool``:
  ``ConnectTimeout`` (the provider was not reached: ``PoolTimeout`` would read as the
  provider timing out);
- the upstream closed the connection before answering, sent something that is not an
  HTTP response, or ended a body early: ``RemoteProtocolError``;
- its response head passed ``max_head_bytes`` or ``max_headers``: ``AnswerTooLarge``
  (a ``RemoteProtocolError``; providers/limits.py), the connection closed at once;
- the connection was reset: ``ReadError``;
- no byte for ``read`` seconds: ``ReadTimeout``.

A request on a kept-alive connection the upstream has just closed is not sent again (a POST may not be): it fails with ``RemoteProtocolError`` and the router's
retry takes over. One transport belongs to one event loop. ``HEAD`` is not supported
(no provider call uses it; its answer's body length would be misread).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator

import httptools
import httpx

from fkllmproxy.providers.egress import Proxy, ProxyChoice, refused_by_proxy
from fkllmproxy.providers.exchange import Timeouts, UpstreamRequest, UpstreamResponse
from fkllmproxy.providers.limits import AnswerTooLarge

__all__ = ["H1Transport"]

_DNS_TTL_SECS = 300.0  # how long an origin's looked-up addresses are reused
# Connections one origin's pool opens at once. A thousand requests arriving together on
# an empty pool would otherwise start a thousand TLS handshakes together; on a busy CPU
# each then takes longer than ``connect`` (seen in the benchmark: 1,024 concurrent
# requests over TLS, every one failing with ConnectTimeout and the circuit opening).
# The rest wait for a connection to come free or for their turn to open one, which the
# ``connect`` timeout does not count (``pool`` does, when given).
CONNECTS_AT_ONCE = 64
_HIGH_WATER = 256 * 1024  # buffered body bytes above which the socket stops being read
_SCHEMES = frozenset({"http", "https"})


class _Connection(asyncio.Protocol):
    """One upstream connection and the answer being read on it (one at a time)."""

    __slots__ = (
        "_head",
        "_parser",
        "_paused",
        "_waiter",
        "broken",
        "buffered",
        "chunks",
        "complete",
        "error",
        "head_seen",
        "headers",
        "idle_since",
        "in_use",
        "pool",
        "status",
        "transport",
    )

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._head = False
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_seen = 0  # bytes received for the answer before its head was complete
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.broken = False  # closed, or in a state no next request can follow
        self.error: httpx.TransportError | None = None
        self.in_use = False
        self.idle_since = 0.0

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        head = self._head
        if not head:
            self.head_seen += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"not an HTTP response from upstream: {exc}"))
            self.close()
            return
        if not head and not self._head and self.head_seen > self.pool.owner.max_head_bytes:
            # Checked per read, so the parser holds at most one read past the bound.
            limit = self.pool.owner.max_head_bytes
            self._fail(
                AnswerTooLarge(
                    f"sent a response head over the {limit} bytes of max_response_head_bytes"
                )
            )
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.broken = True
        if self.in_use:
            if self._head and not self.complete and self._ends_at_close():
                self.on_message_complete()  # a body delimited by the end of the connection
            elif not self.complete:
                if exc is not None:
                    failure: httpx.TransportError = httpx.ReadError(
                        f"connection to upstream lost: {exc}"
                    )
                elif self._head:
                    failure = httpx.RemoteProtocolError("upstream closed the connection mid-body")
                else:
                    failure = httpx.RemoteProtocolError(
                        "upstream closed the connection without sending a response"
                    )
                self._fail(failure)
        else:
            self.pool.forget(self)

    # -- httptools callbacks -----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self.headers
        if len(headers) >= self.pool.owner.max_headers:
            limit = self.pool.owner.max_headers
            self._fail(AnswerTooLarge(f"sent more than {limit} headers (max_response_headers)"))
            raise _StopParsing  # the parser gives up on this answer; data_received closes
        headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            self.headers = []
            return
        self.status = status
        self._head = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self._head:
            return  # the end of an interim answer
        self.complete = True
        if not self._parser.should_keep_alive():
            self.broken = True
        self._wake()

    # -- used by the transport ---------------------------------------------------------------

    def _ends_at_close(self) -> bool:
        names = {name.lower() for name, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def _fail(self, error: httpx.TransportError) -> None:
        if self.error is None:
            self.error = error
        self.broken = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def start(self, data: bytes) -> None:
        """Send one request (head and body together) and get ready for its answer."""
        self.in_use = True
        self._head = False
        self.status = 0
        self.headers = []
        self.head_seen = 0
        self.chunks.clear()
        self.buffered = 0
        self.complete = False
        transport = self.transport
        if self.broken or transport is None or transport.is_closing():
            # Closed by the upstream between connecting and now: nothing would answer.
            self._fail(
                httpx.RemoteProtocolError("upstream closed the connection before the request")
            )
            return
        transport.write(data)

    async def wait(self, read_timeout: float | None) -> None:
        """Until something new happened (head, body bytes, end, error) or ``read`` passed."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None
        if read_timeout is not None:
            timer = loop.call_later(read_timeout, self._timed_out, waiter, read_timeout)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _timed_out(self, waiter: asyncio.Future[None], seconds: float) -> None:
        if not waiter.done():
            self._fail(httpx.ReadTimeout(f"no data from upstream for {seconds:g} s"))

    def take(self) -> bytes:
        """Every body byte received so far."""
        data = self.chunks.popleft() if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self._paused and self.transport is not None and not self.broken:
            self._paused = False
            self.transport.resume_reading()
        return data

    def close(self) -> None:
        self.broken = True
        if self.transport is not None:
            self.transport.close()


class _StopParsing(Exception):
    """Raised in a parser callback to make httptools stop (it wraps it in its own error)."""


class _Pool:
    """Idle connections to one origin (scheme, host, port); the limit is the transport's."""

    __slots__ = (
        "_addresses",
        "_resolved_at",
        "_resolving",
        "connecting",
        "host",
        "idle",
        "owner",
        "port",
        "proxy",
        "proxy_header",
        "retired",
        "ssl",
        "target",
    )

    def __init__(
        self,
        owner: H1Transport,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        proxy: Proxy | None = None,
    ) -> None:
        self.owner = owner
        self.host = host
        self.port = port
        self.ssl = tls
        self.proxy = proxy
        # Plain http through a proxy: the request line names the whole URL, and the proxy
        # is told who we are in a header of the request itself (no tunnel to say it in).
        plain_proxied = proxy is not None and tls is None
        self.target = f"http://{_authority(host, port)}".encode() if plain_proxied else b""
        self.proxy_header = (
            b"Proxy-Authorization: " + proxy.authorization + b"\r\n"
            if plain_proxied and proxy is not None and proxy.authorization
            else b""
        )
        self.idle: deque[_Connection] = deque()
        self.connecting = 0  # connections being opened now (at most connects_at_once)
        self.retired = False  # the transport was closed: answers still out close at the end
        self._addresses: list[tuple[str, int]] = []
        self._resolved_at = 0.0
        self._resolving: asyncio.Future[list[tuple[str, int]]] | None = None

    async def acquire(self, timeouts: Timeouts | None) -> _Connection:
        """An idle connection to this origin, else a new one once the limit allows."""
        owner = self.owner
        pool_timeout = timeouts.get("pool") if timeouts else None
        deadline = None
        while True:
            connection = self._reuse()
            if connection is not None:
                return connection
            if self.connecting < owner.connects_at_once and (
                owner.open < owner.max_connections or owner.close_one_idle()
            ):
                break
            if deadline is None and pool_timeout is not None:
                deadline = asyncio.get_running_loop().time() + pool_timeout
            await owner.wait_turn(deadline, pool_timeout)
        owner.open += 1
        self.connecting += 1
        try:
            return await self._connect(timeouts.get("connect") if timeouts else None)
        except BaseException:
            owner.release_slot()
            raise
        finally:
            self.connecting -= 1
            owner.wake_next()  # a turn to open a connection is free

    def _reuse(self) -> _Connection | None:
        now = time.monotonic()
        idle = self.idle
        while idle:
            connection = idle.pop()  # the most recently used: the likeliest to be alive
            if connection.broken or now - connection.idle_since > self.owner.keepalive_secs:
                connection.close()
                self.owner.release_slot()
                continue
            return connection
        return None

    async def _connect(self, connect_secs: float | None) -> _Connection:
        via = f" through the proxy {self.proxy.host}:{self.proxy.port}" if self.proxy else ""
        try:
            async with asyncio.timeout(connect_secs):
                return await self._open_connection()
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"connecting to {self.host}:{self.port}{via} took more than {connect_secs:g} s"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(
                f"cannot connect to {self.host}:{self.port}{via}: {exc}"
            ) from exc

    async def _open_connection(self) -> _Connection:
        """A connection to the first of the origin's (or its proxy's) addresses that
        accepts one; through a proxy to an https origin, a tunnel with TLS inside."""
        loop = asyncio.get_running_loop()
        failure: OSError | None = None
        tunnel = self.proxy is not None and self.ssl is not None
        for host, port in await self._addresses_now():
            try:
                if tunnel:
                    return await self._tunnel(loop, host, port)
                _, connection = await loop.create_connection(
                    lambda: _Connection(self),
                    host,
                    port,
                    ssl=None if self.proxy else self.ssl,
                    server_hostname=self.host if self.ssl is not None else None,
                )
                return connection
            except (ssl.SSLError, _TunnelRefused):
                raise
            except OSError as exc:
                failure = exc
        self._addresses = []  # none answered: look the name up again next time
        raise failure or OSError(f"no address for {self._dialled()[0]}")

    async def _tunnel(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> _Connection:
        """``CONNECT`` through the proxy at ``host:port``, then TLS to the origin inside."""
        assert self.proxy is not None and self.ssl is not None
        reply = _TunnelReply(loop)
        raw, _ = await loop.create_connection(lambda: reply, host, port)
        authority = _authority(self.host, self.port).encode()
        request = [b"CONNECT ", authority, b" HTTP/1.1\r\nHost: ", authority, b"\r\n"]
        if self.proxy.authorization:
            request += (b"Proxy-Authorization: ", self.proxy.authorization, b"\r\n")
        raw.write(b"".join(request) + b"\r\n")
        try:
            status = await reply.status
            if status != 200:
                raise _TunnelRefused(f"the proxy answered {status} to CONNECT {authority.decode()}")
            connection = _Connection(self)
            tls = await loop.start_tls(raw, connection, self.ssl, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise
        if tls is None:  # the connection closed during the handshake
            raise OSError(f"the tunnel to {authority.decode()} closed during the TLS handshake")
        connection.connection_made(tls)
        return connection

    def _dialled(self) -> tuple[str, int]:
        """Where connections go: the proxy when there is one, else the origin."""
        if self.proxy is not None:
            return self.proxy.host, self.proxy.port
        return self.host, self.port

    async def _addresses_now(self) -> list[tuple[str, int]]:
        """The origin's addresses, looked up once per ``_DNS_TTL_SECS``.

        A burst of new connections (a thousand requests arriving together at start)
        would otherwise make a thousand lookups through the loop's small resolver thread
        pool; concurrent callers share one lookup.
        """
        if self._addresses and time.monotonic() - self._resolved_at < _DNS_TTL_SECS:
            return self._addresses
        resolving = self._resolving
        if resolving is None:
            resolving = self._resolving = asyncio.ensure_future(self._look_up())
            resolving.add_done_callback(self._looked_up)
        return await asyncio.shield(resolving)

    async def _look_up(self) -> list[tuple[str, int]]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(*self._dialled(), type=socket.SOCK_STREAM)
        addresses: list[tuple[str, int]] = []
        for *_, address in infos:
            host_port = (str(address[0]), int(address[1]))
            if host_port not in addresses:
                addresses.append(host_port)
        self._addresses = addresses
        self._resolved_at = time.monotonic()
        return addresses

    def _looked_up(self, resolving: asyncio.Future[list[tuple[str, int]]]) -> None:
        self._resolving = None
        if not resolving.cancelled():
            resolving.exception()  # retrieved: each waiter got it through the shield

    def release(self, connection: _Connection) -> None:
        """Back to the idle list if the next request can use it; otherwise closed."""
        connection.in_use = False
        if connection.broken or not connection.complete or connection.chunks or self.retired:
            connection.close()
            self.owner.release_slot()
            return
        connection.idle_since = time.monotonic()
        self.idle.append(connection)
        self.owner.wake_next()

    def forget(self, connection: _Connection) -> None:
        """An idle connection the upstream closed: drop it now rather than on next use."""
        try:
            self.idle.remove(connection)
        except ValueError:
            return
        self.owner.release_slot()


class _TunnelRefused(OSError):
    """The proxy did not open the tunnel (407 without credentials, 403 by its rules...)."""


class _TunnelReply(asyncio.Protocol):
    """Reads the proxy's answer to ``CONNECT``: its status, once its head is complete."""

    _MAX_HEAD = 64 * 1024

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.status: asyncio.Future[int] = loop.create_future()
        self._head = b""

    def data_received(self, data: bytes) -> None:
        if self.status.done():
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > self._MAX_HEAD:
                self.status.set_exception(_TunnelRefused("the proxy's answer head is too large"))
            return
        if end + 4 != len(self._head):
            # Bytes after the head, before any TLS: not a proxy that opened a tunnel.
            self.status.set_exception(_TunnelRefused("the proxy sent data after its answer"))
            return
        line = self._head.split(b"\r\n", 1)[0].split()
        if len(line) < 2 or not line[0].startswith(b"HTTP/1.") or not line[1].isdigit():
            self.status.set_exception(_TunnelRefused("the proxy's answer is not HTTP"))
            return
        self.status.set_result(int(line[1]))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.status.done():
            self.status.set_exception(
                _TunnelRefused("the proxy closed the connection before answering CONNECT")
            )


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _abandon(connection: _Connection) -> None:
    connection.close()
    connection.pool.release(connection)


class _Body:
    """The answer's body as it arrives; the connection goes back to the pool at its end."""

    __slots__ = ("_connection", "_loop", "_read_timeout", "_released")

    def __init__(self, connection: _Connection, read_timeout: float | None) -> None:
        self._connection = connection
        self._read_timeout = read_timeout
        self._released = False
        self._loop = asyncio.get_running_loop()

    def __del__(self) -> None:
        # A response dropped unread and unclosed would hold its connection's place in
        # the limit for good: hang up and free it (on the loop; GC may run elsewhere).
        if not self._released and not self._loop.is_closed():
            self._released = True
            self._loop.call_soon_threadsafe(_abandon, self._connection)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        while True:
            if connection.chunks:
                yield connection.take()
                continue
            if connection.complete:
                break
            if connection.error is not None:
                raise connection.error
            await connection.wait(self._read_timeout)
        self._release()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._connection.pool.release(self._connection)

    async def aclose(self) -> None:
        if not self._released and not self._connection.complete:
            self._connection.close()  # an abandoned answer: hang up so the upstream stops
        self._release()


class H1Transport:
    """One provider's upstream connections (see the module docstring for what and why)."""

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_secs: float = 30.0,
        max_head_bytes: int = 64 * 1024,
        max_headers: int = 100,
        tls: ssl.SSLContext | None = None,
        proxies: ProxyChoice | None = None,
        connects_at_once: int = CONNECTS_AT_ONCE,
    ) -> None:
        self.max_connections = max_connections
        self.connects_at_once = connects_at_once
        self.keepalive_secs = keepalive_secs
        self.max_head_bytes = max_head_bytes
        self.max_headers = max_headers
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self.open = 0  # connections open or being opened, idle ones included
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._tls = tls
        self._proxies = proxies

    # -- the connection limit ----------------------------------------------------------------

    async def wait_turn(self, deadline: float | None, pool_secs: float | None) -> None:
        """Until a connection is released or goes idle, or the loop's clock reaches
        ``deadline`` (``pool`` seconds after the request began to wait)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.wake_next()  # woken as we gave up: pass the turn on
            else:
                waiter.cancel()
                # Gone already if a wake-up passed over it after it was cancelled.
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                # ConnectTimeout: the provider was not reached (PoolTimeout would read as
                # the provider timing out).
                raise httpx.ConnectTimeout(
                    f"no free upstream connection within {pool_secs:g} s "
                    f"(max_connections = {self.max_connections})"
                ) from None
            raise

    def release_slot(self) -> None:
        self.open -= 1
        self.wake_next()

    def wake_next(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def close_one_idle(self) -> bool:
        """At the limit, an idle connection to another origin makes way for a new one."""
        for pool in self._pools.values():
            if pool.idle:
                pool.idle.popleft().close()
                self.open -= 1
                return True
        return False

    # -- requests ----------------------------------------------------------------------------

    def _pool(self, request: UpstreamRequest) -> _Pool:
        key = (request.scheme, request.host, request.port)
        pool = self._pools.get(key)
        if pool is None:
            scheme, host, port = key
            if scheme not in _SCHEMES:
                raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
            tls = None
            if scheme == "https":
                if self._tls is None:
                    self._tls = ssl.create_default_context()
                    self._tls.set_alpn_protocols(["http/1.1"])
                tls = self._tls
            proxies = self._proxies
            proxy = proxies.for_origin(scheme, host, port) if proxies else None
            pool = self._pools[key] = _Pool(self, host, port, tls, proxy)
        return pool

    async def handle_async_request(self, request: UpstreamRequest) -> UpstreamResponse:
        if request.method == "HEAD":
            raise httpx.UnsupportedProtocol("HEAD requests are not supported by this transport")
        pool = self._pool(request)
        timeouts = request.timeouts
        headers = request.headers
        content = request.content
        if not isinstance(content, bytes):
            # A streamed body: sent whole, with its length instead of chunked framing.
            content = b"".join([chunk async for chunk in content])
            headers = [
                (name, value)
                for name, value in headers
                if name.lower() not in (b"transfer-encoding", b"content-length")
            ]
            headers.append((b"Content-Length", str(len(content)).encode()))
        target = pool.target + request.target
        head = [request.method.encode(), b" ", target, b" HTTP/1.1\r\n"]
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        head += (pool.proxy_header, b"\r\n")
        data = b"".join(head)
        lines = len(headers) + 2 + (pool.proxy_header != b"")
        if data.count(b"\n") != lines or data.count(b"\r") != lines:
            # A line break inside a header would start a header (or a request) of its
            # own at the upstream; no caller sends one, and none may.
            raise httpx.LocalProtocolError("line break in a request header; not sent")
        if content:
            data += content
        read_timeout = timeouts.get("read") if timeouts else None

        connection = await pool.acquire(timeouts)
        try:
            connection.start(data)
            while not connection._head:
                if connection.error is not None:
                    raise connection.error
                await connection.wait(read_timeout)
        except BaseException:
            connection.close()
            pool.release(connection)
            raise
        if connection.status == 407 and pool.target:  # the proxy's own answer to plain http
            connection.close()
            pool.release(connection)
            assert pool.proxy is not None
            raise refused_by_proxy(pool.proxy)
        return UpstreamResponse(
            connection.status, connection.headers, _Body(connection, read_timeout)
        )

    async def aclose(self) -> None:
        for pool in self._pools.values():
            pool.retired = True
            while pool.idle:
                pool.idle.pop().close()
                self.open -= 1
        self._pools.clear()
