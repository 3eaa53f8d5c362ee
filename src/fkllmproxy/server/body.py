"""Reading and validating request bodies: size limit first, then one typed decode."""

from __future__ import annotations

import asyncio
from typing import TypeVar

import msgspec

from fkllmproxy.errors import BadRequest, PayloadTooLarge, RequestTimeout
from fkllmproxy.server.body_deadline import body_deadlines
from fkllmproxy.server.exchange import ApiRequest

__all__ = ["TOO_DEEP", "decode_body", "read_body"]

T = TypeVar("T")

TOO_DEEP = "Request body is nested too deeply to be processed."


async def read_body(request: ApiRequest, limit: int, deadline_secs: float | None = None) -> bytes:
    """The whole body, refusing with 413 as soon as it passes ``limit`` bytes.

    A body not read in full within ``deadline_secs`` is a 408 (server/body_deadline.py).
    One that ends before its declared length, or whose chunked framing is broken (the
    server reports both as the client's disconnect), is a 400, as nginx answers it:
    a client that is really gone reads nothing either way.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes.")
    if deadline_secs is None:
        return await _read(request, limit)
    task = asyncio.current_task()
    assert task is not None
    deadlines = body_deadlines()
    deadlines.watch(task, deadline_secs)
    try:
        return await _read(request, limit)
    except asyncio.CancelledError:
        if deadlines.done(task):
            task.uncancel()
            raise RequestTimeout(
                f"The request body was not received within {deadline_secs:g} s (body_timeout_secs)."
            ) from None
        raise
    finally:
        deadlines.done(task)


async def _read(request: ApiRequest, limit: int) -> bytes:
    receive = request.receive
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body"):
        body: bytes = message.get("body", b"")  # the usual case: the body in one message
        if len(body) > limit:
            raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes.")
        return body
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] != "http.request":  # http.disconnect: truncated or malformed
            raise BadRequest(
                "The request body could not be read: it ended before its declared length"
                " or its chunked framing is malformed."
            )
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)
        message = await receive()


def _field_of(message: str) -> str | None:
    if " - at `$." not in message:
        return None
    path = message.rsplit(" - at `$.", 1)[1].rstrip("`")
    return path or None


def decode_body(raw: bytes, decoder: msgspec.json.Decoder[T]) -> T:
    """Decode ``raw`` with ``decoder``; a 400 that names the field on any problem."""
    if not raw.strip():
        raise BadRequest("Request body is empty; expected a JSON object.")
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = _field_of(message)
        text = message.split(" - at `", 1)[0]
        if text.startswith("Object missing required field"):
            name = text.split("`")[1]
            where = f"{field}.{name}" if field else name
            raise BadRequest(f"Missing required field '{where}'.", param=where) from None
        if field is None:
            raise BadRequest(f"Invalid request body: {text}.") from None
        raise BadRequest(f"Invalid value for '{field}': {text}.", param=field) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc}.") from None
    except RecursionError:
        raise BadRequest(TOO_DEEP) from None
    except UnicodeDecodeError:  # msgspec raises it for some strings it must decode
        raise BadRequest("Request body is not valid UTF-8 text.") from None
