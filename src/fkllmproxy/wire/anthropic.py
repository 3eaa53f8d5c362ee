"""Anthropic Messages API shapes: requests (for validation) and answers (for decoding).

Two levels of strictness, because requests take two paths:

* ``MessagesRequest`` checks what every ``/v1/messages`` call needs (model, max_tokens,
  messages with content) and accepts any role and any content block, so that a request
  bound for an Anthropic provider passes through untouched, new roles (Claude Code's
  ``system`` messages under the ``mid-conversation-system`` beta) and block types
  included: what Anthropic refuses, Anthropic says so itself.
* ``StrictMessagesRequest`` types every content block the proxy knows how to translate.
  It is decoded only when the request goes to a provider of another kind, and an unknown
  block type is then reported with the field path.

Answers from an Anthropic upstream are decoded with ``MessageResponse`` and, when
streaming, one ``StreamEvent`` per SSE frame: a single flat struct rather than a tagged
union, since the API may add event types that a client must skip rather than reject.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

__all__ = [
    "Base64Source",
    "ContentBlock",
    "CountTokensRequest",
    "DocumentBlock",
    "ImageBlock",
    "InputMessage",
    "MessageResponse",
    "MessagesRequest",
    "RedactedThinkingBlock",
    "ResponseUsage",
    "StreamEvent",
    "StrictMessage",
    "StrictMessagesRequest",
    "TextBlock",
    "TextSource",
    "ThinkingBlock",
    "ToolDefinition",
    "ToolResultBlock",
    "ToolUseBlock",
    "URLSource",
    "count_tokens_decoder",
    "event_decoder",
    "messages_request_decoder",
    "response_decoder",
    "strict_request_decoder",
]

# ``system`` inside ``messages`` is Anthropic's ``mid-conversation-system`` beta.
Role = Literal["user", "assistant", "system"]

# ---- requests: the lenient shape every call is checked against ----------------------


class InputMessage(Struct, kw_only=True):
    role: str
    content: str | list[dict[str, Any]]


class MessagesRequest(Struct, kw_only=True):
    """The fields of a Messages call the proxy reads before it knows the provider."""

    model: Annotated[str, Meta(min_length=1)]
    max_tokens: Annotated[int, Meta(ge=1)]
    messages: Annotated[list[InputMessage], Meta(min_length=1)]
    system: str | list[dict[str, Any]] | None = None
    stream: bool | None = False
    temperature: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_k: Annotated[int, Meta(ge=0)] | None = None
    stop_sequences: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None


class CountTokensRequest(Struct, kw_only=True):
    """``/v1/messages/count_tokens``: a Messages request without ``max_tokens``."""

    model: Annotated[str, Meta(min_length=1)]
    messages: Annotated[list[InputMessage], Meta(min_length=1)]
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None


# ---- requests: every block typed, for translation to another provider's API --------


class CacheControl(Struct, kw_only=True):
    type: str = "ephemeral"
    ttl: str | None = None


class TextBlock(Struct, tag="text", tag_field="type", kw_only=True):
    text: str
    cache_control: CacheControl | None = None
    citations: list[dict[str, Any]] | None = None


class Base64Source(Struct, tag="base64", tag_field="type", kw_only=True):
    media_type: str
    data: str


class URLSource(Struct, tag="url", tag_field="type", kw_only=True):
    url: str


class TextSource(Struct, tag="text", tag_field="type", kw_only=True):
    media_type: str = "text/plain"
    data: str


class ImageBlock(Struct, tag="image", tag_field="type", kw_only=True):
    source: Base64Source | URLSource
    cache_control: CacheControl | None = None


class DocumentBlock(Struct, tag="document", tag_field="type", kw_only=True):
    source: Base64Source | URLSource | TextSource
    title: str | None = None
    context: str | None = None
    citations: dict[str, Any] | None = None
    cache_control: CacheControl | None = None


class ToolUseBlock(Struct, tag="tool_use", tag_field="type", kw_only=True):
    id: Annotated[str, Meta(min_length=1)]
    name: Annotated[str, Meta(min_length=1)]
    input: dict[str, Any]
    cache_control: CacheControl | None = None


class ToolResultBlock(Struct, tag="tool_result", tag_field="type", kw_only=True):
    tool_use_id: Annotated[str, Meta(min_length=1)]
    content: str | list[TextBlock | ImageBlock | DocumentBlock] | None = None
    is_error: bool | None = None
    cache_control: CacheControl | None = None


class ThinkingBlock(Struct, tag="thinking", tag_field="type", kw_only=True):
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(Struct, tag="redacted_thinking", tag_field="type", kw_only=True):
    data: str


ContentBlock = (
    TextBlock
    | ImageBlock
    | DocumentBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock
)


class StrictMessage(Struct, kw_only=True):
    role: Role
    content: str | list[ContentBlock]


class ToolDefinition(Struct, kw_only=True):
    """A client tool. Server tools (web search, code execution, ...) carry a ``type``."""

    name: Annotated[str, Meta(min_length=1)]
    input_schema: dict[str, Any] | None = None
    description: str | None = None
    type: str | None = None
    cache_control: CacheControl | None = None
    strict: bool | None = None


class ToolChoice(Struct, kw_only=True):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Metadata(Struct, kw_only=True):
    user_id: str | None = None


class ThinkingConfig(Struct, kw_only=True):
    type: str
    budget_tokens: int | None = None


class OutputFormat(Struct, kw_only=True):
    type: Literal["json_schema"]
    schema: dict[str, Any]


class OutputConfig(Struct, kw_only=True):
    effort: str | None = None
    format: OutputFormat | None = None


class StrictMessagesRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    """Every field of a Messages request, typed for translation.

    Fields the translation cannot carry to another provider (``container``,
    ``mcp_servers``, ...) are declared so that the translator can name them in a 400.
    """

    model: str
    max_tokens: int
    messages: list[StrictMessage]
    system: str | list[TextBlock] | None = None
    stream: bool | None = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    tools: list[ToolDefinition] | None = None
    tool_choice: ToolChoice | None = None
    metadata: Metadata | None = None
    thinking: ThinkingConfig | None = None
    output_config: OutputConfig | None = None
    service_tier: str | None = None
    cache_control: CacheControl | None = None
    context_management: dict[str, Any] | None = None
    container: Any = None
    mcp_servers: Any = None
    inference_geo: Any = None
    speed: Any = None
    diagnostics: Any = None


# ---- answers from an Anthropic upstream ---------------------------------------------


class ResponseUsage(Struct, kw_only=True):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class ResponseBlock(Struct, kw_only=True):
    """One block of an answer; fields by ``type`` (text, tool_use, thinking, ...)."""

    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: Any = None
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None  # redacted_thinking
    citations: list[Any] | None = None


class MessageResponse(Struct, kw_only=True):
    id: str
    model: str = ""
    content: list[ResponseBlock] = msgspec.field(default_factory=list)
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: ResponseUsage | None = None


class EventDelta(Struct, kw_only=True):
    """``content_block_delta.delta`` or ``message_delta.delta``."""

    type: str | None = None
    text: str | None = None
    partial_json: str | None = None
    thinking: str | None = None
    signature: str | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None


class EventError(Struct, kw_only=True):
    type: str = "api_error"
    message: str = ""


class StreamEvent(Struct, kw_only=True):
    """One SSE event of a streamed answer; which fields are set depends on ``type``."""

    type: str
    message: MessageResponse | None = None
    index: int | None = None
    content_block: ResponseBlock | None = None
    delta: EventDelta | None = None
    usage: ResponseUsage | None = None
    error: EventError | None = None


messages_request_decoder = msgspec.json.Decoder(MessagesRequest)
count_tokens_decoder = msgspec.json.Decoder(CountTokensRequest)
strict_request_decoder = msgspec.json.Decoder(StrictMessagesRequest)
response_decoder = msgspec.json.Decoder(MessageResponse)
event_decoder = msgspec.json.Decoder(StreamEvent)
