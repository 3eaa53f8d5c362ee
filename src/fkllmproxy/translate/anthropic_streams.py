"""Streamed answers between OpenAI chunks and Anthropic events, both ways.

Each translator is fed one whole SSE frame at a time (``feed``) and returns the frames
to send on; ``finish`` is called when the upstream stream ends and either closes the
translated stream properly or, if the provider stopped before its answer was complete,
raises ``UpstreamUnavailable`` so the caller can end the client's stream with an error
frame. An error the provider sends inside the stream raises the same way. Token counts
are kept on the translator (``prompt_tokens``, ``completion_tokens``, ``cached_tokens``,
and from Anthropic also ``cache_write_tokens``)
as the stream reports them.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fkllmproxy.errors import UpstreamUnavailable
from fkllmproxy.translate._common import bad_answer, split_frame, sse_data, sse_event
from fkllmproxy.translate.anthropic_answers import (
    ANTHROPIC_STOP_REASONS,
    OPENAI_FINISH_REASONS,
    anthropic_usage,
    openai_usage,
)
from fkllmproxy.wire.anthropic import ResponseUsage, StreamEvent, event_decoder
from fkllmproxy.wire.openai_answers import AnswerMessage, AnswerUsage, ChatAnswer, answer_decoder

__all__ = ["ChatStreamFromMessages", "MessagesStreamFromChat"]

_DONE = b"data: [DONE]\n\n"


def _cut_short(provider: str) -> UpstreamUnavailable:
    return UpstreamUnavailable(
        f"provider {provider} ended the stream before the answer was complete"
    )


class MessagesStreamFromChat:
    """Anthropic events (``message_start`` ... ``message_stop``) from OpenAI chunks.

    For ``/v1/messages`` clients answered by a provider of another kind. Reasoning text
    (``reasoning_content`` or ``reasoning``) becomes a thinking block, text a text block, each tool call a ``tool_use`` block whose arguments stream as
    ``input_json_delta``; usage (asked for with ``include_usage``) arrives in the closing
    ``message_delta``, since OpenAI reports it only at the end.
    """

    def __init__(self, *, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cached_tokens = 0
        self._usage: AnswerUsage | None = None
        self._started = False
        self._ended = False
        self._next_index = 0
        self._open: int | None = None  # index of the block still open
        self._text_block: int | None = None  # the open block, when it is text
        self._thinking_block: int | None = None  # the open block, when it is thinking
        self._tool_blocks: dict[int, int] = {}  # OpenAI tool-call index -> block index
        self._finish: str | None = None
        self._refused = False

    def feed(self, frame: bytes) -> list[bytes]:
        _, data = split_frame(frame)
        if not data:
            return []
        if data.strip() == b"[DONE]":
            return self._end()
        if self._ended:
            return []
        try:
            chunk: ChatAnswer = answer_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise bad_answer(self.provider, f"chunk: {exc}") from None
        if chunk.error is not None:
            raise UpstreamUnavailable(
                f"provider {self.provider} failed mid-stream: {chunk.error.message}"
            )
        out: list[bytes] = []
        if not self._started:
            out.extend(self._start(chunk))
        if chunk.usage is not None:
            self._record(chunk.usage)
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            if choice.delta is not None:
                out.extend(self._delta(choice.delta))
            if choice.finish_reason:
                self._finish = choice.finish_reason
        return out

    def finish(self) -> list[bytes]:
        """At the end of the upstream stream: close it, or raise if it was cut short."""
        if self._ended:
            return []
        if self._finish is None:
            raise _cut_short(self.provider)
        return self._end()  # a host that ends with finish_reason but no [DONE]

    # ---- the pieces ------------------------------------------------------------------

    def _start(self, chunk: ChatAnswer) -> list[bytes]:
        self._started = True
        ident = chunk.id if chunk.id.startswith("msg_") else f"msg_{chunk.id or 'proxy'}"
        message: dict[str, Any] = {
            "id": ident,
            "type": "message",
            "role": "assistant",
            "model": chunk.model or self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [
            sse_event("message_start", {"type": "message_start", "message": message}),
            sse_event("ping", {"type": "ping"}),
        ]

    def _record(self, usage: AnswerUsage) -> None:
        self._usage = usage
        counts = anthropic_usage(usage)
        self.prompt_tokens = usage.prompt_tokens or 0
        self.completion_tokens = counts["output_tokens"]
        self.cached_tokens = counts["cache_read_input_tokens"]

    def _delta(self, delta: AnswerMessage) -> list[bytes]:
        out: list[bytes] = []
        reasoning = delta.reasoning_text
        if reasoning:
            if self._thinking_block is None:
                out.extend(self._open_block({"type": "thinking", "thinking": "", "signature": ""}))
                self._thinking_block = self._open
            out.append(self._block_delta({"type": "thinking_delta", "thinking": reasoning}))
        for text, refusal in ((delta.content, False), (delta.refusal, True)):
            if text:
                self._refused = self._refused or refusal
                if self._text_block is None:
                    out.extend(self._open_block({"type": "text", "text": ""}))
                    self._text_block = self._open
                out.append(self._block_delta({"type": "text_delta", "text": text}))
        for position, call in enumerate(delta.tool_calls or ()):
            key = call.index if call.index is not None else position
            if key not in self._tool_blocks:
                function = call.function
                block = {
                    "type": "tool_use",
                    "id": call.id or f"toolu_{self._next_index}",
                    "name": (function.name if function else None) or "",
                    "input": {},
                }
                out.extend(self._open_block(block))
                assert self._open is not None
                self._tool_blocks[key] = self._open
            arguments = call.function.arguments if call.function else None
            if arguments:
                index = self._tool_blocks[key]
                payload = {"type": "input_json_delta", "partial_json": arguments}
                out.append(self._block_delta(payload, index))
        return out

    def _open_block(self, block: dict[str, Any]) -> list[bytes]:
        out = self._close_block()
        index = self._next_index
        self._next_index += 1
        self._open = index
        start = {"type": "content_block_start", "index": index, "content_block": block}
        out.append(sse_event("content_block_start", start))
        return out

    def _close_block(self) -> list[bytes]:
        if self._open is None:
            return []
        index, self._open, self._text_block = self._open, None, None
        self._thinking_block = None
        return [sse_event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _block_delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        at = self._open if index is None else index
        return sse_event(
            "content_block_delta", {"type": "content_block_delta", "index": at, "delta": delta}
        )

    def _end(self) -> list[bytes]:
        if self._ended:
            return []
        out = [] if self._started else self._start(ChatAnswer())
        self._ended = True
        out.extend(self._close_block())
        stop = ANTHROPIC_STOP_REASONS.get(self._finish or "", "end_turn")
        if self._refused:
            stop = "refusal"
        elif self._tool_blocks and stop == "end_turn":
            stop = "tool_use"
        usage = anthropic_usage(self._usage)
        delta = {"stop_reason": stop, "stop_sequence": None}
        out.append(
            sse_event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        )
        out.append(sse_event("message_stop", {"type": "message_stop"}))
        return out


class ChatStreamFromMessages:
    """OpenAI chunks (``data: {chunk}`` ... ``data: [DONE]``) from Anthropic events.

    For ``/v1/chat/completions`` clients answered by an Anthropic provider. Tool calls
    stream as ``tool_calls`` deltas (id and name first, then argument pieces); the final
    usage chunk is sent when the client asked for it (``include_usage``). With JSON mode,
    the forced tool's input streams as message text.
    """

    def __init__(
        self,
        *,
        provider: str,
        model: str,
        created: int,
        include_usage: bool,
        json_tool: str | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self.json_tool = json_tool
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cached_tokens = 0
        self.cache_write_tokens = 0
        self._id = "chatcmpl-proxy"
        self._usage = ResponseUsage()
        self._blocks: dict[int, tuple[str, int]] = {}  # block index -> (kind, tool index)
        self._tools = 0
        self._finish: str | None = None
        self._done = False

    def feed(self, frame: bytes) -> list[bytes]:
        name, data = split_frame(frame)
        if not data or self._done:
            return []
        try:
            event: StreamEvent = event_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise bad_answer(self.provider, f"event {name}: {exc}") from None
        kind = event.type
        if kind == "message_start" and event.message is not None:
            self._id = event.message.id or self._id
            self.model = event.message.model or self.model
            self._count(event.message.usage)
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start" and event.content_block is not None:
            return self._block_start(event.index or 0, event)
        if kind == "content_block_delta" and event.delta is not None:
            return self._block_delta(event.index or 0, event)
        if kind == "message_delta":
            self._count(event.usage)
            if event.delta is not None and event.delta.stop_reason:
                finish = OPENAI_FINISH_REASONS.get(event.delta.stop_reason, "stop")
                if finish == "tool_calls" and self._tools == 0:
                    finish = "stop"  # JSON mode's forced tool answered in text
                self._finish = finish
                return [self._chunk({}, finish)]
            return []
        if kind == "message_stop":
            return self._end()
        if kind == "error":
            error = event.error
            detail = f"{error.type}: {error.message}" if error else "error event"
            raise UpstreamUnavailable(f"provider {self.provider} failed mid-stream ({detail})")
        return []  # ping, content_block_stop, and event types added later

    def finish(self) -> list[bytes]:
        if not self._done:
            raise _cut_short(self.provider)
        return []

    def _count(self, usage: ResponseUsage | None) -> None:
        if usage is None:
            return
        for field in msgspec.structs.fields(ResponseUsage):
            value = getattr(usage, field.name)
            if value is not None:
                setattr(self._usage, field.name, value)
        counts = openai_usage(self._usage)
        self.prompt_tokens = counts["prompt_tokens"]
        self.completion_tokens = counts["completion_tokens"]
        self.cached_tokens = counts["prompt_tokens_details"]["cached_tokens"]
        self.cache_write_tokens = self._usage.cache_creation_input_tokens or 0

    def _block_start(self, index: int, event: StreamEvent) -> list[bytes]:
        block = event.content_block
        assert block is not None
        if block.type == "text":
            self._blocks[index] = ("text", 0)
            return [self._chunk({"content": block.text})] if block.text else []
        if block.type == "tool_use" and self.json_tool and block.name == self.json_tool:
            self._blocks[index] = ("json", 0)
            return []
        if block.type == "tool_use":
            position = self._tools
            self._tools += 1
            self._blocks[index] = ("tool", position)
            call = {
                "index": position,
                "id": block.id or f"call_{position}",
                "type": "function",
                "function": {"name": block.name or "", "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        return []  # thinking and server-tool blocks have no Chat Completions form

    def _block_delta(self, index: int, event: StreamEvent) -> list[bytes]:
        delta = event.delta
        assert delta is not None
        kind, position = self._blocks.get(index, ("skip", 0))
        if kind == "text" and delta.type == "text_delta" and delta.text:
            return [self._chunk({"content": delta.text})]
        if delta.type != "input_json_delta" or not delta.partial_json:
            return []
        if kind == "json":
            return [self._chunk({"content": delta.partial_json})]
        if kind == "tool":
            call = {"index": position, "function": {"arguments": delta.partial_json}}
            return [self._chunk({"tool_calls": [call]})]
        return []

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse_data(self._envelope([choice]))

    def _envelope(self, choices: list[Any]) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def _end(self) -> list[bytes]:
        self._done = True
        out = [] if self._finish else [self._chunk({}, "stop")]
        if self.include_usage:
            out.append(sse_data({**self._envelope([]), "usage": openai_usage(self._usage)}))
        out.append(_DONE)
        return out
