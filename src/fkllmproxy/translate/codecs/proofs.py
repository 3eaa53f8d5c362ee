"""Another provider's reasoning proofs taken out of a request that goes up untouched.

A client of one API may hold reasoning another provider made (a Gemini thought
signature in an Anthropic ``thinking`` block, handed out tagged by ``_ids.py``) when
its conversation moves back to its own provider, which passes bytes through. That
provider would refuse the request over a signature it did not make, so such blocks are
left out, as any provider's encoder leaves them out of a translated request. Only a
body that holds a tag at all is decoded: the search is one ``bytes.find``.
"""

from __future__ import annotations

from typing import Any

from fkllmproxy.translate._common import decode_json, encode_json
from fkllmproxy.translate.codecs._ids import ANTHROPIC, GEMINI, own_proof

__all__ = ["without_foreign_thinking", "without_foreign_thoughts"]


def without_foreign_thinking(raw: bytes) -> bytes:
    """A Messages request without the thinking blocks Anthropic did not sign."""
    if raw.find(b"gemini:") < 0:
        return raw
    body = decode_json(raw)
    changed = False
    for message in body.get("messages") or () if isinstance(body, dict) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        kept = [block for block in content if not _foreign_block(block)]
        if len(kept) != len(content):
            message["content"] = kept
            changed = True
    return encode_json(body) if changed else raw


def _foreign_block(block: Any) -> bool:
    if not isinstance(block, dict):
        return False
    kind = block.get("type")
    proof = block.get("signature") if kind == "thinking" else None
    proof = block.get("data") if kind == "redacted_thinking" else proof
    return isinstance(proof, str) and ":" in proof and own_proof(ANTHROPIC, proof) is None


def without_foreign_thoughts(raw: bytes) -> bytes:
    """A Gemini request without the thought parts Gemini did not sign."""
    if raw.find(b"anthropic:") < 0:
        return raw
    body = decode_json(raw)
    changed = False
    for content in body.get("contents") or () if isinstance(body, dict) else ():
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list):
            continue
        kept = [part for part in parts if not _foreign_thought(part)]
        if len(kept) != len(parts):
            content["parts"] = kept
            changed = True
    return encode_json(body) if changed else raw


def _foreign_thought(part: Any) -> bool:
    if not isinstance(part, dict):
        return False
    proof = part.get("thoughtSignature")
    return isinstance(proof, str) and ":" in proof and own_proof(GEMINI, proof) is None
