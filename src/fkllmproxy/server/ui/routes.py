"""``/ui/``: the web console's routes (Litestar handlers, off the API's fast path).

One module per page (``signin``, ``live``, ``keys``, ``usage``, ``settings``); the static
files are served here. Pages are rendered from the same objects the API uses: the runtime's breakers and
authenticator, the metrics snapshot of ``/metrics``, the key store of ``fkllm keys``,
the usage ledger of ``fkllm usage``, and the reload that SIGHUP runs. Signed-out
requests are sent to ``/ui/login``; every POST but the sign-in itself needs the
session's CSRF token. The request middleware leaves ``/ui`` out of the request metrics.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from fkllmproxy.errors import NotFound
from fkllmproxy.server.ui.console import console_of, page
from fkllmproxy.server.ui.html import asset
from fkllmproxy.server.ui.keys import create_key, keys, revoke_key
from fkllmproxy.server.ui.live import (
    overview,
    overview_data,
    providers,
    providers_data,
    reset_provider,
)
from fkllmproxy.server.ui.settings import config, reload, restore, save
from fkllmproxy.server.ui.signin import login, login_form, logout
from fkllmproxy.server.ui.usage import usage, usage_csv

__all__ = ["ui_routes"]

_ASSET_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


@get("/ui/static/{name:str}")
async def static(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
    console_of(request)
    found = asset(name)
    kind = _ASSET_TYPES.get(name[name.rfind(".") :]) if "." in name else None
    if found is None or kind is None:
        error = NotFound(f"No console file named {name!r}.")
        error.code = "route_not_found"
        raise error
    return page(found[0], media_type=kind, headers={"cache-control": "public, max-age=3600"})


ui_routes = [
    login_form,
    login,
    logout,
    overview,
    overview_data,
    providers,
    providers_data,
    reset_provider,
    keys,
    create_key,
    revoke_key,
    usage,
    usage_csv,
    config,
    save,
    restore,
    reload,
    static,
]
