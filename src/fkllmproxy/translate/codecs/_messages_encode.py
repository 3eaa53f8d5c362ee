"""The canonical conversation written as an Anthropic Messages request.

Used by the ``anthropic`` provider for clients of every other API. Mapping:

* ``system`` and ``developer`` messages -> the top-level ``system`` text blocks, in
  order, wherever they sit (a ``system`` turn inside ``messages`` needs a beta the
  client of another API did not ask for).
* ``user`` parts: text -> text, image -> image (base64 source, or a URL source; a data
  URL is opened up; ``detail`` has no Anthropic equivalent), document -> document
  (base64 PDF, plain text, or URL; title or filename, context, citations).
* ``assistant`` parts: text and refusal -> text blocks, tool calls -> ``tool_use``
  (ids kept, arguments parsed from their JSON), reasoning with a signature ->
  ``thinking``, redacted reasoning -> ``redacted_thinking``; reasoning with neither has
  no form Anthropic accepts and is left out. An assistant turn left empty is dropped,
  as Anthropic refuses empty turns.
* ``tool`` turns -> ``tool_result`` blocks in a user turn (text, images, documents,
  ``is_error``); consecutive turns of the same role are merged, so several tool results
  (and a following user text) share one turn, which Anthropic requires.
* Cache hints -> ``cache_control`` on their block, tool or the request.
* ``max_tokens``, else the provider's ``default_max_tokens`` (Anthropic requires one);
  ``temperature`` (0 to 1 there), ``top_p``, ``top_k``, ``stop`` -> ``stop_sequences``;
  ``user`` -> ``metadata.user_id``; ``service_tier`` ``auto``/``default`` ->
  ``auto``/``standard_only``.
* ``tools`` -> tools with ``input_schema``; ``tool_choice`` auto/none/required/tool ->
  auto/none/any/tool; ``parallel = False`` -> ``disable_parallel_tool_use``.
* ``response_format`` ``json_schema`` -> ``output_config.format`` (Anthropic's
  structured outputs); ``json_object`` -> a forced tool whose input is the JSON answer,
  turned back into text by the answer decoders (so not together with ``tools``).
* Reasoning with ``budget_tokens`` -> ``thinking`` enabled with that budget;
  ``adaptive`` -> adaptive thinking with ``output_config.effort``. A Gemini client's
  ``thinkingConfig`` is a hint, left out.

Refused with a 400 naming the field (as the client's API names it) and the provider:
a seed, several candidates, non-zero penalties, log probabilities, output other than
text, an effort with no budget (use an Anthropic model's thinking through
``/v1/messages``), ``metadata``, another service tier, content the client's API has
and the canonical model does not (``Unmapped``), and every field in
``Conversation.extra``.
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct

from fkllmproxy.translate._common import (
    Unsupported,
    decode_json,
    invalid,
    missing,
    parse_data_url,
)
from fkllmproxy.translate.canonical import (
    CacheHint,
    Conversation,
    Document,
    Image,
    Message,
    Part,
    Reasoning,
    Refusal,
    Text,
    Tool,
    ToolCall,
    ToolResult,
    Unmapped,
)
from fkllmproxy.translate.codecs._ids import ANTHROPIC, own_proof

__all__ = ["JSON_TOOL", "MessagesCallBody", "encode_request"]

JSON_TOOL = "json_answer"
"""The forced tool that carries a JSON-mode answer."""

_CHOICES = {"auto": "auto", "none": "none", "required": "any", "tool": "tool"}
_TIERS = {"auto": "auto", "default": "standard_only"}
# APIs whose reasoning setting is a hint left out for Anthropic (the README names
# Gemini's ``thinkingConfig`` so): it is neither sent nor refused.
_REASONING_HINT_APIS = frozenset(["gemini"])
_WHY = {
    "seed": "Anthropic has no seed",
    "reasoning": "use an Anthropic model's thinking through /v1/messages",
    "candidate_count": "Anthropic returns one choice",
}
# How each client API names the settings this encoder may refuse (Chat's by default).
_NAMES: dict[str, dict[str, str]] = {
    "chat": {
        "candidate_count": "n",
        "top_logprobs": "top_logprobs",
        "reasoning": "reasoning_effort",
    },
    "responses": {"reasoning": "reasoning.effort", "top_logprobs": "top_logprobs"},
    "gemini": {
        "seed": "generationConfig.seed",
        "candidate_count": "generationConfig.candidateCount",
        "presence_penalty": "generationConfig.presencePenalty",
        "frequency_penalty": "generationConfig.frequencyPenalty",
        "logprobs": "generationConfig.responseLogprobs",
        "top_logprobs": "generationConfig.logprobs",
        "modalities": "generationConfig.responseModalities",
        "response_format": "generationConfig.responseMimeType",
    },
}


class MessagesCallBody(Struct, kw_only=True):
    """The Anthropic request body, and the forced JSON tool's name if JSON mode used one
    (the answer decoders need it to read that tool's input back as text)."""

    body: dict[str, Any]
    json_tool: str | None = None


def encode_request(
    conversation: Conversation, *, model: str, unsupported: Unsupported, default_max_tokens: int
) -> MessagesCallBody:
    """The Anthropic body for ``conversation``, to send to ``model``.

    ``unsupported`` words every refusal and names the provider; ``default_max_tokens``
    is the provider's, used when the client set no limit, since Anthropic requires one.
    """
    _refuse_settings(conversation, unsupported)
    system, messages = _conversation(conversation.messages, unsupported)
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": conversation.max_tokens or default_max_tokens,
        "messages": messages,
    }
    if system:
        body["system"] = system
    if conversation.stream:
        body["stream"] = True
    _sampling(conversation, body, unsupported)
    if conversation.user:
        body["metadata"] = {"user_id": conversation.user}
    tier = conversation.service_tier
    if tier is not None:
        if tier not in _TIERS:
            raise unsupported(f"service_tier = {tier!r}")
        body["service_tier"] = _TIERS[tier]
    if conversation.cache is not None:
        body["cache_control"] = _cache_control(conversation.cache)
    _thinking(conversation, body)
    _tools(conversation, body)
    json_tool = _response_format(conversation, body, unsupported)
    return MessagesCallBody(body=body, json_tool=json_tool)


def _name(conversation: Conversation, setting: str) -> str:
    """``setting`` as the client's API calls it."""
    return _NAMES.get(conversation.api or "chat", {}).get(setting, setting)


def _refuse_settings(conversation: Conversation, unsupported: Unsupported) -> None:
    for name in conversation.extra:
        raise unsupported(name)

    def refuse(setting: str) -> None:
        raise unsupported(_name(conversation, setting), _WHY.get(setting, ""))

    if conversation.seed is not None:
        refuse("seed")
    if conversation.candidate_count not in (None, 1):
        refuse("candidate_count")
    for penalty in ("presence_penalty", "frequency_penalty"):
        if getattr(conversation, penalty):
            refuse(penalty)
    if conversation.logprobs:
        refuse("logprobs")
    if conversation.top_logprobs is not None:
        refuse("top_logprobs")
    if conversation.modalities not in (None, ["text"]):
        refuse("modalities")
    if conversation.metadata:
        refuse("metadata")
    reasoning = conversation.reasoning
    if conversation.api in _REASONING_HINT_APIS:
        return
    if (
        reasoning is not None
        and reasoning.budget_tokens is None
        and not reasoning.adaptive
        and reasoning.effort not in (None, "none")
    ):
        refuse("reasoning")


def _sampling(conversation: Conversation, body: dict[str, Any], unsupported: Unsupported) -> None:
    temperature = conversation.temperature
    if temperature is not None:
        if temperature > 1:
            raise unsupported(f"temperature = {temperature}", "its range is 0 to 1")
        body["temperature"] = temperature
    if conversation.top_p is not None:
        body["top_p"] = conversation.top_p
    if conversation.top_k is not None:
        body["top_k"] = conversation.top_k
    if conversation.stop:
        body["stop_sequences"] = list(conversation.stop)


def _thinking(conversation: Conversation, body: dict[str, Any]) -> None:
    reasoning = conversation.reasoning
    if reasoning is None or conversation.api in _REASONING_HINT_APIS:
        return
    if reasoning.adaptive:
        body["thinking"] = {"type": "adaptive"}
        if reasoning.effort:
            body["output_config"] = {"effort": reasoning.effort}
    elif reasoning.budget_tokens:
        body["thinking"] = {"type": "enabled", "budget_tokens": reasoning.budget_tokens}


def _cache_control(hint: CacheHint) -> dict[str, Any]:
    control: dict[str, Any] = {"type": "ephemeral"}
    if hint.ttl:
        control["ttl"] = hint.ttl
    return control


def _cached(block: dict[str, Any], hint: CacheHint | None) -> dict[str, Any]:
    if hint is not None:
        block["cache_control"] = _cache_control(hint)
    return block


# ---- the conversation ---------------------------------------------------------------


def _conversation(
    messages: list[Message], unsupported: Unsupported
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not messages:
        raise missing("messages")
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []

    def push(role: str, blocks: list[dict[str, Any]]) -> None:
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for index, message in enumerate(messages):
        for part in message.parts:
            if isinstance(part, Unmapped):
                raise unsupported(part.where, part.kind)
        where = f"messages[{index}].content"
        if message.role in ("system", "developer"):
            system.extend(_text_blocks(message.parts, where, unsupported))
        elif message.role == "assistant":
            blocks = _assistant_blocks(message.parts, f"messages[{index}]", unsupported)
            if blocks:
                push("assistant", blocks)
        else:
            push("user", _user_blocks(message.parts, where, unsupported))
    return system, turns


def _text_blocks(parts: list[Part], where: str, unsupported: Unsupported) -> list[dict[str, Any]]:
    blocks = []
    for index, part in enumerate(parts):
        if isinstance(part, Text | Refusal):
            if part.text:
                cache = part.cache if isinstance(part, Text) else None
                blocks.append(_cached({"type": "text", "text": part.text}, cache))
        else:
            kind = type(part).__name__.lower()
            raise unsupported(f"{where}[{index}].type = {kind!r}", "text parts only")
    return blocks


def _user_blocks(parts: list[Part], where: str, unsupported: Unsupported) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for index, part in enumerate(parts):
        at = f"{where}[{index}]"
        if isinstance(part, ToolResult):
            blocks.append(_tool_result(part, at, unsupported))
        elif isinstance(part, Text | Image | Document):
            block = _content_block(part, at, unsupported)
            if block is not None:
                blocks.append(block)
        else:
            kind = type(part).__name__.lower()
            raise unsupported(f"{at}.type = {kind!r}", "not in a user turn")
    return blocks


def _content_block(
    part: Text | Image | Document, where: str, unsupported: Unsupported
) -> dict[str, Any] | None:
    """The block for a text, image or document part (``None`` for empty text)."""
    if isinstance(part, Text):
        if not part.text:
            return None
        block: dict[str, Any] = {"type": "text", "text": part.text}
        if part.citations:
            block["citations"] = part.citations
        return _cached(block, part.cache)
    if isinstance(part, Image):
        return _cached({"type": "image", "source": _image_source(part, where)}, part.cache)
    return _cached(_document(part, where, unsupported), part.cache)


def _image_source(image: Image, where: str) -> dict[str, Any]:
    if image.data:
        return {"type": "base64", "media_type": image.media_type or "image/png", "data": image.data}
    url = image.url
    if not url:
        raise missing(f"{where}.image_url.url")
    data_url = parse_data_url(url)
    if data_url is not None:
        media_type, data = data_url
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("https://", "http://")):
        return {"type": "url", "url": url}
    raise invalid(f"{where}.image_url.url", "expected an http(s) URL or a base64 data URL")


def _document(document: Document, where: str, unsupported: Unsupported) -> dict[str, Any]:
    if document.file_id:
        raise unsupported(f"{where}.file.file_id", "send the file inline as file_data")
    if document.text is not None:
        source: dict[str, Any] = {"type": "text", "media_type": "text/plain"}
        source["data"] = document.text
    elif document.data is not None:
        media_type = document.media_type or "application/pdf"
        if media_type != "application/pdf":
            raise unsupported(f"{where}.file.file_data ({media_type})", "PDF only")
        source = {"type": "base64", "media_type": media_type, "data": document.data}
    elif document.url and document.url.startswith(("https://", "http://")):
        source = {"type": "url", "url": document.url}
    else:
        raise invalid(f"{where}.file.file_data", "expected a base64 data URL")
    block: dict[str, Any] = {"type": "document", "source": source}
    title = document.title or document.filename
    if title:
        block["title"] = title
    if document.context:
        block["context"] = document.context
    if document.citations:
        block["citations"] = document.citations
    return block


def _assistant_blocks(
    parts: list[Part], where: str, unsupported: Unsupported
) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    calls = 0
    for index, part in enumerate(parts):
        if isinstance(part, Text | Refusal):
            blocks.extend(_text_blocks([part], f"{where}.content", unsupported))
        elif isinstance(part, ToolCall):
            blocks.append(_tool_use(part, f"{where}.tool_calls[{calls}]"))
            calls += 1
        elif isinstance(part, Reasoning):
            block = _thinking_block(part)
            if block is not None:
                blocks.append(block)
        else:
            kind = type(part).__name__.lower()
            at = f"{where}.content[{index}].type = {kind!r}"
            raise unsupported(at, "not in an assistant turn")
    return blocks


def _thinking_block(reasoning: Reasoning) -> dict[str, Any] | None:
    """Reasoning Anthropic can take back: thinking it signed, or its redacted thinking
    (another provider's proof means nothing to it, ``codecs/_ids.py``)."""
    redacted = own_proof(ANTHROPIC, reasoning.redacted)
    if redacted is not None:
        return {"type": "redacted_thinking", "data": redacted}
    signature = own_proof(ANTHROPIC, reasoning.signature)
    if signature:
        return {"type": "thinking", "thinking": reasoning.text, "signature": signature}
    return None


def _tool_use(call: ToolCall, where: str) -> dict[str, Any]:
    if not call.name:
        raise missing(f"{where}.function.name")
    if not call.id:
        raise missing(f"{where}.id")
    try:
        parsed = decode_json(call.arguments or "{}")
    except ValueError:
        raise invalid(f"{where}.function.arguments", "not valid JSON") from None
    if not isinstance(parsed, dict):
        raise invalid(f"{where}.function.arguments", "expected a JSON object")
    block = {"type": "tool_use", "id": call.id, "name": call.name, "input": parsed}
    return _cached(block, call.cache)


def _tool_result(result: ToolResult, where: str, unsupported: Unsupported) -> dict[str, Any]:
    if not result.call_id:
        raise missing(f"{where}.tool_call_id")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": result.call_id}
    content = result.content
    if len(content) == 1 and _plain_text(content[0]):
        assert isinstance(content[0], Text)
        if content[0].text:
            block["content"] = content[0].text
    elif content:
        items = [_content_block(part, f"{where}.content", unsupported) for part in content]
        block["content"] = [item for item in items if item is not None]
    if result.is_error:
        block["is_error"] = True
    return _cached(block, result.cache)


def _plain_text(part: Text | Image | Document) -> bool:
    return isinstance(part, Text) and part.cache is None and not part.citations


# ---- tools and JSON mode -------------------------------------------------------------


def _tools(conversation: Conversation, body: dict[str, Any]) -> None:
    tools = conversation.tools
    if tools:
        body["tools"] = [_tool(tool) for tool in tools]
    choice = conversation.tool_choice
    if choice is None:
        return
    if not tools:
        if choice.mode in ("required", "tool"):
            raise invalid("tool_choice", "a tool can be required only when 'tools' are given")
        return  # auto or none without tools: the same as no choice at all
    out: dict[str, Any] = {"type": _CHOICES[choice.mode]}
    if choice.mode == "tool":
        if not choice.name:
            raise missing("tool_choice.function.name")
        out["name"] = choice.name
    if choice.parallel is False and choice.mode != "none":
        out["disable_parallel_tool_use"] = True
    body["tool_choice"] = out


def _tool(tool: Tool) -> dict[str, Any]:
    schema = tool.parameters or {"type": "object", "properties": {}}
    out: dict[str, Any] = {"name": tool.name, "input_schema": schema}
    if tool.description:
        out["description"] = tool.description
    if tool.strict:
        out["strict"] = True
    return _cached(out, tool.cache)


def _response_format(
    conversation: Conversation, body: dict[str, Any], unsupported: Unsupported
) -> str | None:
    response_format = conversation.response_format
    if response_format is None or response_format.kind == "text":
        return None
    if response_format.kind == "json_schema":
        if response_format.schema is None:
            raise missing("response_format.json_schema.schema")
        output = body.setdefault("output_config", {})
        output["format"] = {"type": "json_schema", "schema": response_format.schema}
        return None
    if body.get("tools"):
        raise unsupported(
            f"{_name(conversation, 'response_format')} = json_object",
            "JSON mode cannot be combined with tools",
        )
    body["tools"] = [
        {
            "name": JSON_TOOL,
            "description": "Give the answer as this JSON object.",
            "input_schema": {"type": "object"},
        }
    ]
    body["tool_choice"] = {"type": "tool", "name": JSON_TOOL}
    return JSON_TOOL
