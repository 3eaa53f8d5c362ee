"""The pieces of a Responses ``response`` object, shared by the answer and the stream.

``translate/codecs/responses.py`` builds whole answers from them and
``_responses_stream.py`` streams them; the request's decoder reads back what
``opaque_of`` packed into a reasoning item (``proof_of``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from fkllmproxy.translate.canonical import FinishReason, Usage
from fkllmproxy.translate.codecs._ids import make_call_id, signature_of

__all__ = [
    "ReasoningStyle",
    "call_id_of",
    "finish_status",
    "function_call_item",
    "message_item",
    "new_id",
    "opaque_of",
    "proof_of",
    "reasoning_item",
    "response_envelope",
    "responses_usage",
]

# Response fields echoed from the request, with OpenAI's defaults when absent.
_ECHOED: dict[str, Any] = {
    "instructions": None,
    "max_output_tokens": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "temperature": 1.0,
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "user": None,
    "truncation": "disabled",
}
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
# A thinking signature (Anthropic's, Gemini's) in ``encrypted_content``; OpenAI's own
# encrypted content is base64, which never holds the colon.
_SIGNATURE_MARK = "signature:"
_ENCRYPTED = "reasoning.encrypted_content"


def new_id(prefix: str) -> str:
    """An id in OpenAI's style (``resp_``, ``msg_``, ``fc_`` and 48 hex digits)."""
    return f"{prefix}_{os.urandom(24).hex()}"


def response_envelope(request: Mapping[str, Any], *, model: str) -> dict[str, Any]:
    """The ``response`` object before its output: what the request asked, echoed.

    ``model`` is the name the client sent; ``request`` the client's request as plain data.
    """
    envelope: dict[str, Any] = {
        "id": new_id("resp"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": [],
    }
    for name, default in _ECHOED.items():
        value = request.get(name)
        envelope[name] = default if value is None else value
    reasoning = request.get("reasoning")
    envelope["reasoning"] = {
        "effort": reasoning.get("effort") if isinstance(reasoning, dict) else None,
        "summary": reasoning.get("summary") if isinstance(reasoning, dict) else None,
    }
    envelope["store"] = request.get("store") is not False
    text = request.get("text")
    text_format = text.get("format") if isinstance(text, dict) else None
    envelope["text"] = {"format": text_format or {"type": "text"}}
    envelope["usage"] = None
    return envelope


class ReasoningStyle(msgspec.Struct, frozen=True):
    """How the request wants reasoning back: as a summary (``reasoning.summary``) or as
    reasoning text, and with its opaque proof (``include``) or without."""

    summary: bool = False
    encrypted: bool = False

    @classmethod
    def of(cls, request: Mapping[str, Any]) -> ReasoningStyle:
        reasoning = request.get("reasoning")
        summary = isinstance(reasoning, dict) and bool(
            reasoning.get("summary") or reasoning.get("generate_summary")
        )
        include = request.get("include")
        return cls(summary, isinstance(include, list) and _ENCRYPTED in include)


def opaque_of(signature: str | None, redacted: str | None) -> str | None:
    """The ``encrypted_content`` that carries a reasoning block's proof to the next turn."""
    if redacted:
        return redacted
    return _SIGNATURE_MARK + signature if signature else None


def proof_of(encrypted_content: str | None) -> tuple[str | None, str | None]:
    """The ``(signature, redacted)`` an ``encrypted_content`` handed back carries."""
    if encrypted_content is not None and encrypted_content.startswith(_SIGNATURE_MARK):
        return encrypted_content.removeprefix(_SIGNATURE_MARK), None
    return None, encrypted_content


def reasoning_item(
    text: str,
    style: ReasoningStyle,
    *,
    item_id: str | None = None,
    opaque: str | None = None,
    status: str = "completed",
) -> dict[str, Any]:
    """A ``reasoning`` output item: ``text`` as its summary or its reasoning text (see
    ``ReasoningStyle``), ``opaque`` as ``encrypted_content`` when the client asked."""
    item: dict[str, Any] = {"id": item_id or new_id("rs"), "type": "reasoning"}
    if style.summary:
        item["summary"] = [{"type": "summary_text", "text": text}] if text else []
    else:
        item["summary"] = []
        item["content"] = [{"type": "reasoning_text", "text": text}] if text else []
    if opaque is not None and style.encrypted:
        item["encrypted_content"] = opaque
    item["status"] = status
    return item


def message_item(text: str, *, refusal: bool = False, status: str = "completed") -> dict[str, Any]:
    """An assistant ``message`` output item holding ``text`` (or a refusal)."""
    part: dict[str, Any]
    if refusal:
        part = {"type": "refusal", "refusal": text}
    else:
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "id": new_id("msg"),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [part],
    }


def call_id_of(call_id: str, signature: str | None) -> str:
    """The ``call_id`` a client gets: the call's own (a new one if it had none), with its
    thought signature inside (``codecs/_ids.py``) unless it is there already."""
    if signature_of(call_id):
        return call_id
    return make_call_id(signature, call_id or None)


def function_call_item(
    call_id: str, name: str, arguments: str, *, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": new_id("fc"),
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }


def responses_usage(usage: Usage | None) -> dict[str, Any]:
    """Responses ``usage`` from the canonical counts."""
    usage = usage or Usage()
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def finish_status(response: dict[str, Any], finish: FinishReason | None) -> None:
    """Set ``status`` (and ``incomplete_details``) from why the answer ended."""
    reason = _INCOMPLETE.get(finish or "")
    response["status"] = "incomplete" if reason else "completed"
    response["incomplete_details"] = {"reason": reason} if reason else None
