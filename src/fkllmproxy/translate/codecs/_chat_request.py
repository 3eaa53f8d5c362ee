"""Chat Completions requests <-> the canonical conversation (``codecs/chat.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from fkllmproxy.translate._common import (
    Unsupported,
    decode_json,
    encode_json,
    invalid,
    missing,
    parse_data_url,
)
from fkllmproxy.translate.canonical import (
    Conversation,
    Document,
    Image,
    Message,
    Part,
    Reasoning,
    ReasoningConfig,
    Refusal,
    ResponseFormat,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    Unmapped,
)
from fkllmproxy.translate.codecs._ids import signature_of

__all__ = ["decode_request", "encode_request"]

# Fields read into the conversation's own slots; any other set field goes to ``extra``.
_READ = frozenset(
    [
        "model",
        "messages",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "top_k",
        "n",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "logprobs",
        "top_logprobs",
        "modalities",
        "user",
        "safety_identifier",
        "metadata",
        "service_tier",
        "prompt_cache_key",
    ]
)
# A field that changes nothing another provider could honour differently: ``store``
# (an OpenAI-side log).
_HINTS = frozenset(["store"])


def decode_request(body: Mapping[str, Any], *, unsupported: Unsupported) -> Conversation:
    """The conversation of a chat request body (plain data, already shape-checked by
    the route's typed decode). ``unsupported`` words the refusal of what no provider
    of another kind can take (non-function tools)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages", "expected a non-empty list of messages")
    stop = body.get("stop")
    max_tokens = body.get("max_completion_tokens")
    options = body.get("stream_options")
    tools = _tools(body.get("tools"), unsupported)
    conversation = Conversation(
        model=str(body.get("model") or ""),
        messages=_messages(messages),
        api="chat",
        stream=bool(body.get("stream")),
        include_usage=bool(isinstance(options, Mapping) and options.get("include_usage")),
        tools=tools,
        tool_choice=_tool_choice(
            body.get("tool_choice"), body.get("parallel_tool_calls"), tools, unsupported
        ),
        max_tokens=max_tokens if max_tokens is not None else body.get("max_tokens"),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        top_k=body.get("top_k"),
        stop=[stop] if isinstance(stop, str) else stop or None,
        seed=body.get("seed"),
        presence_penalty=body.get("presence_penalty"),
        frequency_penalty=body.get("frequency_penalty"),
        candidate_count=body.get("n"),
        response_format=_response_format(body.get("response_format"), unsupported),
        user=body.get("user") or body.get("safety_identifier"),
        metadata=body.get("metadata"),
        service_tier=body.get("service_tier"),
        prompt_cache_key=body.get("prompt_cache_key"),
        logprobs=bool(body.get("logprobs")),
        top_logprobs=body.get("top_logprobs"),
        modalities=body.get("modalities"),
        extra={
            name: value
            for name, value in body.items()
            if value is not None and name not in _READ and name not in _HINTS
        },
    )
    effort = body.get("reasoning_effort")
    if effort is not None:
        conversation.reasoning = ReasoningConfig(effort=effort)
    return conversation


def _messages(messages: list[Any]) -> list[Message]:
    out: list[Message] = []
    call_names: dict[str, str] = {}
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise invalid(where, "expected an object")
        role = message.get("role")
        content = message.get("content")
        name = message.get("name") if isinstance(message.get("name"), str) else None
        if role in ("system", "developer"):
            parts = _text_parts(content, f"{where}.content")
            out.append(Message(role=role, parts=parts, name=name))
        elif role == "user":
            out.append(Message(role="user", parts=_user_parts(content, where), name=name))
        elif role == "assistant":
            parts = _assistant_parts(message, where, call_names)
            out.append(Message(role="assistant", parts=parts, name=name))
        elif role == "tool":
            out.append(Message(role="tool", parts=[_tool_result(message, where, call_names)]))
        elif role == "function":
            parts = [Unmapped(kind="legacy 'function' messages; use 'tool'", where=f"{where}.role")]
            out.append(Message(role="user", parts=parts))
        else:
            raise invalid(f"{where}.role", f"unknown role {role!r}")
    return out


def _text_parts(content: Any, where: str) -> list[Part]:
    """Text-only content (system, tool and assistant messages); ``refusal`` parts of an
    assistant message stay refusals."""
    if content is None:
        return []
    if isinstance(content, str):
        return [Text(text=content)] if content else []
    if not isinstance(content, list):
        raise invalid(where, "expected a string or a list of content parts")
    parts: list[Part] = []
    for j, item in enumerate(content):
        here = f"{where}[{j}]"
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind in ("text", "refusal"):
            text = item.get(kind)
            if not isinstance(text, str):
                raise invalid(f"{here}.{kind}", "expected a string")
            if text:
                parts.append(Text(text=text) if kind == "text" else Refusal(text=text))
        elif kind is None:
            raise invalid(here, "expected a content part with a 'type'")
        else:
            parts.append(Unmapped(kind=f"{kind!r} parts in this message role", where=here))
    return parts


def _user_parts(content: Any, where: str) -> list[Part]:
    where = f"{where}.content"
    if not isinstance(content, list):
        return _text_parts(content, where)
    parts: list[Part] = []
    for j, item in enumerate(content):
        here = f"{where}[{j}]"
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind == "text":
            text = item.get("text")
            if not isinstance(text, str):
                raise invalid(f"{here}.text", "expected a string")
            if text:
                parts.append(Text(text=text))
        elif kind is None:
            raise invalid(here, "expected a content part with a 'type'")
        elif kind == "image_url":
            parts.append(_image(item.get("image_url"), f"{here}.image_url"))
        elif kind == "input_audio":
            parts.append(_audio(item.get("input_audio"), f"{here}.input_audio"))
        elif kind == "file":
            parts.append(_file(item.get("file"), f"{here}.file"))
        else:
            parts.append(Unmapped(kind=f"content parts of type {kind!r}", where=f"{here}.type"))
    return parts


def _image(image: Any, where: str) -> Image:
    url = image.get("url") if isinstance(image, Mapping) else image
    if not isinstance(url, str) or not url:
        raise invalid(f"{where}.url", "expected an image URL or a data: URL")
    detail = image.get("detail") if isinstance(image, Mapping) else None
    if url.startswith("data:"):
        media_type, data = _data_url(url, f"{where}.url")
        return Image(media_type=media_type, data=data, detail=detail)
    return Image(url=url, detail=detail)


def _data_url(url: str, where: str) -> tuple[str, str]:
    parsed = parse_data_url(url)
    if parsed is None:
        raise invalid(where, "a data: URL must look like data:<mime type>;base64,<data>")
    return parsed


def _audio(audio: Any, where: str) -> Document:
    if not isinstance(audio, Mapping) or not isinstance(audio.get("data"), str):
        raise invalid(where, "expected {'data': <base64>, 'format': 'wav' | 'mp3'}")
    audio_format = audio.get("format")
    if audio_format not in ("wav", "mp3"):
        raise invalid(f"{where}.format", "expected 'wav' or 'mp3'")
    return Document(media_type=f"audio/{audio_format}", data=audio["data"])


def _file(file: Any, where: str) -> Document:
    if not isinstance(file, Mapping):
        raise invalid(where, "expected an object with 'file_data'")
    filename = file.get("filename") if isinstance(file.get("filename"), str) else None
    if file.get("file_id"):
        return Document(file_id=str(file["file_id"]), filename=filename)
    data = file.get("file_data")
    if not isinstance(data, str) or not data:
        raise invalid(f"{where}.file_data", "expected a data: URL")
    if data.startswith("data:"):
        media_type, payload = _data_url(data, f"{where}.file_data")
        return Document(media_type=media_type, data=payload, filename=filename)
    return Document(data=data, filename=filename)


def _assistant_parts(
    message: Mapping[str, Any], where: str, call_names: dict[str, str]
) -> list[Part]:
    parts: list[Part] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        parts.append(Reasoning(text=reasoning))
    parts.extend(_text_parts(message.get("content"), f"{where}.content"))
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append(Refusal(text=refusal))
    for legacy in ("function_call", "audio"):
        if message.get(legacy) is not None:
            parts.append(Unmapped(kind=legacy, where=f"{where}.{legacy}"))
    calls = message.get("tool_calls")
    if calls is None:
        return parts
    if not isinstance(calls, list):
        raise invalid(f"{where}.tool_calls", "expected a list")
    for k, call in enumerate(calls):
        here = f"{where}.tool_calls[{k}]"
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise invalid(here, "expected {'id', 'type': 'function', 'function': {'name', ...}}")
        kind = call.get("type", "function")
        if kind != "function":
            parts.append(Unmapped(kind=f"tool calls of type {kind!r}", where=f"{here}.type"))
            continue
        name = function["name"]
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise missing(f"{here}.id")
        call_names[call_id] = name
        arguments = _arguments(function.get("arguments"), f"{here}.function.arguments")
        parts.append(
            ToolCall(id=call_id, name=name, arguments=arguments, signature=signature_of(call_id))
        )
    return parts


def _arguments(raw: Any, where: str) -> str:
    """The call's arguments as JSON object text (a client may send an object or nothing)."""
    if raw is None or raw == "":
        return "{}"
    if isinstance(raw, Mapping):
        return encode_json(raw).decode()
    if not isinstance(raw, str):
        raise invalid(where, "expected a JSON object encoded as a string")
    try:
        value = decode_json(raw)
    except msgspec.DecodeError:
        raise invalid(where, "not valid JSON") from None
    if not isinstance(value, dict):
        raise invalid(where, "expected a JSON object")
    return raw


def _tool_result(
    message: Mapping[str, Any], where: str, call_names: Mapping[str, str]
) -> ToolResult:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise missing(f"{where}.tool_call_id")
    name = call_names.get(call_id)
    if name is None and isinstance(message.get("name"), str):
        name = message["name"]
    content = _text_parts(message.get("content"), f"{where}.content")
    texts: list[Text | Image | Document] = [p for p in content if isinstance(p, Text)]
    for part in content:
        if isinstance(part, Unmapped):
            raise invalid(part.where, "a tool result holds text parts only")
    return ToolResult(call_id=call_id, content=texts, name=name)


def _tools(tools: Any, unsupported: Unsupported) -> list[Tool] | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise invalid("tools", "expected a list")
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, Mapping):
            raise invalid(where, "expected an object")
        kind = tool.get("type", "function")
        if kind != "function":
            raise unsupported(f"{where}.type", f"tools of type {kind!r}")
        function = tool.get("function")
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise invalid(f"{where}.function", "expected {'name', 'description', 'parameters'}")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, Mapping):
            raise invalid(f"{where}.function.parameters", "expected a JSON Schema object")
        out.append(
            Tool(
                name=function["name"],
                description=function.get("description") or None,
                parameters=dict(parameters) if parameters else None,
                strict=function.get("strict"),
            )
        )
    return out or None


def _tool_choice(
    choice: Any, parallel: Any, tools: list[Tool] | None, unsupported: Unsupported
) -> ToolChoice | None:
    parallel = parallel if isinstance(parallel, bool) else None
    if choice is None:
        return ToolChoice(parallel=parallel) if parallel is not None else None
    if choice in ("auto", "none", "required"):
        if tools is None and choice == "required":
            raise invalid("tool_choice", "a tool choice needs 'tools'")
        return ToolChoice(mode=choice, parallel=parallel)
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        function = choice.get("function")
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise invalid("tool_choice.function", "expected {'name': <function name>}")
        if tools is None:
            raise invalid("tool_choice", "a tool choice needs 'tools'")
        return ToolChoice(mode="tool", name=function["name"], parallel=parallel)
    if isinstance(choice, Mapping) and isinstance(choice.get("type"), str):
        raise unsupported("tool_choice.type", f"tool choice {choice['type']!r}")
    raise invalid("tool_choice", "expected 'auto', 'none', 'required' or a function")


def _response_format(value: Any, unsupported: Unsupported) -> ResponseFormat | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind in ("text", "json_object"):
        return ResponseFormat(kind=kind)
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, Mapping):
            raise invalid("response_format.json_schema", "expected {'name', 'schema'}")
        schema = spec.get("schema")
        if schema is not None and not isinstance(schema, Mapping):
            raise invalid("response_format.json_schema.schema", "expected a JSON Schema object")
        return ResponseFormat(
            kind="json_schema",
            name=spec.get("name"),
            schema=dict(schema) if schema else None,
            strict=spec.get("strict"),
            description=spec.get("description"),
        )
    if isinstance(kind, str):
        raise unsupported("response_format.type", f"response format {kind!r}")
    raise invalid("response_format", "expected {'type': 'text' | 'json_object' | 'json_schema'}")


def encode_request(
    conversation: Conversation, *, model: str, unsupported: Unsupported
) -> dict[str, Any]:
    """The chat request body for an OpenAI-compatible provider (``unsupported`` words
    a refusal and names it).

    Reasoning stays behind: Chat has no field to send it back in (hosts that return
    ``reasoning_content`` refuse it in a request), as the contract allows; cache hints
    are dropped (OpenAI caches by itself). Any ``Unmapped`` content or unknown field of
    another API is refused by name.
    """
    for name in conversation.extra:
        raise unsupported(name)
    body: dict[str, Any] = {
        "model": model,
        "messages": [],
    }
    for i, message in enumerate(conversation.messages):
        body["messages"].append(_message_out(message, i, unsupported))
        body["messages"].extend(_attachments_out(message, i, unsupported))
    if conversation.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    settings = {
        "max_completion_tokens": conversation.max_tokens,
        "temperature": conversation.temperature,
        "top_p": conversation.top_p,
        "stop": conversation.stop,
        "seed": conversation.seed,
        "presence_penalty": conversation.presence_penalty,
        "frequency_penalty": conversation.frequency_penalty,
        "n": conversation.candidate_count,
        "user": conversation.user,
        "metadata": conversation.metadata,
        "service_tier": conversation.service_tier,
        "prompt_cache_key": conversation.prompt_cache_key,
        "top_logprobs": conversation.top_logprobs,
        "modalities": conversation.modalities,
    }
    body.update((k, v) for k, v in settings.items() if v is not None)
    if conversation.top_k is not None:
        # OpenAI-compatible hosts such as vLLM take it; OpenAI refuses it with its own 400.
        body["top_k"] = conversation.top_k
    if conversation.logprobs:
        body["logprobs"] = True
    if conversation.tools:
        body["tools"] = [_tool_out(tool) for tool in conversation.tools]
    choice = conversation.tool_choice
    if choice is not None:
        if choice.mode == "tool":
            body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        elif conversation.tools or choice.mode != "required":
            body["tool_choice"] = choice.mode
        if choice.parallel is not None and conversation.tools:
            body["parallel_tool_calls"] = choice.parallel
    if conversation.response_format is not None:
        body["response_format"] = _format_out(conversation.response_format)
    reasoning = conversation.reasoning
    if reasoning is not None and reasoning.effort is not None:
        body["reasoning_effort"] = reasoning.effort
    elif reasoning is not None and reasoning.budget_tokens is not None:
        body["reasoning_effort"] = _effort_for(reasoning.budget_tokens)
    return body


def _effort_for(budget: int) -> str:
    """The OpenAI reasoning effort nearest a thinking budget in tokens (0, Gemini's
    "no thinking", is the least effort OpenAI has)."""
    if budget == 0:
        return "minimal"
    if budget < 4096:
        return "low"
    return "medium" if budget < 16384 else "high"


def _message_out(message: Message, index: int, unsupported: Unsupported) -> dict[str, Any]:
    where = f"messages[{index}]"
    if message.role == "tool":
        results = [p for p in message.parts if isinstance(p, ToolResult)]
        if len(results) == 1 and len(message.parts) == 1:
            return _result_out(results[0])
    content: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    refusal: list[str] = []
    for j, part in enumerate(message.parts):
        here = f"{where}.content[{j}]"
        if isinstance(part, Text):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, Image):
            content.append(_image_out(part))
        elif isinstance(part, Document):
            content.append(_document_out(part, here, unsupported))
        elif isinstance(part, ToolCall):
            function = {"name": part.name, "arguments": part.arguments}
            # The plain id: the tool results of this request answer it by that id.
            calls.append({"id": part.id, "type": "function", "function": function})
        elif isinstance(part, Reasoning):
            continue
        elif isinstance(part, Refusal):
            refusal.append(part.text)
        elif isinstance(part, Unmapped):
            raise unsupported(part.where, part.kind)
        else:  # a tool result outside a tool turn
            raise unsupported(here, "tool results mixed with other content")
    out: dict[str, Any] = {"role": message.role}
    if message.name:
        out["name"] = message.name
    # Instructions given in several blocks are paragraphs apart, as they were apart.
    texts_only = all(c["type"] == "text" for c in content)
    if not content or (texts_only and (message.role != "user" or len(content) == 1)):
        glue = "\n\n" if message.role in ("system", "developer") else ""
        out["content"] = glue.join(c["text"] for c in content) if content else None
    else:
        out["content"] = content
    if message.role == "assistant":
        if refusal:
            out["refusal"] = "".join(refusal)
        if calls:
            out["tool_calls"] = calls
    if out["content"] is None and "tool_calls" not in out:
        out["content"] = ""  # OpenAI refuses a null content without tool calls
    return out


def _image_out(part: Image) -> dict[str, Any]:
    url = part.url or f"data:{part.media_type};base64,{part.data}"
    image: dict[str, Any] = {"url": url}
    if part.detail:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def _attachments_out(
    message: Message, index: int, unsupported: Unsupported
) -> list[dict[str, Any]]:
    """The images and files a tool returned, as a user message right after its ``tool``
    message (Chat's tool messages carry text only); none for any other message."""
    parts = message.parts
    if message.role != "tool" or len(parts) != 1 or not isinstance(parts[0], ToolResult):
        return []
    result = parts[0]
    files: list[dict[str, Any]] = []
    for j, part in enumerate(result.content):
        if isinstance(part, Image):
            files.append(_image_out(part))
        elif isinstance(part, Document):
            files.append(_document_out(part, f"messages[{index}].content[{j}]", unsupported))
    if not files:
        return []
    label = {"type": "text", "text": f"Attachments returned by tool call {result.call_id}:"}
    return [{"role": "user", "content": [label, *files]}]


def _document_out(part: Document, where: str, unsupported: Unsupported) -> dict[str, Any]:
    if part.media_type and part.media_type.startswith("audio/") and part.data:
        audio_format = part.media_type.removeprefix("audio/").replace("mpeg", "mp3")
        return {"type": "input_audio", "input_audio": {"data": part.data, "format": audio_format}}
    file: dict[str, Any] = {}
    if part.file_id:
        file["file_id"] = part.file_id
    elif part.data and part.media_type:
        file["file_data"] = f"data:{part.media_type};base64,{part.data}"
    elif part.text is not None:
        return {"type": "text", "text": part.text}
    else:
        raise unsupported(where, "documents by URL")
    if part.filename or part.title:
        file["filename"] = part.filename or part.title
    return {"type": "file", "file": file}


def _result_out(result: ToolResult) -> dict[str, Any]:
    """The ``tool`` message of a result: its text (images and files follow it, see
    ``_attachments_out``)."""
    text = "".join(part.text for part in result.content if isinstance(part, Text))
    if result.is_error and not text.startswith("Error"):
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": result.call_id, "content": text}


def _tool_out(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _format_out(value: ResponseFormat) -> dict[str, Any]:
    if value.kind != "json_schema":
        return {"type": value.kind}
    spec: dict[str, Any] = {"name": value.name or "answer"}
    if value.description:
        spec["description"] = value.description
    if value.schema is not None:
        spec["schema"] = value.schema
    if value.strict is not None:
        spec["strict"] = value.strict
    return {"type": "json_schema", "json_schema": spec}
