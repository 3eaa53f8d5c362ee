"""Rendering errors: OpenAI's shape everywhere but ``/v1/messages`` (Anthropic's) and
the Gemini API's paths (Google's: ``{"error": {"code", "message", "status"}}``).

This is the one place a ``FkllmError`` becomes a response; nothing else formats errors.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException

from fkllmproxy.errors import BadRequest, FkllmError, NotFound, UpstreamRejected
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.server.exchange import Reply

__all__ = [
    "error_body",
    "error_reply",
    "exception_handlers",
    "google_error_body",
    "is_google_path",
    "render_error",
    "reply_for_exception",
]

_encode = msgspec.json.Encoder().encode
_log = get_logger("server")

# Anthropic's error type names for our statuses.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}


# Google's ``status`` names (google.rpc.Code) for our statuses.
_GOOGLE_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def is_anthropic_path(path: str) -> bool:
    return path.startswith("/v1/messages")


def is_google_path(path: str) -> bool:
    """The Gemini API's paths: all of ``/v1beta/``, and ``/v1/models/{model}:{method}``."""
    return path.startswith("/v1beta/") or (path.startswith("/v1/models/") and ":" in path)


def google_error_body(error: FkllmError) -> bytes:
    """``error`` in Google's shape; a Google provider's own refusal goes back as it sent it."""
    if isinstance(error, UpstreamRejected) and error.same_api:
        try:
            data: Any = msgspec.json.decode(error.body)
        except msgspec.DecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return error.body
    status = _GOOGLE_STATUSES.get(error.status)
    if status is None:
        status = "INTERNAL" if error.status >= 500 else "FAILED_PRECONDITION"
    return _encode({"error": {"code": error.status, "message": error.message, "status": status}})


def error_body(error: FkllmError, *, anthropic: bool) -> bytes:
    """The JSON body for ``error`` in the API shape the client spoke."""
    if anthropic:
        kind = _ANTHROPIC_TYPES.get(error.status, "api_error")
        return _encode({"type": "error", "error": {"type": kind, "message": error.message}})
    return _encode(
        {
            "error": {
                "message": error.message,
                "type": error.error_type,
                "code": error.code,
                "param": error.param,
            }
        }
    )


def _upstream_message(error: UpstreamRejected) -> str:
    """The provider's own message from its error body, when it has a readable one."""
    try:
        data: Any = msgspec.json.decode(error.body)
    except msgspec.DecodeError:
        return error.message
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return f"{error.message}: {inner['message']}"
    return error.message


def error_reply(error: FkllmError, path: str, *, google: bool = False) -> Reply:
    """The answer for ``error`` on ``path``: its status, its body, its headers.

    ``google`` asks for Google's shape where the path alone does not say it (``GET
    /v1/models`` from a Gemini client).
    """
    if isinstance(error, UpstreamRejected):
        error.message = _upstream_message(error)
    if google or is_google_path(path):
        return Reply(error.status, google_error_body(error), error.headers)
    return Reply(error.status, error_body(error, anthropic=is_anthropic_path(path)), error.headers)


def render_error(error: FkllmError, path: str) -> Response[bytes]:
    return error_reply(error, path).to_response()


def reply_for_exception(exc: Exception, path: str, context: Any, *, google: bool = False) -> Reply:
    """What a handler's exception becomes; notes its code on the request ``context``.

    Our own errors carry their answer; a ``RecursionError`` can only come from the
    client's data nesting deeper than the interpreter allows (decoded or re-encoded),
    so it is that client's 400; anything else is a bug: logged, and a plain 500.
    """
    if isinstance(exc, FkllmError):
        error = exc
    elif isinstance(exc, RecursionError):
        error = BadRequest("Request body is nested too deeply to be processed.")
    else:
        request_id = getattr(context, "request_id", None)
        _log.error("internal error", exc_info=exc, extra={"request_id": request_id})
        return error_reply(
            FkllmError("Internal error in the proxy; the request id is in the logs."),
            path,
            google=google,
        )
    if context is not None:
        context.error_code = error.code
    return error_reply(error, path, google=google)


def _fkllm_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, FkllmError)
    return reply_for_exception(exc, request.url.path, request.scope.get("fkllm")).to_response()


def _http_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, HTTPException)
    path = request.url.path
    if isinstance(exc, NotFoundException):
        error: FkllmError = NotFound(f"No route for {request.method} {path}")
        error.code = "route_not_found"
    else:
        error = BadRequest(str(exc.detail))
        error.status = exc.status_code
        error.code = "http_error"
        if exc.status_code == 405:
            error.error_type = "invalid_request_error"
            error.message = f"Method {request.method} is not allowed on {path}"
    context: Any = request.scope.get("fkllm")
    if context is not None:
        context.error_code = error.code
    response = render_error(error, path)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def _internal_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    return reply_for_exception(exc, request.url.path, request.scope.get("fkllm")).to_response()


exception_handlers: dict[type[Exception] | int, Any] = {
    FkllmError: _fkllm_handler,
    HTTPException: _http_handler,
    Exception: _internal_handler,
}
