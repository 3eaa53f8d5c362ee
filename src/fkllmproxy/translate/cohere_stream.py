"""Cohere v2 chat stream events -> OpenAI ``chat.completion.chunk`` SSE frames.

Feed each decoded ``wire.cohere.StreamEvent`` to ``CohereStreamTranslator.feed``; it
returns the OpenAI frames that event makes, so text reaches the client as Cohere sends
it. The events, as Cohere's streaming reference lists them:

- ``message-start`` -> the role chunk (``delta.role = "assistant"``).
- ``content-start``/``content-delta`` -> ``content`` deltas, or ``reasoning_content`` for
  a reasoning model's ``thinking`` blocks; ``content-end`` closes a block (nothing to send).
- ``tool-plan-delta`` -> ``content`` deltas: the reflection Cohere writes before its
  calls is the text an OpenAI model writes before them (``cohere_chat`` sends it back
  as ``tool_plan``).
- ``tool-call-start`` -> a ``tool_calls`` delta with id and name; ``tool-call-delta`` ->
  pieces of its ``arguments``; ``tool-call-end`` nothing.
- ``citation-start``/``citation-end`` and ``debug``: nothing (OpenAI has no place for
  them; the cited text is already in the content).
- ``message-end`` -> the finish chunk (``finish_reason``) and the usage; an ``error`` or
  an ``ERROR``/``TIMEOUT`` finish raises, as a cut stream does from ``finish``, so a
  client never takes a broken answer for a whole one.

Unknown event types are skipped: Cohere may add some, and they carry nothing we map.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import msgspec

from fkllmproxy.errors import UpstreamUnavailable
from fkllmproxy.translate.cohere_chat import finish_reason, openai_usage
from fkllmproxy.wire.cohere import StreamEvent, Usage

__all__ = ["CohereStreamTranslator"]

_encode = msgspec.json.Encoder().encode


class CohereStreamTranslator:
    """Translator state for one stream; ``usage`` is the latest usage reported."""

    def __init__(
        self, *, model: str, provider: str, include_usage: bool, created: int | None = None
    ) -> None:
        self.usage: Usage | None = None
        self._model = model
        self._provider = provider
        self._include_usage = include_usage
        self._created = created if created is not None else int(time.time())
        self._id: str | None = None
        self._started = False
        self._finished = False
        self._calls = 0  # tool calls started so far
        self._call_index: dict[int, int] = {}  # Cohere's index -> OpenAI's

    def _frame(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
            **extra,
        }
        return b"data: " + _encode(chunk) + b"\n\n"

    def _delta(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return self._frame(
            [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        )

    def _start(self, event: StreamEvent) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        self._id = "chatcmpl-" + (event.id or secrets.token_hex(12))
        return [self._delta({"role": "assistant", "content": ""})]

    def feed(self, event: StreamEvent) -> list[bytes]:
        """The OpenAI frames for one Cohere event (possibly none)."""
        kind = event.type
        frames = self._start(event)
        message = event.delta.message if event.delta else None
        if kind in ("content-start", "content-delta"):
            content = message.content if message else None
            if content is not None and content.thinking:
                frames.append(self._delta({"reasoning_content": content.thinking}))
            if content is not None and content.text:
                frames.append(self._delta({"content": content.text}))
        elif kind == "tool-plan-delta":
            if message is not None and message.tool_plan:
                frames.append(self._delta({"content": message.tool_plan}))
        elif kind == "tool-call-start":
            frames.extend(self._call_start(event))
        elif kind == "tool-call-delta":
            call = message.tool_calls if message else None
            arguments = call.function.arguments if call and call.function else None
            if arguments:
                index = self._index_of(event.index)
                piece = {"index": index, "function": {"arguments": arguments}}
                frames.append(self._delta({"tool_calls": [piece]}))
        elif kind == "message-end":
            frames.extend(self._end(event))
        return frames

    def _index_of(self, cohere_index: int | None) -> int:
        if cohere_index is not None and cohere_index in self._call_index:
            return self._call_index[cohere_index]
        return max(self._calls - 1, 0)

    def _call_start(self, event: StreamEvent) -> list[bytes]:
        message = event.delta.message if event.delta else None
        call = message.tool_calls if message else None
        if call is None:
            return []
        index = self._calls
        self._calls += 1
        if event.index is not None:
            self._call_index[event.index] = index
        function = call.function
        piece = {
            "index": index,
            "id": call.id or "call_" + secrets.token_hex(12),
            "type": "function",
            "function": {
                "name": function.name if function and function.name else "",
                "arguments": function.arguments if function and function.arguments else "",
            },
        }
        return [self._delta({"tool_calls": [piece]})]

    def _end(self, event: StreamEvent) -> list[bytes]:
        delta = event.delta
        if delta is not None and delta.usage is not None:
            self.usage = delta.usage
        reason = finish_reason(
            delta.finish_reason if delta else None,
            provider=self._provider,
            error=delta.error if delta else None,
        )
        if self._calls and reason == "stop":
            reason = "tool_calls"
        if self._finished:
            return []
        self._finished = True
        return [self._delta({}, reason)]

    def finish(self) -> list[bytes]:
        """The closing frames; raises if the upstream stopped before ``message-end``."""
        if not self._finished:
            raise UpstreamUnavailable(
                f"provider {self._provider!r} ended the stream before the answer was complete",
                provider=self._provider,
            )
        frames = []
        if self._include_usage:
            frames.append(self._frame([], usage=openai_usage(self.usage)))
        frames.append(b"data: [DONE]\n\n")
        return frames
