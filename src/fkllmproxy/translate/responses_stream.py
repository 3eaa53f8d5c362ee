"""Responses API stream events from a Chat Completions stream.

For ``/v1/responses`` clients with ``stream: true`` answered through the Chat hub. The
events are OpenAI's, in its order, each framed ``event: <type>`` + ``data: {...}`` with
``type`` and a ``sequence_number`` counting from 0::

    response.created, response.in_progress
    per reasoning:    response.output_item.added (reasoning), response.content_part.added,
                      response.reasoning_text.delta ..., response.reasoning_text.done,
                      response.content_part.done, response.output_item.done
                      (for the reasoning text a host streams as ``reasoning_content``)
    per text answer:  response.output_item.added (message), response.content_part.added,
                      response.output_text.delta ..., response.output_text.done,
                      response.content_part.done, response.output_item.done
    per tool call:    response.output_item.added (function_call),
                      response.function_call_arguments.delta ..., .done,
                      response.output_item.done
    response.completed (or response.incomplete), carrying the whole response with usage

``feed`` takes one Chat SSE frame and returns the event frames to send; ``finish`` ends
the stream when upstream stops, raising ``UpstreamUnavailable`` when it was cut short
(the caller then ends the client's stream with ``failed``). ``response`` is the response
object as it stands, complete once ``finish`` returned.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fkllmproxy.errors import FkllmError, UpstreamUnavailable
from fkllmproxy.translate._common import bad_answer, encode_json, split_frame
from fkllmproxy.translate.responses_chat import (
    finish_status,
    function_call_item,
    message_item,
    new_id,
    reasoning_item,
    responses_usage,
)
from fkllmproxy.wire.openai_answers import AnswerMessage, AnswerUsage, ChatAnswer, answer_decoder

__all__ = ["ResponsesStreamFromChat", "event_frame"]


def event_frame(payload: dict[str, Any]) -> bytes:
    """One Responses SSE frame for ``payload`` (its ``type`` names the event)."""
    return b"event: " + payload["type"].encode() + b"\ndata: " + encode_json(payload) + b"\n\n"


class ResponsesStreamFromChat:
    """Typed Responses events from OpenAI chunks; see the module docstring for the order."""

    def __init__(self, *, provider: str, envelope: dict[str, Any]) -> None:
        self.provider = provider
        self.response = envelope
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cached_tokens = 0
        self._sequence = 0
        self._started = False
        self._ended = False
        self._usage: AnswerUsage | None = None
        self._finish: str | None = None
        self._text: dict[str, Any] | None = None  # the open message item
        self._text_parts: list[str] = []
        self._thought: dict[str, Any] | None = None  # the open reasoning item
        self._thought_parts: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}  # Chat tool-call index -> open item
        self._call_args: dict[int, list[str]] = {}

    # ---- the frames -----------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event_frame(payload)

    def feed(self, frame: bytes) -> list[bytes]:
        _, data = split_frame(frame)
        if not data or self._ended:
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
        out = self.start()
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
        return self._end()

    def failed(self, error: FkllmError) -> bytes:
        """The ``response.failed`` event that ends a stream broken after its start."""
        out = b"".join(self.start())
        self._ended = True
        self.response["status"] = "failed"
        code = "rate_limit_exceeded" if error.status == 429 else "server_error"
        self.response["error"] = {"code": code, "message": error.message}
        return out + self._event("response.failed", response=self.response)

    # ---- the pieces -----------------------------------------------------------------------

    def _record(self, usage: AnswerUsage) -> None:
        self._usage = usage
        self.prompt_tokens = usage.prompt_tokens or 0
        self.completion_tokens = usage.completion_tokens or 0
        details = usage.prompt_tokens_details
        self.cached_tokens = (details.cached_tokens if details else None) or 0

    def _output_index(self, item: dict[str, Any]) -> int:
        return int(self.response["output"].index(item))

    def _delta(self, delta: AnswerMessage) -> list[bytes]:
        out: list[bytes] = []
        thought = delta.reasoning_text
        if thought:
            if self._thought is None:
                out.extend(self._open_thought())
            assert self._thought is not None
            self._thought_parts.append(thought)
            out.append(
                self._event(
                    "response.reasoning_text.delta",
                    item_id=self._thought["id"],
                    output_index=self._output_index(self._thought),
                    content_index=0,
                    delta=thought,
                )
            )
        text = delta.content or delta.refusal
        if text:
            out.extend(self._close_thought())
            if self._text is None:
                out.extend(self._open_text())
            assert self._text is not None
            self._text_parts.append(text)
            out.append(
                self._event(
                    "response.output_text.delta",
                    item_id=self._text["id"],
                    output_index=self._output_index(self._text),
                    content_index=0,
                    delta=text,
                    logprobs=[],
                )
            )
        for position, call in enumerate(delta.tool_calls or ()):
            key = call.index if call.index is not None else position
            if key not in self._calls:
                out.extend(self._close_thought())
                out.extend(self._close_text())
                name = (call.function.name if call.function else None) or ""
                item = function_call_item(call.id or new_id("call"), name, "", status="in_progress")
                self._calls[key] = item
                self._call_args[key] = []
                self.response["output"].append(item)
                out.append(
                    self._event(
                        "response.output_item.added",
                        output_index=self._output_index(item),
                        item=item,
                    )
                )
            arguments = call.function.arguments if call.function else None
            if arguments:
                item = self._calls[key]
                self._call_args[key].append(arguments)
                out.append(
                    self._event(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=self._output_index(item),
                        delta=arguments,
                    )
                )
        return out

    def _open_thought(self) -> list[bytes]:
        """A ``reasoning`` item for the reasoning text a host streams (``reasoning_content``)."""
        item = reasoning_item("")
        item["status"] = "in_progress"
        self._thought = item
        self._thought_parts = []
        return self._open_item(item)

    def _close_thought(self) -> list[bytes]:
        item = self._thought
        if item is None:
            return []
        self._thought = None
        text = "".join(self._thought_parts)
        part = {"type": "reasoning_text", "text": text}
        item["content"] = [part]
        item["status"] = "completed"
        index = self._output_index(item)
        ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
        return [
            self._event("response.reasoning_text.done", **ids, text=text),
            self._event("response.content_part.done", **ids, part=part),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def _open_text(self) -> list[bytes]:
        item = message_item("", status="in_progress")
        self._text = item
        self._text_parts = []
        return self._open_item(item)

    def _open_item(self, item: dict[str, Any]) -> list[bytes]:
        """Put ``item`` in the output with its one (empty) content part, and announce both."""
        part = item["content"].pop()
        self.response["output"].append(item)
        index = self._output_index(item)
        return [
            self._event("response.output_item.added", output_index=index, item=item),
            self._event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=part,
            ),
        ]

    def _close_text(self) -> list[bytes]:
        item = self._text
        if item is None:
            return []
        self._text = None
        text = "".join(self._text_parts)
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        item["content"] = [part]
        item["status"] = "completed"
        index = self._output_index(item)
        ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
        return [
            self._event("response.output_text.done", **ids, text=text, logprobs=[]),
            self._event("response.content_part.done", **ids, part=part),
            self._event("response.output_item.done", output_index=index, item=item),
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

    def _end(self) -> list[bytes]:
        if self._ended:
            return []
        out = self.start()
        self._ended = True
        out.extend(self._close_thought())
        out.extend(self._close_text())
        out.extend(self._close_calls())
        self.response["usage"] = responses_usage(self._usage)
        finish_status(self.response, self._finish)
        kind = "response.incomplete" if self.response["status"] == "incomplete" else None
        out.append(self._event(kind or "response.completed", response=self.response))
        return out
