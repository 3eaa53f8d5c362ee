"""The hot API routes, served straight from ASGI messages instead of through Litestar.

``POST /v1/chat/completions``, ``/v1/messages`` and ``/v1/embeddings`` are nearly all
of a gateway's traffic. Through Litestar each paid for a ``Request``, the signature
model, the exception middleware and the ``Response`` -> ASGI conversion: about a
tenth of the process's CPU per request under load. ``FastRoutes`` sits between the
request middleware (request id, log line, metrics) and Litestar, calls the same
handler cores Litestar's routes call, and sends their ``Reply`` itself: the same
status, headers and bytes. Errors are rendered by ``server/errors.py`` as Litestar's
exception handlers render them. Anything else, including another method on these
paths (405), goes on to Litestar.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from fkllmproxy.errors import ClientDisconnected
from fkllmproxy.server.context import RequestContext
from fkllmproxy.server.disconnect import DisconnectWatch
from fkllmproxy.server.errors import reply_for_exception
from fkllmproxy.server.exchange import ApiRequest, Receive, Reply
from fkllmproxy.server.runtime import RuntimeHolder

__all__ = ["FastRoutes", "HandlerCore", "send_reply"]

HandlerCore = Callable[[ApiRequest], Awaitable[Reply]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class FastRoutes:
    """ASGI app: ``POST`` to a path in ``routes`` is answered here, the rest by ``app``."""

    __slots__ = ("_holder", "_routes", "app")

    def __init__(self, app: Any, holder: RuntimeHolder, routes: Mapping[str, HandlerCore]) -> None:
        self.app = app
        self._holder = holder
        self._routes = dict(routes)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        core = None
        if scope["type"] == "http" and scope["method"] == "POST":
            core = self._routes.get(scope["path"])
        if core is None:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        # The route label of the metrics and traces; the paths are static, so the
        # template Litestar would set is the path itself.
        scope["path_template"] = path
        context: RequestContext = scope["fkllm"]
        try:
            reply = await core(ApiRequest(scope, receive, self._holder))
        except Exception as exc:
            reply = reply_for_exception(exc, path, context)
        await send(
            {"type": "http.response.start", "status": reply.status, "headers": reply.raw_headers()}
        )
        if isinstance(reply.body, bytes):
            await send({"type": "http.response.body", "body": reply.body, "more_body": False})
        else:
            await _stream(reply.body, receive, send, context, path)


async def send_reply(
    reply: Reply, receive: Receive, send: Send, context: RequestContext, path: str
) -> None:
    """Send ``reply`` as ``FastRoutes`` does, for the other ASGI routers in front of Litestar."""
    await send(
        {"type": "http.response.start", "status": reply.status, "headers": reply.raw_headers()}
    )
    if isinstance(reply.body, bytes):
        await send({"type": "http.response.body", "body": reply.body, "more_body": False})
    else:
        await _stream(reply.body, receive, send, context, path)


async def _stream(
    frames: AsyncIterator[bytes],
    receive: Receive,
    send: Send,
    context: RequestContext,
    path: str,
) -> None:
    """Send ``frames`` as they come; stop them the moment the client disconnects.

    The frames are iterated in this task while a watcher waits on ``receive``; a
    disconnect cancels whatever is awaited (the upstream read or the send), and the
    frames are closed either way, so the upstream response is never left open.
    """
    try:
        with DisconnectWatch(receive) as watch:
            try:
                async for frame in frames:
                    try:
                        await send({"type": "http.response.body", "body": frame, "more_body": True})
                    except Exception:
                        # The server could not deliver it: the client hung up before the
                        # watch heard (ASGI servers raise here; which error is theirs).
                        context.error_code = context.error_code or ClientDisconnected.code
                        return
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except asyncio.CancelledError:
                if not watch.caused_cancel():
                    raise
                if context.error_code is None:
                    context.error_code = ClientDisconnected.code
            except Exception as exc:
                # Too late for an error answer: note or log it, and let the server
                # abort the response so the client sees it cut, not complete.
                reply_for_exception(exc, path, context)
                raise
    finally:
        aclose = getattr(frames, "aclose", None)
        if aclose is not None:
            await aclose()
