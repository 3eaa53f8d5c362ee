"""``GET /`` and ``HEAD /``: a short answer naming the service, for whoever knocks.

Claude Code sends ``HEAD /`` to its base URL when it starts, and people point a
browser or ``curl`` at the bare address; both deserve a 200 rather than a 404 logged
at INFO. No key is needed and nothing about the configuration is shown.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, head

from fkllmproxy.server.runtime import RuntimeHolder

__all__ = ["root", "root_head"]

_TEXT = "text/plain; charset=utf-8"


def _banner(request: Request[Any, Any, Any]) -> bytes:
    holder: RuntimeHolder = request.app.state.holder
    return (
        f"fkllmproxy {holder.version}: an LLM gateway. API under /v1, health at /health.\n".encode()
    )


@get("/", media_type=_TEXT)
async def root(request: Request[Any, Any, Any]) -> Response[bytes]:
    return Response(content=_banner(request), media_type=_TEXT)


@head("/", media_type=_TEXT)
async def root_head(request: Request[Any, Any, Any]) -> Response[None]:
    return Response(
        content=None, media_type=_TEXT, headers={"content-length": str(len(_banner(request)))}
    )
