"""OpenAI's Chat Completions, Embeddings and Models wire format (and Azure's paths).

Written from OpenAI's API reference, not from the proxy: ``chat.completion`` objects,
``chat.completion.chunk`` SSE frames ending in ``data: [DONE]``, the usage chunk with
empty ``choices`` when ``stream_options.include_usage`` is set, streamed tool-call
argument deltas, and errors as ``{"error": {"message", "type", "param", "code"}}``.
Unknown request fields are accepted, as OpenAI-compatible hosts do.
"""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

import msgspec

from fkllmproxy.testing._flow import Exchange, Invalid, respond, run_fault
from fkllmproxy.testing.behaviour import (
    Answer,
    Prompt,
    ToolSpec,
    count_tokens,
    embedding_vector,
)

__all__ = ["AZURE", "OPENAI", "OpenAIFormat", "chat", "embeddings", "models"]

_encode = msgspec.json.encode
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_ERROR_KINDS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}
_FINISH = {
    "stop": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "blocked_prompt": "content_filter",
    "blocked_output": "content_filter",
}
_FINGERPRINT = "fp_fake0001"
_DONE = b"data: [DONE]\n\n"


class OpenAIFormat:
    """Renders answers as OpenAI does; ``azure`` adds Azure's content-filter results."""

    def __init__(self, azure: bool = False) -> None:
        self.azure = azure
        self._ids = 0

    def next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}-fake{self._ids:06d}"

    def error_body(self, status: int, message: str, param: str | None = None) -> bytes:
        kind, code = _ERROR_KINDS.get(status, ("server_error", None))
        return _encode({"error": {"message": message, "type": kind, "param": param, "code": code}})

    def midstream_error(self) -> bytes:
        body = self.error_body(500, "The server had an error while streaming (error-midstream).")
        return b"data: " + body + b"\n\n"

    def _usage(self, answer: Answer) -> dict[str, Any]:
        return {
            "prompt_tokens": answer.input_tokens,
            "completion_tokens": answer.output_tokens,
            "total_tokens": answer.input_tokens + answer.output_tokens,
            "prompt_tokens_details": {"cached_tokens": answer.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }

    def _tool_calls(self, answer: Answer, ids: list[str]) -> list[dict[str, Any]]:
        return [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": _encode(call.arguments).decode()},
            }
            for call_id, call in zip(ids, answer.tool_calls, strict=True)
        ]

    def render(self, answer: Answer, prompt: Prompt) -> bytes:
        message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
        if answer.thinking:  # as vLLM and DeepSeek return it (OpenAI itself returns none)
            message["reasoning_content"] = answer.thinking
        if answer.tool_calls:
            ids = [self.next_id("call") for _ in answer.tool_calls]
            message["content"] = None
            message["tool_calls"] = self._tool_calls(answer, ids)
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": _FINISH[answer.finish],
        }
        body: dict[str, Any] = {
            "id": self.next_id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": prompt.model,
            "choices": [choice],
            "usage": self._usage(answer),
            "system_fingerprint": _FINGERPRINT,
        }
        if self.azure:
            choice["content_filter_results"] = {}
            body["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": {}}]
        return _encode(body)

    def stream_frames(self, answer: Answer, prompt: Prompt) -> list[bytes]:
        include_usage = prompt.include_usage
        base = {
            "id": self.next_id("chatcmpl"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": prompt.model,
            "system_fingerprint": _FINGERPRINT,
        }
        frames: list[bytes] = []

        def add(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk: dict[str, Any] = {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                chunk["usage"] = None
            frames.append(b"data: " + _encode(chunk) + b"\n\n")

        if self.azure:
            first = {"choices": [], "created": 0, "id": "", "model": "", "object": ""}
            first["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": {}}]
            frames.append(b"data: " + _encode(first) + b"\n\n")
        add({"role": "assistant", "content": "", "refusal": None})
        if answer.thinking:
            add({"reasoning_content": answer.thinking})
        for index, call in enumerate(answer.tool_calls):
            arguments = _encode(call.arguments).decode()
            head = {"index": index, "id": self.next_id("call"), "type": "function"}
            head["function"] = {"name": call.name, "arguments": ""}
            add({"tool_calls": [head]})
            middle = max(1, len(arguments) // 2)
            for piece in (arguments[:middle], arguments[middle:]):
                add({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        for piece in answer.text_pieces():
            add({"content": piece})
        add({}, _FINISH[answer.finish])
        if include_usage:
            usage_chunk = {**base, "choices": [], "usage": self._usage(answer)}
            frames.append(b"data: " + _encode(usage_chunk) + b"\n\n")
        frames.append(_DONE)
        return frames


OPENAI = OpenAIFormat()
AZURE = OpenAIFormat(azure=True)


def _text_of(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise Invalid(f"Invalid type for '{where}': expected a string or an array.", where)
    texts: list[str] = []
    for index, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise Invalid(f"Missing required parameter: '{where}[{index}].type'.", where)
        kind = part["type"]
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if not isinstance(text, str):
                raise Invalid(f"Missing required parameter: '{where}[{index}].{kind}'.", where)
            texts.append(text)
        elif kind == "image_url":
            url = part.get("image_url")
            if not isinstance(url, dict) or not isinstance(url.get("url"), str):
                raise Invalid(f"Missing required parameter: '{where}[{index}].image_url.url'.")
        elif kind not in ("input_audio", "file"):
            raise Invalid(
                f"Invalid value: '{kind}'. Supported values are: 'text', 'image_url', "
                f"'input_audio', 'refusal' and 'file'.",
                f"{where}[{index}].type",
            )
    return " ".join(texts)


def read_chat(body: Any, model: str | None = None) -> tuple[Prompt, bool]:
    """Validate a chat request as OpenAI does and extract the fake's ``Prompt``."""
    if not isinstance(body, dict):
        raise Invalid("We could not parse the JSON body of your request.")
    model = model or body.get("model")
    if not isinstance(model, str) or not model:
        raise Invalid("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Invalid("Missing required parameter: 'messages'.", "messages")
    stream = body.get("stream") is True
    options = body.get("stream_options")
    if options is not None and not stream:
        raise Invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    prompt = Prompt(model=model)
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    open_calls: list[str] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            role = message.get("role") if isinstance(message, dict) else None
            raise Invalid(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                f"'user', 'function', 'tool', and 'developer'.",
                f"{where}.role",
            )
        role = message["role"]
        text = _text_of(message.get("content"), f"{where}.content")
        prompt.input_text.append(text)
        if role != "tool" and open_calls:
            raise Invalid(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not "
                f"have response messages: {', '.join(open_calls)}",
                "messages",
            )
        prompt.tool_result = None
        if role == "user":
            prompt.last_user_text = text
        elif role == "assistant":
            open_calls = _assistant_calls(message, where, prompt)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in open_calls:
                raise Invalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"{where}.role",
                )
            open_calls.remove(call_id)
            prompt.tool_result = text
    if open_calls:
        raise Invalid(
            "An assistant message with 'tool_calls' must be followed by tool messages "
            f"responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(open_calls)}",
            "messages",
        )
    prompt.tools = _read_tools(body.get("tools"))
    prompt.tool_choice = _read_tool_choice(body.get("tool_choice"))
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise Invalid(f"Invalid 'max_tokens': integer below minimum value. Given: {limit}.")
    prompt.max_tokens = limit
    stop = body.get("stop")
    prompt.stop = [stop] if isinstance(stop, str) else list(stop or [])
    response_format = body.get("response_format")
    prompt.json_mode = isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    )
    prompt.include_usage = include_usage
    prompt.thinking = body.get("reasoning_effort") not in (None, "none")
    return prompt, stream


def _assistant_calls(message: dict[str, Any], where: str, prompt: Prompt) -> list[str]:
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise Invalid(f"Invalid type for '{where}.tool_calls': expected an array.")
    ids: list[str] = []
    for index, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(function, dict)
            or not isinstance(call.get("id"), str)
            or not isinstance(function.get("name"), str)
            or not isinstance(function.get("arguments"), str)
        ):
            raise Invalid(
                f"Missing required parameter: '{where}.tool_calls[{index}]' needs id, "
                "function.name and function.arguments (a string).",
                f"{where}.tool_calls[{index}]",
            )
        ids.append(call["id"])
        prompt.input_text.append(function["arguments"])
    return ids


def _read_tools(tools: Any) -> list[ToolSpec]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise Invalid("Invalid type for 'tools': expected an array.", "tools")
    specs: list[ToolSpec] = []
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(function, dict):
            raise Invalid(f"Missing required parameter: 'tools[{index}].function'.")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise Invalid(f"Missing required parameter: 'tools[{index}].function.name'.")
        specs.append(ToolSpec(name, _first_param(function.get("parameters"))))
    return specs


def _first_param(schema: Any) -> str:
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return next(iter(properties), "input") if isinstance(properties, dict) else "input"


def _read_tool_choice(choice: Any) -> str:
    if choice is None or choice == "auto":
        return "auto"
    if choice in ("none", "required"):
        return str(choice)
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return f"tool:{choice['function'].get('name')}"
    raise Invalid(f"Invalid value for 'tool_choice': {choice!r}.", "tool_choice")


async def chat(ex: Exchange, api: OpenAIFormat, model: str | None = None) -> None:
    """``POST /v1/chat/completions`` (and Azure's deployment path, model from the URL)."""
    try:
        prompt, stream = read_chat(ex.json, model)
    except Invalid as exc:
        await ex.send_json(exc.status, api.error_body(exc.status, exc.message, exc.param))
        return
    await respond(ex, api, prompt, stream=stream)


def _embedding_inputs(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(item, int) for item in raw):
        return [" ".join(map(str, raw))]
    if isinstance(raw, list) and raw and all(isinstance(item, (str, list)) for item in raw):
        return [item if isinstance(item, str) else " ".join(map(str, item)) for item in raw]
    raise Invalid("'$.input' is invalid. Please check the API reference.", "input")


async def embeddings(ex: Exchange, api: OpenAIFormat, model: str | None = None) -> None:
    """``POST /v1/embeddings``: one deterministic vector per input, float or base64."""
    body = ex.json if isinstance(ex.json, dict) else {}
    model = model or body.get("model")
    try:
        if not isinstance(model, str) or not model:
            raise Invalid("you must provide a model parameter", "model")
        inputs = _embedding_inputs(body.get("input"))
        dimensions = body.get("dimensions", 8)
        if not isinstance(dimensions, int) or dimensions < 1:
            raise Invalid("Invalid 'dimensions': must be a positive integer.", "dimensions")
    except Invalid as exc:
        await ex.send_json(400, api.error_body(400, exc.message, exc.param))
        return
    behaviour = ex.upstream.behaviour_for(model)
    if await run_fault(ex, api, behaviour):
        return
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(inputs):
        vector = embedding_vector(text, dimensions)
        encoded: Any = vector
        if as_base64:
            encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = max(1, sum(count_tokens(text) for text in inputs))
    answer = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    await ex.send_json(200, _encode(answer))


MODEL_IDS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")


async def models(ex: Exchange) -> None:
    """``GET /v1/models``: a fixed list in OpenAI's shape."""
    data = [
        {"id": name, "object": "model", "created": 1700000000, "owned_by": "fake-upstream"}
        for name in MODEL_IDS
    ]
    await ex.send_json(200, _encode({"object": "list", "data": data}))
