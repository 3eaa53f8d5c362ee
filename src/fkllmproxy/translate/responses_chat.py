"""An OpenAI Responses request as a Chat Completions request, and a Chat answer as a ``response``.

Used when a ``/v1/responses`` client reaches a provider without the Responses API (every
provider reached through the Chat Completions hub). Request mapping:

* ``instructions`` -> a leading ``system`` message; ``input`` as a string -> one user
  message; ``message`` items: ``user`` parts ``input_text`` -> text, ``input_image`` ->
  ``image_url`` (with ``detail``), ``input_file`` -> ``file``; ``system`` and
  ``developer`` -> ``system`` messages; ``assistant`` ``output_text`` / ``refusal`` ->
  assistant text.
* ``function_call`` items -> ``tool_calls`` of the assistant message they follow (ids from
  ``call_id``); ``function_call_output`` -> ``tool`` messages (images or files a tool
  returned follow in a user message); ``reasoning`` items are dropped, as Chat
  Completions cannot send reasoning back.
* ``tools`` (type ``function``) -> function tools; ``tool_choice`` as it is (a function
  choice becomes ``{"type": "function", "function": {"name"}}``);
  ``parallel_tool_calls`` with tools; ``max_output_tokens`` -> ``max_completion_tokens``;
  ``temperature``, ``top_p``, ``user``, ``prompt_cache_key``, ``safety_identifier``,
  ``service_tier`` as they are (Chat Completions has the same fields); ``text.format`` ``json_object`` /
  ``json_schema`` -> ``response_format``; ``reasoning.effort`` -> ``reasoning_effort``.
* ``metadata``, ``store`` and ``previous_response_id`` are the proxy's own business
  (echoed in the ``response``, kept by the store), never sent up; ``include`` asks for
  extra output (encrypted reasoning, logprobs) a translated answer does not have.

Other tool types (``web_search``, ``namespace``, ``file_search``, MCP, ...), item types
and unknown fields are a 400 naming the field and the provider; the hints listed in
``wire.responses.StrictResponsesRequest`` are accepted and not carried.
"""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec

from fkllmproxy.errors import BadRequest
from fkllmproxy.translate._common import (
    bad_answer,
    decode_json,
    encode_json,
    invalid,
    missing,
    unsupported,
    validation_error,
)
from fkllmproxy.wire.openai_answers import AnswerUsage, answer_decoder
from fkllmproxy.wire.responses import (
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionTool,
    InputFile,
    InputImage,
    InputText,
    MessageItem,
    OutputRefusal,
    OutputText,
    ReasoningItem,
    StrictResponsesRequest,
)

__all__ = [
    "chat_request_from_responses",
    "in_responses_terms",
    "input_items",
    "new_id",
    "response_envelope",
    "response_from_chat",
    "responses_usage",
]

# Response fields echoed from the request, with OpenAI's defaults when absent.
_ECHOED: dict[str, Any] = {
    "instructions": None,
    "max_output_tokens": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "temperature": 1.0,
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "user": None,
    "truncation": "disabled",
}
_TOOL_HINTS = {
    "web_search": "web search runs only on OpenAI's Responses API"
    ' (Codex CLI: set web_search = "disabled" in its config.toml)',
    "namespace": "only plain function tools are translated"
    " (Codex CLI: set [agents] enabled = false in its config.toml)",
}
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    """An id in OpenAI's style (``resp_``, ``msg_``, ``fc_`` and 48 hex digits)."""
    return f"{prefix}_{os.urandom(24).hex()}"


def input_items(value: Any) -> list[Any]:
    """``input`` as a list of items: a string is one user message; a message may omit ``type``."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    items = list(value)
    for index, item in enumerate(items):
        if isinstance(item, dict) and "type" not in item and "role" in item:
            items[index] = {"type": "message", **item}
    return items


def chat_request_from_responses(data: dict[str, Any], *, provider: str) -> dict[str, Any]:
    """The Chat Completions body for Responses request ``data`` (plain data, ``input`` whole).

    ``data["input"]`` is the whole conversation (a stored one's items already prepended);
    ``data["model"]`` the upstream model. ``provider`` (``'main' (openai)``) is named in
    every 400 about something the translation cannot carry.
    """
    _check_tool_types(data.get("tools"), provider)
    try:
        request = msgspec.convert(
            {**data, "input": input_items(data.get("input"))}, StrictResponsesRequest
        )
    except msgspec.ValidationError as exc:
        raise validation_error(exc, provider) from None
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    assert not isinstance(request.input, str)
    _conversation(request.input or [], messages, provider)
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if request.max_output_tokens is not None:
        body["max_completion_tokens"] = request.max_output_tokens
    for name in (
        "temperature",
        "top_p",
        "user",
        "prompt_cache_key",
        "safety_identifier",
        "service_tier",
    ):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.tools:
        body["tools"] = [_tool(tool) for tool in request.tools]
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    choice = request.tool_choice
    if choice is not None and not request.tools and choice not in ("auto", "none"):
        raise invalid("tool_choice", "a tool must be chosen from 'tools', and there are none")
    if choice is not None and (request.tools or choice == "none"):
        if isinstance(choice, str):
            body["tool_choice"] = choice
        else:
            body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    text_format = request.text.format if request.text else None
    if text_format is not None and text_format.__struct_config__.tag != "text":
        body["response_format"] = _response_format(text_format)
    if request.reasoning is not None and request.reasoning.effort is not None:
        body["reasoning_effort"] = request.reasoning.effort
    return body


def _check_tool_types(tools: Any, provider: str) -> None:
    """A hosted tool (web search, a namespace of tools, ...) refused with what to do about it."""
    if not isinstance(tools, list):
        return
    for index, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if isinstance(kind, str) and kind != "function":
            why = _TOOL_HINTS.get(
                kind, "only function tools reach a provider without the Responses API"
            )
            raise unsupported(f"tools[{index}].type = {kind!r}", provider, why)


def _conversation(items: list[Any], messages: list[dict[str, Any]], provider: str) -> None:
    for index, item in enumerate(items):
        where = f"input[{index}]"
        if isinstance(item, MessageItem):
            messages.extend(_message(item, where, provider))
        elif isinstance(item, FunctionCallItem):
            call = {
                "id": item.call_id,
                "type": "function",
                "function": {"name": item.name, "arguments": item.arguments},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif isinstance(item, FunctionCallOutputItem):
            messages.extend(_tool_output(item, where, provider))
        else:
            assert isinstance(item, ReasoningItem)  # no Chat form: dropped


def _message(item: MessageItem, where: str, provider: str) -> list[dict[str, Any]]:
    role = "system" if item.role in ("system", "developer") else item.role
    if isinstance(item.content, str):
        return [{"role": role, "content": item.content}]
    parts = [_part(part, f"{where}.content[{i}]", provider) for i, part in enumerate(item.content)]
    if role != "user" or all(part["type"] == "text" for part in parts):
        text = "".join(part.get("text", "") for part in parts)
        return [{"role": role, "content": text}]
    return [{"role": role, "content": parts}]


def _part(part: Any, where: str, provider: str) -> dict[str, Any]:
    if isinstance(part, InputText | OutputText):
        return {"type": "text", "text": part.text}
    if isinstance(part, OutputRefusal):
        return {"type": "text", "text": part.refusal}
    if isinstance(part, InputImage):
        if not part.image_url:
            if part.file_id:
                return {"type": "file", "file": {"file_id": part.file_id}}
            raise missing(f"{where}.image_url")
        image: dict[str, Any] = {"url": part.image_url}
        if part.detail in ("low", "high", "auto"):
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    assert isinstance(part, InputFile)
    file: dict[str, Any] = {}
    if part.file_data is not None:
        file["file_data"] = part.file_data
        file["filename"] = part.filename or "file"
    elif part.file_id is not None:
        file["file_id"] = part.file_id
    elif part.file_url is not None:
        raise unsupported(f"{where}.file_url", provider, "send the file inline as file_data")
    else:
        raise missing(f"{where}.file_data")
    return {"type": "file", "file": file}


def _tool_output(item: FunctionCallOutputItem, where: str, provider: str) -> list[dict[str, Any]]:
    if isinstance(item.output, str):
        return [{"role": "tool", "tool_call_id": item.call_id, "content": item.output}]
    parts = [_part(part, f"{where}.output[{i}]", provider) for i, part in enumerate(item.output)]
    text = "".join(part["text"] for part in parts if part["type"] == "text")
    out: list[dict[str, Any]] = [{"role": "tool", "tool_call_id": item.call_id, "content": text}]
    attachments = [part for part in parts if part["type"] != "text"]
    if attachments:
        label = {"type": "text", "text": f"Attachments returned by tool call {item.call_id}:"}
        out.append({"role": "user", "content": [label, *attachments]})
    return out


def _tool(tool: FunctionTool) -> dict[str, Any]:
    function: dict[str, Any] = {
        "name": tool.name,
        "parameters": tool.parameters or {"type": "object", "properties": {}},
    }
    if tool.description:
        function["description"] = tool.description
    if tool.strict:
        function["strict"] = True
    return {"type": "function", "function": function}


def _response_format(text_format: Any) -> dict[str, Any]:
    if text_format.__struct_config__.tag == "json_object":
        return {"type": "json_object"}
    schema: dict[str, Any] = {"name": text_format.name, "schema": text_format.schema}
    if text_format.description:
        schema["description"] = text_format.description
    if text_format.strict is not None:
        schema["strict"] = text_format.strict
    return {"type": "json_schema", "json_schema": schema}


# ---- the answer -------------------------------------------------------------------------


def response_envelope(data: dict[str, Any], *, model: str, response_id: str) -> dict[str, Any]:
    """The ``response`` object before its output: what the request asked, echoed.

    ``model`` is the name the client sent; ``data`` the client's request as plain data.
    """
    envelope: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": [],
    }
    for name, default in _ECHOED.items():
        value = data.get(name)
        envelope[name] = default if value is None else value
    reasoning = data.get("reasoning")
    envelope["reasoning"] = {
        "effort": reasoning.get("effort") if isinstance(reasoning, dict) else None,
        "summary": reasoning.get("summary") if isinstance(reasoning, dict) else None,
    }
    envelope["store"] = data.get("store") is not False
    text = data.get("text")
    text_format = text.get("format") if isinstance(text, dict) else None
    envelope["text"] = {"format": text_format or {"type": "text"}}
    envelope["usage"] = None
    return envelope


def responses_usage(usage: AnswerUsage | None) -> dict[str, Any]:
    """Responses ``usage`` from Chat Completions usage."""
    prompt = (usage.prompt_tokens if usage else None) or 0
    completion = (usage.completion_tokens if usage else None) or 0
    details = usage.prompt_tokens_details if usage else None
    cached = (details.cached_tokens if details else None) or 0
    out_details = usage.completion_tokens_details if usage else None
    reasoning = (out_details.reasoning_tokens if out_details else None) or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


def message_item(text: str, *, refusal: bool = False, status: str = "completed") -> dict[str, Any]:
    """An assistant ``message`` output item holding ``text`` (or a refusal)."""
    part: dict[str, Any]
    if refusal:
        part = {"type": "refusal", "refusal": text}
    else:
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "id": new_id("msg"),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [part],
    }


def reasoning_item(text: str) -> dict[str, Any]:
    """A ``reasoning`` output item holding the reasoning text a host returned.

    It is the model's raw reasoning (vLLM's, DeepSeek's ``reasoning_content``), so it
    goes in ``content`` as ``reasoning_text``, as OpenAI's open-weight models return it;
    there is no summary.
    """
    return {
        "id": new_id("rs"),
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
        "status": "completed",
    }


def function_call_item(
    call_id: str, name: str, arguments: str, *, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": new_id("fc"),
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }


def finish_status(response: dict[str, Any], finish_reason: str | None) -> None:
    """Set ``status`` (and ``incomplete_details``) from a Chat ``finish_reason``."""
    reason = _INCOMPLETE.get(finish_reason or "")
    response["status"] = "incomplete" if reason else "completed"
    response["incomplete_details"] = {"reason": reason} if reason else None


def response_from_chat(body: bytes, *, provider: str, envelope: dict[str, Any]) -> dict[str, Any]:
    """The finished ``response`` object (plain data) for a Chat completion ``body``."""
    try:
        answer = answer_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise bad_answer(provider, f"completion: {exc}") from None
    if not answer.choices or answer.choices[0].message is None:
        raise bad_answer(provider, "completion without a message")
    choice = answer.choices[0]
    reply = choice.message
    assert reply is not None
    output: list[dict[str, Any]] = []
    thought = reply.reasoning_text
    if thought:
        output.append(reasoning_item(thought))
    if reply.content:
        output.append(message_item(reply.content))
    if reply.refusal:
        output.append(message_item(reply.refusal, refusal=True))
    for index, call in enumerate(reply.tool_calls or ()):
        function = call.function
        if function is None or not function.name:
            raise bad_answer(provider, f"tool call {index} without a function name")
        arguments = function.arguments or "{}"
        try:
            decode_json(arguments)
        except msgspec.DecodeError:
            raise bad_answer(provider, f"tool call {function.name!r} with invalid JSON") from None
        output.append(function_call_item(call.id or new_id("call"), function.name, arguments))
    response = {**envelope, "output": output, "usage": responses_usage(answer.usage)}
    finish_status(response, choice.finish_reason)
    return response


# The Chat fields a Responses request was translated into, by the name the client used.
_RESPONSES_NAMES = {
    "reasoning_effort": "reasoning.effort",
    "response_format": "text.format",
    "max_completion_tokens": "max_output_tokens",
    "messages": "input",
}


def in_responses_terms(error: BadRequest) -> BadRequest:
    """A provider's refusal of a translated Chat field, naming the field the client sent.

    The Responses request reaches a Chat-speaking provider as Chat fields; a 400 that
    names ``reasoning_effort`` would name a field the client never wrote.
    """
    name = _RESPONSES_NAMES.get(error.param or "")
    if name is None:
        return error
    message = error.message.replace(f"'{error.param}'", f"'{name}'")
    return BadRequest(message, param=name)


def encode_response(response: dict[str, Any]) -> bytes:
    return encode_json(response)
