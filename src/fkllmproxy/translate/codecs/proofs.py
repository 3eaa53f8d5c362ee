"""Another provider's reasoning proofs taken out of a request that goes up untouched.

A client of one API may hold reasoning another provider made (a Gemini thought
signature in an Anthropic ``thinking`` block, handed out tagged by ``_ids.py``) when
its conversation moves back to its own provider, which passes bytes through. That
provider would refuse the request over a signature it did not make, so such blocks are
left out, as any provider's encoder leaves them out of a translated request. Only a
body that holds a tag at all is decoded: the search is one ``bytes.find``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fkllmproxy.translate._common import decode_json, encode_json
from fkllmproxy.translate.codecs._ids import ANTHROPIC, GEMINI, own_proof

__all__ = ["without_foreign_thinking", "without_foreign_thoughts"]


def without_foreign_thinking(raw: bytes) -> bytes:
    """A Messages request without the thinking blocks Anthropic did not sign."""
    return _without(raw, b"gemini:", "messages", "content", _foreign_block)


def without_foreign_thoughts(raw: bytes) -> bytes:
    """A Gemini request without the thought parts Gemini did not sign."""
    return _without(raw, b"anthropic:", "contents", "parts", _foreign_thought)


def _without(
    raw: bytes, tag: bytes, turns: str, items: str, foreign: Callable[[Any], bool]
) -> bytes:
    """``raw`` without the ``items`` of its ``turns`` that are ``foreign``; the bytes as
    they came when no other maker's ``tag`` is in them, or nothing was taken out."""
    if raw.find(tag) < 0:
        return raw
    body = decode_json(raw)
    changed = False
    for turn in body.get(turns) or () if isinstance(body, dict) else ():
        held = turn.get(items) if isinstance(turn, dict) else None
        if not isinstance(held, list):
            continue
        kept = [item for item in held if not foreign(item)]
        if len(kept) != len(held):
            turn[items] = kept
            changed = True
    return encode_json(body) if changed else raw


def _foreign_block(block: Any) -> bool:
    if not isinstance(block, dict):
        return False
    kind = block.get("type")
    proof = block.get("signature") if kind == "thinking" else None
    proof = block.get("data") if kind == "redacted_thinking" else proof
    return isinstance(proof, str) and ":" in proof and own_proof(ANTHROPIC, proof) is None


def _foreign_thought(part: Any) -> bool:
    if not isinstance(part, dict):
        return False
    proof = part.get("thoughtSignature")
    return isinstance(proof, str) and ":" in proof and own_proof(GEMINI, proof) is None
