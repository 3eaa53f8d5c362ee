"""An Anthropic Messages request as an OpenAI Chat Completions request.

Used when a ``/v1/messages`` client reaches a provider that is not Anthropic. Mapping:

* ``system`` (string or text blocks) -> one leading ``system`` message (blocks joined
  with a blank line); a ``system`` message inside ``messages`` (Anthropic's
  ``mid-conversation-system`` beta, which Claude Code uses) -> a ``system`` message in
  the same place.
* ``user`` blocks: text -> text, image (base64 or URL) -> ``image_url`` (data URL for
  base64), document (PDF base64) -> ``file``, plain-text document -> text.
  ``tool_result`` blocks -> ``tool`` messages placed before the user's other content, in
  order; images or PDFs inside a tool result follow in a user message, as OpenAI's
  ``tool`` messages carry text only. ``is_error`` results are prefixed ``Error:``.
* ``assistant`` blocks: text -> ``content``, ``tool_use`` -> ``tool_calls`` (ids kept).
  Thinking blocks are dropped: the Chat API has no way to send reasoning back.
* ``thinking`` -> ``reasoning_effort``: ``enabled`` by its ``budget_tokens`` (under
  4096 ``low``, under 16384 ``medium``, else ``high``), ``adaptive`` by
  ``output_config.effort`` (``max`` reads as ``high``; none given: ``medium``);
  ``disabled`` or absent sends none. The Gemini providers turn ``reasoning_effort``
  into their thinking budget.
* ``max_tokens`` -> ``max_completion_tokens``; ``stop_sequences`` -> ``stop``;
  ``temperature``, ``top_p`` as they are; ``top_k`` is passed on as ``top_k``, which
  OpenAI-compatible hosts such as vLLM accept and OpenAI itself refuses with its own 400.
* ``tools`` -> function tools; ``tool_choice`` auto/any/tool/none -> auto/required/
  {function}/none; ``disable_parallel_tool_use`` -> ``parallel_tool_calls: false``.
* ``output_config.format`` (JSON schema) -> ``response_format`` ``json_schema``.
* ``metadata.user_id`` -> ``user``; streaming asks for usage (``include_usage``).

Ignored, because they steer Anthropic's own machinery and not what the answer says:
``cache_control`` (prompt-cache hints; other providers cache by themselves),
``output_config.effort`` without adaptive thinking, ``context_management``
(server-side trimming of old tool results), ``service_tier``, ``speed`` and
``diagnostics``. Everything else that cannot be carried (server tools, ``container``,
``mcp_servers``, ``inference_geo``, unknown fields, roles or block types) is a 400
naming the field and the provider.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fkllmproxy.translate._common import (
    encode_json,
    invalid,
    missing,
    unsupported,
    validation_error,
)
from fkllmproxy.wire.anthropic import (
    Base64Source,
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

__all__ = ["chat_request_from_messages"]

_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "high"}
_BLOCK_TYPES: dict[type, str] = {
    ToolUseBlock: "tool_use",
    ThinkingBlock: "thinking",
    RedactedThinkingBlock: "redacted_thinking",
    ToolResultBlock: "tool_result",
    ImageBlock: "image",
    DocumentBlock: "document",
}


def chat_request_from_messages(raw: bytes, *, provider: str) -> dict[str, Any]:
    """The OpenAI request body for Anthropic request bytes ``raw``.

    ``provider`` (e.g. ``"'main' (openai)"``) is named in every 400 about something
    the translation cannot carry.
    """
    try:
        request = strict_request_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise validation_error(exc, provider) from None
    for name in ("container", "mcp_servers", "inference_geo"):
        if getattr(request, name) is not None:
            raise unsupported(name, provider)
    messages: list[dict[str, Any]] = []
    system = _system_text(request.system)
    if system:
        messages.append({"role": "system", "content": system})
    for index, message in enumerate(request.messages):
        messages.extend(_message(message, f"messages[{index}]", provider))
    if messages and _is_empty_assistant(messages[-1]):
        messages.pop()  # an empty final turn prefills nothing
    body: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "max_completion_tokens": request.max_tokens,
    }
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    for name in ("temperature", "top_p", "top_k"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.stop_sequences:
        body["stop"] = request.stop_sequences
    effort = _reasoning_effort(request)
    if effort is not None:
        body["reasoning_effort"] = effort
    if request.metadata is not None and request.metadata.user_id:
        body["user"] = request.metadata.user_id
    if request.tools:
        body["tools"] = [_tool(t, f"tools[{i}]", provider) for i, t in enumerate(request.tools)]
    if request.tool_choice is not None:
        _tool_choice(request, body)
    output = request.output_config
    if output is not None and output.format is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": output.format.schema, "strict": True},
        }
    return body


def _reasoning_effort(request: StrictMessagesRequest) -> str | None:
    """The OpenAI reasoning effort that matches the request's thinking setting."""
    thinking = request.thinking
    if thinking is None or thinking.type == "disabled":
        return None
    if thinking.type == "enabled":
        budget = thinking.budget_tokens or 0
        return "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    if thinking.type == "adaptive":
        output = request.output_config
        effort = output.effort if output is not None else None
        return _EFFORTS.get(effort or "medium", "medium")
    raise invalid("thinking.type", f"{thinking.type!r} is not one of enabled, adaptive, disabled")


def _system_text(system: str | list[TextBlock] | None) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    return "\n\n".join(block.text for block in system if block.text)


def _is_empty_assistant(message: dict[str, Any]) -> bool:
    return (
        message["role"] == "assistant"
        and not message.get("content")
        and "tool_calls" not in message
    )


def _message(message: StrictMessage, where: str, provider: str) -> list[dict[str, Any]]:
    content = message.content
    if message.role == "assistant":
        return [_assistant(content, where, provider)]
    if message.role == "system":
        return [{"role": "system", "content": _system_message_text(content, where)}]
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(content):
        at = f"{where}.content[{index}]"
        if isinstance(block, ToolResultBlock):
            out.extend(_tool_result(block, at, provider))
        else:
            parts.append(_user_part(block, at, provider))
    if parts or not out:
        out.append({"role": "user", "content": _collapse(parts)})
    return out


def _system_message_text(content: str | list[Any], where: str) -> str:
    """A ``system`` message inside ``messages``: text only, blocks joined as ``system`` is."""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for index, block in enumerate(content):
        if not isinstance(block, TextBlock):
            kind = _BLOCK_TYPES.get(type(block), type(block).__name__)
            raise invalid(
                f"{where}.content[{index}].type", f"a system message cannot hold a {kind} block"
            )
        texts.append(block.text)
    return "\n\n".join(text for text in texts if text)


def _collapse(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text-only content as one string (what every OpenAI-compatible host reads)."""
    if all(part["type"] == "text" for part in parts):
        return "\n\n".join(part["text"] for part in parts)
    return parts


def _user_part(block: object, where: str, provider: str) -> dict[str, Any]:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ImageBlock):
        return _image(block, where)
    if isinstance(block, DocumentBlock):
        return _document(block, where, provider)
    kind = _BLOCK_TYPES.get(type(block), type(block).__name__)
    raise invalid(f"{where}.type", f"a user message cannot hold a {kind} block")


def _image(block: ImageBlock, where: str) -> dict[str, Any]:
    source = block.source
    if isinstance(source, Base64Source):
        if not source.media_type.startswith("image/"):
            raise invalid(f"{where}.source.media_type", f"{source.media_type!r} is not an image")
        url = f"data:{source.media_type};base64,{source.data}"
    else:
        url = source.url
    return {"type": "image_url", "image_url": {"url": url}}


def _document(block: DocumentBlock, where: str, provider: str) -> dict[str, Any]:
    if block.citations and block.citations.get("enabled"):
        raise unsupported(f"{where}.citations", provider)
    source = block.source
    if isinstance(source, TextSource):
        title = f"{block.title}\n\n" if block.title else ""
        return {"type": "text", "text": title + source.data}
    if isinstance(source, URLSource):
        raise unsupported(f"{where}.source.type = 'url'", provider, "send the PDF as base64")
    if source.media_type != "application/pdf":
        raise invalid(f"{where}.source.media_type", f"{source.media_type!r} is not a PDF")
    file: dict[str, Any] = {"file_data": f"data:application/pdf;base64,{source.data}"}
    file["filename"] = block.title or "document.pdf"
    return {"type": "file", "file": file}


def _tool_result(block: ToolResultBlock, where: str, provider: str) -> list[dict[str, Any]]:
    """One ``tool`` message, then a user message for any images or PDFs it returned."""
    texts: list[str] = []
    attachments: list[dict[str, Any]] = []
    content = block.content
    if isinstance(content, str):
        texts.append(content)
    elif content:
        for index, item in enumerate(content):
            part = _user_part(item, f"{where}.content[{index}]", provider)
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                attachments.append(part)
    text = "\n\n".join(texts)
    if block.is_error:
        text = f"Error: {text}" if text else "Error"
    out: list[dict[str, Any]] = [
        {"role": "tool", "tool_call_id": block.tool_use_id, "content": text}
    ]
    if attachments:
        label = {"type": "text", "text": f"Attachments returned by tool call {block.tool_use_id}:"}
        out.append({"role": "user", "content": [label, *attachments]})
    return out


def _assistant(content: str | list[Any], where: str, provider: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for index, block in enumerate(content):
        if isinstance(block, TextBlock):
            if block.text:
                texts.append(block.text)
        elif isinstance(block, ToolUseBlock):
            arguments = encode_json(block.input).decode()
            function = {"name": block.name, "arguments": arguments}
            calls.append({"id": block.id, "type": "function", "function": function})
        elif isinstance(block, ThinkingBlock | RedactedThinkingBlock):
            continue
        else:
            kind = _BLOCK_TYPES.get(type(block), type(block).__name__)
            at = f"{where}.content[{index}].type"
            raise invalid(at, f"an assistant message cannot hold a {kind} block")
    message: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _tool(tool: ToolDefinition, where: str, provider: str) -> dict[str, Any]:
    if tool.type not in (None, "custom"):
        raise unsupported(
            f"{where}.type = {tool.type!r}",
            provider,
            "Anthropic server tools run only on Anthropic",
        )
    if tool.input_schema is None:
        raise missing(f"{where}.input_schema")
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
    if tool.description:
        function["description"] = tool.description
    if tool.strict:
        function["strict"] = True
    return {"type": "function", "function": function}


def _tool_choice(request: StrictMessagesRequest, body: dict[str, Any]) -> None:
    choice = request.tool_choice
    assert choice is not None
    if not request.tools:
        if choice.type in ("any", "tool"):
            raise invalid("tool_choice.type", f"{choice.type!r} needs 'tools'")
        return  # auto or none without tools: nothing to choose from either way
    if choice.type == "tool":
        if not choice.name:
            raise missing("tool_choice.name")
        body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    else:
        body["tool_choice"] = _CHOICES[choice.type]
    if choice.disable_parallel_tool_use:
        body["parallel_tool_calls"] = False
