"""Whole (non-streamed) Anthropic Messages answers, read and written.

Stop reasons: ``end_turn``, ``stop_sequence`` and ``pause_turn`` (server tools only)
<-> ``stop``; ``max_tokens`` (and ``model_context_window_exceeded``) <-> ``length``;
``tool_use`` <-> ``tool_calls``; ``refusal`` <-> ``refusal`` (``content_filter`` is
written as ``refusal`` too). The stop sequence that ended a text is kept both ways.

Blocks: text (citations kept), ``tool_use`` (a Gemini thought signature rides in the
id we hand out, ``codecs/_ids.py``), ``thinking`` with its signature (an empty one when
another provider's reasoning has none: Anthropic's seal is its own) and
``redacted_thinking``. The text of an answer Anthropic refused becomes a refusal.

Usage: Anthropic counts ``input_tokens`` without the cache, the canonical count
includes it. So ``input = input_tokens + cache_read + cache_creation`` with
``cached = cache_read`` and ``cache_write = cache_creation``, and back the other way.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fkllmproxy.translate._common import bad_answer, decode_json, encode_json
from fkllmproxy.translate.canonical import (
    Answer,
    FinishReason,
    Part,
    Reasoning,
    Refusal,
    Text,
    ToolCall,
    Usage,
)
from fkllmproxy.translate.codecs._ids import (
    ANTHROPIC,
    for_client,
    make_call_id,
    signature_of,
    tagged,
)
from fkllmproxy.wire.anthropic import MessageResponse, ResponseUsage, response_decoder

__all__ = [
    "decode_answer",
    "encode_answer",
    "finish_of",
    "message_id",
    "stop_reason_of",
    "tool_use_id",
    "usage_of",
    "wire_usage",
]

_FINISHES: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "refusal",
}
_STOPS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "refusal": "refusal",
}


def finish_of(stop_reason: str | None) -> FinishReason:
    """The canonical finish reason of an Anthropic ``stop_reason``."""
    return _FINISHES.get(stop_reason or "end_turn", "stop")


def stop_reason_of(
    finish: FinishReason | None, *, stop_sequence: str | None, refused: bool, called: bool
) -> str:
    """The Anthropic ``stop_reason`` of an answer that ended with ``finish``.

    ``refused``: it holds a refusal; ``called``: it holds tool calls (some hosts end a
    tool call with ``stop``).
    """
    stop = _STOPS.get(finish or "")
    if refused:
        return "refusal"
    if called and stop in (None, "end_turn"):
        return "tool_use"
    if stop_sequence and stop in (None, "end_turn"):
        return "stop_sequence"
    return stop or "end_turn"


def usage_of(usage: ResponseUsage | None) -> Usage:
    """Canonical counts from Anthropic's (cache reads and writes folded into the input)."""
    usage = usage or ResponseUsage()
    cache_read = usage.cache_read_input_tokens or 0
    cache_write = usage.cache_creation_input_tokens or 0
    return Usage(
        input_tokens=(usage.input_tokens or 0) + cache_read + cache_write,
        output_tokens=usage.output_tokens or 0,
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def wire_usage(usage: Usage | None) -> dict[str, int]:
    """Anthropic ``usage`` from canonical counts (cache reads and writes split out)."""
    usage = usage or Usage()
    cached, written = usage.cached_tokens, usage.cache_write_tokens
    return {
        "input_tokens": max(0, usage.input_tokens - cached - written),
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
    }


def message_id(ident: str | None) -> str:
    """An Anthropic-looking message id (``msg_...``) for an answer's id."""
    ident = ident or ""
    return ident if ident.startswith("msg_") else f"msg_{ident or 'proxy'}"


def tool_use_id(call_id: str, signature: str | None, position: int) -> str:
    """The ``tool_use`` id handed to the client: the call's own (``toolu_<n>`` if it
    has none), with its thought signature inside unless it is there already."""
    ident = call_id or f"toolu_{position}"
    if signature and signature_of(ident) is None:
        return make_call_id(signature, upstream_id=ident)
    return ident


def decode_answer(body: bytes, *, provider: str, json_tool: str | None = None) -> Answer:
    """The answer in Anthropic Message bytes ``body``.

    ``json_tool`` names the forced tool of JSON mode (``encode_request``): its input is
    the answer's text.
    """
    try:
        message: MessageResponse = response_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise bad_answer(provider, f"message: {exc}") from None
    refused = message.stop_reason == "refusal"
    parts: list[Part] = []
    calls = 0
    for block in message.content:
        if block.type == "text" and block.text:
            text = block.text
            parts.append(
                Refusal(text=text) if refused else Text(text=text, citations=block.citations)
            )
        elif block.type == "tool_use" and json_tool and block.name == json_tool:
            parts.append(Text(text=encode_json(block.input or {}).decode()))
        elif block.type == "tool_use":
            calls += 1
            arguments = encode_json(block.input if block.input is not None else {}).decode()
            parts.append(ToolCall(id=block.id or "", name=block.name or "", arguments=arguments))
        elif block.type == "thinking":
            proof = tagged(ANTHROPIC, block.signature) if block.signature else None
            parts.append(Reasoning(text=block.thinking or "", signature=proof))
        elif block.type == "redacted_thinking" and block.data is not None:
            parts.append(Reasoning(redacted=tagged(ANTHROPIC, block.data)))
    finish = finish_of(message.stop_reason)
    if json_tool and finish == "tool_calls" and not calls:
        finish = "stop"
    return Answer(
        id=message.id,
        model=message.model,
        parts=parts,
        finish=finish,
        stop_sequence=message.stop_sequence,
        usage=usage_of(message.usage),
    )


def encode_answer(answer: Answer, *, model: str, provider: str) -> bytes:
    """The Anthropic Message (JSON bytes) of ``answer``.

    ``model`` is used when the answer names none; ``provider`` is named when the answer
    holds a tool call no client could read (no name, arguments not JSON).
    """
    content: list[dict[str, Any]] = []
    refused = False
    calls = 0
    for part in answer.parts:
        if isinstance(part, Text | Refusal):
            refused = refused or isinstance(part, Refusal)
            if part.text:
                block: dict[str, Any] = {"type": "text", "text": part.text}
                if isinstance(part, Text) and part.citations:
                    block["citations"] = part.citations
                content.append(block)
        elif isinstance(part, Reasoning):
            content.append(thinking_block(part))
        elif isinstance(part, ToolCall):
            content.append(_tool_use(part, calls, provider))
            calls += 1
    stop = stop_reason_of(
        answer.finish, stop_sequence=answer.stop_sequence, refused=refused, called=calls > 0
    )
    message = {
        "id": message_id(answer.id),
        "type": "message",
        "role": "assistant",
        "model": answer.model or model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": answer.stop_sequence if stop == "stop_sequence" else None,
        "usage": wire_usage(answer.usage),
    }
    return encode_json(message)


def thinking_block(reasoning: Reasoning) -> dict[str, Any]:
    """A ``thinking`` block (or ``redacted_thinking``) for reasoning in an answer."""
    if reasoning.redacted is not None and not reasoning.text:
        return {"type": "redacted_thinking", "data": for_client(ANTHROPIC, reasoning.redacted)}
    signature = for_client(ANTHROPIC, reasoning.signature) if reasoning.signature else ""
    return {"type": "thinking", "thinking": reasoning.text, "signature": signature}


def _tool_use(call: ToolCall, position: int, provider: str) -> dict[str, Any]:
    if not call.name:
        raise bad_answer(provider, f"tool call {position} without a function name")
    try:
        arguments = decode_json(call.arguments or "{}")
    except msgspec.DecodeError:
        raise bad_answer(provider, f"tool call {call.name!r} with invalid JSON") from None
    return {
        "type": "tool_use",
        "id": tool_use_id(call.id, call.signature, position),
        "name": call.name,
        "input": arguments,
    }
