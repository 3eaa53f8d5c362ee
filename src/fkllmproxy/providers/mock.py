"""The built-in ``mock`` provider: no network, no key, a deterministic answer.

It is the demo default and the smoke-test target, so it behaves like a real OpenAI
upstream in every way a client can see: the same JSON and SSE shapes, usage counts
(streamed when ``stream_options.include_usage`` asks), embeddings, and an optional
latency (``mock_latency_ms``) for load tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import time
from collections.abc import AsyncGenerator
from typing import Any

import msgspec

from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.providers.base import (
    ChatRequest,
    Completion,
    EmbeddingRequest,
    Provider,
    StreamingCompletion,
    Usage,
)
from fkllmproxy.providers.http import TransportFactory
from fkllmproxy.providers.spec import ProviderSpec
from fkllmproxy.providers.sse import DONE_FRAME
from fkllmproxy.translate._common import Unsupported

__all__ = ["SPEC", "MockProvider", "mock_reply"]

_encode = msgspec.json.Encoder().encode
_ids = itertools.count(1)
EMBEDDING_DIMENSIONS = 16


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _count_tokens(text: str) -> int:
    return max(1, len(text.split())) if text else 0


def mock_reply(messages: list[Any]) -> str:
    """The mock's answer: it says which message it answers, so clients can check it."""
    last = ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            last = _text_of(message.get("content"))
            break
    words = last.split()
    echo = " ".join(words[:12]) + (" ..." if len(words) > 12 else "")
    return (
        f"This is the fkllmproxy mock. You said: {echo}" if echo else "This is the fkllmproxy mock."
    )


class MockProvider(Provider):
    type = "mock"

    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        self.unsupported = Unsupported(config.name, self.type)  # words every refusal
        self._delay = config.mock_latency_ms / 1000.0

    async def chat(self, request: ChatRequest) -> Completion | StreamingCompletion:
        messages = request.chat_body(self.unsupported).get("messages") or []
        reply = mock_reply(messages)
        prompt = sum(
            _count_tokens(_text_of(m.get("content"))) for m in messages if isinstance(m, dict)
        )
        usage = Usage(prompt_tokens=prompt, completion_tokens=_count_tokens(reply))
        ident = f"chatcmpl-mock-{next(_ids)}"
        created = int(time.time())
        if not request.stream:
            if self._delay:
                await asyncio.sleep(self._delay)
            body = {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": request.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": _usage_body(usage),
            }
            return Completion(body=_encode(body), usage=usage)
        frames = self._frames(ident, created, request, reply, usage)  # an async generator

        async def aclose() -> None:
            await frames.aclose()

        return StreamingCompletion(chunks=frames, aclose=aclose, usage=usage)

    async def _frames(
        self, ident: str, created: int, request: ChatRequest, reply: str, usage: Usage
    ) -> AsyncGenerator[bytes, None]:
        if self._delay:
            await asyncio.sleep(self._delay)
        base = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": request.model,
        }

        def frame(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return b"data: " + _encode({**base, "choices": [choice]}) + b"\n\n"

        yield frame({"role": "assistant", "content": ""})
        words = reply.split(" ")
        for i, word in enumerate(words):
            yield frame({"content": word if i == 0 else " " + word})
            await asyncio.sleep(0)
        yield frame({}, "stop")
        if request.include_usage:
            yield (
                b"data: " + _encode({**base, "choices": [], "usage": _usage_body(usage)}) + b"\n\n"
            )
        yield DONE_FRAME

    async def embeddings(self, request: EmbeddingRequest) -> Completion:
        raw_input = request.body.get("input")
        inputs = raw_input if isinstance(raw_input, list) else [raw_input]
        data = []
        tokens = 0
        for index, item in enumerate(inputs):
            text = item if isinstance(item, str) else msgspec.json.encode(item).decode()
            tokens += _count_tokens(text)
            data.append({"object": "embedding", "index": index, "embedding": _vector(text)})
        body = {
            "object": "list",
            "data": data,
            "model": request.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return Completion(body=_encode(body), usage=Usage(prompt_tokens=tokens))


def _usage_body(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def _vector(text: str) -> list[float]:
    """A unit vector derived from the text's hash: the same text, the same vector."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [(b - 127.5) / 127.5 for b in digest[:EMBEDDING_DIMENSIONS]]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]


def _build(config: ProviderConfig, transport: TransportFactory) -> Provider:
    return MockProvider(config)  # it answers in-process: no transport, no key


SPEC = ProviderSpec(type="mock", build=_build, reads_proxy_env=False)
