"""Cohere's v2 wire format: ``POST /v2/chat`` and ``POST /v2/embed``.

Written from Cohere's v2 API reference (Chat, Chat with streaming, Embed, Errors) and
the ``cohere-python`` SDK's v2 types, not from the proxy's translator:

- Auth: ``Authorization: Bearer <key>``; without it a 401.
- Chat request: ``model`` and ``messages`` required ("a model parameter is required
  for this endpoint."); the fields of ``V2ChatRequest`` (``tools``, ``strict_tools``,
  ``documents``, ``citation_options``, ``response_format``, ``safety_mode``,
  ``max_tokens``, ``stop_sequences``, ``temperature``, ``seed``, ``frequency_penalty``,
  ``presence_penalty``, ``k``, ``p``, ``logprobs``, ``tool_choice``, ``thinking``,
  ``priority``, ``stream``) and no others: the fake refuses an unknown field, so a
  proxy that forwards an OpenAI name (``top_p``, ``stop``, ``n``) fails here.
- ``ChatMessageV2`` by ``role``: ``system`` (text; "system turn must be the first in
  the list"), ``user`` (a string or ``text``/``image_url`` blocks; "message must not be
  empty in a turn"), ``assistant`` (``content``, ``tool_plan``, ``tool_calls`` of
  ``ToolCallV2``: ``id``, ``type: "function"``, ``function.name``, ``function.arguments``
  as a JSON string, ``citations``), ``tool`` (``tool_call_id`` and a string or
  ``text``/``document`` blocks; the fake also insists that the id is one an earlier
  assistant turn called, as a tool result without its call means nothing).
- ``ToolV2``: ``{"type": "function", "function": {"name", "description", "parameters"}}``
  with ``parameters`` a JSON Schema object (required); ``tool_choice`` ``REQUIRED`` or
  ``NONE``; ``response_format`` ``text`` or ``json_object`` (+ ``json_schema``);
  ``thinking`` ``{"type": "enabled" | "disabled", "token_budget"}``.
- ``V2ChatResponse``: ``id``, ``finish_reason`` (``COMPLETE``, ``STOP_SEQUENCE``,
  ``MAX_TOKENS``, ``TOOL_CALL``, ``ERROR``, ``TIMEOUT``), ``message`` (``role``,
  ``content`` blocks ``text``/``thinking``, ``tool_plan``, ``tool_calls``,
  ``citations``), ``usage`` (``billed_units`` and ``tokens``, each ``input_tokens`` and
  ``output_tokens``; ``tokens.input_tokens`` counts the prompt template Cohere adds, so
  here it is the billed count plus ``TEMPLATE_TOKENS``; ``cached_tokens``).
- Streams: ``event: <type>`` and ``data: {"type": <type>, ...}`` per event, in the
  order the streaming guide gives: ``message-start`` (``id``, ``delta.message.role``),
  per content block ``content-start`` (``index``, ``delta.message.content.type``),
  ``content-delta`` (``delta.message.content.text`` or ``.thinking``), ``content-end``;
  for tool calls ``tool-plan-delta`` (``delta.message.tool_plan``), then per call
  ``tool-call-start`` (``delta.message.tool_calls`` with ``id`` and ``function.name``),
  ``tool-call-delta`` (``delta.message.tool_calls.function.arguments`` pieces),
  ``tool-call-end``; ``citation-start``/``citation-end`` for a cited tool result; last
  ``message-end`` (``delta.finish_reason``, ``delta.usage``; ``delta.error`` when the
  generation failed, which is how ``error-midstream`` ends).
- Embed: ``model``, ``input_type`` (required for v3+ models: "invalid request: valid
  input_type must be provided with the provided model"), ``texts`` (at most 96),
  ``embedding_types``, ``output_dimension``, ``truncate``; the answer is
  ``EmbedByTypeResponse`` (``embeddings`` by type, ``texts``, ``meta.billed_units``).
- Errors: ``{"id": ..., "message": ...}`` with the status.
"""

from __future__ import annotations

import base64
import struct
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

__all__ = ["COHERE", "TEMPLATE_TOKENS", "CohereFormat", "chat", "embed", "read_chat"]

_encode = msgspec.json.encode
TEMPLATE_TOKENS = 7  # what ``tokens.input_tokens`` adds to the billed input tokens
_CHAT_FIELDS = frozenset(
    {
        "model", "messages", "tools", "strict_tools", "documents", "citation_options",
        "response_format", "safety_mode", "max_tokens", "stop_sequences", "temperature",
        "seed", "frequency_penalty", "presence_penalty", "k", "p", "logprobs",
        "tool_choice", "thinking", "priority", "stream",
    }
)  # fmt: skip
_MESSAGE_FIELDS = {
    "system": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_plan", "tool_calls", "citations"}),
    "tool": frozenset({"role", "tool_call_id", "content"}),
}
_EMBED_FIELDS = frozenset(
    {
        "model", "input_type", "texts", "images", "inputs", "max_tokens", "output_dimension",
        "embedding_types", "truncate", "priority",
    }
)  # fmt: skip
_INPUT_TYPES = frozenset(
    {"search_document", "search_query", "classification", "clustering", "image"}
)
_EMBEDDING_TYPES = frozenset({"float", "int8", "uint8", "binary", "ubinary", "base64"})
_FINISH = {
    "stop": "COMPLETE",
    "stop_sequence": "STOP_SEQUENCE",
    "length": "MAX_TOKENS",
    "tool_calls": "TOOL_CALL",
    # Cohere has no content-filter finish: its safety modes make the model refuse in text.
    "blocked_prompt": "COMPLETE",
    "blocked_output": "COMPLETE",
}
_REFUSAL = "I'm sorry, but I can't help with that request."


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + _encode({"type": kind, **data}) + b"\n\n"


class CohereFormat:
    """Renders answers as ``V2ChatResponse`` bodies and as Cohere's typed stream events."""

    def __init__(self) -> None:
        self._ids = 0

    def next_id(self) -> str:
        self._ids += 1
        return f"fake-cohere-{self._ids:06d}"

    def error_body(self, status: int, message: str) -> bytes:
        return _encode({"id": self.next_id(), "message": message})

    def midstream_error(self) -> bytes:
        delta = {
            "error": "internal server error, this has been reported to our developers "
            "(error-midstream)",
            "finish_reason": "ERROR",
        }
        return _event("message-end", {"delta": delta})

    def _usage(self, answer: Answer) -> dict[str, Any]:
        billed = {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens}
        tokens = {
            "input_tokens": answer.input_tokens + TEMPLATE_TOKENS,
            "output_tokens": answer.output_tokens,
        }
        usage: dict[str, Any] = {"billed_units": billed, "tokens": tokens}
        if answer.cached_tokens:
            usage["cached_tokens"] = answer.cached_tokens
        return usage

    def _text(self, answer: Answer) -> str:
        return _REFUSAL if answer.finish.startswith("blocked") else answer.text

    def _calls(self, answer: Answer) -> list[dict[str, Any]]:
        return [
            {
                "id": f"{call.name}_{self.next_id()}",
                "type": "function",
                "function": {"name": call.name, "arguments": _encode(call.arguments).decode()},
            }
            for call in answer.tool_calls
        ]

    def _plan(self, answer: Answer) -> str:
        names = " and ".join(call.name for call in answer.tool_calls)
        return f"I will use {names} to answer this."

    def _citations(self, prompt: Prompt, text: str) -> list[dict[str, Any]]:
        """A tool result's answer cites the tool output, as Cohere cites tool results."""
        if prompt.tool_result is None or not text:
            return []
        source = {
            "type": "tool",
            "id": "tool_output:0",
            "tool_output": {"text": prompt.tool_result},
        }
        return [
            {
                "start": 0,
                "end": len(text),
                "text": text,
                "sources": [source],
                "type": "TEXT_CONTENT",
            }
        ]

    def render(self, answer: Answer, prompt: Prompt) -> bytes:
        message: dict[str, Any] = {"role": "assistant"}
        content: list[dict[str, Any]] = []
        if answer.thinking:
            content.append({"type": "thinking", "thinking": answer.thinking})
        if answer.tool_calls:
            message["tool_plan"] = self._plan(answer)
            message["tool_calls"] = self._calls(answer)
        else:
            text = self._text(answer)
            content.append({"type": "text", "text": text})
            citations = self._citations(prompt, text)
            if citations:
                message["citations"] = citations
        if content:
            message["content"] = content
        body = {
            "id": self.next_id(),
            "message": message,
            "finish_reason": _FINISH[answer.finish],
            "usage": self._usage(answer),
        }
        return _encode(body)

    def stream_frames(self, answer: Answer, prompt: Prompt) -> list[bytes]:
        role = {"message": {"role": "assistant"}}
        frames = [_event("message-start", {"id": self.next_id(), "delta": role})]
        index = 0
        if answer.thinking:
            frames.extend(self._block(index, "thinking", [answer.thinking]))
            index += 1
        if answer.tool_calls:
            plan = self._plan(answer).split(" ")
            for n, word in enumerate(plan):
                piece = word if n == 0 else " " + word
                delta = {"message": {"tool_plan": piece}}
                frames.append(_event("tool-plan-delta", {"delta": delta}))
            for n, call in enumerate(self._calls(answer)):
                frames.extend(self._call(n, call))
        else:
            text = self._text(answer)
            pieces = [text] if answer.finish.startswith("blocked") else answer.text_pieces()
            frames.extend(self._block(index, "text", pieces or [""]))
            for n, citation in enumerate(self._citations(prompt, text)):
                cited: dict[str, Any] = {"message": {"citations": citation}}
                frames.append(_event("citation-start", {"index": n, "delta": cited}))
                frames.append(_event("citation-end", {"index": n}))
        end = {"finish_reason": _FINISH[answer.finish], "usage": self._usage(answer)}
        frames.append(_event("message-end", {"delta": end}))
        return frames

    def _block(self, index: int, kind: str, pieces: list[str]) -> list[bytes]:
        start = {"message": {"content": {"type": kind, kind: ""}}}
        frames = [_event("content-start", {"index": index, "delta": start})]
        for piece in pieces:
            delta = {"message": {"content": {kind: piece}}}
            frames.append(_event("content-delta", {"index": index, "delta": delta}))
        frames.append(_event("content-end", {"index": index}))
        return frames

    def _call(self, index: int, call: dict[str, Any]) -> list[bytes]:
        arguments = call["function"]["arguments"]
        opened = {
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        frames = [
            _event(
                "tool-call-start", {"index": index, "delta": {"message": {"tool_calls": opened}}}
            )
        ]
        half = len(arguments) // 2
        for piece in (arguments[:half], arguments[half:]):
            delta = {"message": {"tool_calls": {"function": {"arguments": piece}}}}
            frames.append(_event("tool-call-delta", {"index": index, "delta": delta}))
        frames.append(_event("tool-call-end", {"index": index}))
        return frames


COHERE = CohereFormat()


def _invalid(message: str, status: int = 400) -> Invalid:
    return Invalid(message, status=status)


def _unknown(obj: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    for name in obj:
        if name not in allowed:
            raise _invalid(
                f"invalid request: unknown field: parameter {where}{name} is not a valid field"
            )


def _blocks_text(content: Any, kinds: frozenset[str], where: str) -> tuple[str, int]:
    """(the text of ``content``, how many images) for a string or a list of blocks."""
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        raise _invalid(
            f"invalid request: {where}.content must be a string or a list of content blocks"
        )
    texts, images = [], 0
    for n, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in kinds:
            raise _invalid(f"invalid request: {where}.content[{n}].type {kind!r} is not supported")
        if kind == "image_url":
            image = block.get("image_url")
            url = image.get("url") if isinstance(image, dict) else None
            if not isinstance(url, str) or not url.startswith(("data:", "http://", "https://")):
                raise _invalid(
                    f"invalid request: {where}.content[{n}].image_url.url must be a data URI or a URL"
                )
            images += 1
        elif kind == "document":
            texts.append(str(block.get("document")))
        else:
            value = block.get(kind)
            if not isinstance(value, str):
                raise _invalid(f"invalid request: {where}.content[{n}].{kind} must be a string")
            texts.append(value)
    return " ".join(texts), images


def _read_calls(calls: Any, where: str, called: set[str]) -> list[str]:
    if not isinstance(calls, list):
        raise _invalid(f"invalid request: {where}.tool_calls must be a list")
    texts = []
    for n, call in enumerate(calls):
        here = f"{where}.tool_calls[{n}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call.get("id") if isinstance(call, dict) else None, str):
            raise _invalid(f"invalid request: {here}.id is required")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _invalid(f"invalid request: {here}.function.name is required")
        arguments = function.get("arguments", "{}")
        try:
            parsed = msgspec.json.decode(arguments) if isinstance(arguments, str) else None
        except msgspec.DecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise _invalid(
                f"invalid request: {here}.function.arguments must be a JSON object string"
            )
        called.add(call["id"])
        texts.append(" ".join(str(v) for v in parsed.values()))
    return texts


def _read_messages(messages: Any, prompt: Prompt) -> None:
    if not isinstance(messages, list) or not messages:
        raise _invalid("invalid request: messages must not be empty")
    called: set[str] = set()
    for n, message in enumerate(messages):
        where = f"messages[{n}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in _MESSAGE_FIELDS:
            raise _invalid(
                f"invalid request: {where}.role must be one of system, user, assistant, tool"
            )
        _unknown(message, _MESSAGE_FIELDS[role], f"{where}.")
        content = message.get("content")
        prompt.tool_result = None
        if role == "system":
            if n != 0:
                raise _invalid("system turn must be the first in the list")
            text, _ = _blocks_text(content, frozenset({"text"}), where)
            prompt.input_text.append(text)
        elif role == "user":
            text, images = _blocks_text(content, frozenset({"text", "image_url"}), where)
            if not text.strip() and not images:
                raise _invalid("message must not be empty in a turn")
            prompt.input_text.append(text)
            prompt.last_user_text = text
        elif role == "assistant":
            calls = message.get("tool_calls")
            texts = _read_calls(calls, where, called) if calls is not None else []
            if content is not None:
                texts.append(_blocks_text(content, frozenset({"text", "thinking"}), where)[0])
            if isinstance(message.get("tool_plan"), str):
                texts.append(message["tool_plan"])
            if not calls and not "".join(texts).strip():
                raise _invalid("message must not be empty in a turn")
            prompt.input_text.extend(texts)
        else:
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in called:
                raise _invalid(
                    f"invalid request: {where}.tool_call_id {call_id!r} does not match a tool "
                    "call of an earlier assistant message"
                )
            text, _ = _blocks_text(content, frozenset({"text", "document"}), where)
            prompt.input_text.append(text)
            prompt.tool_result = text


def _read_tools(body: dict[str, Any], prompt: Prompt) -> None:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise _invalid("invalid request: tools must be a list")
    for n, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise _invalid(f"invalid request: tools[{n}].type must be 'function'")
        _unknown(tool, frozenset({"type", "function"}), f"tools[{n}].")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _invalid(f"invalid request: tools[{n}].function.name is required")
        _unknown(
            function, frozenset({"name", "description", "parameters"}), f"tools[{n}].function."
        )
        parameters = function.get("parameters")
        if not isinstance(parameters, dict):
            raise _invalid(f"invalid request: tools[{n}].function.parameters is required")
        properties = parameters.get("properties")
        first = next(iter(properties), "input") if isinstance(properties, dict) else "input"
        prompt.tools.append(ToolSpec(function["name"], first))
    choice = body.get("tool_choice")
    if choice is not None:
        if choice not in ("REQUIRED", "NONE"):
            raise _invalid("invalid request: tool_choice must be one of REQUIRED, NONE")
        if not tools:
            raise _invalid("invalid request: tool_choice requires tools to be specified")
        prompt.tool_choice = "required" if choice == "REQUIRED" else "none"


def read_chat(body: Any) -> tuple[Prompt, bool]:
    """Validate a ``/v2/chat`` body as Cohere does; the fake's ``Prompt`` and ``stream``."""
    if not isinstance(body, dict):
        raise _invalid("invalid request: the body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("a model parameter is required for this endpoint.")
    _unknown(body, _CHAT_FIELDS, "")
    prompt = Prompt(model=model)
    _read_messages(body.get("messages"), prompt)
    _read_tools(body, prompt)
    limit = body.get("max_tokens")
    if limit is not None:
        if not isinstance(limit, int) or limit < 1:
            raise _invalid("invalid request: max_tokens must be a positive integer")
        prompt.max_tokens = limit
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or len(stops) > 5:
        raise _invalid("invalid request: stop_sequences must be a list of at most 5 strings")
    prompt.stop = [str(stop) for stop in stops]
    response_format = body.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind not in ("text", "json_object"):
            raise _invalid("invalid request: response_format.type must be one of text, json_object")
        prompt.json_mode = kind == "json_object"
    thinking = body.get("thinking")
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind not in ("enabled", "disabled"):
            raise _invalid("invalid request: thinking.type must be one of enabled, disabled")
        prompt.thinking = kind == "enabled"
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _invalid("invalid request: stream must be a boolean")
    return prompt, stream


def _authorized(ex: Exchange) -> bool:
    return ex.request.headers.get("authorization", "").startswith("Bearer ")


async def chat(ex: Exchange) -> None:
    """``POST /v2/chat``."""
    try:
        if not _authorized(ex):
            raise _invalid("no api key supplied", status=401)
        prompt, stream = read_chat(ex.json)
    except Invalid as exc:
        await ex.send_json(exc.status, COHERE.error_body(exc.status, exc.message))
        return
    await respond(ex, COHERE, prompt, stream=stream)


def _read_embed(body: Any) -> tuple[str, list[str], list[str], int]:
    if not isinstance(body, dict):
        raise _invalid("invalid request: the body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("a model parameter is required for this endpoint.")
    _unknown(body, _EMBED_FIELDS, "")
    if body.get("input_type") not in _INPUT_TYPES:
        raise _invalid("invalid request: valid input_type must be provided with the provided model")
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise _invalid("invalid request: texts must be a non-empty list of strings")
    if len(texts) > 96:
        raise _invalid(f"invalid request: texts must have at most 96 items, got {len(texts)}")
    types = body.get("embedding_types") or ["float"]
    if not isinstance(types, list) or not set(types) <= _EMBEDDING_TYPES:
        raise _invalid(
            "invalid request: embedding_types must be a list of float, int8, uint8, binary, ubinary, base64"
        )
    dimension = body.get("output_dimension", 8)
    if not isinstance(dimension, int) or dimension < 1:
        raise _invalid("invalid request: output_dimension must be a positive integer")
    return model, texts, types, dimension


def _encoded(vector: list[float], kind: str) -> Any:
    if kind == "float":
        return vector
    if kind == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    if kind in ("int8", "binary"):
        return [max(-128, min(127, round(v * 127))) for v in vector]
    return [max(0, min(255, round((v + 1) * 127.5))) for v in vector]


async def embed(ex: Exchange) -> None:
    """``POST /v2/embed``: one deterministic vector per text, in each type asked for."""
    try:
        if not _authorized(ex):
            raise _invalid("no api key supplied", status=401)
        model, texts, types, dimension = _read_embed(ex.json)
    except Invalid as exc:
        await ex.send_json(exc.status, COHERE.error_body(exc.status, exc.message))
        return
    if await run_fault(ex, COHERE, ex.upstream.behaviour_for(model)):
        return
    vectors = [embedding_vector(text, dimension) for text in texts]
    answer = {
        "id": COHERE.next_id(),
        "embeddings": {kind: [_encoded(v, kind) for v in vectors] for kind in types},
        "texts": texts,
        "meta": {
            "api_version": {"version": "2"},
            "billed_units": {"input_tokens": max(1, sum(count_tokens(t) for t in texts))},
        },
        "response_type": "embeddings_by_type",
    }
    await ex.send_json(200, _encode(answer))
