"""The fixed bytes every target sees: one chat request, one completion, one SSE stream.

They are sized like a small real exchange (a system prompt and a question in; a
short answer with usage out; a 20-chunk stream) so that parsing and copying cost what
they would in production, no more.
"""

from __future__ import annotations

import json

__all__ = [
    "SSE_CHUNKS",
    "chat_request",
    "completion_body",
    "responses_request",
    "sse_body",
    "sse_frames",
]

SSE_CHUNKS = 20
_CREATED = 1_700_000_000
_WORDS = [
    "The",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "while",
    "the",
    "proxy",
    "forwards",
    "every",
    "token",
    "without",
    "delay",
    "and",
    "the",
    "client",
    "reads",
    "them",
    "as",
    "they",
    "come",
    "in",
]


def chat_request(model: str, *, stream: bool = False) -> bytes:
    """The request body every load run sends (about 400 bytes, like a short chat turn)."""
    body: dict[str, object] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a concise assistant. Answer in one sentence."},
            {
                "role": "user",
                "content": "Explain in plain words what an API gateway adds in front of a "
                "language model service, and what it costs in latency.",
            },
        ],
        "max_tokens": 64,
        "temperature": 0.2,
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def responses_request(model: str, *, stream: bool = False) -> bytes:
    """The same turn as ``chat_request`` as a Responses API request (``store: false``)."""
    body: dict[str, object] = {
        "model": model,
        "instructions": "You are a concise assistant. Answer in one sentence.",
        "input": "Explain in plain words what an API gateway adds in front of a "
        "language model service, and what it costs in latency.",
        "max_output_tokens": 64,
        "temperature": 0.2,
        "store": False,
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def completion_body(model: str = "bench") -> bytes:
    """A complete OpenAI chat completion (about 600 bytes) with usage."""
    body = {
        "id": "chatcmpl-bench0000000000000000000000",
        "object": "chat.completion",
        "created": _CREATED,
        "model": model,
        "system_fingerprint": "fp_bench",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": " ".join(_WORDS),
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 42,
            "completion_tokens": len(_WORDS),
            "total_tokens": 42 + len(_WORDS),
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }
    return json.dumps(body, separators=(",", ":")).encode()


def sse_frames(model: str = "bench") -> list[bytes]:
    """``SSE_CHUNKS`` OpenAI chunk frames (role first, usage last) then ``[DONE]``."""
    frames: list[bytes] = []
    for index in range(SSE_CHUNKS):
        delta: dict[str, object] = {"content": _WORDS[index % len(_WORDS)] + " "}
        if index == 0:
            delta["role"] = "assistant"
        last = index == SSE_CHUNKS - 1
        chunk: dict[str, object] = {
            "id": "chatcmpl-bench0000000000000000000000",
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if last else None}],
        }
        if last:
            chunk["usage"] = {
                "prompt_tokens": 42,
                "completion_tokens": SSE_CHUNKS,
                "total_tokens": 42 + SSE_CHUNKS,
            }
        frames.append(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n")
    frames.append(b"data: [DONE]\n\n")
    return frames


def sse_body(model: str = "bench") -> bytes:
    return b"".join(sse_frames(model))
