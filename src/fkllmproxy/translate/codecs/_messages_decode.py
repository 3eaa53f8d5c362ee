"""An Anthropic Messages request read into the canonical conversation.

Used when a ``/v1/messages`` client reaches a provider that is not Anthropic (an
Anthropic provider gets the client's bytes untouched). Mapping:

* ``system`` (string or text blocks, ``cache_control`` kept) -> one leading ``system``
  message; a ``system`` message inside ``messages`` (Anthropic's
  ``mid-conversation-system`` beta, which Claude Code uses) -> a ``system`` message in
  the same place, text only.
* ``user`` blocks: text, image (base64 or URL), document (base64 or plain text; title
  and context kept) -> their parts. Each ``tool_result`` block -> a ``tool``
  message, placed before the user's other content, in order; a result keeps its images
  and documents, ``is_error``, and the name of the call it answers.
* ``assistant`` blocks: text -> text, ``tool_use`` -> tool calls (ids kept, a Gemini
  thought signature read back out of the id), ``thinking`` -> reasoning with its
  signature, ``redacted_thinking`` -> reasoning with its opaque data.
* ``thinking``: ``enabled`` -> ``budget_tokens``, ``adaptive`` -> ``adaptive`` with
  ``output_config.effort``; both ask for the thinking back (``include``). ``effort`` is
  filled as well, on OpenAI's scale, so an API that only has an effort gets the one
  this proxy always used: a budget under 4096 ``low``, under 16384 ``medium``, else
  ``high``; adaptive by ``output_config.effort`` (``max`` reads as ``high``; none
  given: ``medium``). ``disabled`` or absent: no reasoning setting.
* ``max_tokens``, ``temperature``, ``top_p``, ``top_k``, ``stop_sequences``, ``tools``
  (``cache_control`` kept), ``tool_choice`` (auto/any/tool/none; ``disable_parallel_
  tool_use`` -> ``parallel = False``), ``output_config.format`` (a strict JSON schema
  named ``output``), ``metadata.user_id`` -> ``user``, the top-level ``cache_control``;
  streaming asks for usage.

Ignored, because they steer Anthropic's own machinery and not what the answer says:
``output_config.effort`` without adaptive thinking, ``context_management``,
``service_tier``, ``speed`` and ``diagnostics``. What only Anthropic can do
(``container``, ``mcp_servers``, ``inference_geo``, server tools, documents by URL or
with citations) and unknown fields, roles and block types are a 400 naming the field
and the provider right here: a conversation decoded here never goes to Anthropic.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from fkllmproxy.translate._common import (
    Unsupported,
    client_paths,
    encode_json,
    invalid,
    missing,
    validation_error,
)
from fkllmproxy.translate.canonical import (
    CacheHint,
    Conversation,
    Document,
    Image,
    Message,
    Part,
    Reasoning,
    ReasoningConfig,
    ResponseFormat,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)
from fkllmproxy.translate.codecs._ids import ANTHROPIC, signature_of, tagged
from fkllmproxy.wire.anthropic import (
    Base64Source,
    CacheControl,
    DocumentBlock,
    ImageBlock,
    RedactedThinkingBlock,
    StrictMessage,
    StrictMessagesRequest,
    TextBlock,
    TextSource,
    ThinkingBlock,
    ToolDefinition,
    ToolResultBlock,
    ToolUseBlock,
    URLSource,
    strict_request_decoder,
)

__all__ = ["block_kind", "decode_request"]

_CHOICES: dict[str, Literal["auto", "none", "required", "tool"]] = {
    "auto": "auto",
    "any": "required",
    "none": "none",
    "tool": "tool",
}
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "high"}
# Anthropic's own machinery, with no canonical form: a conversation decoded here goes
# to a provider of another kind (an Anthropic one gets the bytes), which has none.
_ANTHROPIC_ONLY = ("container", "mcp_servers", "inference_geo")
_BLOCK_TYPES: dict[type, str] = {
    TextBlock: "text",
    ToolUseBlock: "tool_use",
    ThinkingBlock: "thinking",
    RedactedThinkingBlock: "redacted_thinking",
    ToolResultBlock: "tool_result",
    ImageBlock: "image",
    DocumentBlock: "document",
}


def block_kind(block: object) -> str:
    """A request block's ``type`` as the client wrote it."""
    return _BLOCK_TYPES.get(type(block), type(block).__name__)


def decode_request(raw: bytes, *, unsupported: Unsupported) -> Conversation:
    """The conversation of Anthropic request bytes ``raw``.

    ``unsupported`` words the 400 for what no provider of another kind can carry, and
    names the target it was decoded for.
    """
    try:
        request = strict_request_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        label = f"{unsupported.provider!r}{unsupported.family}"
        raise validation_error(exc, label) from None
    for name in _ANTHROPIC_ONLY:
        if getattr(request, name) is not None:
            raise unsupported(name)
    messages: list[Message] = []
    system = _system(request.system)
    if system is not None:
        messages.append(system)
    names: dict[str, str] = {}  # tool_use id -> name, for the results that answer it
    where_of: dict[int, str] = {}  # id(part) -> the block it came from, as the client wrote it
    for index, message in enumerate(request.messages):
        messages.extend(_message(message, f"messages[{index}]", names, unsupported, where_of))
    if messages and _is_empty_assistant(messages[-1]):
        messages.pop()  # an empty final turn prefills nothing
    conversation = Conversation(
        model=request.model,
        messages=messages,
        api="messages",
        stream=bool(request.stream),
        include_usage=bool(request.stream),
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=request.top_k,
        stop=request.stop_sequences or None,
        reasoning=_reasoning(request),
        cache=_cache(request.cache_control),
        paths=client_paths(messages, where_of),
        user=request.metadata.user_id if request.metadata is not None else None,
    )
    if request.tools:
        conversation.tools = [
            _tool(tool, f"tools[{i}]", unsupported) for i, tool in enumerate(request.tools)
        ]
    conversation.tool_choice = _tool_choice(request)
    output = request.output_config
    if output is not None and output.format is not None:
        conversation.response_format = ResponseFormat(
            kind="json_schema", name="output", schema=output.format.schema, strict=True
        )
    return conversation


def _cache(control: CacheControl | None) -> CacheHint | None:
    return None if control is None else CacheHint(ttl=control.ttl)


def _reasoning(request: StrictMessagesRequest) -> ReasoningConfig | None:
    """The reasoning setting of the request's ``thinking`` (see the module docstring)."""
    thinking = request.thinking
    if thinking is None or thinking.type == "disabled":
        return None
    if thinking.type == "enabled":
        budget = thinking.budget_tokens or 0
        effort = "low" if budget < 4096 else "medium" if budget < 16384 else "high"
        return ReasoningConfig(effort=effort, budget_tokens=thinking.budget_tokens, include=True)
    if thinking.type == "adaptive":
        output = request.output_config
        given = output.effort if output is not None else None
        effort = _EFFORTS.get(given or "medium", "medium")
        return ReasoningConfig(effort=effort, adaptive=True, include=True)
    raise invalid("thinking.type", f"{thinking.type!r} is not one of enabled, adaptive, disabled")


def _system(system: str | list[TextBlock] | None) -> Message | None:
    if system is None or isinstance(system, str):
        return Message(role="system", parts=[Text(text=system)]) if system else None
    parts: list[Part] = [
        Text(text=block.text, cache=_cache(block.cache_control)) for block in system if block.text
    ]
    return Message(role="system", parts=parts) if parts else None


def _is_empty_assistant(message: Message) -> bool:
    return message.role == "assistant" and all(
        isinstance(part, Text) and not part.text for part in message.parts
    )


def _message(
    message: StrictMessage,
    where: str,
    names: dict[str, str],
    unsupported: Unsupported,
    where_of: dict[int, str],
) -> list[Message]:
    content = message.content
    if message.role == "assistant":
        return [_assistant(content, where, names, where_of)]
    if message.role == "system":
        return [Message(role="system", parts=_system_parts(content, where))]
    if isinstance(content, str):
        return [Message(role="user", parts=[Text(text=content)])]
    out: list[Message] = []
    parts: list[Part] = []
    for index, block in enumerate(content):
        at = f"{where}.content[{index}]"
        if isinstance(block, ToolResultBlock):
            result = _tool_result(block, at, names, unsupported)
            where_of[id(result)] = at
            out.append(Message(role="tool", parts=[result]))
        else:
            part = _user_part(block, at, unsupported)
            where_of[id(part)] = at
            parts.append(part)
    if parts or not out:
        out.append(Message(role="user", parts=parts))
    return out


def _system_parts(content: str | list[Any], where: str) -> list[Part]:
    """A ``system`` message inside ``messages``: text only."""
    if isinstance(content, str):
        return [Text(text=content)] if content else []
    parts: list[Part] = []
    for index, block in enumerate(content):
        if not isinstance(block, TextBlock):
            raise invalid(
                f"{where}.content[{index}].type",
                f"a system message cannot hold a {block_kind(block)} block",
            )
        if block.text:
            parts.append(Text(text=block.text, cache=_cache(block.cache_control)))
    return parts


def _user_part(block: object, where: str, unsupported: Unsupported) -> Text | Image | Document:
    if isinstance(block, TextBlock):
        return Text(text=block.text, cache=_cache(block.cache_control), citations=block.citations)
    if isinstance(block, ImageBlock):
        return _image(block, where)
    if isinstance(block, DocumentBlock):
        return _document(block, where, unsupported)
    raise invalid(f"{where}.type", f"a user message cannot hold a {block_kind(block)} block")


def _image(block: ImageBlock, where: str) -> Image:
    source = block.source
    cache = _cache(block.cache_control)
    if isinstance(source, URLSource):
        return Image(url=source.url, cache=cache)
    if not source.media_type.startswith("image/"):
        raise invalid(f"{where}.source.media_type", f"{source.media_type!r} is not an image")
    return Image(media_type=source.media_type, data=source.data, cache=cache)


def _document(block: DocumentBlock, where: str, unsupported: Unsupported) -> Document:
    if block.citations and block.citations.get("enabled"):
        raise unsupported(f"{where}.citations")  # Anthropic's alone
    source = block.source
    document = Document(title=block.title, context=block.context, cache=_cache(block.cache_control))
    if isinstance(source, TextSource):
        document.media_type = source.media_type
        document.text = source.data
    elif isinstance(source, URLSource):
        # No provider of another kind fetches a document by URL.
        raise unsupported(f"{where}.source.type = 'url'", "send the PDF as base64")
    else:
        assert isinstance(source, Base64Source)
        document.media_type = source.media_type
        document.data = source.data
    return document


def _tool_result(
    block: ToolResultBlock, where: str, names: dict[str, str], unsupported: Unsupported
) -> ToolResult:
    content = block.content
    parts: list[Text | Image | Document] = []
    if isinstance(content, str):
        parts.append(Text(text=content))
    elif content:
        parts = [
            _user_part(item, f"{where}.content[{i}]", unsupported) for i, item in enumerate(content)
        ]
    return ToolResult(
        call_id=block.tool_use_id,
        content=parts,
        is_error=bool(block.is_error),
        name=names.get(block.tool_use_id),
        cache=_cache(block.cache_control),
    )


def _assistant(
    content: str | list[Any], where: str, names: dict[str, str], where_of: dict[int, str]
) -> Message:
    if isinstance(content, str):
        return Message(role="assistant", parts=[Text(text=content)] if content else [])
    parts: list[Part] = []
    for index, block in enumerate(content):
        part = _assistant_part(block, f"{where}.content[{index}]", names)
        if part is not None:
            where_of[id(part)] = f"{where}.content[{index}]"
            parts.append(part)
    return Message(role="assistant", parts=parts)


def _assistant_part(block: object, at: str, names: dict[str, str]) -> Part | None:
    """The canonical part of one assistant block (``None`` for empty text)."""
    if isinstance(block, TextBlock):
        if not block.text:
            return None
        return Text(text=block.text, cache=_cache(block.cache_control), citations=block.citations)
    if isinstance(block, ToolUseBlock):
        names[block.id] = block.name
        return ToolCall(
            id=block.id,
            name=block.name,
            arguments=encode_json(block.input).decode(),
            signature=signature_of(block.id),
            cache=_cache(block.cache_control),
        )
    if isinstance(block, ThinkingBlock):
        proof = tagged(ANTHROPIC, block.signature) if block.signature else None
        return Reasoning(text=block.thinking, signature=proof)
    if isinstance(block, RedactedThinkingBlock):
        return Reasoning(redacted=tagged(ANTHROPIC, block.data))
    raise invalid(f"{at}.type", f"an assistant message cannot hold a {block_kind(block)} block")


def _tool(tool: ToolDefinition, where: str, unsupported: Unsupported) -> Tool:
    if tool.type not in (None, "custom"):
        raise unsupported(
            f"{where}.type = {tool.type!r}", "Anthropic server tools run only on Anthropic"
        )
    if tool.input_schema is None:
        raise missing(f"{where}.input_schema")
    return Tool(
        name=tool.name,
        description=tool.description or None,
        parameters=tool.input_schema,
        strict=True if tool.strict else None,
        cache=_cache(tool.cache_control),
    )


def _tool_choice(request: StrictMessagesRequest) -> ToolChoice | None:
    choice = request.tool_choice
    if choice is None:
        return None
    if not request.tools:
        if choice.type in ("any", "tool"):
            raise invalid("tool_choice.type", f"{choice.type!r} needs 'tools'")
        return None  # auto or none without tools: nothing to choose from either way
    if choice.type == "tool" and not choice.name:
        raise missing("tool_choice.name")
    mode = _CHOICES[choice.type]
    return ToolChoice(
        mode=mode,
        name=choice.name if mode == "tool" else None,
        parallel=False if choice.disable_parallel_tool_use else None,
    )
