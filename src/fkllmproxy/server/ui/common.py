"""What every console page module shares: the signed-in check for changes, rendering,
JSON replies, and the two reads most pages make (the metrics snapshot, the ledger file)."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from typing import Any

import msgspec
from litestar import Request, Response

from fkllmproxy.errors import Unauthorized
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.server.health import provider_states
from fkllmproxy.server.runtime import RuntimeHolder
from fkllmproxy.server.ui.console import Visit, page, read_form, redirect, signed_in
from fkllmproxy.server.ui.html import Html, layout, notice

__all__ = [
    "TO_LOGIN",
    "api_visit",
    "change",
    "client_ip",
    "json_reply",
    "ledger_file",
    "render",
    "take_snapshot",
    "who",
]

_log = get_logger("console")
_encode = msgspec.json.Encoder().encode


TO_LOGIN = "/ui/login"


def render(
    visit: Visit, page_key: str, title: str, body: Html, status: int = 200,
    message: Html | None = None,
) -> Response[bytes]:  # fmt: skip
    """A page of the console in its layout, with this session's CSRF token in its forms."""
    return page(layout(page_key, title, body, csrf=visit.csrf, message=message), status)


async def change(request: Request[Any, Any, Any]) -> tuple[Visit, dict[str, str]] | Response[bytes]:
    """A signed-in, same-origin POST with this session's CSRF token, and its form."""
    visit = await signed_in(request)
    if visit is None:
        return redirect(TO_LOGIN)
    form = await read_form(request)
    presented = form.get("csrf") or request.headers.get("x-csrf-token")
    if not same_origin(request) or not visit.keys.csrf_ok(visit.session, presented):
        _log.warning(
            "console change refused: missing or wrong CSRF token",
            extra={"path": request.url.path, "client_ip": client_ip(request)},
        )
        body = notice(
            "This form was refused: it did not carry this session's CSRF token "
            "(an old page, or a page from another site). Reload the page and try again.",
            "error",
        )
        return render(visit, "overview", "Refused", body, 403)
    return visit, form


def same_origin(request: Request[Any, Any, Any]) -> bool:
    """No ``Origin`` (an old browser) or one naming this host."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return urllib.parse.urlsplit(origin).netloc == host and host != ""


def client_ip(request: Request[Any, Any, Any]) -> str:
    client = request.scope.get("client")
    return str(client[0]) if client else "unknown"


def who(visit: Visit, request: Request[Any, Any, Any]) -> str:
    """Who made a console change, for its log line: the session (its label is logged at
    sign-in too, with the address) and the address the change came from."""
    return f"console session {visit.session.label} from {client_ip(request)}"


async def take_snapshot(holder: RuntimeHolder) -> dict[str, Any]:
    """``/metrics``' snapshot (every worker's totals), taken in a thread.

    It sorts thousands of recent latencies and may read every worker's files: tens of
    milliseconds on a busy machine, which would stall the API's requests on the loop.
    """
    holder.metrics.sync_providers(provider_states(holder))
    uptime = time.time() - holder.started
    return await asyncio.to_thread(holder.metrics.snapshot, uptime=uptime)


def ledger_file(holder: RuntimeHolder) -> Any:
    return holder.ledger.path if holder.ledger is not None else None


async def api_visit(request: Request[Any, Any, Any]) -> Visit:
    visit = await signed_in(request)
    if visit is None:
        raise Unauthorized("The console session has ended: sign in again at /ui/login.")
    return visit


def json_reply(data: Any) -> Response[bytes]:
    return page(_encode(data), media_type="application/json")
