"""Reasoning proofs across APIs: tool-call ids that carry a thought signature, and
the maker's tag on a thinking signature.

Gemini signs a thinking model's function calls (``thoughtSignature``) and wants the
signature back with the call on the next turn; it gives no call ids of its own. Chat
Completions, Responses and Messages clients keep a call's id and nothing else, so the
signature rides inside the id we hand out. Thinking signatures are tagged with the
provider that made them (below).
"""

from __future__ import annotations

import secrets

__all__ = [
    "ANTHROPIC",
    "GEMINI",
    "for_client",
    "make_call_id",
    "own_proof",
    "signature_of",
    "tagged",
]

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


# ---------------------------------------------------------------- reasoning proofs
#
# A thinking signature (or redacted thinking) proves reasoning to the provider that made
# it and to no other: Anthropic refuses a thinking block whose signature it did not
# sign, and Gemini a thought signature that is not its own. A conversation can move
# between providers (fallback, or a client changing models), so in the canonical model
# a proof carries its maker: ``anthropic:<data>``, ``gemini:<data>``. Base64 has no
# ``:``, so a tag cannot be mistaken for data. A client sees its own provider's proofs
# untagged (an Anthropic client's request can go straight to Anthropic) and others'
# tagged; a provider is sent only its own.

ANTHROPIC = "anthropic"
GEMINI = "gemini"


def tagged(family: str, proof: str) -> str:
    """``proof`` read from ``family``'s own API (a provider's answer, or a request of
    that API's clients), in canonical form: tagged with its maker unless it is already
    (another provider's, handed to this client earlier)."""
    return proof if ":" in proof else f"{family}:{proof}"


def own_proof(family: str, proof: str | None) -> str | None:
    """The proof to send ``family``'s provider: its own, untagged; another's is ``None``."""
    if proof is None:
        return None
    maker, _, data = proof.partition(":")
    return data if maker == family and data else None


def for_client(family: str, proof: str) -> str:
    """A canonical proof as a client of ``family``'s API sees it: its own untagged."""
    maker, _, data = proof.partition(":")
    return data if maker == family and data else proof
