"""Small helpers every translator shares: error wording, data URLs, JSON, SSE frames."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from fkllmproxy.errors import BadRequest, UpstreamUnavailable

__all__ = [
    "Unsupported",
    "bad_answer",
    "client_paths",
    "decode_json",
    "encode_json",
    "in_client_terms",
    "invalid",
    "missing",
    "parse_data_url",
    "provider_label",
    "split_frame",
    "sse_data",
    "sse_event",
    "unsupported",
    "validation_error",
]

encode_json = msgspec.json.Encoder().encode
decode_json = msgspec.json.decode


def provider_label(name: str, kind: str) -> str:
    """How errors name a provider: ``'main' (openai)``."""
    return f"{name!r} ({kind})"


def unsupported(field: str, provider: str, why: str = "") -> BadRequest:
    """The 400 for a field that cannot be carried to ``provider``."""
    detail = f": {why}" if why else ""
    return BadRequest(f"'{field}' is not supported by provider {provider}{detail}.", param=field)


def missing(field: str) -> BadRequest:
    """The 400 for a required field that is absent."""
    return BadRequest(f"Missing required field '{field}'.", param=field)


def invalid(field: str, message: str) -> BadRequest:
    """The 400 for a field whose value is wrong whatever the provider."""
    return BadRequest(f"Invalid value for '{field}': {message}.", param=field)


def validation_error(exc: msgspec.ValidationError, provider: str) -> BadRequest:
    """A msgspec validation error of a request, reworded to name the field (and provider)."""
    message = str(exc)
    text, _, where = message.partition(" - at `$")
    field = where.rstrip("`").lstrip(".")
    if text.startswith("Object contains unknown field"):
        name = text.split("`")[1]
        path = f"{field}.{name}" if field else name
        return unsupported(path, provider)
    if text.startswith("Invalid value '") and field.endswith(".type"):
        kind = text.split("'")[1]
        return unsupported(f"{field} = {kind!r}", provider)
    if text.startswith("Object missing required field"):
        name = text.split("`")[1]
        path = f"{field}.{name}" if field else name
        return missing(path)
    return invalid(field or "body", text)


def bad_answer(provider: str, what: str) -> UpstreamUnavailable:
    """The error for an upstream answer the proxy cannot read (another target may help)."""
    return UpstreamUnavailable(f"provider {provider} sent an unreadable answer ({what})")


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``(media_type, base64 data)`` of a ``data:...;base64,...`` URL, else ``None``."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        return None
    # Parameters may come between the type and ";base64" (data:image/png;name=a.png;base64,)
    media_type = header.split(";", 1)[0] or "application/octet-stream"
    return media_type, data


def sse_data(payload: Any) -> bytes:
    """One OpenAI-style SSE frame: ``data: {json}``."""
    return b"data: " + encode_json(payload) + b"\n\n"


def sse_event(name: str, payload: Any) -> bytes:
    """One Anthropic-style SSE frame: ``event: name`` then ``data: {json}``."""
    return b"event: " + name.encode() + b"\ndata: " + encode_json(payload) + b"\n\n"


def split_frame(frame: bytes) -> tuple[str | None, bytes]:
    """The ``event:`` name (if any) and the joined ``data:`` lines of one SSE frame."""
    event: str | None = None
    data: list[bytes] = []
    for line in frame.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[5:].lstrip(b" "))
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode("utf-8", "replace")
    return event, b"\n".join(data)


class Unsupported:
    """The 400 every feature a provider cannot take gets, worded one way for all of them:
    ``'field' is not supported by provider 'name' (Family) (why).`` ``family`` names the
    provider's kind where the translation is for one (Gemini, Cohere)."""

    __slots__ = ("family", "provider")

    def __init__(self, provider: str, family: str = "") -> None:
        self.provider = provider
        self.family = f" ({family})" if family else ""

    def __call__(self, field: str, what: str = "") -> BadRequest:
        detail = f" ({what})" if what else ""
        return BadRequest(
            f"'{field}' is not supported by provider {self.provider!r}{self.family}{detail}.",
            param=field,
        )


def client_paths(messages: Sequence[Any], where_of: Mapping[int, str]) -> dict[str, str]:
    """``Conversation.paths``: the client's own path (``where_of``, by the part's
    ``id``) of each canonical part whose path, ``messages[i].content[j]``, differs."""
    paths = {}
    for i, message in enumerate(messages):
        for j, part in enumerate(message.parts):
            canonical = f"messages[{i}].content[{j}]"
            client = where_of.get(id(part))
            if client is not None and client != canonical:
                paths[canonical] = client
    return paths


def in_client_terms(error: BadRequest, paths: Mapping[str, str]) -> BadRequest:
    """``error`` naming the client's own field where an encoder named a part by its
    canonical path (``Conversation.paths``); unchanged when no path matches."""
    param = error.param
    if not param or not paths:
        return error
    found = ""
    for canonical in paths:
        if param == canonical or param.startswith((canonical + ".", canonical + "[")):
            found = canonical if len(canonical) > len(found) else found
    if not found:
        return error
    client = paths[found]
    return BadRequest(error.message.replace(param, client), param=client)
