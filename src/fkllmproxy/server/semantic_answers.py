"""The semantic cache's answers: what is kept of an OpenAI chat answer, and its replay.

``PlainAnswer`` is the one canonical form of every entry, whichever API asked and
answered (``server/semantic_shapes.py`` reads and renders the other APIs' shapes
through this module's chat replay). An entry keeps the answer's text, finish reason and token counts, whether it came as
one JSON body or as a stream (the stream's deltas put together), so either kind of
request can be answered from it: a whole ``chat.completion``, or a stream of
``chat.completion.chunk`` frames ending in ``[DONE]`` (with a usage chunk when the
request's ``stream_options.include_usage`` asks). Only plain text answers of one choice
are kept: an answer with tool calls, a refusal, several choices or an error is not.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import msgspec

__all__ = [
    "PlainAnswer",
    "answer_of_completion",
    "answer_of_stream",
    "replay_body",
    "replay_frames",
]

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class PlainAnswer:
    content: str
    finish_reason: str


def answer_of_completion(body: bytes) -> PlainAnswer | None:
    """The text answer of a ``chat.completion`` body, or ``None`` when it is not one."""
    try:
        data = msgspec.json.decode(body)
        (choice,) = data["choices"]
        message = choice["message"]
    except (msgspec.DecodeError, RecursionError, KeyError, TypeError, ValueError):
        return None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str) or message.get("tool_calls") or message.get("refusal"):
        return None
    return PlainAnswer(content, _finish(choice.get("finish_reason")))


def answer_of_stream(frames: bytes) -> PlainAnswer | None:
    """The text answer a complete chat SSE stream carried, or ``None``."""
    parts: list[str] = []
    finish: Any = None
    for line in frames.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return PlainAnswer("".join(parts), _finish(finish)) if finish else None
        try:
            chunk = msgspec.json.decode(payload)
        except (msgspec.DecodeError, RecursionError):
            return None
        if not isinstance(chunk, dict) or "error" in chunk:
            return None
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                return None
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict) or choice.get("index", 0) != 0:
                return None
            if delta.get("tool_calls") or delta.get("function_call") or delta.get("refusal"):
                return None
            text = delta.get("content")
            if isinstance(text, str):
                parts.append(text)
            finish = choice.get("finish_reason") or finish
    return None


def _finish(reason: Any) -> str:
    return reason if isinstance(reason, str) and reason else "stop"


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _new_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def replay_body(
    model: str,
    answer: PlainAnswer,
    prompt_tokens: int,
    completion_tokens: int,
    *,
    ident: str | None = None,
) -> bytes:
    """A ``chat.completion`` carrying ``answer`` (with the token counts it was made with)."""
    return _encode(
        {
            "id": ident or _new_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.content},
                    "finish_reason": answer.finish_reason,
                }
            ],
            "usage": _usage(prompt_tokens, completion_tokens),
        }
    )


def replay_frames(
    model: str,
    answer: PlainAnswer,
    prompt_tokens: int,
    completion_tokens: int,
    *,
    include_usage: bool,
    ident: str | None = None,
) -> bytes:
    """The SSE frames of a chat stream carrying ``answer``, ``[DONE]`` included."""
    base = {
        "id": ident or _new_id(),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def frame(delta: dict[str, str], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return b"data: " + _encode({**base, "choices": [choice]}) + b"\n\n"

    frames = [
        frame({"role": "assistant", "content": ""}),
        frame({"content": answer.content}),
        frame({}, answer.finish_reason),
    ]
    if include_usage:
        usage = {**base, "choices": [], "usage": _usage(prompt_tokens, completion_tokens)}
        frames.append(b"data: " + _encode(usage) + b"\n\n")
    frames.append(b"data: [DONE]\n\n")
    return b"".join(frames)
