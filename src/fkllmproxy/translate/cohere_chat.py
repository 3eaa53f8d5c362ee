"""OpenAI Chat Completions <-> Cohere v2 ``/v2/chat``, both ways, as pure functions.

Used by the ``cohere`` provider. Nothing here does I/O: an OpenAI request body goes in
as plain data and comes out as a ``wire.cohere.ChatRequest``; a whole Cohere answer
comes out as OpenAI JSON bytes (a stream is ``cohere_stream``'s job).

The mapping, in short:

- ``system``/``developer`` messages -> one ``system`` message first (Cohere wants the
  system turn first; several are joined by blank lines, in order, wherever they were);
  ``user`` -> ``user`` (text and ``image_url`` blocks, which Cohere takes as OpenAI
  does: a ``data:`` URI or a web URL, with ``detail``); ``assistant`` -> ``assistant``,
  its text in ``tool_plan`` when it calls tools (the reflection Cohere writes before
  calls, which comes back the same way); ``tool`` -> ``tool`` by ``tool_call_id``.
- ``tools`` -> function ``tools``; ``tool_choice`` ``none``/``required`` -> ``NONE``/
  ``REQUIRED``; a named function -> ``REQUIRED`` with only that tool offered.
- ``max_tokens``/``max_completion_tokens``, ``stop``, ``temperature``, ``top_p`` (``p``),
  ``top_k`` (``k``), ``seed``, the penalties as they are; ``response_format`` ->
  ``json_object`` (with ``json_schema`` for a schema); ``reasoning_effort`` -> ``thinking``
  (``none`` disables it), whose text comes back as ``reasoning_content``.
- Finish reasons: ``COMPLETE``/``STOP_SEQUENCE`` -> ``stop``, ``MAX_TOKENS`` -> ``length``,
  ``TOOL_CALL`` -> ``tool_calls``; ``ERROR`` and ``TIMEOUT`` are upstream failures.
- Usage: ``billed_units`` (what Cohere charges for), else ``tokens``; ``cached_tokens``.
- Anything the client asked for that Cohere cannot do (``n`` > 1, ``logprobs``, audio
  and file parts, non-function tools) is a ``BadRequest`` naming the field and the
  provider: nothing is dropped silently.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from fkllmproxy.errors import BadRequest, UpstreamTimeout, UpstreamUnavailable
from fkllmproxy.translate._common import (
    Unsupported,
    invalid,
    refuse_unknown_chat_fields,
    refuse_untranslated_outputs,
)
from fkllmproxy.wire.cohere import (
    AnswerToolCall,
    CallFunction,
    ChatRequest,
    ChatResponse,
    ContentBlock,
    ImageUrl,
    Message,
    ResponseFormat,
    Thinking,
    Tool,
    ToolCall,
    ToolFunction,
    Usage,
)

__all__ = [
    "finish_reason",
    "from_cohere",
    "openai_usage",
    "to_cohere",
    "token_counts",
    "tool_call_json",
]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode

_FINISH = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}

# reasoning_effort -> thinking token budget (None: the model's own default).
_THINKING_BUDGETS: dict[str, int | None] = {
    "minimal": 128,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
}

_IMAGE_SCHEMES = ("data:", "https://", "http://")


# ================================================================ OpenAI -> Cohere


def to_cohere(
    body: Mapping[str, Any], *, model: str, provider: str, stream: bool = False
) -> ChatRequest:
    """The Cohere request for an OpenAI chat request body (already shape-checked)."""
    unsupported = Unsupported(provider, "Cohere")
    _check_fields(body, unsupported)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages", "expected a non-empty list of messages")
    converted = _convert_messages(messages, unsupported)
    if not any(message.role != "system" for message in converted):
        raise BadRequest(
            "'messages' has no user or assistant content: Cohere needs at least one "
            "non-empty user message besides the system prompt.",
            param="messages",
        )
    tools = _convert_tools(body.get("tools"), unsupported)
    tools, tool_choice = _convert_tool_choice(body.get("tool_choice"), tools, unsupported)
    stop = body.get("stop")
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    return ChatRequest(
        model=model,
        messages=converted,
        stream=True if stream else None,
        tools=tools,
        tool_choice=tool_choice,
        response_format=_response_format(body.get("response_format"), unsupported),
        max_tokens=max_tokens,
        stop_sequences=[stop] if isinstance(stop, str) else (stop or None),
        temperature=body.get("temperature"),
        seed=body.get("seed"),
        frequency_penalty=body.get("frequency_penalty"),
        presence_penalty=body.get("presence_penalty"),
        k=body.get("top_k"),
        p=body.get("top_p"),
        thinking=_thinking(body.get("reasoning_effort")),
    )


def _check_fields(body: Mapping[str, Any], unsupported: Unsupported) -> None:
    refuse_unknown_chat_fields(body, unsupported)
    if body.get("n") not in (None, 1):
        raise unsupported("n", "Cohere returns one answer per request")
    refuse_untranslated_outputs(body, unsupported)


def _convert_messages(messages: list[Any], unsupported: Unsupported) -> list[Message]:
    system: list[str] = []
    out: list[Message] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise invalid(where, "expected an object")
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = _text(content, f"{where}.content", unsupported)
            if text:
                system.append(text)
        elif role == "user":
            user = _user_content(content, f"{where}.content", unsupported)
            if user:
                out.append(Message(role="user", content=user))
        elif role == "assistant":
            assistant = _assistant(message, where, unsupported)
            if assistant is not None:
                out.append(assistant)
        elif role == "tool":
            out.append(_tool_result(message, where, unsupported))
        elif role == "function":
            raise unsupported(f"{where}.role", "legacy 'function' messages; use 'tool'")
        else:
            raise invalid(f"{where}.role", f"unknown role {role!r}")
    if system:
        out.insert(0, Message(role="system", content="\n\n".join(system)))
    return out


def _text(content: Any, where: str, unsupported: Unsupported) -> str:
    """Text-only content (system, assistant and tool messages) as one string."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid(where, "expected a string or a list of content parts")
    texts = []
    for j, item in enumerate(content):
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind in ("text", "refusal"):
            text = item.get(kind)
            if not isinstance(text, str):
                raise invalid(f"{where}[{j}].{kind}", "expected a string")
            texts.append(text)
        elif kind is None:
            raise invalid(f"{where}[{j}]", "expected a content part with a 'type'")
        else:
            raise unsupported(f"{where}[{j}].type", f"{kind!r} parts in this message role")
    return "".join(texts)


def _user_content(
    content: Any, where: str, unsupported: Unsupported
) -> str | list[ContentBlock] | None:
    if not isinstance(content, list):
        return _text(content, where, unsupported) or None
    blocks = []
    for j, item in enumerate(content):
        here = f"{where}[{j}]"
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind == "text":
            text = item.get("text")
            if not isinstance(text, str):
                raise invalid(f"{here}.text", "expected a string")
            if text:
                blocks.append(ContentBlock(type="text", text=text))
        elif kind == "image_url":
            blocks.append(_image(item.get("image_url"), f"{here}.image_url", unsupported))
        elif kind is None:
            raise invalid(here, "expected a content part with a 'type'")
        else:
            raise unsupported(f"{here}.type", f"content parts of type {kind!r}")
    return blocks or None


def _image(image: Any, where: str, unsupported: Unsupported) -> ContentBlock:
    url = image.get("url") if isinstance(image, Mapping) else image
    if not isinstance(url, str) or not url:
        raise invalid(f"{where}.url", "expected an image URL or a data: URL")
    if not url.startswith(_IMAGE_SCHEMES):
        raise unsupported(f"{where}.url", "images must be data: or http(s):// URLs")
    detail = image.get("detail") if isinstance(image, Mapping) else None
    if detail is not None and detail not in ("auto", "low", "high"):
        raise invalid(f"{where}.detail", "expected 'auto', 'low' or 'high'")
    return ContentBlock(type="image_url", image_url=ImageUrl(url=url, detail=detail))


def _assistant(message: Mapping[str, Any], where: str, unsupported: Unsupported) -> Message | None:
    for legacy in ("function_call", "audio"):
        if message.get(legacy) is not None:
            raise unsupported(f"{where}.{legacy}")
    text = _text(message.get("content"), f"{where}.content", unsupported)
    calls = _tool_calls(message.get("tool_calls"), f"{where}.tool_calls", unsupported)
    if calls:
        return Message(role="assistant", tool_calls=calls, tool_plan=text or None)
    if not text:
        return None  # Cohere refuses an empty turn; an empty answer adds nothing to replay
    return Message(role="assistant", content=text)


def _tool_calls(calls: Any, where: str, unsupported: Unsupported) -> list[ToolCall]:
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise invalid(where, "expected a list")
    out = []
    for k, call in enumerate(calls):
        here = f"{where}[{k}]"
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise invalid(here, "expected {'id', 'type': 'function', 'function': {'name', ...}}")
        if call.get("type", "function") != "function":
            raise unsupported(f"{here}.type", f"tool calls of type {call.get('type')!r}")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise invalid(f"{here}.id", "expected the tool call's id")
        arguments = _arguments(function.get("arguments"), f"{here}.function.arguments")
        out.append(
            ToolCall(
                id=call_id,
                type="function",
                function=CallFunction(name=function["name"], arguments=arguments),
            )
        )
    return out


def _arguments(raw: Any, where: str) -> str:
    """The arguments as Cohere wants them: a JSON object, encoded as a string."""
    if raw is None or raw == "":
        return "{}"
    if isinstance(raw, Mapping):
        return _encode(dict(raw)).decode()
    if not isinstance(raw, str):
        raise invalid(where, "expected a JSON object encoded as a string")
    try:
        value = _decode(raw)
    except msgspec.DecodeError:
        raise invalid(where, "not valid JSON") from None
    if not isinstance(value, dict):
        raise invalid(where, "expected a JSON object")
    return raw


def _tool_result(message: Mapping[str, Any], where: str, unsupported: Unsupported) -> Message:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise invalid(f"{where}.tool_call_id", "expected the id of the tool call it answers")
    text = _text(message.get("content"), f"{where}.content", unsupported)
    return Message(
        role="tool", tool_call_id=call_id, content=[ContentBlock(type="text", text=text)]
    )


def _convert_tools(tools: Any, unsupported: Unsupported) -> list[Tool] | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise invalid("tools", "expected a list")
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, Mapping):
            raise invalid(where, "expected an object")
        if tool.get("type", "function") != "function":
            raise unsupported(f"{where}.type", f"tools of type {tool.get('type')!r}")
        function = tool.get("function")
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise invalid(f"{where}.function", "expected {'name', 'description', 'parameters'}")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, Mapping):
            raise invalid(f"{where}.function.parameters", "expected a JSON Schema object")
        out.append(
            Tool(
                type="function",
                function=ToolFunction(
                    name=function["name"],
                    # Cohere requires a schema; a function without one takes no arguments.
                    parameters=dict(parameters or {"type": "object", "properties": {}}),
                    description=function.get("description") or None,
                ),
            )
        )
    return out or None


def _convert_tool_choice(
    choice: Any, tools: list[Tool] | None, unsupported: Unsupported
) -> tuple[list[Tool] | None, str | None]:
    """The tools to offer and Cohere's ``tool_choice`` (``NONE``, ``REQUIRED`` or unset)."""
    if choice is None or choice == "auto":
        return tools, None
    if tools is None:
        if choice == "none":
            return None, None
        raise invalid("tool_choice", "a tool choice needs 'tools'")
    if choice == "none":
        return tools, "NONE"
    if choice == "required":
        return tools, "REQUIRED"
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        function = choice.get("function")
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise invalid("tool_choice.function", "expected {'name': <function name>}")
        chosen = [tool for tool in tools if tool.function.name == function["name"]]
        if not chosen:
            raise invalid("tool_choice.function.name", f"no tool is named {function['name']!r}")
        # Cohere cannot name the tool to call: offering only that one and requiring a
        # call means the same.
        return chosen, "REQUIRED"
    if isinstance(choice, Mapping) and isinstance(choice.get("type"), str):
        raise unsupported("tool_choice.type", f"tool choice {choice['type']!r}")
    raise invalid("tool_choice", "expected 'auto', 'none', 'required' or a function")


def _response_format(response_format: Any, unsupported: Unsupported) -> ResponseFormat | None:
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat(type="json_object")
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, Mapping):
            raise invalid("response_format.json_schema", "expected {'name', 'schema'}")
        schema = spec.get("schema")
        if schema is not None and not isinstance(schema, Mapping):
            raise invalid("response_format.json_schema.schema", "expected a JSON Schema object")
        return ResponseFormat(type="json_object", json_schema=dict(schema) if schema else None)
    if isinstance(kind, str):
        raise unsupported("response_format.type", f"response format {kind!r}")
    raise invalid("response_format", "expected {'type': 'text' | 'json_object' | 'json_schema'}")


def _thinking(effort: Any) -> Thinking | None:
    if effort is None:
        return None
    if effort == "none":
        return Thinking(type="disabled")
    if effort not in _THINKING_BUDGETS:
        allowed = ", ".join(["none", *_THINKING_BUDGETS])
        raise invalid("reasoning_effort", f"expected one of {allowed}")
    return Thinking(type="enabled", token_budget=_THINKING_BUDGETS[effort])


# ================================================================ Cohere -> OpenAI


def finish_reason(reason: str | None, *, provider: str, error: str | None = None) -> str:
    """OpenAI's finish reason for Cohere's; ``ERROR`` and ``TIMEOUT`` raise, since the
    answer is not whole (another target may do better). Unknown reasons count as stop."""
    if reason == "ERROR" or error:
        detail = f": {error}" if error else ""
        raise UpstreamUnavailable(
            f"provider {provider!r} failed to generate the answer{detail}", provider=provider
        )
    if reason == "TIMEOUT":
        raise UpstreamTimeout(
            f"provider {provider!r} timed out generating the answer", provider=provider
        )
    return _FINISH.get(reason or "COMPLETE", "stop")


def token_counts(usage: Usage | None) -> tuple[int, int, int]:
    """(prompt, completion, cached) tokens: the billed units when Cohere sends them (the
    tokens it charges for, without the prompt template it adds), else the raw tokens."""
    if usage is None:
        return 0, 0, 0
    units = usage.billed_units or usage.tokens
    if units is None:
        return 0, 0, int(usage.cached_tokens)
    return int(units.input_tokens), int(units.output_tokens), int(usage.cached_tokens)


def openai_usage(usage: Usage | None) -> dict[str, Any]:
    """OpenAI's ``usage`` object for a Cohere ``Usage``."""
    prompt, completion, cached = token_counts(usage)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def tool_call_json(call: AnswerToolCall, index: int | None = None) -> dict[str, Any]:
    """One OpenAI tool call for a Cohere one (``index`` for stream deltas)."""
    function = call.function or CallFunction()
    out: dict[str, Any] = {} if index is None else {"index": index}
    out.update(
        {
            "id": call.id or "call_" + secrets.token_hex(12),
            "type": "function",
            "function": {"name": function.name or "", "arguments": function.arguments or "{}"},
        }
    )
    return out


def from_cohere(
    response: ChatResponse, *, model: str, provider: str, created: int | None = None
) -> bytes:
    """The OpenAI ``chat.completion`` body for a whole Cohere answer."""
    message = response.message
    texts: list[str] = []
    thoughts: list[str] = []
    for block in message.content or ():
        if block.type == "thinking" and block.thinking:
            thoughts.append(block.thinking)
        elif block.type == "text" and block.text:
            texts.append(block.text)
    calls = [tool_call_json(call) for call in message.tool_calls or ()]
    text = "".join(texts)
    if calls and not text and message.tool_plan:
        text = message.tool_plan
    reason = finish_reason(response.finish_reason, provider=provider)
    if calls and reason == "stop":
        reason = "tool_calls"
    answer: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not calls else None,
        "refusal": None,
    }
    if thoughts:  # the field OpenAI-compatible hosts use for reasoning text
        answer["reasoning_content"] = "".join(thoughts)
    if calls:
        answer["tool_calls"] = calls
    body = {
        "id": "chatcmpl-" + (response.id or secrets.token_hex(12)),
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": answer, "logprobs": None, "finish_reason": reason}],
        "usage": openai_usage(response.usage),
    }
    return _encode(body)
