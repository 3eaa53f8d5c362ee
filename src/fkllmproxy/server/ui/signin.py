"""Sign-in with the master key, and sign-out (``/ui/login``, ``/ui/logout``)."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request, Response, get, post

from fkllmproxy.auth.keys import key_digest
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.server.ui.common import TO_LOGIN, change, client_ip
from fkllmproxy.server.ui.console import (
    console_of,
    page,
    read_form,
    redirect,
    session_cookie,
    sign_out,
    signed_in,
)
from fkllmproxy.server.ui.html import Html, login_page, notice
from fkllmproxy.state import StateUnavailable

__all__ = ["login", "login_form", "logout"]

_log = get_logger("console")
_LOGIN_BUCKET = (10, 0.1)  # ten attempts, then one more every ten seconds, per client IP


@get("/ui/login")
async def login_form(request: Request[Any, Any, Any]) -> Response[bytes]:
    console = console_of(request)
    if await signed_in(request) is not None:
        return redirect("/ui/")
    message = None
    if console.session_keys() is None:
        message = _no_master_key()
    return page(login_page(message))


def _no_master_key() -> Html:
    return notice(
        "The console signs in with the master key, and none is set: set "
        "APP_AUTH__MASTER_KEY (fkllm rotate-key writes one) and reload.",
        "error",
    )


@post("/ui/login", status_code=200)
async def login(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Check the master key from the form; on success set the session cookie."""
    console = console_of(request)
    form = await read_form(request)
    runtime = console.holder.runtime
    keys = console.session_keys()
    if keys is None:
        return page(login_page(_no_master_key()), 403)
    try:
        decision = await runtime.state.take_token(
            "ui-login:ip:" + client_ip(request), *_LOGIN_BUCKET
        )
    except StateUnavailable:
        return page(login_page(notice("Sign-in is unavailable: the state store is down.",
                                      "error")), 503)  # fmt: skip
    context: Any = request.scope.get("fkllm")
    if not decision.allowed:
        if context is not None:
            context.error_code = "rate_limit_exceeded"
        console.holder.access.rate_limited()
        wait = max(1, round(decision.retry_after))
        message = notice(f"Too many sign-in attempts: try again in {wait} s.", "error")
        return page(login_page(message), 429, headers={"retry-after": str(wait)})
    master = runtime.config.auth.master_key or ""
    given = form.get("key", "").strip()
    if not given or not hmac.compare_digest(key_digest(given), key_digest(master)):
        if context is not None:
            context.error_code = "invalid_api_key"  # counted with the API's auth failures
        console.holder.access.auth_failed()
        _log.warning(
            "unauthorized console sign-in refused",
            extra={"path": "/ui/login", "client_ip": client_ip(request)},
        )
        return page(login_page(notice("That is not the master key.", "error")), 401)
    hours = runtime.config.ui.session_hours
    token, session = keys.issue(hours)
    _log.info(
        "console signed in", extra={"client_ip": client_ip(request), "session": session.label}
    )
    cookie = session_cookie(request, token, session.expires - session.issued)
    return redirect("/ui/", cookies=[cookie])


@post("/ui/logout", status_code=200)
async def logout(request: Request[Any, Any, Any]) -> Response[bytes]:
    checked = await change(request)
    if isinstance(checked, Response):
        return checked
    visit, _ = checked
    await sign_out(visit)
    _log.info(
        "console signed out",
        extra={"client_ip": client_ip(request), "session": visit.session.label},
    )
    gone = session_cookie(request, "", 0)
    return redirect(TO_LOGIN + "?signed_out=1", cookies=[gone])
