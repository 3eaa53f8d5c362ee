"""Reading and validating request bodies: size limit first, then one typed decode."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request

from fkllmproxy.errors import BadRequest, PayloadTooLarge

__all__ = ["TOO_DEEP", "decode_body", "read_body"]

T = TypeVar("T")

TOO_DEEP = "Request body is nested too deeply to be processed."


async def read_body(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The whole body, refusing with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


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
