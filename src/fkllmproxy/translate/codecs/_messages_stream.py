"""Streamed Anthropic Messages answers, read (``StreamDecoder``) and written
(``StreamEncoder``).

Both are fed one item at a time and return what follows from it. A decoder's
``finish`` is called when the upstream stream ends and raises ``UpstreamUnavailable``
if the provider stopped before ``message_stop`` (an ``error`` event the provider sends
raises the same way), so the caller can end the client's stream with an error frame.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fkllmproxy.errors import UpstreamUnavailable
from fkllmproxy.translate._common import bad_answer, split_frame, sse_event
from fkllmproxy.translate.canonical import (
    Finish,
    FinishReason,
    ReasoningDelta,
    RefusalDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolArgsDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from fkllmproxy.translate.codecs._ids import ANTHROPIC, for_client, tagged
from fkllmproxy.translate.codecs._messages_answer import (
    finish_of,
    message_id,
    stop_reason_of,
    tool_use_id,
    usage_of,
    wire_usage,
)
from fkllmproxy.wire.anthropic import ResponseBlock, ResponseUsage, event_decoder
from fkllmproxy.wire.anthropic import StreamEvent as WireEvent

__all__ = ["StreamDecoder", "StreamEncoder"]


def cut_short(provider: str) -> UpstreamUnavailable:
    """The error for a stream that ended before its answer was complete."""
    return UpstreamUnavailable(
        f"provider {provider} ended the stream before the answer was complete"
    )


class StreamDecoder:
    """Canonical stream events from Anthropic's (``message_start`` ... ``message_stop``).

    Text blocks stream as text, ``tool_use`` blocks as a tool call start and argument
    pieces, ``thinking`` blocks as reasoning (``thinking_delta``, then the block's
    ``signature_delta``), ``redacted_thinking`` as reasoning with its opaque data. With
    JSON mode (``json_tool``, see ``encode_request``) the forced tool's input streams as
    text. Counts are merged as they come (later ones are cumulative) and reported in a
    ``UsageUpdate`` and the closing ``Finish``.
    """

    def __init__(self, *, provider: str, json_tool: str | None = None) -> None:
        self.provider = provider
        self.json_tool = json_tool
        self._usage = ResponseUsage()
        self._blocks: dict[int, tuple[str, int]] = {}  # block index -> (kind, tool index)
        self._fresh: set[int] = set()  # reasoning blocks that have said nothing yet
        self._tools = 0
        self._finish: FinishReason | None = None
        self._stop_sequence: str | None = None
        self._done = False

    def feed(self, frame: bytes) -> list[StreamEvent]:
        """The events of one SSE frame."""
        name, data = split_frame(frame)
        if not data or self._done:
            return []
        try:
            event: WireEvent = event_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise bad_answer(self.provider, f"event {name}: {exc}") from None
        kind = event.type
        if kind == "message_start" and event.message is not None:
            start = Start(id=event.message.id, model=event.message.model)
            return [start, *self._count(event.message.usage)]
        if kind == "content_block_start" and event.content_block is not None:
            return self._block_start(event.index or 0, event.content_block)
        if kind == "content_block_delta" and event.delta is not None:
            return self._block_delta(event.index or 0, event)
        if kind == "message_delta":
            if event.delta is not None and event.delta.stop_reason:
                finish = finish_of(event.delta.stop_reason)
                if finish == "tool_calls" and self._tools == 0:
                    finish = "stop"  # JSON mode's forced tool answered in text
                self._finish = finish
                self._stop_sequence = event.delta.stop_sequence
            return self._count(event.usage)
        if kind == "message_stop":
            self._done = True
            usage = usage_of(self._usage)
            reason = self._finish or "stop"
            return [Finish(reason=reason, stop_sequence=self._stop_sequence, usage=usage)]
        if kind == "error":
            error = event.error
            detail = f"{error.type}: {error.message}" if error else "error event"
            raise UpstreamUnavailable(f"provider {self.provider} failed mid-stream ({detail})")
        return []  # ping, content_block_stop, and event types added later

    def finish(self) -> list[StreamEvent]:
        """At the end of the upstream stream: nothing more, or raise if it was cut short."""
        if not self._done:
            raise cut_short(self.provider)
        return []

    def _count(self, usage: ResponseUsage | None) -> list[StreamEvent]:
        if usage is None:
            return []
        for field in ResponseUsage.__struct_fields__:
            value = getattr(usage, field)
            if value is not None:
                setattr(self._usage, field, value)
        return [UsageUpdate(usage=usage_of(self._usage))]

    def _block_start(self, index: int, block: ResponseBlock) -> list[StreamEvent]:
        if block.type == "text":
            self._blocks[index] = ("text", 0)
            return [TextDelta(text=block.text)] if block.text else []
        if block.type == "tool_use" and self.json_tool and block.name == self.json_tool:
            self._blocks[index] = ("json", 0)
            return []
        if block.type == "tool_use":
            position = self._tools
            self._tools += 1
            self._blocks[index] = ("tool", position)
            ident = block.id or f"toolu_{position}"
            return [ToolCallStart(index=position, id=ident, name=block.name or "")]
        if block.type == "thinking":
            self._blocks[index] = ("thinking", 0)
            self._fresh.add(index)
            return self._reasoning(index, block.thinking or "", block.signature or None)
        if block.type == "redacted_thinking":
            return [ReasoningDelta(redacted=tagged(ANTHROPIC, block.data or ""), new=True)]
        return []  # server-tool blocks have no canonical form

    def _block_delta(self, index: int, event: WireEvent) -> list[StreamEvent]:
        delta = event.delta
        assert delta is not None
        kind, position = self._blocks.get(index, ("skip", 0))
        if kind == "text" and delta.type == "text_delta" and delta.text:
            return [TextDelta(text=delta.text)]
        if kind == "thinking" and delta.type == "thinking_delta":
            return self._reasoning(index, delta.thinking or "", None)
        if kind == "thinking" and delta.type == "signature_delta":
            return self._reasoning(index, "", delta.signature or None)
        if delta.type != "input_json_delta" or not delta.partial_json:
            return []
        if kind == "json":
            return [TextDelta(text=delta.partial_json)]
        if kind == "tool":
            return [ToolArgsDelta(index=position, fragment=delta.partial_json)]
        return []

    def _reasoning(self, index: int, text: str, signature: str | None) -> list[StreamEvent]:
        """A reasoning delta of block ``index``; its first one starts a new block."""
        if not text and not signature:
            return []
        new = index in self._fresh
        self._fresh.discard(index)
        proof = tagged(ANTHROPIC, signature) if signature else None
        return [ReasoningDelta(text=text, signature=proof, new=new)]


class StreamEncoder:
    """Anthropic events (``message_start`` ... ``message_stop``) from canonical events.

    For ``/v1/messages`` clients answered by a provider of another kind. Reasoning
    becomes a ``thinking`` block (``thinking_delta``, then ``signature_delta`` once the
    signature is known; redacted reasoning a ``redacted_thinking`` block), text a text
    block, each tool call a ``tool_use`` block whose arguments stream as
    ``input_json_delta``. Usage arrives in the closing ``message_delta``, since OpenAI
    reports it only at the end: the stream is closed by ``finish``, when the upstream
    stream has ended, and not at the ``Finish`` event.
    """

    def __init__(self, *, model: str, provider: str) -> None:
        self.model = model
        self.provider = provider
        self._started = False
        self._ended = False
        self._next_index = 0
        self._open: int | None = None  # index of the block still open
        self._open_kind: str | None = None  # "text", "thinking", "tool"
        self._tool_blocks: dict[int, int] = {}  # tool-call index -> block index
        self._finish: Finish | None = None
        self._usage: Usage | None = None
        self._refused = False

    def feed(self, event: StreamEvent) -> list[bytes]:
        """The frames that follow from ``event``. Events of further candidates are
        left out: a Messages client asks for one."""
        if self._ended or getattr(event, "choice", 0) != 0:
            return []
        out: list[bytes] = []
        if not self._started:
            out.extend(self._start(event if isinstance(event, Start) else None))
        if isinstance(event, TextDelta | RefusalDelta):
            out.extend(self._text(event))
        elif isinstance(event, ReasoningDelta):
            out.extend(self._reasoning(event))
        elif isinstance(event, ToolCallStart):
            block = {
                "type": "tool_use",
                "id": tool_use_id(event.id, event.signature, event.index),
                "name": event.name,
                "input": {},
            }
            out.extend(self._open_block(block, "tool"))
            assert self._open is not None
            self._tool_blocks[event.index] = self._open
        elif isinstance(event, ToolArgsDelta):
            index = self._tool_blocks.get(event.index)
            if index is not None and event.fragment:
                payload = {"type": "input_json_delta", "partial_json": event.fragment}
                out.append(self._block_delta(payload, index))
        elif isinstance(event, UsageUpdate):
            self._usage = event.usage
        elif isinstance(event, Finish):
            self._finish = event
            self._usage = event.usage or self._usage
        return out

    def finish(self) -> list[bytes]:
        """Close the message, or raise if no ``Finish`` came (the answer was cut short)."""
        if self._ended:
            return []
        if self._finish is None:
            raise cut_short(self.provider)
        out = [] if self._started else self._start(None)
        self._ended = True
        out.extend(self._close_block())
        finish = self._finish
        stop = stop_reason_of(
            finish.reason,
            stop_sequence=finish.stop_sequence,
            refused=self._refused,
            called=bool(self._tool_blocks),
        )
        sequence = finish.stop_sequence if stop == "stop_sequence" else None
        delta = {"stop_reason": stop, "stop_sequence": sequence}
        usage = wire_usage(self._usage)
        out.append(
            sse_event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        )
        out.append(sse_event("message_stop", {"type": "message_stop"}))
        return out

    # ---- the pieces ------------------------------------------------------------------

    def _start(self, start: Start | None) -> list[bytes]:
        self._started = True
        message: dict[str, Any] = {
            "id": message_id(start.id if start else None),
            "type": "message",
            "role": "assistant",
            "model": (start.model if start else None) or self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [
            sse_event("message_start", {"type": "message_start", "message": message}),
            sse_event("ping", {"type": "ping"}),
        ]

    def _text(self, event: TextDelta | RefusalDelta) -> list[bytes]:
        if not event.text:
            return []
        self._refused = self._refused or isinstance(event, RefusalDelta)
        out: list[bytes] = []
        if self._open_kind != "text":
            out.extend(self._open_block({"type": "text", "text": ""}, "text"))
        out.append(self._block_delta({"type": "text_delta", "text": event.text}))
        return out

    def _reasoning(self, event: ReasoningDelta) -> list[bytes]:
        if event.redacted is not None:
            block = {"type": "redacted_thinking", "data": for_client(ANTHROPIC, event.redacted)}
            out = self._open_block(block, "redacted")
            out.extend(self._close_block())
            return out
        out = []
        if self._open_kind != "thinking" or event.new:
            block = {"type": "thinking", "thinking": "", "signature": ""}
            out.extend(self._open_block(block, "thinking"))
        if event.text:
            out.append(self._block_delta({"type": "thinking_delta", "thinking": event.text}))
        if event.signature:
            delta = {"type": "signature_delta", "signature": for_client(ANTHROPIC, event.signature)}
            out.append(self._block_delta(delta))
        return out

    def _open_block(self, block: dict[str, Any], kind: str) -> list[bytes]:
        out = self._close_block()
        index = self._next_index
        self._next_index += 1
        self._open, self._open_kind = index, kind
        start = {"type": "content_block_start", "index": index, "content_block": block}
        out.append(sse_event("content_block_start", start))
        return out

    def _close_block(self) -> list[bytes]:
        if self._open is None:
            return []
        index, self._open, self._open_kind = self._open, None, None
        return [sse_event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _block_delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        at = self._open if index is None else index
        return sse_event(
            "content_block_delta", {"type": "content_block_delta", "index": at, "delta": delta}
        )
