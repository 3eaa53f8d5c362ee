"""Cohere's v2 wire format (``POST /v2/chat``, ``POST /v2/embed``), as msgspec Structs.

Field names are Cohere's own (snake_case on the wire). Request structs omit unset
fields, so what goes upstream is only what the client asked for; response structs
ignore fields we do not read, so new upstream fields never break decoding.

Written from Cohere's v2 API reference and the ``cohere-python`` SDK's v2 types
(``ChatMessageV2``, ``ToolV2``, ``V2ChatResponse``, ``V2ChatStreamResponse``,
``Usage``, ``EmbedByTypeResponse``). A stream is server-sent events whose ``data`` is
one typed event object (``type``: ``message-start``, ``content-start``,
``content-delta``, ``content-end``, ``tool-plan-delta``, ``tool-call-start``,
``tool-call-delta``, ``tool-call-end``, ``citation-start``, ``citation-end``,
``message-end``, ``debug``); one ``StreamEvent`` struct reads them all.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct, field

__all__ = [
    "AnswerToolCall",
    "ChatRequest",
    "ChatResponse",
    "EmbedRequest",
    "EmbedResponse",
    "ErrorBody",
    "ImageUrl",
    "Message",
    "StreamEvent",
    "Thinking",
    "Tool",
    "ToolCall",
    "ToolFunction",
    "Usage",
    "decode_chat",
    "decode_embed",
    "decode_error",
    "decode_event",
    "encode",
]


class _Wire(Struct, omit_defaults=True, kw_only=True):
    """Common base: unset fields left out of the JSON."""


# ---------------------------------------------------------------- requests


class ImageUrl(_Wire):
    """``image_url`` of a user content block: a web URL or a base64 ``data:`` URI."""

    url: str
    detail: str | None = None


class ContentBlock(_Wire):
    """One block of a message's ``content`` list: ``text``, ``image_url`` (user
    messages), ``thinking`` (assistant messages of a reasoning model) or ``document``
    (tool messages: ``{"data": {...}}``, an object the model may cite)."""

    type: str
    text: str | None = None
    image_url: ImageUrl | None = None
    thinking: str | None = None
    document: dict[str, Any] | None = None


class CallFunction(_Wire):
    """``function`` of a tool call: its name and its arguments, a JSON object as a string."""

    name: str | None = None
    arguments: str | None = None


class ToolCall(_Wire):
    """``ToolCallV2``: the id a ``tool`` message answers, always of type function."""

    id: str
    type: str
    function: CallFunction | None = None


class Message(_Wire):
    """``ChatMessageV2``: ``system``, ``user``, ``assistant`` or ``tool``.

    ``content`` is a string or a list of blocks. An assistant message that calls tools
    carries them in ``tool_calls`` and its reflection before them in ``tool_plan``; a
    ``tool`` message answers one call by ``tool_call_id``.
    """

    role: str
    content: str | list[ContentBlock] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_plan: str | None = None
    tool_call_id: str | None = None


class ToolFunction(_Wire):
    """``ToolV2Function``: the ``parameters`` are a JSON Schema object."""

    name: str
    parameters: dict[str, Any]
    description: str | None = None


class Tool(_Wire):
    """``ToolV2``: only function tools exist (``type`` is sent, though Cohere defaults it)."""

    type: str
    function: ToolFunction


class ResponseFormat(_Wire):
    """``ResponseFormatV2``: ``text``, or ``json_object`` with an optional ``json_schema``."""

    type: str
    json_schema: dict[str, Any] | None = None


class Thinking(_Wire):
    """Reasoning models' switch: ``enabled`` (with a ``token_budget``) or ``disabled``."""

    type: str
    token_budget: int | None = None


class ChatRequest(_Wire):
    """The body of ``POST /v2/chat``; ``stream`` true asks for server-sent events."""

    model: str
    messages: list[Message]
    stream: bool | None = None
    tools: list[Tool] | None = None
    tool_choice: str | None = None
    response_format: ResponseFormat | None = None
    max_tokens: int | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    k: int | None = None
    p: float | None = None
    thinking: Thinking | None = None


class EmbedRequest(_Wire):
    """The body of ``POST /v2/embed`` for texts: ``input_type`` is required by v3 and
    newer models, ``embedding_types`` picks the encodings returned (``float`` here)."""

    model: str
    texts: list[str]
    input_type: str
    embedding_types: list[str] = field(default_factory=lambda: ["float"])
    output_dimension: int | None = None
    truncate: str | None = None


# ---------------------------------------------------------------- answers


class UsageUnits(Struct, kw_only=True):
    """``billed_units`` or ``tokens`` of a ``Usage`` (Cohere sends numbers that may be floats)."""

    input_tokens: float = 0
    output_tokens: float = 0


class Usage(Struct, kw_only=True):
    """``Usage``: what was billed, what the model consumed, and the cached prompt tokens."""

    billed_units: UsageUnits | None = None
    tokens: UsageUnits | None = None
    cached_tokens: float = 0


class AnswerBlock(Struct, kw_only=True):
    """One block of an answer's ``message.content``: ``text`` or ``thinking``."""

    type: str = "text"
    text: str | None = None
    thinking: str | None = None


class AnswerToolCall(Struct, kw_only=True):
    """A ``ToolCallV2`` of an answer, read leniently (the SDK defaults ``type``)."""

    id: str = ""
    type: str = "function"
    function: CallFunction | None = None


class AnswerMessage(Struct, kw_only=True):
    """``AssistantMessageResponse`` (citations are not read: OpenAI has no place for them)."""

    role: str = "assistant"
    content: list[AnswerBlock] | None = None
    tool_calls: list[AnswerToolCall] | None = None
    tool_plan: str | None = None


class ChatResponse(Struct, kw_only=True):
    """``V2ChatResponse``: ``finish_reason`` is ``COMPLETE``, ``STOP_SEQUENCE``,
    ``MAX_TOKENS``, ``TOOL_CALL``, ``ERROR`` or ``TIMEOUT``."""

    id: str = ""
    finish_reason: str | None = None
    message: AnswerMessage
    usage: Usage | None = None


class DeltaContent(Struct, kw_only=True):
    """``delta.message.content`` of ``content-start`` (with ``type``) and ``content-delta``."""

    type: str | None = None
    text: str | None = None
    thinking: str | None = None


class DeltaCallFunction(Struct, kw_only=True):
    name: str | None = None
    arguments: str | None = None


class DeltaCall(Struct, kw_only=True):
    """``delta.message.tool_calls`` of ``tool-call-start`` (id, name) and
    ``tool-call-delta`` (a piece of the arguments): one object, not a list."""

    id: str | None = None
    function: DeltaCallFunction | None = None


class DeltaMessage(Struct, kw_only=True):
    role: str | None = None
    content: DeltaContent | None = None
    tool_plan: str | None = None
    tool_calls: DeltaCall | None = None


class EventDelta(Struct, kw_only=True):
    """An event's ``delta``: ``message`` for the content events; ``finish_reason``,
    ``usage`` and ``error`` for ``message-end``."""

    message: DeltaMessage | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    error: str | None = None


class StreamEvent(Struct, kw_only=True):
    """Any event of a ``/v2/chat`` stream, told apart by ``type``."""

    type: str
    id: str | None = None
    index: int | None = None
    delta: EventDelta | None = None


class EmbedMeta(Struct, kw_only=True):
    billed_units: UsageUnits | None = None


class Embeddings(Struct, kw_only=True):
    """``EmbedByTypeResponseEmbeddings``: one list per type asked for (``float`` here)."""

    float_: list[list[float]] | None = field(default=None, name="float")


class EmbedResponse(Struct, kw_only=True):
    """``EmbedByTypeResponse``: the vectors in the order of ``texts``, and the billing."""

    id: str = ""
    embeddings: Embeddings
    meta: EmbedMeta | None = None


class ErrorBody(Struct, kw_only=True):
    """An error answer: ``{"id": ..., "message": "invalid request: ..."}``."""

    message: str = ""
    id: str | None = None


encode = msgspec.json.Encoder().encode
decode_chat = msgspec.json.Decoder(ChatResponse).decode
decode_event = msgspec.json.Decoder(StreamEvent).decode
decode_embed = msgspec.json.Decoder(EmbedResponse).decode
decode_error = msgspec.json.Decoder(ErrorBody).decode
