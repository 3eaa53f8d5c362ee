"""Gemini API requests -> OpenAI Chat requests, and Chat answers -> Gemini answers, pure.

Used by the inbound Gemini API (``server/gemini_api.py``) for targets that do not
speak Gemini themselves (openai, azure, anthropic, mock): Google targets get the
client's bytes untouched instead. The mapping, in short:

- ``systemInstruction`` -> a ``system`` message; ``user`` turns -> ``user`` messages
  (text, images from ``inlineData`` as ``data:`` URLs, ``fileData`` image URLs);
  ``model`` turns -> ``assistant`` messages with ``tool_calls`` for ``functionCall``
  parts; ``functionResponse`` parts -> ``tool`` messages, matched to their call by
  ``id`` when the client kept it, else by name and order, as Gemini pairs them.
- ``tools[].functionDeclarations`` -> function tools (Google's OpenAPI-subset
  ``parameters`` turned into JSON Schema, or ``parametersJsonSchema`` as given);
  ``toolConfig.functionCallingConfig`` -> ``tool_choice``.
- ``generationConfig``: ``temperature``, ``topP``, ``maxOutputTokens``,
  ``stopSequences``, ``candidateCount``, ``seed``, penalties; ``responseMimeType`` with
  ``responseSchema`` / ``responseJsonSchema`` -> ``response_format``; ``thinkingConfig``
  -> ``reasoning_effort``.
- Hints a target cannot use are left out (they change no meaning the client can
  check): ``safetySettings`` (Google's own filters), thought parts and their
  signatures (only the Gemini model that made them can read them), ``topK`` for
  OpenAI-type targets and ``thinkingConfig`` for Anthropic ones (their chat APIs
  have no such setting). Everything else that cannot be carried is a ``BadRequest``
  naming the field and the provider.

Answers go back as a ``GenerateContentResponse``: text and ``functionCall`` parts
(with the tool call's id), ``finishReason`` and ``usageMetadata``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import msgspec

from fkllmproxy.errors import UpstreamUnavailable
from fkllmproxy.translate._common import Unsupported, invalid
from fkllmproxy.translate.token_estimate import (
    CHARS_PER_TOKEN,
    TOKENS_PER_ATTACHMENT,
    TOKENS_PER_MESSAGE,
)
from fkllmproxy.wire.gemini_inbound import (
    GenerateContentBody,
    InContent,
    InFunctionDeclaration,
    InGenerationConfig,
    InPart,
    InTool,
    InToolConfig,
)

__all__ = [
    "FINISH_REASONS",
    "chat_request_from_gemini",
    "estimate_gemini_tokens",
    "gemini_response_from_chat",
    "gemini_usage",
    "json_schema_of",
]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode

_TOP_LEVEL = frozenset(
    {
        "contents",
        "systemInstruction",
        "tools",
        "toolConfig",
        "generationConfig",
        "safetySettings",
        "model",
    }
)
_GENERATION = frozenset(InGenerationConfig.__struct_encode_fields__)
_CONTENT = frozenset({"role", "parts"})
_PART = frozenset(
    {
        "text",
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
        "thought",
        "thoughtSignature",
    }
)
_TOOL_CONFIG = frozenset({"functionCallingConfig"})
_OPENAI_TYPES = frozenset({"openai", "azure"})
_AUDIO = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mpeg": "mp3", "audio/mp3": "mp3"}

# Chat finish reasons -> Gemini's.
FINISH_REASONS = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "content_filter": "SAFETY",
}


# ================================================================ request


def chat_request_from_gemini(
    body: GenerateContentBody,
    data: Mapping[str, Any],
    *,
    provider: str,
    provider_type: str,
    model: str,
    stream: bool,
) -> dict[str, Any]:
    """The Chat request for a Gemini request (``body`` typed, ``data`` the same as plain data)."""
    unsupported = Unsupported(provider)
    for name in data:
        if name not in _TOP_LEVEL:
            raise unsupported(name)
    _check_turns(data.get("contents"), unsupported)
    _check_keys(data.get("toolConfig"), _TOOL_CONFIG, "toolConfig", unsupported)
    messages: list[dict[str, Any]] = []
    if body.system_instruction is not None:
        text = _plain_text(body.system_instruction, "systemInstruction", unsupported)
        if text:
            messages.append({"role": "system", "content": text})
    _convert_contents(body.contents, messages, provider_type, unsupported)
    if not any(m["role"] != "system" for m in messages):
        raise invalid("contents", "expected at least one turn with content")
    chat: dict[str, Any] = {"model": model, "messages": messages}
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    tools = _convert_tools(body.tools, data.get("tools"), unsupported)
    if tools:
        chat["tools"] = tools
    choice = _tool_choice(body.tool_config, bool(tools))
    if choice is not None:
        chat["tool_choice"] = choice
    if body.generation_config is not None:
        generation = data.get("generationConfig")
        _generation(body.generation_config, generation, chat, provider_type, unsupported)
    return chat


def _check_keys(obj: Any, allowed: frozenset[str], where: str, unsupported: Unsupported) -> None:
    for name in obj if isinstance(obj, Mapping) else ():
        if name not in allowed:
            raise unsupported(f"{where}.{name}")


def _check_turns(contents: Any, unsupported: Unsupported) -> None:
    """Fields of turns and parts the typed decode skipped are refused by name, not lost."""
    for i, content in enumerate(contents if isinstance(contents, list) else ()):
        _check_keys(content, _CONTENT, f"contents[{i}]", unsupported)
        parts = content.get("parts") if isinstance(content, Mapping) else None
        for j, part in enumerate(parts if isinstance(parts, list) else ()):
            _check_keys(part, _PART, f"contents[{i}].parts[{j}]", unsupported)


def _plain_text(content: InContent, where: str, unsupported: Unsupported) -> str:
    texts = []
    for j, part in enumerate(content.parts):
        if part.text is None:
            raise unsupported(f"{where}.parts[{j}]", "only text parts in a system instruction")
        texts.append(part.text)
    return "\n".join(texts)


class _Calls:
    """Tool-call ids handed out for ``functionCall`` parts, awaiting their responses."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, str]] = []  # (id, name), oldest first

    def add(self, name: str, given: str | None) -> str:
        ident = given or "call_" + secrets.token_hex(12)
        self.pending.append((ident, name))
        return ident

    def answer(self, name: str, given: str | None, where: str) -> str:
        for i, (ident, pending_name) in enumerate(self.pending):
            if (given and ident == given) or (not given and pending_name == name):
                del self.pending[i]
                return ident
        if given:
            return given
        raise invalid(where, f"no earlier functionCall named {name!r} to answer")


def _convert_contents(
    contents: list[InContent],
    messages: list[dict[str, Any]],
    provider_type: str,
    unsupported: Unsupported,
) -> None:
    calls = _Calls()
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        role = content.role or "user"
        if role == "model":
            message = _assistant(content, where, calls, unsupported)
            if message is not None:
                messages.append(message)
        elif role in ("user", "function"):
            _user(content, where, messages, calls, provider_type, unsupported)
        else:
            raise invalid(f"{where}.role", f"expected 'user' or 'model', not {role!r}")


def _assistant(
    content: InContent, where: str, calls: _Calls, unsupported: Unsupported
) -> dict[str, Any] | None:
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for j, part in enumerate(content.parts):
        here = f"{where}.parts[{j}]"
        if part.thought:
            continue  # a thought summary: only the Gemini model that wrote it reads it
        if part.text is not None:
            texts.append(part.text)
        elif part.function_call is not None:
            call = part.function_call
            ident = calls.add(call.name, call.id)
            arguments = _encode(call.args or {}).decode()
            function = {"name": call.name, "arguments": arguments}
            tool_calls.append({"id": ident, "type": "function", "function": function})
        else:
            raise unsupported(here, f"{_part_kind(part)} parts in a model turn")
    if not texts and not tool_calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _part_kind(part: InPart) -> str:
    for name in ("inline_data", "file_data", "function_call", "function_response"):
        if getattr(part, name) is not None:
            return name
    return "this kind of"


def _user(
    content: InContent,
    where: str,
    messages: list[dict[str, Any]],
    calls: _Calls,
    provider_type: str,
    unsupported: Unsupported,
) -> None:
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content.parts):
        here = f"{where}.parts[{j}]"
        if part.thought:
            continue
        if part.function_response is not None:
            result = part.function_response
            ident = calls.answer(result.name, result.id, f"{here}.functionResponse")
            messages.append(
                {"role": "tool", "tool_call_id": ident, "content": _result_text(result.response)}
            )
        elif part.text is not None:
            parts.append({"type": "text", "text": part.text})
        elif part.inline_data is not None:
            parts.append(_inline(part, here, provider_type, unsupported))
        elif part.file_data is not None:
            parts.append(_file(part, here, unsupported))
        elif part.function_call is not None:
            raise invalid(f"{here}.functionCall", "function calls belong in a 'model' turn")
        else:
            raise unsupported(here, "a part kind the proxy does not translate")
    if not parts:
        return
    if len(parts) == 1 and parts[0]["type"] == "text":
        messages.append({"role": "user", "content": parts[0]["text"]})
    else:
        messages.append({"role": "user", "content": parts})


def _result_text(response: dict[str, Any] | None) -> str:
    """A function's result as the tool message's text.

    ``{"output": s}`` (the Gemini CLI's and the API reference's convention) and
    ``{"result": s}`` (the google-genai SDK's) are ``s``; anything else is its JSON.
    """
    if not response:
        return ""
    if len(response) == 1:
        ((key, value),) = response.items()
        if key in ("output", "result") and isinstance(value, str):
            return value
    return _encode(response).decode()


def _inline(
    part: InPart, where: str, provider_type: str, unsupported: Unsupported
) -> dict[str, Any]:
    blob = part.inline_data
    assert blob is not None
    mime = blob.mime_type.lower()
    if mime.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{blob.data}"}}
    if provider_type in _OPENAI_TYPES and mime in _AUDIO:
        return {"type": "input_audio", "input_audio": {"data": blob.data, "format": _AUDIO[mime]}}
    if provider_type in _OPENAI_TYPES and mime == "application/pdf":
        url = f"data:{mime};base64,{blob.data}"
        return {"type": "file", "file": {"filename": "document.pdf", "file_data": url}}
    raise unsupported(f"{where}.inlineData", f"inline data of type {blob.mime_type!r}")


def _file(part: InPart, where: str, unsupported: Unsupported) -> dict[str, Any]:
    file = part.file_data
    assert file is not None
    mime = (file.mime_type or "").lower()
    url = file.file_uri
    if url.startswith(("https://", "http://")) and (not mime or mime.startswith("image/")):
        return {"type": "image_url", "image_url": {"url": url}}
    raise unsupported(f"{where}.fileData", "only images by http(s) URL")


def _convert_tools(
    tools: list[InTool] | None, raw: Any, unsupported: Unsupported
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools or ()):
        where = f"tools[{i}]"
        given = raw[i] if isinstance(raw, list) and i < len(raw) else {}
        others = [name for name in given if name not in _DECLARATIONS]
        if others:
            raise unsupported(f"{where}.{others[0]}", "only functionDeclarations tools")
        for k, declaration in enumerate(tool.declarations):
            out.append(_function_tool(declaration, f"{where}.functionDeclarations[{k}]"))
    return out


def _function_tool(declaration: InFunctionDeclaration, where: str) -> dict[str, Any]:
    if declaration.json_schema is not None:
        parameters = declaration.json_schema
    elif declaration.parameters is not None:
        parameters = json_schema_of(declaration.parameters, f"{where}.parameters")
    else:
        parameters = {"type": "object", "properties": {}}
    function: dict[str, Any] = {"name": declaration.name, "parameters": parameters}
    if declaration.description:
        function["description"] = declaration.description
    return {"type": "function", "function": function}


_DECLARATIONS = frozenset({"functionDeclarations", "function_declarations"})
_SCHEMA_DROP = frozenset({"propertyOrdering", "property_ordering", "nullable", "example"})


def json_schema_of(schema: Any, where: str) -> Any:
    """Google's OpenAPI schema subset (``"type": "OBJECT"``, ``nullable``) as JSON Schema."""
    if not isinstance(schema, Mapping):
        raise invalid(where, "expected a schema object")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_DROP:
            continue
        if key == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif key == "properties" and isinstance(value, Mapping):
            out["properties"] = {
                name: json_schema_of(sub, f"{where}.properties.{name}")
                for name, sub in value.items()
            }
        elif key == "items":
            out["items"] = json_schema_of(value, f"{where}.items")
        elif key in ("anyOf", "any_of") and isinstance(value, list):
            out["anyOf"] = [json_schema_of(s, f"{where}.anyOf[{n}]") for n, s in enumerate(value)]
        else:
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _tool_choice(config: InToolConfig | None, have_tools: bool) -> Any:
    calling = config.function_calling_config if config else None
    if calling is None or calling.mode is None:
        return None
    mode = calling.mode.upper()
    if mode in ("AUTO", "VALIDATED", "MODE_UNSPECIFIED"):
        return "auto" if have_tools else None
    if mode == "NONE":
        return "none" if have_tools else None
    if mode == "ANY":
        if not have_tools:
            raise invalid("toolConfig.functionCallingConfig.mode", "ANY needs tools")
        names = calling.allowed_function_names or []
        if len(names) == 1:
            return {"type": "function", "function": {"name": names[0]}}
        return "required"
    raise invalid("toolConfig.functionCallingConfig.mode", "expected AUTO, ANY or NONE")


def _effort(budget: int | None, level: str | None) -> str | None:
    if level:
        lowered = level.lower()
        if lowered not in ("minimal", "low", "medium", "high"):
            raise invalid(
                "generationConfig.thinkingConfig.thinkingLevel",
                "expected MINIMAL, LOW, MEDIUM or HIGH",
            )
        return lowered
    if budget is None or budget < 0:  # -1: the model decides, as without a setting
        return None
    if budget == 0:
        return "minimal"
    if budget <= 1024:
        return "low"
    if budget <= 8192:
        return "medium"
    return "high"


def _generation(
    config: InGenerationConfig,
    raw: Any,
    chat: dict[str, Any],
    provider_type: str,
    unsupported: Unsupported,
) -> None:
    for name in raw if isinstance(raw, Mapping) else ():
        if name not in _GENERATION:
            raise unsupported(f"generationConfig.{name}")
    simple = {
        "temperature": config.temperature,
        "top_p": config.top_p,
        "max_tokens": config.max_output_tokens,
        "stop": config.stop_sequences or None,
        "n": config.candidate_count,
        "seed": config.seed,
        "presence_penalty": config.presence_penalty,
        "frequency_penalty": config.frequency_penalty,
    }
    if config.top_k is not None and provider_type not in _OPENAI_TYPES:
        simple["top_k"] = int(config.top_k)
    chat.update((k, v) for k, v in simple.items() if v is not None)
    modalities = config.response_modalities
    if modalities and [m.upper() for m in modalities] != ["TEXT"]:
        raise unsupported("generationConfig.responseModalities", "only TEXT output")
    response_format = _response_format(config, unsupported)
    if response_format is not None:
        chat["response_format"] = response_format
    thinking = config.thinking_config
    if thinking is not None and provider_type != "anthropic":
        effort = _effort(thinking.thinking_budget, thinking.thinking_level)
        if effort is not None:
            chat["reasoning_effort"] = effort


def _response_format(config: InGenerationConfig, unsupported: Unsupported) -> dict[str, Any] | None:
    mime = config.response_mime_type
    schema = config.response_json_schema
    if schema is None and config.response_schema is not None:
        schema = json_schema_of(config.response_schema, "generationConfig.responseSchema")
    if mime in (None, "text/plain"):
        if schema is not None:
            raise invalid("generationConfig.responseMimeType", "a schema needs application/json")
        return None
    if mime != "application/json":
        raise unsupported("generationConfig.responseMimeType", f"response type {mime!r}")
    if schema is None:
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}


# ================================================================ answer


def gemini_usage(usage: Mapping[str, Any] | None) -> dict[str, int]:
    """``usageMetadata`` for a Chat ``usage`` object (thinking counted apart, as Gemini does)."""
    usage = usage or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    details = usage.get("completion_tokens_details") or {}
    thoughts = int(details.get("reasoning_tokens") or 0) if isinstance(details, Mapping) else 0
    cached_details = usage.get("prompt_tokens_details") or {}
    cached = (
        int(cached_details.get("cached_tokens") or 0) if isinstance(cached_details, Mapping) else 0
    )
    out = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": max(0, completion - thoughts),
        "totalTokenCount": prompt + completion,
    }
    if cached:
        out["cachedContentTokenCount"] = cached
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    return out


def _function_call_part(call: Mapping[str, Any], provider: str) -> dict[str, Any]:
    function = call.get("function") or {}
    raw = function.get("arguments") or "{}"
    try:
        args = _decode(raw) if isinstance(raw, str) else raw
    except msgspec.DecodeError:
        raise UpstreamUnavailable(
            f"provider {provider!r} sent tool call arguments that are not JSON", provider=provider
        ) from None
    if not isinstance(args, dict):
        args = {"value": args}
    found: dict[str, Any] = {"name": function.get("name") or "", "args": args}
    if call.get("id"):
        found["id"] = call["id"]
    return {"functionCall": found}


def gemini_response_from_chat(body: bytes, *, provider: str, model: str) -> bytes:
    """The ``GenerateContentResponse`` for a Chat ``chat.completion`` body."""
    try:
        data = _decode(body)
    except msgspec.DecodeError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise UpstreamUnavailable(f"provider {provider!r} sent an unreadable answer")
    candidates = []
    for choice in data["choices"]:
        message = choice.get("message") or {}
        parts: list[dict[str, Any]] = []
        # Reasoning text a host returns (vLLM, DeepSeek, our Gemini translation) is a
        # thought summary in Google's shape, first, as Gemini itself orders it.
        thought = message.get("reasoning_content") or message.get("reasoning")
        if isinstance(thought, str) and thought:
            parts.append({"text": thought, "thought": True})
        text = message.get("content")
        if isinstance(text, str) and text:
            parts.append({"text": text})
        for call in message.get("tool_calls") or ():
            parts.append(_function_call_part(call, provider))
        if not parts:
            parts.append({"text": ""})
        reason = FINISH_REASONS.get(choice.get("finish_reason") or "stop", "OTHER")
        candidates.append(
            {
                "content": {"role": "model", "parts": parts},
                "finishReason": reason,
                "index": int(choice.get("index") or 0),
            }
        )
    answer = {
        "candidates": candidates,
        "usageMetadata": gemini_usage(data.get("usage")),
        "modelVersion": model,
        "responseId": str(data.get("id") or "resp-" + secrets.token_hex(12)),
    }
    return _encode(answer)


# ================================================================ counting


def estimate_gemini_tokens(contents: list[InContent], extra: GenerateContentBody | None) -> int:
    """An estimate of the input tokens (see ``translate/token_estimate.py``'s figures)."""
    chars = 0
    attachments = 0
    turns = list(contents)
    if extra is not None:
        if extra.system_instruction is not None:
            turns.append(extra.system_instruction)
        if extra.tools:
            chars += len(_encode(extra.tools))
    for content in turns:
        for part in content.parts:
            if part.text is not None:
                chars += len(part.text)
            elif part.inline_data is not None or part.file_data is not None:
                attachments += 1
            elif part.function_call is not None:
                call = part.function_call
                chars += len(call.name) + len(_encode(call.args or {}))
            elif part.function_response is not None:
                chars += len(_encode(part.function_response.response or {}))
    text_tokens = -(-chars // CHARS_PER_TOKEN)
    return text_tokens + attachments * TOKENS_PER_ATTACHMENT + TOKENS_PER_MESSAGE * len(turns)
