"""Responses API stream events from canonical stream events (``codecs/responses.py``'s
``StreamEncoder``).

The events are OpenAI's, in its order, each framed ``event: <type>`` + ``data: {...}``
with ``type`` and a ``sequence_number`` counting from 0::

    response.created, response.in_progress
    per reasoning:    response.output_item.added (reasoning),
                      as a summary (the request asked for one):
                        response.reasoning_summary_part.added,
                        response.reasoning_summary_text.delta ..., .done,
                        response.reasoning_summary_part.done
                      else as reasoning text:
                        response.content_part.added, response.reasoning_text.delta ...,
                        response.reasoning_text.done, response.content_part.done
                      response.output_item.done
    per text answer:  response.output_item.added (message), response.content_part.added,
                      response.output_text.delta ..., response.output_text.done,
                      response.content_part.done, response.output_item.done
    per refusal:      the same with response.refusal.delta ... and response.refusal.done
    per tool call:    response.output_item.added (function_call),
                      response.function_call_arguments.delta ..., .done,
                      response.output_item.done
    response.completed (or response.incomplete), carrying the whole response with usage

A reasoning block with no text is announced only at its end, and only when it has an
opaque proof the client asked for (``include``): a ``reasoning`` item holding just its
``encrypted_content``.

``feed`` takes one event and returns the frames to send; ``finish`` ends the stream when
upstream stops, raising ``UpstreamUnavailable`` when it was cut short (the caller then
ends the client's stream with ``failed``). ``response`` is the response object as it
stands, complete once ``finish`` returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from msgspec import Struct, field

from fkllmproxy.errors import FkllmError, UpstreamUnavailable
from fkllmproxy.translate._common import bad_answer, encode_json
from fkllmproxy.translate.canonical import (
    Finish,
    FinishReason,
    ReasoningDelta,
    RefusalDelta,
    StreamEvent,
    TextDelta,
    ToolArgsDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from fkllmproxy.translate.codecs._responses_items import (
    ReasoningStyle,
    call_id_of,
    finish_status,
    function_call_item,
    message_item,
    opaque_of,
    reasoning_item,
    response_envelope,
    responses_usage,
)

__all__ = ["StreamEncoder", "event_frame"]


def event_frame(payload: dict[str, Any]) -> bytes:
    """One Responses SSE frame for ``payload`` (its ``type`` names the event)."""
    return b"event: " + payload["type"].encode() + b"\ndata: " + encode_json(payload) + b"\n\n"


class _Kind(Struct, frozen=True):
    """How one kind of streamed content part is announced, grown and closed."""

    added: str  # the part's added/done events, and where the part sits in the item
    done: str
    index: str
    parts: str
    part: dict[str, Any]  # the part, empty
    holder: str  # the part's (and the done event's) field holding the text
    delta: str  # the delta and done events of its text
    finished: str
    extra: dict[str, Any] = field(default_factory=dict)  # further fields of those events


_OUTPUT_TEXT = _Kind(
    "response.content_part.added",
    "response.content_part.done",
    "content_index",
    "content",
    {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
    "text",
    "response.output_text.delta",
    "response.output_text.done",
    {"logprobs": []},
)
_REFUSAL = _Kind(
    "response.content_part.added",
    "response.content_part.done",
    "content_index",
    "content",
    {"type": "refusal", "refusal": ""},
    "refusal",
    "response.refusal.delta",
    "response.refusal.done",
)
_REASONING_TEXT = _Kind(
    "response.content_part.added",
    "response.content_part.done",
    "content_index",
    "content",
    {"type": "reasoning_text", "text": ""},
    "text",
    "response.reasoning_text.delta",
    "response.reasoning_text.done",
)
_SUMMARY = _Kind(
    "response.reasoning_summary_part.added",
    "response.reasoning_summary_part.done",
    "summary_index",
    "summary",
    {"type": "summary_text", "text": ""},
    "text",
    "response.reasoning_summary_text.delta",
    "response.reasoning_summary_text.done",
)


class _Block:
    """The output item being streamed: a message's text or refusal, or a reasoning
    block (announced at its first text; its id and proof kept as they come)."""

    def __init__(self, kind: _Kind) -> None:
        self.kind = kind
        self.item: dict[str, Any] | None = None
        self.output_index = 0  # the item's place in the response's output, once in it
        self.pieces: list[str] = []
        self.id: str | None = None
        self.signature: str | None = None
        self.redacted: str | None = None


class StreamEncoder:
    """Typed Responses events from canonical events; see the module docstring for the order.

    ``provider`` names the upstream in the error of a stream cut short; ``model`` is
    the name the client sent and ``request`` its request as plain data (echoed in the
    response, and saying how reasoning comes back: ``ReasoningStyle``).
    """

    def __init__(self, *, provider: str, model: str, request: Mapping[str, Any]) -> None:
        self.provider = provider
        self.response = response_envelope(request, model=model)
        self._style = ReasoningStyle.of(request)
        self._sequence = 0
        self._started = False
        self._ended = False
        self._usage: Usage | None = None
        self._finish: FinishReason | None = None
        self._block: _Block | None = None
        self._calls: dict[int, dict[str, Any]] = {}  # tool-call index -> open item
        self._call_args: dict[int, list[str]] = {}

    # ---- the frames -----------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event_frame(payload)

    def feed(self, event: StreamEvent) -> list[bytes]:
        """The frames for one event (the first one opens the response)."""
        block = self._block
        if (
            type(event) is TextDelta
            and block is not None
            and block.kind is _OUTPUT_TEXT
            and block.item is not None
            and event.text
            and not event.choice
            and not self._ended
        ):
            # Most events of a stream: more text for the message being written.
            block.pieces.append(event.text)
            return [self._text_delta(block, event.text)]
        if self._ended:
            return []
        if isinstance(event, ToolArgsDelta) and event.index not in self._calls:
            # refused before anything is sent, so the sequence numbers keep no gap
            raise bad_answer(
                self.provider, f"arguments of tool call {event.index} before its start"
            )
        out = self.start()
        if isinstance(event, UsageUpdate):
            self._usage = event.usage
        elif getattr(event, "choice", 0) != 0:
            pass  # a further candidate: a Responses request never asks for one
        elif isinstance(event, TextDelta):
            out.extend(self._grow(_OUTPUT_TEXT, event.text))
        elif isinstance(event, RefusalDelta):
            out.extend(self._grow(_REFUSAL, event.text))
        elif isinstance(event, ReasoningDelta):
            out.extend(self._reasoning(event))
        elif isinstance(event, ToolCallStart):
            out.extend(self._call(event))
        elif isinstance(event, ToolArgsDelta):
            out.extend(self._arguments(event))
        elif isinstance(event, Finish):
            self._finish = event.reason
            self._usage = event.usage or self._usage
        return out

    def start(self) -> list[bytes]:
        """``response.created`` and ``response.in_progress``, once."""
        if self._started:
            return []
        self._started = True
        return [
            self._event("response.created", response=self.response),
            self._event("response.in_progress", response=self.response),
        ]

    def finish(self) -> list[bytes]:
        """At the end of the upstream stream: close it, or raise if it was cut short."""
        if self._ended:
            return []
        if self._finish is None:
            raise UpstreamUnavailable(
                f"provider {self.provider} ended the stream before the answer was complete"
            )
        out = self.start()
        self._ended = True
        out.extend(self._close())
        out.extend(self._close_calls())
        self.response["usage"] = responses_usage(self._usage)
        finish_status(self.response, self._finish)
        kind = "response.incomplete" if self.response["status"] == "incomplete" else None
        out.append(self._event(kind or "response.completed", response=self.response))
        return out

    def failed(self, error: FkllmError) -> bytes:
        """The ``response.failed`` event that ends a stream broken after its start."""
        out = b"".join(self.start())
        self._ended = True
        self.response["status"] = "failed"
        code = "rate_limit_exceeded" if error.status == 429 else "server_error"
        self.response["error"] = {"code": code, "message": error.message}
        return out + self._event("response.failed", response=self.response)

    # ---- text, refusals and reasoning -----------------------------------------------------

    def _output_index(self, item: dict[str, Any]) -> int:
        return int(self.response["output"].index(item))

    def _grow(self, kind: _Kind, text: str) -> list[bytes]:
        """Add ``text`` to the open block of ``kind`` (opening one after any other)."""
        if not text:
            return []
        out: list[bytes] = []
        block = self._block
        if block is None or block.kind is not kind:
            out.extend(self._close())
            block = self._block = _Block(kind)
        if block.item is None:
            out.extend(self._open(block))
        assert block.item is not None
        block.pieces.append(text)
        out.append(self._text_delta(block, text))
        return out

    def _text_delta(self, block: _Block, text: str) -> bytes:
        kind = block.kind
        assert block.item is not None
        payload = {
            "type": kind.delta,
            "sequence_number": self._sequence,
            "item_id": block.item["id"],
            "output_index": block.output_index,
            kind.index: 0,
            "delta": text,
            **kind.extra,
        }
        self._sequence += 1
        return event_frame(payload)

    def _reasoning(self, event: ReasoningDelta) -> list[bytes]:
        out: list[bytes] = []
        kind = _SUMMARY if self._style.summary else _REASONING_TEXT
        block = self._block
        if event.new or block is None or block.kind is not kind:
            out.extend(self._close())
            block = self._block = _Block(kind)
        block.id = event.id or block.id
        block.signature = event.signature or block.signature
        block.redacted = event.redacted or block.redacted
        out.extend(self._grow(kind, event.text))
        return out

    def _open(self, block: _Block) -> list[bytes]:
        """Put the block's item in the output and announce it and its (empty) part."""
        kind = block.kind
        if kind is _OUTPUT_TEXT or kind is _REFUSAL:
            item = message_item("", refusal=kind is _REFUSAL, status="in_progress")
            item["content"] = []
        else:
            item = reasoning_item("", self._style, item_id=block.id, status="in_progress")
        block.item = item
        self.response["output"].append(item)
        index = block.output_index = self._output_index(item)
        added = self._event("response.output_item.added", output_index=index, item=item)
        part = self._event(
            kind.added, item_id=item["id"], output_index=index, **{kind.index: 0}, part=kind.part
        )
        return [added, part]

    def _close(self) -> list[bytes]:
        """End the open block: its text's done events, then the item's."""
        block, self._block = self._block, None
        if block is None:
            return []
        kind = block.kind
        text = "".join(block.pieces)
        if kind is _OUTPUT_TEXT or kind is _REFUSAL:
            assert block.item is not None  # a message block opens with its first text
            block.item["content"] = [{**kind.part, kind.holder: text}]
            block.item["status"] = "completed"
            return self._close_text(block.item, kind, text)
        opaque = opaque_of(block.signature, block.redacted)
        done = reasoning_item(
            text, self._style, item_id=block.item["id"] if block.item else block.id, opaque=opaque
        )
        if block.item is not None:
            block.item.clear()
            block.item.update(done)
            return self._close_text(block.item, kind, text)
        if opaque is None or not self._style.encrypted:
            return []  # nothing to show and nothing to send back
        self.response["output"].append(done)
        index = self._output_index(done)
        return [
            self._event("response.output_item.added", output_index=index, item=done),
            self._event("response.output_item.done", output_index=index, item=done),
        ]

    def _close_text(self, item: dict[str, Any], kind: _Kind, text: str) -> list[bytes]:
        index = self._output_index(item)
        ids = {"item_id": item["id"], "output_index": index, kind.index: 0}
        part = {**kind.part, kind.holder: text}
        return [
            self._event(kind.finished, **ids, **{kind.holder: text}, **kind.extra),
            self._event(kind.done, **ids, part=part),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    # ---- tool calls -----------------------------------------------------------------------

    def _call(self, event: ToolCallStart) -> list[bytes]:
        if event.index in self._calls:
            return []
        out = self._close()
        call_id = call_id_of(event.id, event.signature)
        item = function_call_item(call_id, event.name, "", status="in_progress")
        self._calls[event.index] = item
        self._call_args[event.index] = []
        self.response["output"].append(item)
        out.append(
            self._event(
                "response.output_item.added", output_index=self._output_index(item), item=item
            )
        )
        return out

    def _arguments(self, event: ToolArgsDelta) -> list[bytes]:
        item = self._calls[event.index]  # known: ``feed`` checked
        if not event.fragment:
            return []
        self._call_args[event.index].append(event.fragment)
        return [
            self._event(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=self._output_index(item),
                delta=event.fragment,
            )
        ]

    def _close_calls(self) -> list[bytes]:
        out: list[bytes] = []
        for key, item in self._calls.items():
            arguments = "".join(self._call_args[key]) or "{}"
            item["arguments"] = arguments
            item["status"] = "completed"
            index = self._output_index(item)
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=arguments,
                )
            )
            out.append(self._event("response.output_item.done", output_index=index, item=item))
        self._calls = {}
        return out
