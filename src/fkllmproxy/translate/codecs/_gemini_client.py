"""The inbound Gemini API's side of the Gemini codec: requests in, answers out.

Used by ``server/gemini_api.py`` for targets that do not speak Gemini themselves
(Google targets get the client's bytes untouched). Re-exported by ``codecs/gemini.py``.

- ``systemInstruction`` -> a ``system`` message; ``user`` turns -> ``user`` messages
  (text, ``inlineData`` and ``fileData`` as images or documents by their MIME type);
  ``model`` turns -> ``assistant`` messages: ``functionCall`` parts are tool calls
  (their ``thoughtSignature`` in ``ToolCall.signature``), ``thought`` parts reasoning
  with its signature; ``functionResponse`` parts -> ``tool`` messages, matched to
  their call by ``id`` when the client kept it, else by name and order, as Gemini
  pairs them, one ``tool`` message per result.
- ``tools[].functionDeclarations`` -> tools (Google's OpenAPI-subset ``parameters``
  turned into JSON Schema, or ``parametersJsonSchema`` as given);
  ``toolConfig.functionCallingConfig`` -> the tool choice.
- ``generationConfig``: sampling, limits, stop sequences, candidates, seed, penalties;
  ``responseMimeType`` with ``responseSchema`` / ``responseJsonSchema`` -> the response
  format; ``thinkingConfig`` -> the reasoning settings.
- ``safetySettings`` are left out: Google's own filters, a hint no other provider has.
  Every other field, turn or part key not mapped lands in ``Conversation.extra`` by
  its path (``tools[0].codeExecution``), for the target's encoder to refuse by name.

Answers go back as a ``GenerateContentResponse``: thought parts (with signatures),
text, ``functionCall`` parts (with the call's id and signature), ``finishReason`` and
``usageMetadata``; several answers are several candidates. Streams go out as one
response per event, unframed (the handler frames them as SSE or one JSON array).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import msgspec

from fkllmproxy.errors import BadRequest, UpstreamUnavailable
from fkllmproxy.translate._common import client_paths, invalid, validation_error
from fkllmproxy.translate.canonical import (
    Answer,
    Choice,
    Conversation,
    Document,
    Finish,
    Image,
    Message,
    Part,
    Reasoning,
    ReasoningConfig,
    ReasoningDelta,
    Refusal,
    RefusalDelta,
    ResponseFormat,
    Start,
    StreamEvent,
    Text,
    TextDelta,
    Tool,
    ToolArgsDelta,
    ToolCall,
    ToolCallStart,
    ToolChoice,
    ToolResult,
    Usage,
    UsageUpdate,
)
from fkllmproxy.translate.codecs._ids import GEMINI, for_client, tagged
from fkllmproxy.wire.gemini_inbound import (
    InContent,
    InFunctionDeclaration,
    InGenerationConfig,
    InPart,
    InThinkingConfig,
    InTool,
    InToolConfig,
    generate_content_decoder,
)

__all__ = ["FINISH_REASONS", "StreamEncoder", "decode_request", "encode_answer", "json_schema_of"]

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
_DECLARATIONS = frozenset({"functionDeclarations", "function_declarations"})
_SCHEMA_DROP = frozenset({"propertyOrdering", "property_ordering", "nullable", "example"})
_LEVELS = ("minimal", "low", "medium", "high")
_DYNAMIC_BUDGET = -1

# Canonical finish reasons -> Gemini's.
FINISH_REASONS = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "content_filter": "SAFETY",
    "refusal": "SAFETY",
}


# ================================================================ request


def decode_request(raw: bytes, *, model: str = "", stream: bool = False) -> Conversation:
    """The conversation of a ``generateContent`` body.

    The model and whether to stream come from the URL (``models/{model}:
    streamGenerateContent``), not the body, hence ``model`` and ``stream``.
    """
    try:
        body = generate_content_decoder.decode(raw)
        data = _decode(raw)
    except msgspec.ValidationError as exc:
        raise validation_error(exc, "") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc}.") from None
    extra: dict[str, Any] = {}
    for name, value in data.items():
        if name not in _TOP_LEVEL:
            extra[name] = value
    _unknown_turn_keys(data.get("contents"), extra)
    _unknown_keys(data.get("toolConfig"), _TOOL_CONFIG, "toolConfig", extra)
    messages: list[Message] = []
    where_of: dict[int, str] = {}
    if body.system_instruction is not None:
        system = _system(body.system_instruction, extra, where_of)
        if system:
            messages.append(Message(role="system", parts=system))
    _Contents(where_of).convert(body.contents, messages)
    if not any(m.role != "system" for m in messages):
        raise invalid("contents", "expected at least one turn with content")
    tools = _tools(body.tools, data.get("tools"), extra)
    conversation = Conversation(
        model=model,
        messages=messages,
        api="gemini",
        stream=stream,
        include_usage=stream,
        tools=tools or None,
        tool_choice=_tool_choice(body.tool_config, bool(tools)),
        extra=extra,
        paths=client_paths(messages, where_of),
    )
    if body.generation_config is not None:
        _generation(body.generation_config, data.get("generationConfig"), conversation)
    return conversation


def _unknown_keys(obj: Any, allowed: frozenset[str], where: str, extra: dict[str, Any]) -> None:
    for name, value in obj.items() if isinstance(obj, Mapping) else ():
        if name not in allowed:
            extra[f"{where}.{name}"] = value


def _unknown_turn_keys(contents: Any, extra: dict[str, Any]) -> None:
    """Fields of turns and parts the typed decode skipped: kept by path, for a refusal."""
    for i, content in enumerate(contents if isinstance(contents, list) else ()):
        _unknown_keys(content, _CONTENT, f"contents[{i}]", extra)
        parts = content.get("parts") if isinstance(content, Mapping) else None
        for j, part in enumerate(parts if isinstance(parts, list) else ()):
            _unknown_keys(part, _PART, f"contents[{i}].parts[{j}]", extra)


def _system(content: InContent, extra: dict[str, Any], where_of: dict[int, str]) -> list[Part]:
    """The instruction's parts; text alone joins into one text, as one system prompt."""
    parts: list[Part] = []
    for j, part in enumerate(content.parts):
        if part.text is not None:
            parts.append(Text(text=part.text))
        elif part.inline_data is not None or part.file_data is not None:
            parts.append(_media(part, f"systemInstruction.parts[{j}]", where_of))
        else:
            extra[f"systemInstruction.parts[{j}]"] = msgspec.to_builtins(part)
    if all(isinstance(part, Text) for part in parts):
        text = "\n".join(part.text for part in parts if isinstance(part, Text))
        return [Text(text=text)] if text else []
    return parts


def _media(part: InPart, where: str, where_of: dict[int, str]) -> Image | Document:
    """An ``inlineData`` or ``fileData`` part: an image, or a document of its type.
    ``where_of`` learns the part's path in the client's request, for refusals."""
    media = _media_of(part)
    field = "inlineData" if part.inline_data is not None else "fileData"
    where_of[id(media)] = f"{where}.{field}"
    return media


def _media_of(part: InPart) -> Image | Document:
    if part.inline_data is not None:
        mime = part.inline_data.mime_type.lower()
        if mime.startswith("image/"):
            return Image(media_type=mime, data=part.inline_data.data)
        return Document(media_type=mime, data=part.inline_data.data)
    assert part.file_data is not None
    kind = (part.file_data.mime_type or "").lower()
    url = part.file_data.file_uri
    if not kind or kind.startswith("image/"):
        return Image(media_type=kind or None, url=url)
    return Document(media_type=kind, url=url)


class _Contents:
    """One conversion of ``contents``; tool-call ids handed out, awaiting their responses."""

    def __init__(self, where_of: dict[int, str]) -> None:
        self.pending: list[tuple[str, str]] = []  # (id, name), oldest first
        self.where_of = where_of

    def convert(self, contents: list[InContent], messages: list[Message]) -> None:
        for i, content in enumerate(contents):
            where = f"contents[{i}]"
            role = content.role or "user"
            if role == "model":
                parts = self._model(content, where)
                if parts:
                    messages.append(Message(role="assistant", parts=parts))
            elif role in ("user", "function"):
                self._user(content, where, messages)
            else:
                raise invalid(f"{where}.role", f"expected 'user' or 'model', not {role!r}")

    def _call(self, name: str, given: str | None) -> str:
        ident = given or "call_" + secrets.token_hex(12)
        self.pending.append((ident, name))
        return ident

    def _answer(self, name: str, given: str | None, where: str) -> str:
        for i, (ident, pending_name) in enumerate(self.pending):
            if (given and ident == given) or (not given and pending_name == name):
                del self.pending[i]
                return ident
        if given:
            return given
        raise invalid(where, f"no earlier functionCall named {name!r} to answer")

    def _model(self, content: InContent, where: str) -> list[Part]:
        """A model turn's parts; a signature on a text part stays with the reasoning
        before it (a block of its own when there is none), as the answer decoder reads it."""
        parts: list[Part] = []
        open_reasoning: Reasoning | None = None
        for j, part in enumerate(content.parts):
            if part.function_response is not None:
                where_j = f"{where}.parts[{j}].functionResponse"
                raise invalid(where_j, "function responses belong in a 'user' turn")
            signature = part.thought_signature
            proof = tagged(GEMINI, signature) if signature else None
            if part.thought:
                if open_reasoning is None:
                    open_reasoning = Reasoning(text=part.text or "", signature=proof)
                    parts.append(open_reasoning)
                else:
                    open_reasoning.text += part.text or ""
                    open_reasoning.signature = proof
                if signature:
                    open_reasoning = None
                continue
            open_reasoning = None
            if part.function_call is not None:
                call = part.function_call
                ident = self._call(call.name, call.id)
                arguments = _encode(call.args or {}).decode()
                parts.append(
                    ToolCall(id=ident, name=call.name, arguments=arguments, signature=signature)
                )
                continue
            if proof:
                last = parts[-1] if parts else None
                if isinstance(last, Reasoning) and last.signature is None:
                    last.signature = proof
                else:
                    parts.append(Reasoning(signature=proof))
            if part.text:
                parts.append(Text(text=part.text))
            elif part.inline_data is not None or part.file_data is not None:
                parts.append(_media(part, f"{where}.parts[{j}]", self.where_of))
        return parts

    def _user(self, content: InContent, where: str, messages: list[Message]) -> None:
        parts: list[Part] = []
        results: list[Part] = []
        for j, part in enumerate(content.parts):
            here = f"{where}.parts[{j}]"
            if part.thought:
                continue  # a thought summary in a user turn: nothing a model reads
            if part.function_response is not None:
                result = part.function_response
                ident = self._answer(result.name, result.id, f"{here}.functionResponse")
                results.append(_tool_result(ident, result.name, result.response))
            elif part.text is not None:
                parts.append(Text(text=part.text))
            elif part.inline_data is not None or part.file_data is not None:
                parts.append(_media(part, here, self.where_of))
            elif part.function_call is not None:
                raise invalid(f"{here}.functionCall", "function calls belong in a 'model' turn")
        messages.extend(Message(role="tool", parts=[result]) for result in results)
        if parts:
            messages.append(Message(role="user", parts=parts))


def _tool_result(ident: str, name: str, response: dict[str, Any] | None) -> ToolResult:
    """A function's result. ``{"output": s}`` (the Gemini CLI's and the API reference's
    convention) and ``{"result": s}`` (the google-genai SDK's) are the text ``s``;
    ``{"error": s}`` (the reference's) an error; anything else is its JSON."""
    text, is_error = (_encode(response).decode() if response else ""), False
    if response and len(response) == 1:
        ((key, value),) = response.items()
        if key in ("output", "result", "error") and isinstance(value, str):
            text, is_error = value, key == "error"
    content: list[Text | Image | Document] = [Text(text=text)] if text else []
    return ToolResult(call_id=ident, content=content, is_error=is_error, name=name)


def _tools(tools: list[InTool] | None, raw: Any, extra: dict[str, Any]) -> list[Tool]:
    out: list[Tool] = []
    for i, tool in enumerate(tools or ()):
        where = f"tools[{i}]"
        given = raw[i] if isinstance(raw, list) and i < len(raw) else {}
        _unknown_keys(given, _DECLARATIONS, where, extra)
        for k, declaration in enumerate(tool.declarations):
            out.append(_function_tool(declaration, f"{where}.functionDeclarations[{k}]"))
    return out


def _function_tool(declaration: InFunctionDeclaration, where: str) -> Tool:
    if declaration.json_schema is not None:
        parameters = declaration.json_schema
    elif declaration.parameters is not None:
        parameters = json_schema_of(declaration.parameters, f"{where}.parameters")
    else:
        parameters = {"type": "object", "properties": {}}
    return Tool(
        name=declaration.name, description=declaration.description or None, parameters=parameters
    )


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


def _tool_choice(config: InToolConfig | None, have_tools: bool) -> ToolChoice | None:
    calling = config.function_calling_config if config else None
    if calling is None or calling.mode is None:
        return None
    mode = calling.mode.upper()
    if mode in ("AUTO", "VALIDATED", "MODE_UNSPECIFIED"):
        return ToolChoice(mode="auto") if have_tools else None
    if mode == "NONE":
        return ToolChoice(mode="none") if have_tools else None
    if mode == "ANY":
        if not have_tools:
            raise invalid("toolConfig.functionCallingConfig.mode", "ANY needs tools")
        names = calling.allowed_function_names or []
        if len(names) == 1:
            return ToolChoice(mode="tool", name=names[0])
        return ToolChoice(mode="required")
    raise invalid("toolConfig.functionCallingConfig.mode", "expected AUTO, ANY or NONE")


def _reasoning(thinking: InThinkingConfig) -> ReasoningConfig | None:
    level = thinking.thinking_level
    effort = level.lower() if level else None
    if effort is not None and effort not in _LEVELS:
        raise invalid(
            "generationConfig.thinkingConfig.thinkingLevel", "expected MINIMAL, LOW, MEDIUM or HIGH"
        )
    budget = thinking.thinking_budget
    config = ReasoningConfig(
        effort=effort,
        budget_tokens=budget if budget is not None and budget >= 0 else None,
        include=bool(thinking.include_thoughts),
        adaptive=budget == _DYNAMIC_BUDGET,
    )
    return None if config == ReasoningConfig() else config


def _generation(config: InGenerationConfig, raw: Any, conversation: Conversation) -> None:
    _unknown_keys(raw, _GENERATION, "generationConfig", conversation.extra)
    conversation.temperature = config.temperature
    conversation.top_p = config.top_p
    conversation.top_k = int(config.top_k) if config.top_k is not None else None
    conversation.max_tokens = config.max_output_tokens
    conversation.stop = config.stop_sequences or None
    conversation.candidate_count = config.candidate_count
    conversation.seed = config.seed
    conversation.presence_penalty = config.presence_penalty
    conversation.frequency_penalty = config.frequency_penalty
    modalities = config.response_modalities
    if modalities:
        if [m.upper() for m in modalities] == ["TEXT"]:
            conversation.modalities = ["text"]
        else:
            conversation.extra["generationConfig.responseModalities"] = modalities
    mime = config.response_mime_type
    schema = config.response_json_schema
    if schema is None and config.response_schema is not None:
        schema = json_schema_of(config.response_schema, "generationConfig.responseSchema")
    if mime in (None, "text/plain"):
        if schema is not None:
            raise invalid("generationConfig.responseMimeType", "a schema needs application/json")
    elif mime != "application/json":
        conversation.extra["generationConfig.responseMimeType"] = mime
    elif schema is None:
        conversation.response_format = ResponseFormat(kind="json_object")
    else:
        conversation.response_format = ResponseFormat(
            kind="json_schema", name="response", schema=schema
        )
    if config.thinking_config is not None:
        conversation.reasoning = _reasoning(config.thinking_config)


# ================================================================ answer


def gemini_usage(usage: Usage | None) -> dict[str, int]:
    """``usageMetadata`` for canonical usage (thinking counted apart, as Gemini does)."""
    usage = usage or Usage()
    thoughts = usage.reasoning_tokens
    out = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": max(0, usage.output_tokens - thoughts),
        "totalTokenCount": usage.input_tokens + usage.output_tokens,
    }
    if usage.cached_tokens:
        out["cachedContentTokenCount"] = usage.cached_tokens
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    return out


def _args_object(arguments: str, provider: str) -> dict[str, Any]:
    try:
        args = _decode(arguments or "{}")
    except msgspec.DecodeError:
        raise UpstreamUnavailable(
            f"provider {provider!r} sent tool call arguments that are not JSON", provider=provider
        ) from None
    return args if isinstance(args, dict) else {"value": args}


def _call_part(
    ident: str, name: str, args: dict[str, Any], signature: str | None
) -> dict[str, Any]:
    part: dict[str, Any] = {"functionCall": {"name": name, "args": args, "id": ident}}
    if signature:
        part["thoughtSignature"] = signature
    return part


def _thought_part(text: str, proof: str | None) -> dict[str, Any]:
    """A thought part for a Gemini client: Gemini's own signature as Google sends it,
    another provider's tagged (``codecs/_ids.py``)."""
    part: dict[str, Any] = {"text": text, "thought": True}
    if proof:
        part["thoughtSignature"] = for_client(GEMINI, proof)
    return part


def _answer_parts(answer: list[Part], provider: str) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for part in answer:
        if isinstance(part, Reasoning):
            if part.text or part.signature:
                parts.append(_thought_part(part.text, part.signature))
        elif isinstance(part, Text | Refusal):
            if part.text:
                parts.append({"text": part.text})
        elif isinstance(part, ToolCall):
            args = _args_object(part.arguments, provider)
            parts.append(_call_part(part.id, part.name, args, part.signature))
        elif isinstance(part, Image | Document) and part.data is not None:
            mime = part.media_type or "application/octet-stream"
            parts.append({"inlineData": {"mimeType": mime, "data": part.data}})
    return parts or [{"text": ""}]


def encode_answer(answer: Answer, *, model: str, provider: str = "") -> bytes:
    """The ``GenerateContentResponse`` for ``answer``; ``model`` is the client's name.

    ``provider`` names the provider that answered, for the error a tool call whose
    arguments are not JSON makes.
    """
    choices = [Choice(index=0, parts=answer.parts, finish=answer.finish), *answer.more]
    candidates = [
        {
            "content": {"role": "model", "parts": _answer_parts(choice.parts, provider)},
            "finishReason": FINISH_REASONS.get(choice.finish or "stop", "OTHER"),
            "index": choice.index,
        }
        for choice in choices
    ]
    body = {
        "candidates": candidates,
        "usageMetadata": gemini_usage(answer.usage),
        "modelVersion": model,
        "responseId": answer.id or "resp-" + secrets.token_hex(12),
    }
    return _encode(body)


class _Held:
    """A streamed tool call, held until its arguments are whole."""

    __slots__ = ("arguments", "ident", "name", "signature")

    def __init__(self, start: ToolCallStart) -> None:
        self.ident = start.id
        self.name = start.name
        self.signature = start.signature
        self.arguments = ""


class StreamEncoder:
    """Stream events as ``streamGenerateContent`` responses, one JSON object each.

    Text and reasoning go out as they arrive; tool calls, whose arguments come in
    pieces, go out whole in the last response, as Gemini sends them; that response
    also carries every candidate's ``finishReason`` and the ``usageMetadata``, so it
    waits for the usage (or the end of the stream). ``finish`` raises
    ``UpstreamUnavailable`` for a stream that ended before every candidate finished:
    the client sees an error, not a cut answer. ``model`` is the name the client
    sent; ``provider`` the one errors name.
    """

    def __init__(self, *, model: str, provider: str = "") -> None:
        self._provider = provider
        self._model = model
        self._id = "resp-" + secrets.token_hex(12)
        self._calls: dict[int, dict[int, _Held]] = {}  # choice -> call index -> call
        self._finish: dict[int, str | None] = {}  # choice -> its finish reason, once known
        self._usage: Usage | None = None
        self._done = False

    def _event(self, candidates: list[dict[str, Any]], usage: bool = False) -> bytes:
        event: dict[str, Any] = {"candidates": candidates}
        if usage:
            event["usageMetadata"] = gemini_usage(self._usage)
        event["modelVersion"] = self._model
        event["responseId"] = self._id
        return _encode(event)

    def _part(self, choice: int, part: dict[str, Any]) -> list[bytes]:
        self._finish.setdefault(choice, None)
        content = {"role": "model", "parts": [part]}
        return [self._event([{"content": content, "index": choice}])]

    def feed(self, event: StreamEvent) -> list[bytes]:
        """The responses ``event`` makes (possibly none)."""
        if isinstance(event, Start):
            self._id = event.id or self._id
        elif isinstance(event, TextDelta | RefusalDelta):
            if event.text:
                return self._part(event.choice, {"text": event.text})
        elif isinstance(event, ReasoningDelta):
            if event.text or event.signature:
                return self._part(event.choice, _thought_part(event.text, event.signature))
        elif isinstance(event, ToolCallStart):
            self._finish.setdefault(event.choice, None)
            self._calls.setdefault(event.choice, {})[event.index] = _Held(event)
        elif isinstance(event, ToolArgsDelta):
            self._calls[event.choice][event.index].arguments += event.fragment
        elif isinstance(event, UsageUpdate):
            self._usage = event.usage
            return self._close()
        elif isinstance(event, Finish):
            self._finish[event.choice] = event.reason
            self._usage = event.usage or self._usage
            return self._close() if self._usage is not None else []
        return []

    def _close(self) -> list[bytes]:
        if self._done or not self._finish or None in self._finish.values():
            return []
        self._done = True
        candidates = []
        for choice, reason in sorted(self._finish.items()):
            held = sorted(self._calls.get(choice, {}).items())
            parts = [
                _call_part(
                    call.ident,
                    call.name,
                    _args_object(call.arguments, self._provider),
                    call.signature,
                )
                for _, call in held
            ]
            candidates.append(
                {
                    "content": {"role": "model", "parts": parts or [{"text": ""}]},
                    "finishReason": FINISH_REASONS.get(reason or "stop", "OTHER"),
                    "index": choice,
                }
            )
        return [self._event(candidates, usage=True)]

    def finish(self) -> list[bytes]:
        """The last response if it is still due; raises if the answer never finished."""
        events = self._close()
        if not self._done:
            raise UpstreamUnavailable(
                f"provider {self._provider!r} ended the stream before the answer was complete",
                provider=self._provider,
            )
        return events
