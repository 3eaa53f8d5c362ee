"""The ``Host`` header, checked before anything parses it.

Litestar builds a request's URL from ``Host`` with ``urllib``, which raises on a port
past 65535; a client sending ``Host: \\xff\\xff:99999`` got a 500 on any route. A
``Host`` that is not a host name or address with an optional port is the client's
mistake: 400, as nginx answers it. Values seen valid are remembered (a handful per
deployment), so the usual request pays one set lookup.
"""

from __future__ import annotations

import re
from typing import Any

from fkllmproxy.errors import BadRequest
from fkllmproxy.server.errors import reply_for_exception

__all__ = ["host_is_valid", "refuse_bad_host"]

_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%!$&'()*+,;=-]*)(?::([0-9]{1,5}))?")
_SEEN_VALID: set[bytes] = set()
_SEEN_MAX = 256


def host_is_valid(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the request's ``Host`` (if any) is a host with an optional port <= 65535."""
    for name, value in headers:
        if name == b"host":
            if value in _SEEN_VALID:
                return True
            match = _HOST.fullmatch(value)
            valid = match is not None and (match[1] is None or int(match[1]) <= 65535)
            if valid and len(_SEEN_VALID) < _SEEN_MAX:
                _SEEN_VALID.add(value)
            return valid
    return True


async def refuse_bad_host(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI answer to a request with a malformed ``Host``: 400 in the route's shape."""
    reply = reply_for_exception(
        BadRequest("The Host header is not a valid host name with an optional port."),
        scope["path"],
        scope.get("fkllm"),
    )
    await send(
        {"type": "http.response.start", "status": reply.status, "headers": reply.raw_headers()}
    )
    body = reply.body if isinstance(reply.body, bytes) else b""
    await send({"type": "http.response.body", "body": body, "more_body": False})
