"""The console's per-process state and the checks every console request passes.

``Console`` lives on the app's state next to the runtime holder: the session keys for
the master key in force (re-derived when it changes, which ends every session), the
live series, and an injectable clock. ``signed_in`` turns a request into a ``Visit``
(or ``None``); ``read_form`` reads a small urlencoded form body; ``page`` and
``redirect`` add the security headers every console answer carries.
"""

from __future__ import annotations

import hashlib
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response
from litestar.datastructures import Cookie

from fkllmproxy.errors import BadRequest, NotFound, PayloadTooLarge
from fkllmproxy.server.runtime import Runtime, RuntimeHolder
from fkllmproxy.server.ui.series import Series
from fkllmproxy.server.ui.session import COOKIE, Session, SessionKeys
from fkllmproxy.state import StateUnavailable

__all__ = ["Console", "Visit", "console_of", "page", "read_form", "redirect", "signed_in"]

MAX_FORM_BYTES = 64 * 1024
SIGNED_OUT_PREFIX = "ui:signed-out:"
# No inline script or style anywhere in the console, no other origin, no framing.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on
    # form posts, and the origin check below needs the real one.
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
HTML = "text/html; charset=utf-8"


class Console:
    """What the console keeps per process. ``clock`` is wall time (tests inject one)."""

    def __init__(self, holder: RuntimeHolder, clock: Callable[[], float] = time.time) -> None:
        self.holder = holder
        self.clock = clock
        self.series = Series()
        self._keys: tuple[bytes, SessionKeys] | None = None
        self._snapshot: tuple[float, dict[str, Any]] | None = None

    async def snapshot(
        self, take: Callable[[RuntimeHolder], Awaitable[dict[str, Any]]], max_age: float = 2.0
    ) -> dict[str, Any]:
        """The metrics snapshot, shared by the sampler and every open page for ``max_age``
        seconds: ten open tabs cost one snapshot per poll interval, not ten."""
        now = time.monotonic()
        if self._snapshot is None or now - self._snapshot[0] > max_age:
            self._snapshot = (now, await take(self.holder))
        return self._snapshot[1]

    def forget_snapshot(self) -> None:
        """After a change (a circuit reset) the next page reads the numbers afresh."""
        self._snapshot = None

    def session_keys(self) -> SessionKeys | None:
        """The keys for the master key in force; ``None`` when there is none."""
        master = self.holder.runtime.config.auth.master_key
        if not master:
            return None
        digest = hashlib.sha256(master.encode("utf-8", "surrogateescape")).digest()
        if self._keys is None or self._keys[0] != digest:
            self._keys = (digest, SessionKeys(master, clock=lambda: self.clock()))
        return self._keys[1]


@dataclass(frozen=True, slots=True)
class Visit:
    """A signed-in request: the runtime it runs on, its session and its CSRF token."""

    console: Console
    runtime: Runtime
    keys: SessionKeys
    session: Session
    csrf: str


def console_of(request: Request[Any, Any, Any]) -> Console:
    """The console, or 404 when ``[ui] enabled = false``."""
    console: Console = request.app.state.console
    if not console.holder.runtime.config.ui.enabled:
        error = NotFound("The web console is turned off on this proxy ([ui] enabled = false).")
        error.code = "route_not_found"
        raise error
    return console


async def signed_in(request: Request[Any, Any, Any]) -> Visit | None:
    """The visit if the request carries a live session cookie, else ``None``."""
    console = console_of(request)
    keys = console.session_keys()
    if keys is None:
        return None
    runtime = console.holder.runtime
    session = keys.check(request.cookies.get(COOKIE), runtime.config.ui.session_hours)
    if session is None:
        return None
    try:
        if await runtime.state.cache_get(SIGNED_OUT_PREFIX + session.nonce) is not None:
            return None
    except StateUnavailable:
        pass  # the token is still signed and unexpired; the store only adds sign-out
    return Visit(console, runtime, keys, session, keys.csrf_token(session))


async def sign_out(visit: Visit) -> None:
    """End ``visit``'s session everywhere the state backend reaches (every worker with Redis)."""
    remaining = visit.session.expires - visit.console.clock()
    if remaining > 0:
        try:
            await visit.runtime.state.cache_set(
                SIGNED_OUT_PREFIX + visit.session.nonce, b"1", remaining
            )
        except StateUnavailable:
            pass


async def read_form(request: Request[Any, Any, Any]) -> dict[str, str]:
    """A urlencoded form body (at most 64 KiB): the first value of each field."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        error = BadRequest(
            "The console's forms are sent as application/x-www-form-urlencoded "
            f"(got {kind or 'no content type'!r})."
        )
        error.status = 415
        error.code = "unsupported_media_type"
        raise error
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise PayloadTooLarge("A console form is at most 64 KiB.")
        chunks.append(chunk)
    try:
        text = b"".join(chunks).decode("utf-8")
        fields = urllib.parse.parse_qs(text, keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("The form body is not valid UTF-8 urlencoded data.") from None
    return {name: values[0] for name, values in fields.items()}


def page(
    content: bytes,
    status: int = 200,
    *,
    cookies: list[Cookie] | None = None,
    media_type: str = HTML,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    return Response(
        content=content,
        status_code=status,
        media_type=media_type,
        headers={**SECURITY_HEADERS, **(headers or {})},
        cookies=cookies,
    )


def redirect(location: str, *, cookies: list[Cookie] | None = None) -> Response[bytes]:
    """303 See Other: after a form, the browser GETs ``location``."""
    return page(b"", 303, cookies=cookies, headers={"location": location})


def over_tls(request: Request[Any, Any, Any]) -> bool:
    """Whether the browser reached us over TLS (directly, or via a proxy that says so)."""
    if request.scope.get("scheme") == "https":
        return True
    return request.headers.get("x-forwarded-proto", "").lower() == "https"


def session_cookie(request: Request[Any, Any, Any], value: str, max_age: int) -> Cookie:
    return Cookie(
        key=COOKIE,
        value=value,
        path="/ui",
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=over_tls(request),
    )
