"""The semantic cache's answers in the Anthropic, Responses and Gemini shapes.

An entry holds one canonical answer (``semantic_answers.PlainAnswer``: the text, the
finish reason in OpenAI's terms, and the token counts), however it was asked and
answered. This module reads that answer out of what a miss sent its client, whole or
streamed, and renders a hit in the client's API: as a canonical answer (or its
events) written by the API's own codec (``translate/codecs/``), so a replay has the
API's own shape and stream events; a chat client's hit is replayed as a chat
completion (``semantic_answers.replay_body`` / ``replay_frames``).

What is kept is only a plain text answer that ended normally or at its token limit:
a tool call, a refusal, several candidates, an error or a cut stream is not. Thoughts
(Anthropic ``thinking`` blocks, Responses ``reasoning`` items, Gemini thought parts)
are not part of the answer and are left out, as chat's ``reasoning_content`` is.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from fkllmproxy.server.semantic_answers import PlainAnswer, replay_body, replay_frames
from fkllmproxy.translate.canonical import (
    Answer,
    Finish,
    Start,
    StreamEvent,
    Text,
    TextDelta,
    Usage,
    UsageUpdate,
)
from fkllmproxy.translate.codecs import chat, messages, responses
from fkllmproxy.translate.codecs import gemini as gemini_codec

__all__ = [
    "Tokens",
    "answer_of_gemini",
    "answer_of_gemini_stream",
    "answer_of_message",
    "answer_of_message_stream",
    "answer_of_response",
    "answer_of_response_stream",
    "gemini_body",
    "gemini_events",
    "message_body",
    "message_events",
    "response_body",
    "response_events",
]

_PROVIDER = "semantic cache"  # named by a translator only if the replay were malformed
_decode = msgspec.json.decode
Tokens = tuple[int, int]  # prompt, completion


def _json(data: bytes) -> Any:
    try:
        return _decode(data)
    except (msgspec.DecodeError, RecursionError):
        return None


def _payloads(frames: bytes) -> list[Any]:
    """The JSON of every ``data:`` line of an SSE stream (``None`` for one that is not)."""
    lines = frames.replace(b"\r\n", b"\n").split(b"\n")
    return [_json(line[5:].strip()) for line in lines if line.startswith(b"data:")]


def _frames(stream: bytes) -> list[bytes]:
    """A chat SSE stream cut into its frames, as the translators are fed."""
    return [frame + b"\n\n" for frame in stream.split(b"\n\n") if frame.strip()]


# ---------------------------------------------------------------- Anthropic messages

_STOPS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}
_THOUGHT_BLOCKS = frozenset({"thinking", "redacted_thinking"})


def answer_of_message(body: bytes) -> PlainAnswer | None:
    """The text answer of an Anthropic Message, or ``None`` when it is not one."""
    data = _json(body)
    if not isinstance(data, dict) or data.get("type") != "message":
        return None
    texts = []
    for block in data.get("content") or ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind not in _THOUGHT_BLOCKS:
            return None
    finish = _STOPS.get(data.get("stop_reason") or "")
    return PlainAnswer("".join(texts), finish) if finish else None


def answer_of_message_stream(frames: bytes) -> PlainAnswer | None:
    """The text answer a complete Anthropic event stream carried, or ``None``."""
    texts: list[str] = []
    finish = None
    for event in _payloads(frames):
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "text":
                texts.append(block.get("text") or "")
            elif block.get("type") not in _THOUGHT_BLOCKS:
                return None
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                texts.append(delta.get("text") or "")
            elif delta.get("type") not in ("thinking_delta", "signature_delta"):
                return None
        elif kind == "message_delta":
            finish = _STOPS.get((event.get("delta") or {}).get("stop_reason") or "")
        elif kind == "message_stop":
            return PlainAnswer("".join(texts), finish) if finish else None
        elif kind not in ("message_start", "content_block_stop", "ping"):
            return None  # an error event, or something not understood
    return None


def _canonical(model: str, answer: PlainAnswer, tokens: Tokens) -> Answer:
    """``answer`` as a canonical answer, for the Messages codec to write."""
    prompt, completion = tokens
    return Answer(
        id="msg_" + secrets.token_hex(12),
        model=model,
        parts=[Text(text=answer.content)],
        finish="length" if answer.finish_reason == "length" else "stop",
        usage=Usage(input_tokens=prompt, output_tokens=completion),
    )


def message_body(model: str, answer: PlainAnswer, tokens: Tokens) -> bytes:
    """A Message carrying ``answer``."""
    return messages.encode_answer(
        _canonical(model, answer, tokens), model=model, provider=_PROVIDER
    )


def message_events(model: str, answer: PlainAnswer, tokens: Tokens) -> bytes:
    """The Messages stream events (``message_start`` ... ``message_stop``) of ``answer``."""
    whole = _canonical(model, answer, tokens)
    encoder = messages.StreamEncoder(model=model, provider=_PROVIDER)
    events = (
        Start(id=whole.id, model=model),
        TextDelta(text=answer.content),
        Finish(reason=whole.finish or "stop", usage=whole.usage),
    )
    frames = [frame for event in events for frame in encoder.feed(event)]
    return b"".join([*frames, *encoder.finish()])


# ---------------------------------------------------------------- OpenAI Responses


def answer_of_response(response: Any) -> PlainAnswer | None:
    """The text answer of a finished ``response`` object (plain data), or ``None``."""
    if not isinstance(response, dict):
        return None
    status = response.get("status")
    incomplete = response.get("incomplete_details") or {}
    if status == "completed":
        finish = "stop"
    elif status == "incomplete" and incomplete.get("reason") == "max_output_tokens":
        finish = "length"
    else:
        return None
    texts = []
    for item in response.get("output") or ():
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "reasoning":
            continue
        if kind != "message":
            return None
        for part in item.get("content") or ():
            if not isinstance(part, dict) or part.get("type") != "output_text":
                return None
            texts.append(part.get("text") or "")
    return PlainAnswer("".join(texts), finish)


def answer_of_response_stream(frames: bytes) -> PlainAnswer | None:
    """The text answer of a Responses event stream, from its closing event."""
    for event in reversed(_payloads(frames)):
        if isinstance(event, dict) and event.get("type") in (
            "response.completed",
            "response.incomplete",
        ):
            return answer_of_response(event.get("response"))
    return None


def _finish(answer: PlainAnswer) -> Finish:
    """How ``answer`` ended, canonically (only whole or token-limited answers are kept)."""
    return Finish(reason="length" if answer.finish_reason == "length" else "stop")


def response_body(
    model: str, request: dict[str, Any], answer: PlainAnswer, tokens: Tokens
) -> bytes:
    """The finished ``response`` object carrying ``answer`` (``request`` echoed in it)."""
    whole = Answer(
        id="",
        model=model,
        parts=[Text(text=answer.content)],
        finish=_finish(answer).reason,
        usage=Usage(input_tokens=tokens[0], output_tokens=tokens[1]),
    )
    return responses.encode_answer(whole, model=model, request=request, provider=_PROVIDER)


def response_events(
    model: str, request: dict[str, Any], answer: PlainAnswer, tokens: Tokens
) -> tuple[bytes, dict[str, Any]]:
    """The typed Responses events of ``answer``, and the finished ``response`` they end with."""
    encoder = responses.StreamEncoder(provider=_PROVIDER, model=model, request=request)
    usage = Usage(input_tokens=tokens[0], output_tokens=tokens[1])
    events: list[StreamEvent] = [
        TextDelta(text=answer.content),
        _finish(answer),
        UsageUpdate(usage=usage),
    ]
    frames = [frame for event in events for frame in encoder.feed(event)]
    return b"".join([*frames, *encoder.finish()]), encoder.response


# ---------------------------------------------------------------- Gemini

_FINISHES = {"STOP": "stop", "MAX_TOKENS": "length"}


def _gemini_texts(event: Any, texts: list[str]) -> str | None:
    """Add one response's text to ``texts``; its finish reason, ``"bad"`` if not plain text."""
    if not isinstance(event, dict) or "error" in event:
        return "bad"
    candidates = event.get("candidates")
    if candidates is None:
        return None  # a usage-only event
    if not isinstance(candidates, list) or len(candidates) != 1:
        return "bad"
    (candidate,) = candidates
    content = candidate.get("content") if isinstance(candidate, dict) else None
    for part in (content or {}).get("parts") or ():
        if not isinstance(part, dict) or not isinstance(part.get("text"), str):
            return "bad"
        if not part.get("thought"):
            texts.append(part["text"])
    reason = candidate.get("finishReason") if isinstance(candidate, dict) else None
    if reason is None:
        return None
    return _FINISHES.get(reason, "bad")


def answer_of_gemini(body: bytes) -> PlainAnswer | None:
    """The text answer of a ``GenerateContentResponse``, or ``None``."""
    texts: list[str] = []
    finish = _gemini_texts(_json(body), texts)
    return PlainAnswer("".join(texts), finish) if finish not in (None, "bad") else None


def answer_of_gemini_stream(streamed: bytes) -> PlainAnswer | None:
    """The text answer of a complete Gemini stream (SSE, or one JSON array), or ``None``."""
    head = streamed.lstrip()[:1]
    events = _json(streamed) if head == b"[" else _payloads(streamed)
    if not isinstance(events, list):
        return None
    texts: list[str] = []
    finish = None
    for event in events:
        reason = _gemini_texts(event, texts)
        if reason == "bad":
            return None
        finish = reason or finish
    return PlainAnswer("".join(texts), finish) if finish else None


def gemini_body(model: str, answer: PlainAnswer, tokens: Tokens) -> bytes:
    """A ``GenerateContentResponse`` carrying ``answer`` (through the canonical answer)."""
    replay = chat.decode_answer(replay_body(model, answer, *tokens), provider=_PROVIDER)
    return gemini_codec.encode_answer(replay, model=model, provider=_PROVIDER)


def gemini_events(model: str, answer: PlainAnswer, tokens: Tokens) -> list[bytes]:
    """The JSON of each streamed ``GenerateContentResponse`` of ``answer`` (unframed)."""
    decoder = chat.StreamDecoder(provider=_PROVIDER)
    encoder = gemini_codec.StreamEncoder(model=model, provider=_PROVIDER)
    replay = replay_frames(model, answer, *tokens, include_usage=True)
    events = [*(e for frame in _frames(replay) for e in decoder.feed(frame)), *decoder.finish()]
    return [*(out for event in events for out in encoder.feed(event)), *encoder.finish()]
