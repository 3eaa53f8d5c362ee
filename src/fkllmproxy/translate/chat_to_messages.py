"""An OpenAI Chat Completions request as an Anthropic Messages request.

Used by the ``anthropic`` provider for clients of ``/v1/chat/completions``. Mapping:

* ``system`` and ``developer`` messages -> the top-level ``system`` text blocks, in
  order (Anthropic has no system turns inside the conversation).
* ``user`` content: text -> text, ``image_url`` -> image (data URL -> base64 source,
  http(s) URL -> url source; ``detail`` has no Anthropic equivalent), ``file`` with PDF
  ``file_data`` -> document.
* ``assistant``: content -> text block, ``tool_calls`` -> ``tool_use`` blocks (ids kept,
  arguments parsed from their JSON string). An assistant turn with neither is dropped,
  as Anthropic refuses empty turns.
* ``tool`` messages -> ``tool_result`` blocks in one user turn; consecutive turns of the
  same role are merged, so several tool results (and a following user text) share one
  turn, which Anthropic requires.
* ``max_completion_tokens`` / ``max_tokens`` -> ``max_tokens``; when the client sets
  neither, the provider's ``default_max_tokens`` is used, since Anthropic requires one.
* ``temperature`` (0 to 1 there), ``top_p``, ``top_k``, ``stop`` -> ``stop_sequences``.
* ``tools`` (function) -> tools with ``input_schema``; ``tool_choice`` auto/none/
  required/{function} -> auto/none/any/tool; ``parallel_tool_calls: false`` ->
  ``disable_parallel_tool_use``.
* ``response_format`` ``json_schema`` -> ``output_config.format`` (Anthropic's structured
  outputs); ``json_object`` -> a forced tool whose input is the JSON answer, turned back
  into message text by the answer translators (so not together with ``tools``).
* ``user`` / ``safety_identifier`` -> ``metadata.user_id``.

Ignored: message ``name`` (a label Anthropic has no field for), ``prompt_cache_key`` (a
caching hint). Refused with a 400 naming the field and provider: ``seed``, ``n`` > 1,
non-zero penalties, ``logprobs``, ``logit_bias``, audio, ``reasoning_effort``, legacy
``functions``, and any field this table does not know.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fkllmproxy.translate._common import (
    decode_json,
    invalid,
    missing,
    parse_data_url,
    unsupported,
)

__all__ = ["JSON_TOOL", "MessagesCallBody", "messages_request_from_chat"]

JSON_TOOL = "json_answer"
"""The forced tool that carries a JSON-mode answer."""

_HANDLED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "service_tier",
    }
)
# Fields that are fine at the value that means "nothing special".
_NEUTRAL: dict[str, Any] = {
    "n": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logprobs": False,
    "store": False,
    "modalities": ["text"],
}
_WHY = {
    "seed": "Anthropic has no seed",
    "reasoning_effort": "use an Anthropic model's thinking through /v1/messages",
    "functions": "use 'tools'",
    "function_call": "use 'tool_choice'",
    "n": "Anthropic returns one choice",
}
_TIERS = {"auto": "auto", "default": "standard_only"}
_CHOICES = {"auto": "auto", "none": "none", "required": "any"}


@dataclass(slots=True)
class MessagesCallBody:
    """The Anthropic request body, and the forced JSON tool's name if JSON mode used one."""

    body: dict[str, Any]
    json_tool: str | None = None


def messages_request_from_chat(
    request: dict[str, Any], *, provider: str, default_max_tokens: int
) -> MessagesCallBody:
    """The Anthropic body for OpenAI request ``request`` (plain data, ``model`` set)."""
    for key, value in request.items():
        if value is None or key in _HANDLED:
            continue
        if key in _NEUTRAL and value == _NEUTRAL[key]:
            continue
        raise unsupported(key, provider, _WHY.get(key, ""))
    system, messages = _conversation(request.get("messages"), provider)
    max_tokens = request.get("max_completion_tokens") or request.get("max_tokens")
    body: dict[str, Any] = {
        "model": request["model"],
        "max_tokens": max_tokens or default_max_tokens,
        "messages": messages,
    }
    if system:
        body["system"] = system
    if request.get("stream"):
        body["stream"] = True
    _sampling(request, body, provider)
    user = request.get("user") or request.get("safety_identifier")
    if user:
        body["metadata"] = {"user_id": str(user)}
    tier = request.get("service_tier")
    if tier is not None:
        if tier not in _TIERS:
            raise unsupported(f"service_tier = {tier!r}", provider)
        body["service_tier"] = _TIERS[tier]
    _tools(request, body, provider)
    json_tool = _response_format(request, body, provider)
    return MessagesCallBody(body=body, json_tool=json_tool)


def _sampling(request: dict[str, Any], body: dict[str, Any], provider: str) -> None:
    temperature = request.get("temperature")
    if temperature is not None:
        if temperature > 1:
            raise unsupported(f"temperature = {temperature}", provider, "its range is 0 to 1")
        body["temperature"] = temperature
    for name in ("top_p", "top_k"):
        if request.get(name) is not None:
            body[name] = request[name]
    stop = request.get("stop")
    if isinstance(stop, str):
        body["stop_sequences"] = [stop]
    elif stop:
        body["stop_sequences"] = list(stop)


# ---- the conversation ---------------------------------------------------------------


def _conversation(
    messages: Any, provider: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not isinstance(messages, list) or not messages:
        raise missing("messages")
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []

    def push(role: str, blocks: list[dict[str, Any]]) -> None:
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise invalid(where, "expected an object")
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_text_blocks(content, f"{where}.content", provider))
        elif role == "user":
            push("user", _user_blocks(content, f"{where}.content", provider))
        elif role == "assistant":
            blocks = _assistant_blocks(message, where, provider)
            if blocks:
                push("assistant", blocks)
        elif role == "tool":
            push("user", [_tool_result(message, where, provider)])
        else:
            why = _WHY["functions"] if role == "function" else ""
            raise unsupported(f"{where}.role = {role!r}", provider, why)
    return system, turns


def _text_blocks(content: Any, where: str, provider: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise invalid(where, "expected a string or a list of text parts")
    blocks = []
    for index, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
            kind = part.get("type") if isinstance(part, dict) else None
            raise unsupported(f"{where}[{index}].type = {kind!r}", provider, "text parts only")
        text = part.get("text") if part["type"] == "text" else part.get("refusal")
        if not isinstance(text, str):
            raise invalid(f"{where}[{index}].text", "expected a string")
        if text:
            blocks.append({"type": "text", "text": text})
    return blocks


def _user_blocks(content: Any, where: str, provider: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise invalid(where, "expected a string or a list of content parts")
    blocks: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        at = f"{where}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.extend(_text_blocks([part], where, provider))
        elif kind == "image_url":
            blocks.append(_image(part.get("image_url"), f"{at}.image_url"))
        elif kind == "file":
            blocks.append(_file(part.get("file"), f"{at}.file", provider))
        else:
            raise unsupported(f"{at}.type = {kind!r}", provider)
    return blocks


def _image(image: Any, where: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise missing(f"{where}.url")
    data_url = parse_data_url(url)
    if data_url is not None:
        media_type, data = data_url
        source = {"type": "base64", "media_type": media_type, "data": data}
    elif url.startswith(("https://", "http://")):
        source = {"type": "url", "url": url}
    else:
        raise invalid(f"{where}.url", "expected an http(s) URL or a base64 data URL")
    return {"type": "image", "source": source}


def _file(file: Any, where: str, provider: str) -> dict[str, Any]:
    if not isinstance(file, dict):
        raise invalid(where, "expected an object")
    if file.get("file_id"):
        raise unsupported(f"{where}.file_id", provider, "send the file inline as file_data")
    data_url = parse_data_url(file.get("file_data") or "")
    if data_url is None:
        raise invalid(f"{where}.file_data", "expected a base64 data URL")
    media_type, data = data_url
    if media_type != "application/pdf":
        raise unsupported(f"{where}.file_data ({media_type})", provider, "PDF only")
    block: dict[str, Any] = {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }
    if file.get("filename"):
        block["title"] = file["filename"]
    return block


def _assistant_blocks(message: dict[str, Any], where: str, provider: str) -> list[dict[str, Any]]:
    for name in ("audio", "function_call"):
        if message.get(name) is not None:
            raise unsupported(f"{where}.{name}", provider)
    content = message.get("content")
    blocks = [] if content is None else _text_blocks(content, f"{where}.content", provider)
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise invalid(f"{where}.tool_calls", "expected a list")
    for index, call in enumerate(calls):
        blocks.append(_tool_use(call, f"{where}.tool_calls[{index}]"))
    return blocks


def _tool_use(call: Any, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not function.get("name"):
        raise missing(f"{where}.function.name")
    if not call.get("id"):
        raise missing(f"{where}.id")
    arguments = function.get("arguments") or "{}"
    try:
        parsed = decode_json(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        raise invalid(f"{where}.function.arguments", "not valid JSON") from None
    if not isinstance(parsed, dict):
        raise invalid(f"{where}.function.arguments", "expected a JSON object")
    return {"type": "tool_use", "id": call["id"], "name": function["name"], "input": parsed}


def _tool_result(message: dict[str, Any], where: str, provider: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not call_id:
        raise missing(f"{where}.tool_call_id")
    content = message.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    if isinstance(content, str):
        if content:
            block["content"] = content
    elif content is not None:
        texts = _text_blocks(content, f"{where}.content", provider)
        if texts:
            block["content"] = texts
    return block


# ---- tools and JSON mode -------------------------------------------------------------


def _tools(request: dict[str, Any], body: dict[str, Any], provider: str) -> None:
    tools = request.get("tools")
    if tools:
        body["tools"] = [_tool(tool, f"tools[{i}]", provider) for i, tool in enumerate(tools)]
    choice = request.get("tool_choice")
    out: dict[str, Any] | None = None
    if isinstance(choice, str):
        if choice not in _CHOICES:
            raise invalid("tool_choice", "expected auto, none, required or a function")
        out = {"type": _CHOICES[choice]}
    elif isinstance(choice, dict):
        function = choice.get("function")
        if choice.get("type") != "function" or not isinstance(function, dict):
            raise unsupported(f"tool_choice.type = {choice.get('type')!r}", provider)
        if not function.get("name"):
            raise missing("tool_choice.function.name")
        out = {"type": "tool", "name": function["name"]}
    if out is None and request.get("parallel_tool_calls") is False and tools:
        out = {"type": "auto"}
    if out is None:
        return
    if not tools:
        if out["type"] in ("any", "tool"):
            raise invalid("tool_choice", "a tool can be required only when 'tools' are given")
        return  # auto or none without tools: the same as no choice at all
    if request.get("parallel_tool_calls") is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    body["tool_choice"] = out


def _tool(tool: Any, where: str, provider: str) -> dict[str, Any]:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind != "function":
        raise unsupported(f"{where}.type = {kind!r}", provider, "function tools only")
    function = tool.get("function")
    if not isinstance(function, dict) or not function.get("name"):
        raise missing(f"{where}.function.name")
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    out: dict[str, Any] = {"name": function["name"], "input_schema": schema}
    if function.get("description"):
        out["description"] = function["description"]
    if function.get("strict"):
        out["strict"] = True
    return out


def _response_format(request: dict[str, Any], body: dict[str, Any], provider: str) -> str | None:
    response_format = request.get("response_format")
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise missing("response_format.json_schema.schema")
        body["output_config"] = {"format": {"type": "json_schema", "schema": spec["schema"]}}
        return None
    if kind != "json_object":
        raise unsupported(f"response_format.type = {kind!r}", provider)
    if body.get("tools"):
        raise unsupported(
            "response_format = json_object", provider, "JSON mode cannot be combined with tools"
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
