"""An OpenAI Chat stream -> Gemini ``streamGenerateContent`` events, one frame at a time.

Feed each Chat SSE frame to ``GeminiStreamFromChat.feed``; it returns the Gemini events
(``GenerateContentResponse`` JSON objects, unframed) that frame makes. Text goes out
as it arrives; tool calls, whose arguments Chat streams in pieces, go out whole in
the last event, as Gemini sends them; that event also carries ``finishReason`` and
``usageMetadata`` (Chat sends usage after the finish chunk, so the last event waits
for it or for ``[DONE]``). A stream that ends before a finish reason raises
``UpstreamUnavailable`` from ``finish``: the client sees an error, not a cut answer.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from fkllmproxy.errors import UpstreamUnavailable
from fkllmproxy.translate.gemini_chat import FINISH_REASONS, gemini_usage

__all__ = ["GeminiStreamFromChat"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


class _Choice:
    __slots__ = ("calls", "finish")

    def __init__(self) -> None:
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish: str | None = None


class GeminiStreamFromChat:
    """Translator state for one stream; ``model`` is the name the client sent."""

    def __init__(self, *, provider: str, model: str) -> None:
        self._provider = provider
        self._model = model
        self._id = "resp-" + secrets.token_hex(12)
        self._choices: dict[int, _Choice] = {}
        self._usage: dict[str, Any] | None = None
        self._done = False

    def _event(self, candidates: list[dict[str, Any]], usage: bool = False) -> bytes:
        event: dict[str, Any] = {"candidates": candidates}
        if usage:
            event["usageMetadata"] = gemini_usage(self._usage)
        event["modelVersion"] = self._model
        event["responseId"] = self._id
        return _encode(event)

    def feed(self, frame: bytes) -> list[bytes]:
        """The Gemini events for one Chat SSE frame."""
        events: list[bytes] = []
        for line in frame.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                events.extend(self._close())
                continue
            try:
                chunk = _decode(data)
            except msgspec.DecodeError:
                raise UpstreamUnavailable(
                    f"provider {self._provider!r} sent a stream chunk that is not JSON",
                    provider=self._provider,
                ) from None
            if isinstance(chunk, dict):
                events.extend(self._chunk(chunk))
        return events

    def _chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        candidates = []
        for choice in chunk.get("choices") or ():
            index = int(choice.get("index") or 0)
            state = self._choices.setdefault(index, _Choice())
            delta = choice.get("delta") or {}
            for call in delta.get("tool_calls") or ():
                held = state.calls.setdefault(int(call.get("index") or 0), {"arguments": ""})
                if call.get("id"):
                    held["id"] = call["id"]
                function = call.get("function") or {}
                if function.get("name"):
                    held["name"] = function["name"]
                held["arguments"] += function.get("arguments") or ""
            parts: list[dict[str, Any]] = []
            # Reasoning text a host streams is a thought summary part, as Gemini streams it.
            thought = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(thought, str) and thought:
                parts.append({"text": thought, "thought": True})
            text = delta.get("content")
            if isinstance(text, str) and text:
                parts.append({"text": text})
            if parts:
                content = {"role": "model", "parts": parts}
                candidates.append({"content": content, "index": index})
            if choice.get("finish_reason"):
                state.finish = choice["finish_reason"]
        return [self._event(candidates)] if candidates else []

    def _close(self) -> list[bytes]:
        if self._done or not self._choices:
            return []
        if any(state.finish is None for state in self._choices.values()):
            return []
        self._done = True
        candidates = []
        for index, state in sorted(self._choices.items()):
            parts = [self._call_part(held) for _, held in sorted(state.calls.items())]
            candidate: dict[str, Any] = {
                "finishReason": FINISH_REASONS.get(state.finish or "stop", "OTHER"),
                "index": index,
            }
            candidate["content"] = {"role": "model", "parts": parts or [{"text": ""}]}
            candidates.append(candidate)
        return [self._event(candidates, usage=True)]

    def _call_part(self, held: dict[str, Any]) -> dict[str, Any]:
        try:
            args = _decode(held["arguments"] or "{}")
        except msgspec.DecodeError:
            raise UpstreamUnavailable(
                f"provider {self._provider!r} streamed tool call arguments that are not JSON",
                provider=self._provider,
            ) from None
        call: dict[str, Any] = {"name": held.get("name", ""), "args": args}
        if held.get("id"):
            call["id"] = held["id"]
        return {"functionCall": call}

    def finish(self) -> list[bytes]:
        """The last event if ``[DONE]`` did not bring it; raises if the answer never finished."""
        events = self._close()
        if not self._done:
            raise UpstreamUnavailable(
                f"provider {self._provider!r} ended the stream before the answer was complete",
                provider=self._provider,
            )
        return events
