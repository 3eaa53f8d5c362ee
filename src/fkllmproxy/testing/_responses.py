"""OpenAI's Responses API (``POST /v1/responses``), as its API reference describes it.

Written from OpenAI's reference, not from the proxy: ``input`` as a string or items
(``message`` with or without ``type``, ``function_call``, ``function_call_output``,
``reasoning``), ``instructions``, function ``tools`` (hosted tool types such as
``web_search`` are accepted and never called), ``tool_choice``, ``max_output_tokens``,
``text.format``; the answer a ``response`` object with ``output`` items and ``usage``;
``stream: true`` typed events (``event: <type>`` + ``data``) each with a
``sequence_number``, ending with ``response.completed``; ``store`` (default true) keeps
the conversation so ``previous_response_id`` continues it (an unknown id is a 400 naming
the parameter). Errors are OpenAI's ``{"error": {...}}``.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from fkllmproxy.testing._flow import Exchange, Invalid, respond
from fkllmproxy.testing._openai import OPENAI
from fkllmproxy.testing.behaviour import Answer, Prompt, ToolSpec

if TYPE_CHECKING:
    from fkllmproxy.testing.fake_upstream import FakeUpstream

__all__ = ["responses"]

_encode = msgspec.json.encode
_ROLES = ("user", "system", "developer", "assistant")
# Conversations kept per fake server, by response id (store: true).
_STORES: weakref.WeakKeyDictionary[FakeUpstream, dict[str, list[Any]]] = weakref.WeakKeyDictionary()


@dataclass(slots=True)
class ResponsesPrompt(Prompt):
    """The fake's prompt plus what a Responses answer echoes and keeps."""

    items: list[Any] = field(default_factory=list)
    request: dict[str, Any] = field(default_factory=dict)
    store: dict[str, list[Any]] | None = None


class ResponsesFormat:
    """Renders answers as the Responses API does."""

    def __init__(self) -> None:
        self._ids = 0

    def next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}_fake{self._ids:06d}"

    def error_body(self, status: int, message: str, param: str | None = None) -> bytes:
        return OPENAI.error_body(status, message, param)

    def midstream_error(self) -> bytes:
        payload = {
            "type": "error",
            "code": "server_error",
            "message": "The server had an error while streaming (error-midstream).",
            "param": None,
            "sequence_number": 0,
        }
        return b"event: error\ndata: " + _encode(payload) + b"\n\n"

    def _usage(self, answer: Answer) -> dict[str, Any]:
        return {
            "input_tokens": answer.input_tokens,
            "input_tokens_details": {"cached_tokens": answer.cached_tokens},
            "output_tokens": answer.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": answer.input_tokens + answer.output_tokens,
        }

    def _output(self, answer: Answer) -> list[dict[str, Any]]:
        output: list[dict[str, Any]] = []
        if answer.text or not answer.tool_calls:
            part = {"type": "output_text", "text": answer.text, "annotations": [], "logprobs": []}
            output.append(
                {
                    "id": self.next_id("msg"),
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [part],
                }
            )
        for call in answer.tool_calls:
            output.append(
                {
                    "id": self.next_id("fc"),
                    "type": "function_call",
                    "status": "completed",
                    "arguments": _encode(call.arguments).decode(),
                    "call_id": self.next_id("call"),
                    "name": call.name,
                }
            )
        return output

    def _response(self, answer: Answer, prompt: ResponsesPrompt) -> dict[str, Any]:
        request = prompt.request
        incomplete = answer.finish == "length"
        response_id = self.next_id("resp")
        output = self._output(answer)
        if prompt.store is not None:
            prompt.store[response_id] = [*prompt.items, *output]
        return {
            "id": response_id,
            "object": "response",
            "created_at": int(time.time()),
            "status": "incomplete" if incomplete else "completed",
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": request.get("instructions"),
            "max_output_tokens": request.get("max_output_tokens"),
            "model": prompt.model,
            "output": output,
            "parallel_tool_calls": request.get("parallel_tool_calls", True),
            "previous_response_id": request.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "store": prompt.store is not None,
            "temperature": request.get("temperature", 1.0),
            "text": request.get("text") or {"format": {"type": "text"}},
            "tool_choice": request.get("tool_choice", "auto"),
            "tools": request.get("tools", []),
            "top_p": request.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": self._usage(answer),
            "user": request.get("user"),
            "metadata": request.get("metadata") or {},
        }

    def render(self, answer: Answer, prompt: Prompt) -> bytes:
        assert isinstance(prompt, ResponsesPrompt)
        return _encode(self._response(answer, prompt))

    def stream_frames(self, answer: Answer, prompt: Prompt) -> list[bytes]:
        assert isinstance(prompt, ResponsesPrompt)
        final = self._response(answer, prompt)
        frames: list[bytes] = []

        def add(kind: str, **fields: Any) -> None:
            payload = {"type": kind, "sequence_number": len(frames), **fields}
            frames.append(b"event: " + kind.encode() + b"\ndata: " + _encode(payload) + b"\n\n")

        start = {**final, "status": "in_progress", "output": [], "usage": None}
        add("response.created", response=start)
        add("response.in_progress", response=start)
        for index, item in enumerate(final["output"]):
            if item["type"] == "message":
                text = item["content"][0]["text"]
                add(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "content": [], "status": "in_progress"},
                )
                ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
                empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                add("response.content_part.added", **ids, part=empty)
                for piece in answer.text_pieces():
                    add("response.output_text.delta", **ids, delta=piece, logprobs=[])
                add("response.output_text.done", **ids, text=text, logprobs=[])
                add("response.content_part.done", **ids, part=item["content"][0])
            else:
                arguments = item["arguments"]
                opened = {**item, "arguments": "", "status": "in_progress"}
                add("response.output_item.added", output_index=index, item=opened)
                middle = max(1, len(arguments) // 2)
                for piece in (arguments[:middle], arguments[middle:]):
                    add(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=index,
                        delta=piece,
                    )
                add(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=arguments,
                )
            add("response.output_item.done", output_index=index, item=item)
        done = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        add(done, response=final)
        return frames


RESPONSES = ResponsesFormat()


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise Invalid(f"Invalid type for '{where}': expected a string or an array.", where)
    texts: list[str] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            text = part.get("text")
            if not isinstance(text, str):
                raise Invalid(f"Missing required parameter: '{where}[{index}].text'.", where)
            texts.append(text)
        elif kind == "refusal":
            texts.append(str(part.get("refusal", "")))
        elif kind not in ("input_image", "input_file", "input_audio"):
            raise Invalid(
                f"Invalid value: '{kind}'. Supported values are: 'input_text', 'input_image',"
                " 'output_text', 'refusal', 'input_file', 'computer_screenshot', and"
                " 'summary_text'.",
                f"{where}[{index}].type",
            )
    return " ".join(texts)


def _items(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list):
        raise Invalid("Invalid type for 'input': expected a string or an array.", "input")
    return [
        {"type": "message", **item} if isinstance(item, dict) and "type" not in item else item
        for item in value
    ]


def read_responses(body: Any, stored: dict[str, list[Any]]) -> tuple[ResponsesPrompt, bool]:
    """Validate a Responses request as OpenAI does and extract the fake's prompt."""
    if not isinstance(body, dict):
        raise Invalid("We could not parse the JSON body of your request.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Invalid("Missing required parameter: 'model'.", "model")
    items = _items(body.get("input", []))
    previous = body.get("previous_response_id")
    if previous is not None:
        if previous not in stored:
            raise Invalid(
                f"Previous response with id '{previous}' not found.", "previous_response_id"
            )
        items = [*stored[previous], *items]
    prompt = ResponsesPrompt(model=model, items=items, request=body)
    if isinstance(body.get("instructions"), str):
        prompt.input_text.append(body["instructions"])
    calls: set[str] = set()
    for index, item in enumerate(items):
        where = f"input[{index}]"
        kind = item.get("type") if isinstance(item, dict) else None
        prompt.tool_result = None
        if kind == "message":
            if item.get("role") not in _ROLES:
                raise Invalid(
                    f"Invalid value: '{item.get('role')}'. Supported values are: 'assistant',"
                    " 'system', 'developer', and 'user'.",
                    f"{where}.role",
                )
            text = _text(item.get("content"), f"{where}.content")
            prompt.input_text.append(text)
            if item["role"] == "user":
                prompt.last_user_text = text
        elif kind == "function_call":
            if not all(isinstance(item.get(k), str) for k in ("call_id", "name", "arguments")):
                raise Invalid(f"Missing required parameter: '{where}.call_id'.", f"{where}")
            calls.add(item["call_id"])
            prompt.input_text.append(item["arguments"])
        elif kind == "function_call_output":
            if item.get("call_id") not in calls:
                raise Invalid(
                    f"No tool call found for function call output with call_id {item.get('call_id')}.",
                    "input",
                )
            output = item.get("output")
            text = output if isinstance(output, str) else _text(output, f"{where}.output")
            prompt.input_text.append(text)
            prompt.tool_result = text
        elif kind not in ("reasoning", "item_reference"):
            raise Invalid(f"Invalid value: '{kind}'.", f"{where}.type")
    prompt.tools = _tools(body.get("tools"))
    prompt.tool_choice = _tool_choice(body.get("tool_choice"))
    limit = body.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or limit < 16):
        raise Invalid(
            f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got {limit} instead.",
            "max_output_tokens",
        )
    prompt.max_tokens = limit
    text_config = body.get("text")
    text_format = text_config.get("format") if isinstance(text_config, dict) else None
    prompt.json_mode = isinstance(text_format, dict) and text_format.get("type") in (
        "json_object",
        "json_schema",
    )
    prompt.store = stored if body.get("store", True) is not False else None
    return prompt, body.get("stream") is True


def _tools(tools: Any) -> list[ToolSpec]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise Invalid("Invalid type for 'tools': expected an array.", "tools")
    specs: list[ToolSpec] = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise Invalid(f"Missing required parameter: 'tools[{index}].type'.", f"tools[{index}]")
        if tool["type"] != "function":
            continue  # hosted tools (web_search, ...) exist, but the fake never calls them
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise Invalid(
                f"Missing required parameter: 'tools[{index}].name'.", f"tools[{index}].name"
            )
        schema = tool.get("parameters")
        properties = schema.get("properties") if isinstance(schema, dict) else None
        first = (
            next(iter(properties), "input")
            if isinstance(properties, dict) and properties
            else "input"
        )
        specs.append(ToolSpec(name, first))
    return specs


def _tool_choice(choice: Any) -> str:
    if choice is None or choice == "auto":
        return "auto"
    if choice in ("none", "required"):
        return str(choice)
    if isinstance(choice, dict) and choice.get("type") == "function":
        return f"tool:{choice.get('name')}"
    raise Invalid(f"Invalid value for 'tool_choice': {choice!r}.", "tool_choice")


async def responses(ex: Exchange) -> None:
    """``POST /v1/responses``."""
    stored = _STORES.setdefault(ex.upstream, {})
    try:
        prompt, stream = read_responses(ex.json, stored)
    except Invalid as exc:
        await ex.send_json(exc.status, RESPONSES.error_body(exc.status, exc.message, exc.param))
        return
    await respond(ex, RESPONSES, prompt, stream=stream)
