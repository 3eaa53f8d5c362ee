"""The POST routes clients send model calls to: one table, read by both routers.

``FastRoutes`` answers these paths straight from ASGI messages (``fast_routes.py`` says
why). Litestar gets a route for each as well, made here from the same table, so another
method on one of these paths gets Litestar's 405 with its ``Allow`` header, and so an
app built without ``FastRoutes`` in front still serves them the same way. Adding an
API route is one line in ``API_ROUTES``.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler

from fkllmproxy.server.anthropic_api import create_message
from fkllmproxy.server.exchange import ApiRequest
from fkllmproxy.server.fast_routes import HandlerCore
from fkllmproxy.server.openai_api import complete_chat, embed
from fkllmproxy.server.responses_api import create_response

__all__ = ["API_ROUTES", "litestar_routes"]

API_ROUTES: dict[str, HandlerCore] = {
    "/v1/chat/completions": complete_chat,
    "/v1/embeddings": embed,
    "/v1/messages": create_message,
    "/v1/responses": create_response,
}


def _litestar_route(path: str, core: HandlerCore) -> HTTPRouteHandler:
    async def handler(request: Request[Any, Any, Any]) -> Response[Any]:
        return (await core(ApiRequest.of(request))).to_response()

    handler.__name__ = core.__name__
    handler.__qualname__ = core.__qualname__
    return post(path, status_code=200, name=core.__name__)(handler)


def litestar_routes() -> list[HTTPRouteHandler]:
    """A Litestar route per entry of ``API_ROUTES``."""
    return [_litestar_route(path, core) for path, core in API_ROUTES.items()]
