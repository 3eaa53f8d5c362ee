"""Chat Completions answers and streams <-> the canonical model (``codecs/chat.py``)."""

from __future__ import annotations

import secrets
import time
from typing import Any

import msgspec

from fkllmproxy.errors import UpstreamUnavailable
from fkllmproxy.translate._common import (
    bad_answer,
    encode_json,
    split_frame,
    sse_data,
)
from fkllmproxy.translate.canonical import (
    Answer,
    Choice,
    Finish,
    FinishReason,
    Part,
    Reasoning,
    ReasoningDelta,
    Refusal,
    RefusalDelta,
    Start,
    StreamEvent,
    Text,
    TextDelta,
    ToolArgsDelta,
    ToolCall,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from fkllmproxy.translate.codecs._ids import make_call_id, signature_of
from fkllmproxy.wire.openai_answers import AnswerMessage, AnswerUsage, ChatAnswer, answer_decoder

__all__ = [
    "StreamDecoder",
    "StreamEncoder",
    "chat_finish",
    "chat_usage",
    "decode_answer",
    "encode_answer",
]

_FINISH_IN: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
_FINISH_OUT = {"refusal": "content_filter", "error": "stop"}


# ================================================================ answers


def chat_usage(usage: Usage | None) -> dict[str, Any]:
    """OpenAI's ``usage`` object for canonical counts."""
    usage = usage or Usage()
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def chat_finish(reason: FinishReason | None, has_tool_calls: bool) -> str:
    """OpenAI's finish reason (a plain stop with tool calls is ``tool_calls``)."""
    out = _FINISH_OUT.get(reason or "stop", reason or "stop")
    if has_tool_calls and out == "stop":
        return "tool_calls"
    return out


def _usage_in(usage: AnswerUsage | None) -> Usage | None:
    if usage is None:
        return None
    prompt = usage.prompt_tokens_details
    completion = usage.completion_tokens_details
    return Usage(
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cached_tokens=(prompt.cached_tokens or 0) if prompt else 0,
        reasoning_tokens=(completion.reasoning_tokens or 0) if completion else 0,
    )


def _parts_in(message: AnswerMessage | None) -> list[Part]:
    if message is None:
        return []
    parts: list[Part] = []
    if message.reasoning_text:
        parts.append(Reasoning(text=message.reasoning_text))
    if message.content:
        parts.append(Text(text=message.content))
    if message.refusal:
        parts.append(Refusal(text=message.refusal))
    for call in message.tool_calls or ():
        function = call.function
        ident = call.id or make_call_id()
        parts.append(
            ToolCall(
                id=ident,
                name=(function.name if function else None) or "",
                arguments=(function.arguments if function else None) or "{}",
                signature=signature_of(ident),
            )
        )
    return parts


def decode_answer(body: bytes, *, provider: str) -> Answer:
    """The canonical answer of a whole ``chat.completion`` from an OpenAI-type host."""
    try:
        data: ChatAnswer = answer_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise bad_answer(provider, f"completion: {exc}") from None
    if data.error is not None:
        raise UpstreamUnavailable(f"provider {provider} failed: {data.error.message}")
    if not data.choices:
        raise bad_answer(provider, "completion: no choices")
    first, *others = data.choices
    return Answer(
        id=data.id,
        model=data.model,
        parts=_parts_in(first.message),
        finish=_FINISH_IN.get(first.finish_reason or "stop", "stop"),
        usage=_usage_in(data.usage),
        more=[
            Choice(
                index=choice.index,
                parts=_parts_in(choice.message),
                finish=_FINISH_IN.get(choice.finish_reason or "stop", "stop"),
            )
            for choice in others
        ],
    )


def _choice_out(index: int, parts: list[Part], finish: FinishReason | None) -> dict[str, Any]:
    texts = [p.text for p in parts if isinstance(p, Text)]
    refusals = [p.text for p in parts if isinstance(p, Refusal)]
    thoughts = [p.text for p in parts if isinstance(p, Reasoning) and p.text]
    calls = [
        {
            "id": make_call_id(p.signature, p.id or None),
            "type": "function",
            "function": {"name": p.name, "arguments": p.arguments},
        }
        for p in parts
        if isinstance(p, ToolCall)
    ]
    text = "".join(texts)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not (calls or refusals) else None,
        "refusal": "".join(refusals) if refusals else None,
    }
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = calls
    return {
        "index": index,
        "message": message,
        "logprobs": None,
        "finish_reason": chat_finish(finish, bool(calls)),
    }


def encode_answer(answer: Answer, *, model: str | None = None, created: int | None = None) -> bytes:
    """The ``chat.completion`` JSON for a canonical answer (``model`` overrides the
    answer's own name when given)."""
    choices = [_choice_out(0, answer.parts, answer.finish)]
    choices.extend(_choice_out(c.index, c.parts, c.finish) for c in answer.more)
    body = {
        "id": answer.id or "chatcmpl-" + secrets.token_hex(12),
        "object": "chat.completion",
        "created": created if created is not None else answer.created or int(time.time()),
        "model": model or answer.model,
        "choices": choices,
        "usage": chat_usage(answer.usage),
    }
    return encode_json(body)


# ================================================================ streams


class StreamDecoder:
    """Canonical events from ``chat.completion.chunk`` frames of an OpenAI-type host.

    The finish is held back until the stream ends (``[DONE]`` or its last frame), so
    that it carries the usage a host reports in a chunk of its own after it. A stream
    that stops before any choice finished raises ``UpstreamUnavailable``.
    """

    def __init__(self, *, provider: str) -> None:
        self.provider = provider
        self.usage: Usage | None = None
        self._started = False
        self._done = False
        self._finishes: dict[int, FinishReason] = {}
        self._calls: dict[tuple[int, int], int] = {}  # (choice, upstream index) -> ours
        self._counts: dict[int, int] = {}

    def feed(self, frame: bytes) -> list[StreamEvent]:
        """The events of one SSE frame (``data: {chunk}``, or ``data: [DONE]``)."""
        if frame.startswith(b"data: ") and b"\n" not in frame.rstrip(b"\n"):
            data = frame[6:].rstrip()  # the one-line frame every host sends
        else:
            _, data = split_frame(frame)
        if not data or self._done:
            return []
        if data.strip() == b"[DONE]":
            return self._end()
        try:
            chunk: ChatAnswer = answer_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise bad_answer(self.provider, f"chunk: {exc}") from None
        if chunk.error is not None:
            raise UpstreamUnavailable(
                f"provider {self.provider} failed mid-stream: {chunk.error.message}"
            )
        events: list[StreamEvent] = []
        if not self._started:
            self._started = True
            events.append(Start(id=chunk.id, model=chunk.model))
        if chunk.usage is not None:
            self.usage = _usage_in(chunk.usage)
            assert self.usage is not None
            events.append(UsageUpdate(usage=self.usage))
        for choice in chunk.choices:
            if choice.delta is not None:
                events.extend(self._delta(choice.index, choice.delta))
            if choice.finish_reason:
                self._finishes[choice.index] = _FINISH_IN.get(choice.finish_reason, "stop")
        return events

    def _delta(self, choice: int, delta: AnswerMessage) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if delta.reasoning_text:
            events.append(ReasoningDelta(text=delta.reasoning_text, choice=choice))
        if delta.content:
            events.append(TextDelta(text=delta.content, choice=choice))
        if delta.refusal:
            events.append(RefusalDelta(text=delta.refusal, choice=choice))
        for position, call in enumerate(delta.tool_calls or ()):
            key = (choice, call.index if call.index is not None else position)
            function = call.function
            if key not in self._calls:
                index = self._counts.get(choice, 0)
                self._counts[choice] = index + 1
                self._calls[key] = index
                ident = call.id or make_call_id()
                events.append(
                    ToolCallStart(
                        index=index,
                        id=ident,
                        name=(function.name if function else None) or "",
                        signature=signature_of(ident),
                        choice=choice,
                    )
                )
            arguments = function.arguments if function else None
            if arguments:
                events.append(
                    ToolArgsDelta(index=self._calls[key], fragment=arguments, choice=choice)
                )
        return events

    def _end(self) -> list[StreamEvent]:
        self._done = True
        if not self._finishes:
            raise UpstreamUnavailable(
                f"provider {self.provider} ended the stream before the answer was complete"
            )
        return [
            Finish(reason=reason, usage=self.usage, choice=choice)
            for choice, reason in sorted(self._finishes.items())
        ]

    def finish(self) -> list[StreamEvent]:
        """At the end of the upstream stream; a host may end without ``[DONE]``."""
        if self._done:
            return []
        return self._end()


class StreamEncoder:
    """``chat.completion.chunk`` frames for canonical events, then ``[DONE]``.

    The role chunk opens each choice; reasoning text streams as ``reasoning_content``;
    a tool call's id and name come first, then its argument pieces; each choice ends
    with its finish chunk, and the usage chunk follows when the client asked for it
    (``include_usage``).
    """

    def __init__(self, *, model: str, include_usage: bool, created: int | None = None) -> None:
        self.model = model
        self.include_usage = include_usage
        self.created = created if created is not None else int(time.time())
        self.usage: Usage | None = None
        self._id = "chatcmpl-" + secrets.token_hex(12)
        self._opened: set[int] = set()
        self._calls: dict[int, int] = {}  # choice -> tool calls so far

    def _frame(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return sse_data(
            {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": choices,
                **extra,
            }
        )

    def _delta(self, choice: int, delta: dict[str, Any], finish: str | None = None) -> list[bytes]:
        out = []
        if choice not in self._opened:
            self._opened.add(choice)
            opening = {"index": choice, "delta": {"role": "assistant", "content": ""}}
            out.append(self._frame([{**opening, "logprobs": None, "finish_reason": None}]))
        entry = {"index": choice, "delta": delta, "logprobs": None, "finish_reason": finish}
        out.append(self._frame([entry]))
        return out

    def feed(self, event: StreamEvent) -> list[bytes]:
        if isinstance(event, Start):
            if event.id:
                self._id = event.id
            self.model = event.model or self.model
            self._opened.add(0)
            role = {"index": 0, "delta": {"role": "assistant", "content": ""}}
            return [self._frame([{**role, "logprobs": None, "finish_reason": None}])]
        if isinstance(event, TextDelta):
            return self._delta(event.choice, {"content": event.text}) if event.text else []
        if isinstance(event, ReasoningDelta):
            if not event.text:
                return []
            return self._delta(event.choice, {"reasoning_content": event.text})
        if isinstance(event, RefusalDelta):
            return self._delta(event.choice, {"refusal": event.text})
        if isinstance(event, ToolCallStart):
            self._calls[event.choice] = self._calls.get(event.choice, 0) + 1
            call = {
                "index": event.index,
                "id": make_call_id(event.signature, event.id or None),
                "type": "function",
                "function": {"name": event.name, "arguments": ""},
            }
            return self._delta(event.choice, {"tool_calls": [call]})
        if isinstance(event, ToolArgsDelta):
            call = {"index": event.index, "function": {"arguments": event.fragment}}
            return self._delta(event.choice, {"tool_calls": [call]})
        if isinstance(event, UsageUpdate):
            self.usage = event.usage
            return []
        if event.usage is not None:
            self.usage = event.usage
        reason = chat_finish(event.reason, self._calls.get(event.choice, 0) > 0)
        return self._delta(event.choice, {}, reason)

    def finish(self) -> list[bytes]:
        frames = []
        if self.include_usage:
            frames.append(self._frame([], usage=chat_usage(self.usage)))
        frames.append(b"data: [DONE]\n\n")
        return frames
