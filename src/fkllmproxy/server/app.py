"""The Litestar application: routes, the request middleware, and error rendering."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.datastructures import State

from fkllmproxy.server.admin import admin_config, admin_reload
from fkllmproxy.server.admin_circuits import circuit_routes
from fkllmproxy.server.admin_config_source import config_source_routes
from fkllmproxy.server.admin_usage import usage_backup
from fkllmproxy.server.anthropic_api import count_tokens
from fkllmproxy.server.api_routes import API_ROUTES, litestar_routes
from fkllmproxy.server.errors import exception_handlers
from fkllmproxy.server.fast_routes import FastRoutes
from fkllmproxy.server.gemini_api import GeminiRoutes
from fkllmproxy.server.health import health, ready
from fkllmproxy.server.metrics_api import metrics_json, metrics_prometheus
from fkllmproxy.server.middleware import RequestMiddleware
from fkllmproxy.server.openai_api import list_models
from fkllmproxy.server.openapi import openapi_json
from fkllmproxy.server.responses_api import retrieve_response
from fkllmproxy.server.root import root, root_head
from fkllmproxy.server.runtime import RuntimeHolder
from fkllmproxy.server.ui import Console, ui_routes

__all__ = ["create_app"]


class _MsgspecLitestar(Litestar):
    """Litestar without the pydantic plugins it adds whenever pydantic is importable.

    Every model here is a msgspec Struct; pydantic is on the machine only because Typer
    requires it, and the plugins' import alone held ~9 MiB of the serving process's
    resident memory. Overriding this (private) hook is safe either way: were Litestar to
    rename it, the plugins would simply be loaded again.
    """

    @staticmethod
    def _get_default_plugins(plugins: list[Any]) -> list[Any]:
        from litestar.plugins.core import MsgspecDIPlugin

        plugins.append(MsgspecDIPlugin())
        return plugins


def create_app(holder: RuntimeHolder) -> Litestar:
    """The ASGI app serving ``holder``'s current runtime (swapped in place on reload)."""
    app = _MsgspecLitestar(
        route_handlers=[
            *litestar_routes(),
            list_models,
            health,
            ready,
            metrics_json,
            metrics_prometheus,
            count_tokens,
            root,
            root_head,
            retrieve_response,
            *circuit_routes,
            *config_source_routes,
            usage_backup,
            *ui_routes,
        ],
        exception_handlers=exception_handlers,
        state=State({"holder": holder, "console": Console(holder)}),
        openapi_config=None,
        logging_config=None,
        request_max_body_size=None,
        debug=False,
    )
    for handler in (admin_config, admin_reload, openapi_json):
        app.register(handler)
    # Outside routing rather than in ``middleware=``: Litestar runs route middleware only
    # for matched routes, and a 404 or 405 must get its X-Request-ID, log line and count
    # too. ``asgi_handler`` is the stack Litestar itself wraps (CORS, OpenTelemetry).
    # The API routes (api_routes.py) are answered by FastRoutes without entering
    # Litestar's routing; Litestar has them too, from the same table, for 405s.
    # The Gemini API's paths carry the model and method in the path (``models/m:method``):
    # GeminiRoutes parses them, behind the exact-path routes so those pay nothing for it.
    fast = FastRoutes(GeminiRoutes(app.asgi_handler, holder), holder, API_ROUTES)
    app.asgi_handler = RequestMiddleware(fast)  # type: ignore[assignment]
    return app
