"""The canonical conversation: one set of types for what every wire API means.

Four inbound APIs (Chat Completions, Messages, Responses, Gemini) meet six provider
types. Instead of a translator per pair, each wire API has one codec
(``translate/codecs/<api>.py``) that reads its requests, answers and streams into these
types and writes them back out. A pair is then two codecs: the client's decoder and the
provider's encoder, and the other way for the answer. Nothing here is OpenAI-shaped;
each type holds what at least one API can say, so a request from one client loses
nothing on its way to a provider that can carry it (thinking and its signatures,
prompt-cache hints, documents, reasoning items), and what a provider cannot carry is
refused by its encoder, by name.

Same-API pairs never come here: their bytes pass through untouched.

What every codec module offers (those an API needs; see ``translate/codecs/``)::

    decode_request(raw: bytes, *, provider: str) -> Conversation       # inbound APIs
    encode_request(conversation, *, model: str, provider: str) -> ...  # provider APIs
    decode_answer(body: bytes, *, provider: str) -> Answer               # provider APIs
    encode_answer(answer, *, model: str) -> bytes                       # inbound APIs
    StreamDecoder(provider=...).feed(frame) -> list[StreamEvent]; .finish()
    StreamEncoder(model=...).feed(event) -> list[bytes]; .finish()

Every decoder raises ``BadRequest`` (a client's request) or ``UpstreamUnavailable``
(a provider's answer it cannot read) with the wording of ``translate/_common.py``.

Usage::

    conversation = messages.decode_request(raw, provider=label)
    body = gemini.encode_request(conversation, model="gemini-2.5-pro", provider=label)
    answer = gemini.decode_answer(upstream_bytes, provider=label)
    client_bytes = messages.encode_answer(answer, model="claude-sonnet-5")
"""

from __future__ import annotations

from typing import Any, Literal

from msgspec import Struct, field

__all__ = [
    "Answer",
    "CacheHint",
    "Choice",
    "Conversation",
    "Document",
    "Finish",
    "FinishReason",
    "Image",
    "Message",
    "Part",
    "Reasoning",
    "ReasoningConfig",
    "ReasoningDelta",
    "Refusal",
    "RefusalDelta",
    "ResponseFormat",
    "Role",
    "Start",
    "StreamEvent",
    "Text",
    "TextDelta",
    "Tool",
    "ToolArgsDelta",
    "ToolCall",
    "ToolCallStart",
    "ToolChoice",
    "ToolResult",
    "Unmapped",
    "Usage",
    "UsageUpdate",
]

# ================================================================ content


class CacheHint(Struct, frozen=True, kw_only=True):
    """A prompt-cache breakpoint after this part (Anthropic's ``cache_control``).

    Providers that cache by themselves drop it: the contract names it a hint.
    """

    ttl: str | None = None


class Text(Struct, tag="text", kw_only=True):
    text: str
    cache: CacheHint | None = None
    citations: list[Any] | None = None


class Image(Struct, tag="image", kw_only=True):
    """An image, inline (``data``, base64, with its ``media_type``) or by ``url``."""

    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    detail: str | None = None  # OpenAI's low/high/auto
    cache: CacheHint | None = None


class Document(Struct, tag="document", kw_only=True):
    """A file given to the model: inline base64 ``data``, plain ``text``, or a ``url``
    (or a provider's ``file_id``)."""

    media_type: str | None = None
    data: str | None = None
    text: str | None = None
    url: str | None = None
    file_id: str | None = None
    title: str | None = None
    filename: str | None = None
    context: str | None = None
    citations: Any = None
    cache: CacheHint | None = None


class ToolCall(Struct, tag="tool_call", kw_only=True):
    """The model calling a function. ``arguments`` is JSON text, as the model wrote it.

    ``signature`` is Gemini's ``thoughtSignature`` for the call, which a thinking model
    wants back on the next turn. APIs with no field for it carry it inside the call's id
    (``translate/codecs/_ids.py``).
    """

    id: str
    name: str
    arguments: str = "{}"
    signature: str | None = None
    cache: CacheHint | None = None


class ToolResult(Struct, tag="tool_result", kw_only=True):
    """What a function returned, for the call ``call_id`` (Gemini pairs by ``name``)."""

    call_id: str
    content: list[Text | Image | Document] = field(default_factory=list)
    is_error: bool = False
    name: str | None = None
    cache: CacheHint | None = None


class Reasoning(Struct, tag="reasoning", kw_only=True):
    """The model's reasoning: its text (or summary), and what proves it.

    ``signature`` is Anthropic's thinking signature or Gemini's thought signature;
    ``redacted`` the opaque data of Anthropic's ``redacted_thinking`` or OpenAI's
    ``encrypted_content``; ``id`` the Responses API's reasoning item id. They go back
    to the provider as they came; an encoder for an API with no place for them leaves
    the block out (the contract lets reasoning go where it cannot be sent back).
    """

    text: str = ""
    signature: str | None = None
    redacted: str | None = None
    id: str | None = None


class Refusal(Struct, tag="refusal", kw_only=True):
    text: str


class Unmapped(Struct, tag="unmapped", kw_only=True):
    """Content of a kind the client's API has and this model does not (``kind``), found
    at ``where`` (the client's own field path). Every encoder refuses it by that name,
    so it is never dropped; same-API pairs never decode it."""

    kind: str
    where: str


Part = Text | Image | Document | ToolCall | ToolResult | Reasoning | Refusal | Unmapped
Role = Literal["system", "developer", "user", "assistant", "tool"]


class Message(Struct, kw_only=True):
    """One turn. ``system``/``developer`` turns may sit anywhere (Claude Code sends them
    mid-conversation); a ``tool`` turn holds ``ToolResult`` parts."""

    role: Role
    parts: list[Part]
    name: str | None = None


# ================================================================ the request


class Tool(Struct, kw_only=True):
    """A function the model may call; ``parameters`` is its JSON Schema as given."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None
    cache: CacheHint | None = None


class ToolChoice(Struct, kw_only=True):
    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None  # for mode "tool"
    parallel: bool | None = None  # None: the provider decides


class ResponseFormat(Struct, kw_only=True):
    kind: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None


class ReasoningConfig(Struct, kw_only=True):
    """How much the model should think, and whether the client wants the thinking back.

    ``effort`` is OpenAI's scale (none, minimal, low, medium, high, xhigh);
    ``budget_tokens`` Anthropic's and Gemini's; a decoder fills the one its API says and
    an encoder converts to its own scale. ``include`` means the client asked to see the
    reasoning (Anthropic thinking enabled, a Responses summary, Gemini's
    ``includeThoughts``).
    """

    effort: str | None = None
    budget_tokens: int | None = None
    include: bool = False
    summary: str | None = None
    adaptive: bool = False


class Conversation(Struct, kw_only=True):
    """One request to a model, whatever API it came in on.

    ``extra`` holds the request's fields its codec did not map, by the client API's own
    name: an encoder for another API refuses any of them with a 400 naming the field,
    so nothing is dropped silently. ``api`` names the API it was decoded from.
    """

    model: str
    messages: list[Message]
    api: str = ""
    stream: bool = False
    include_usage: bool = False
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    candidate_count: int | None = None
    response_format: ResponseFormat | None = None
    reasoning: ReasoningConfig | None = None
    cache: CacheHint | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    service_tier: str | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    modalities: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# ================================================================ the answer

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "refusal", "error"]


class Usage(Struct, kw_only=True):
    """Token counts. ``input_tokens`` counts every input token (cache reads and writes
    included, as OpenAI counts); ``output_tokens`` every output token (reasoning
    included)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


class Choice(Struct, kw_only=True):
    """A further candidate answer (Chat's ``n``, Gemini's ``candidateCount``)."""

    index: int
    parts: list[Part] = field(default_factory=list)
    finish: FinishReason | None = None


class Answer(Struct, kw_only=True):
    """A whole answer: ``parts`` in the order the model produced them (reasoning, text,
    tool calls, refusal). ``more`` holds the other candidates when the request asked
    for several (only Chat and Gemini can); usage covers them all."""

    id: str
    model: str
    parts: list[Part] = field(default_factory=list)
    finish: FinishReason | None = None
    stop_sequence: str | None = None
    usage: Usage | None = None
    created: int | None = None
    more: list[Choice] = field(default_factory=list)


# ================================================================ the stream


class Start(Struct, tag="start", kw_only=True):
    id: str
    model: str


class TextDelta(Struct, tag="text", kw_only=True):
    text: str
    choice: int = 0


class ReasoningDelta(Struct, tag="reasoning", kw_only=True):
    """More reasoning text, or the block's ``signature`` / ``redacted`` data once known.

    A new reasoning block starts after any other kind of event, or when ``new`` is set.
    """

    text: str = ""
    signature: str | None = None
    redacted: str | None = None
    id: str | None = None
    new: bool = False
    choice: int = 0


class RefusalDelta(Struct, tag="refusal", kw_only=True):
    text: str
    choice: int = 0


class ToolCallStart(Struct, tag="tool_call", kw_only=True):
    """A tool call begins; ``index`` numbers the calls of this answer from 0."""

    index: int
    id: str
    name: str
    signature: str | None = None
    choice: int = 0


class ToolArgsDelta(Struct, tag="tool_args", kw_only=True):
    index: int
    fragment: str
    choice: int = 0


class UsageUpdate(Struct, tag="usage", kw_only=True):
    """Token counts so far (the last one wins)."""

    usage: Usage


class Finish(Struct, tag="finish", kw_only=True):
    """The end of one choice (``choice``; the others' events carry their number too)."""

    reason: FinishReason
    stop_sequence: str | None = None
    usage: Usage | None = None
    choice: int = 0


StreamEvent = (
    Start
    | TextDelta
    | ReasoningDelta
    | RefusalDelta
    | ToolCallStart
    | ToolArgsDelta
    | UsageUpdate
    | Finish
)
