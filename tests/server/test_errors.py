"""Error rendering: Google's shape on the Gemini API's paths, the others' unchanged."""

from __future__ import annotations

import msgspec
import pytest

from fkllmproxy.errors import (
    BadRequest,
    FkllmError,
    Forbidden,
    NoProviderAvailable,
    NotFound,
    RateLimited,
    Unauthorized,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from fkllmproxy.server.errors import error_reply, is_google_path

GEMINI = "/v1beta/models/m:generateContent"


@pytest.mark.parametrize(
    ("error", "status", "name"),
    [
        (BadRequest("bad field"), 400, "INVALID_ARGUMENT"),
        (Unauthorized("no key"), 401, "UNAUTHENTICATED"),
        (Forbidden("not yours"), 403, "PERMISSION_DENIED"),
        (NotFound("no model"), 404, "NOT_FOUND"),
        (RateLimited("slow down", retry_after=2.0), 429, "RESOURCE_EXHAUSTED"),
        (FkllmError("bug"), 500, "INTERNAL"),
        (UpstreamUnavailable("down"), 502, "UNAVAILABLE"),
        (NoProviderAvailable("open"), 503, "UNAVAILABLE"),
        (UpstreamTimeout("late"), 504, "DEADLINE_EXCEEDED"),
    ],
)
def test_google_shape_for_each_status(error: FkllmError, status: int, name: str) -> None:
    reply = error_reply(error, GEMINI)
    assert reply.status == status
    assert isinstance(reply.body, bytes)
    assert msgspec.json.decode(reply.body) == {
        "error": {"code": status, "message": error.message, "status": name}
    }
    if status == 429:
        assert reply.headers == {"Retry-After": "2"}


def test_a_google_providers_refusal_goes_back_verbatim() -> None:
    body = (
        b'{"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT", "details": []}}'
    )
    error = UpstreamRejected("rejected", status=400, provider="gem", body=body)
    error.same_api = True
    assert error_reply(error, GEMINI).body == body
    other = UpstreamRejected(
        "rejected", status=400, provider="oai", body=b'{"error": {"message": "m"}}'
    )
    assert (
        msgspec.json.decode(error_reply(other, GEMINI).body)["error"]["status"]
        == "INVALID_ARGUMENT"
    )


def test_which_paths_are_googles() -> None:
    assert is_google_path(GEMINI) and is_google_path("/v1/models/m:countTokens")
    assert is_google_path("/v1beta/models")
    assert not is_google_path("/v1/models") and not is_google_path("/v1/chat/completions")
    openai = msgspec.json.decode(error_reply(BadRequest("x"), "/v1/models").body)
    assert set(openai["error"]) == {"message", "type", "code", "param"}
    assert error_reply(BadRequest("x"), "/v1/models", google=True).body.startswith(
        b'{"error":{"code"'
    )
