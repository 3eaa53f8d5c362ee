"""Tool-call ids that carry a thought signature through APIs with no field for one.

Gemini signs a thinking model's function calls (``thoughtSignature``) and wants the
signature back with the call on the next turn; it gives no call ids of its own. Chat
Completions, Responses and Messages clients keep a call's id and nothing else, so the
signature rides inside the id we hand out.
"""

from __future__ import annotations

import secrets

__all__ = ["make_call_id", "signature_of"]

_SIGNATURE_MARK = "__thought__"


def make_call_id(signature: str | None = None, upstream_id: str | None = None) -> str:
    """A tool-call id (the provider's own when it gave one), with ``signature`` inside.

    The signature is base64; it is stored URL-safe and unpadded so that the id keeps
    to ``[A-Za-z0-9_-]``, which every client (Anthropic's included) accepts. An id that
    carries a signature already (one the client sent back) is kept as it is.
    """
    ident = upstream_id or "call_" + secrets.token_hex(12)
    if signature and _SIGNATURE_MARK not in ident:
        ident += _SIGNATURE_MARK + signature.replace("+", "-").replace("/", "_").rstrip("=")
    return ident


def signature_of(call_id: str) -> str | None:
    """The thought signature carried by ``call_id`` (see ``make_call_id``), if any."""
    _, mark, packed = call_id.partition(_SIGNATURE_MARK)
    if not mark or not packed:
        return None
    padding = "=" * (-len(packed) % 4)
    return packed.replace("-", "+").replace("_", "/") + padding
