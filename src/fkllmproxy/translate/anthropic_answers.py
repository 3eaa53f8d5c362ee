"""Whole (non-streamed) answers between the Anthropic and OpenAI shapes, both ways.

Stop reasons: ``end_turn`` and ``stop_sequence`` <-> ``stop``, ``max_tokens`` (and
``model_context_window_exceeded``) <-> ``length``, ``tool_use`` <-> ``tool_calls``,
``refusal`` <-> ``content_filter``; ``pause_turn`` (server tools only) reads as ``stop``.
OpenAI does not say which stop sequence ended a text, so ``stop`` becomes ``end_turn``.

Reasoning text an OpenAI-compatible host returns (``reasoning_content`` or
``reasoning``) becomes a leading ``thinking`` block with an empty signature.

Usage: Anthropic counts ``input_tokens`` without the cache, OpenAI's ``prompt_tokens``
includes it. So ``prompt_tokens = input + cache_read + cache_creation`` with
``cached_tokens = cache_read``, and back ``input = prompt - cached`` with
``cache_read_input_tokens = cached``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fkllmproxy.translate._common import bad_answer, decode_json, encode_json
from fkllmproxy.wire.anthropic import MessageResponse, ResponseUsage, response_decoder
from fkllmproxy.wire.openai_answers import AnswerUsage, answer_decoder

__all__ = [
    "ANTHROPIC_STOP_REASONS",
    "OPENAI_FINISH_REASONS",
    "anthropic_usage",
    "chat_response_from_messages",
    "messages_response_from_chat",
    "openai_usage",
]

OPENAI_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
ANTHROPIC_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def openai_usage(usage: ResponseUsage | None) -> dict[str, Any]:
    """OpenAI ``usage`` from Anthropic's (cache tokens folded into the prompt count)."""
    usage = usage or ResponseUsage()
    cache_read = usage.cache_read_input_tokens or 0
    prompt = (usage.input_tokens or 0) + cache_read + (usage.cache_creation_input_tokens or 0)
    completion = usage.output_tokens or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read},
    }


def anthropic_usage(usage: AnswerUsage | None) -> dict[str, int]:
    """Anthropic ``usage`` from OpenAI's (cached prompt tokens split out)."""
    usage = usage or AnswerUsage()
    details = usage.prompt_tokens_details
    cached = (details.cached_tokens or 0) if details else 0
    return {
        "input_tokens": max(0, (usage.prompt_tokens or 0) - cached),
        "output_tokens": usage.completion_tokens or 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def chat_response_from_messages(
    body: bytes, *, provider: str, created: int, json_tool: str | None = None
) -> bytes:
    """An OpenAI completion (JSON bytes) from an Anthropic Message (JSON bytes).

    ``json_tool`` names the forced tool of JSON mode: its input becomes the text.
    """
    try:
        message: MessageResponse = response_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise bad_answer(provider, f"message: {exc}") from None
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.content:
        if block.type == "text" and block.text:
            texts.append(block.text)
        elif block.type == "tool_use" and block.name == json_tool and json_tool:
            texts.append(encode_json(block.input or {}).decode())
        elif block.type == "tool_use":
            arguments = encode_json(block.input if block.input is not None else {}).decode()
            function = {"name": block.name or "", "arguments": arguments}
            calls.append({"id": block.id or "", "type": "function", "function": function})
    finish = OPENAI_FINISH_REASONS.get(message.stop_reason or "end_turn", "stop")
    if json_tool and finish == "tool_calls" and not calls:
        finish = "stop"
    refused = message.stop_reason == "refusal"
    text = "".join(texts) if texts else None
    reply: dict[str, Any] = {
        "role": "assistant",
        "content": None if refused else text,
        "refusal": text if refused else None,
    }
    if calls:
        reply["tool_calls"] = calls
    answer = {
        "id": message.id,
        "object": "chat.completion",
        "created": created,
        "model": message.model,
        "choices": [{"index": 0, "message": reply, "logprobs": None, "finish_reason": finish}],
        "usage": openai_usage(message.usage),
    }
    return encode_json(answer)


def messages_response_from_chat(body: bytes, *, provider: str, model: str) -> bytes:
    """An Anthropic Message (JSON bytes) from an OpenAI completion (JSON bytes).

    ``model`` is used when the answer names none. Only the first choice is read: the
    request asked for one.
    """
    try:
        answer = answer_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise bad_answer(provider, f"completion: {exc}") from None
    if not answer.choices or answer.choices[0].message is None:
        raise bad_answer(provider, "completion without a message")
    choice = answer.choices[0]
    reply = choice.message
    assert reply is not None
    content: list[dict[str, Any]] = []
    reasoning = reply.reasoning_text
    if reasoning:
        # No signature: it is Anthropic's own seal, and no other provider has one.
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    if reply.content:
        content.append({"type": "text", "text": reply.content})
    if reply.refusal:
        content.append({"type": "text", "text": reply.refusal})
    for index, call in enumerate(reply.tool_calls or ()):
        function = call.function
        if function is None or not function.name:
            raise bad_answer(provider, f"tool call {index} without a function name")
        try:
            arguments = decode_json(function.arguments or "{}")
        except msgspec.DecodeError:
            raise bad_answer(provider, f"tool call {function.name!r} with invalid JSON") from None
        content.append(
            {
                "type": "tool_use",
                "id": call.id or f"toolu_{index}",
                "name": function.name,
                "input": arguments,
            }
        )
    stop = ANTHROPIC_STOP_REASONS.get(choice.finish_reason or "")
    if reply.refusal:
        stop = "refusal"
    elif reply.tool_calls and stop in (None, "end_turn"):
        stop = "tool_use"  # some hosts end a tool call with "stop"
    message = {
        "id": answer.id if answer.id.startswith("msg_") else f"msg_{answer.id or 'proxy'}",
        "type": "message",
        "role": "assistant",
        "model": answer.model or model,
        "content": content,
        "stop_reason": stop or "end_turn",
        "stop_sequence": None,
        "usage": anthropic_usage(answer.usage),
    }
    return encode_json(message)
