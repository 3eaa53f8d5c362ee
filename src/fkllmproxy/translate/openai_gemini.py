"""OpenAI Chat Completions <-> Gemini ``generateContent``, both ways, as pure functions.

Used by the ``gemini`` and ``vertex`` providers (the same JSON on both services).
Nothing here does I/O: a request body goes in as plain data and comes out as a
``GenerateContentRequest``; a Gemini answer goes in as wire structs and comes out as
OpenAI JSON bytes, or, for a stream, as OpenAI SSE frames fed one event at a time to
``StreamTranslator``.

The mapping, in short:

- ``system``/``developer`` messages -> ``systemInstruction`` (in order, wherever they
  appear); ``user`` -> ``user``; ``assistant`` -> ``model``; ``tool`` ->
  ``functionResponse`` parts of a ``user`` turn. Adjacent turns of one role merge.
- Gemini has no tool-call ids: a ``tool`` message finds its function's name through
  the ``tool_call_id`` of the assistant call it answers, and Gemini pairs calls and
  results by name and order. Ids we hand out are unique per call; when the model
  signs a call (``thoughtSignature``, which thinking models want back next turn) the
  signature rides inside the id, so it survives a client that only keeps ids.
- Images as ``data:`` URLs become ``inlineData``; ``http(s)``/``gs`` URLs become
  ``fileData`` with a MIME type guessed from the name.
- ``tools``/``tool_choice`` -> ``functionDeclarations`` (JSON Schema as given, through
  ``parametersJsonSchema``) and ``functionCallingConfig`` (auto/none/required/named).
- Sampling and limits -> ``generationConfig``; ``response_format`` -> JSON MIME type
  and ``responseJsonSchema``; ``reasoning_effort`` -> a thinking budget, and when the
  caller wants the reasoning back (``include_thoughts``, for Anthropic clients that asked
  for thinking) thought summaries, which come back as ``reasoning_content``.
- Anything the client asked for that Gemini cannot do is a ``BadRequest`` naming the
  field and the provider: nothing is dropped silently.
"""

from __future__ import annotations

import mimetypes
import secrets
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from fkllmproxy.errors import BadRequest, UpstreamUnavailable
from fkllmproxy.translate._common import (
    Unsupported,
    invalid,
    refuse_unknown_chat_fields,
    refuse_untranslated_outputs,
)
from fkllmproxy.wire.gemini import (
    Blob,
    Candidate,
    Content,
    FileData,
    FunctionCall,
    FunctionCallingConfig,
    FunctionDeclaration,
    FunctionResponse,
    GenerateContentRequest,
    GenerateContentResponse,
    GenerationConfig,
    Part,
    ThinkingConfig,
    Tool,
    ToolConfig,
    UsageMetadata,
)

__all__ = [
    "StreamTranslator",
    "finish_reason",
    "from_gemini",
    "make_call_id",
    "signature_of",
    "to_gemini",
    "token_counts",
]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode

_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}

# reasoning_effort -> thinking budget in tokens (Gemini 2.5's own scale).
_THINKING_BUDGETS = {"none": 0, "minimal": 128, "low": 1024, "medium": 8192, "high": 24576}

_SIGNATURE_MARK = "__thought__"


# ================================================================ tool-call ids


def make_call_id(signature: str | None = None, upstream_id: str | None = None) -> str:
    """A tool-call id (Gemini's own when it gave one); a thought signature rides inside.

    The signature is base64; it is stored URL-safe and unpadded so that the id keeps
    to ``[A-Za-z0-9_-]``, which every client (Anthropic's included) accepts.
    """
    ident = upstream_id or "call_" + secrets.token_hex(12)
    if signature:
        ident += _SIGNATURE_MARK + signature.replace("+", "-").replace("/", "_").rstrip("=")
    return ident


def signature_of(call_id: str) -> str | None:
    """The thought signature carried by ``call_id`` (see ``make_call_id``), if any."""
    _, mark, packed = call_id.partition(_SIGNATURE_MARK)
    if not mark or not packed:
        return None
    padding = "=" * (-len(packed) % 4)
    return packed.replace("-", "+").replace("_", "/") + padding


# ================================================================ OpenAI -> Gemini


def to_gemini(
    body: Mapping[str, Any], *, provider: str, include_thoughts: bool = False
) -> GenerateContentRequest:
    """The Gemini request for an OpenAI chat request body (already shape-checked).

    ``include_thoughts`` asks a thinking model for its thought summaries as well.
    """
    unsupported = Unsupported(provider, "Gemini")
    _check_fields(body, unsupported)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages", "expected a non-empty list of messages")
    system, contents = _convert_messages(messages, unsupported)
    if not contents:
        raise BadRequest(
            "'messages' has no user or assistant content: Gemini needs at least one "
            "non-empty user message besides the system prompt.",
            param="messages",
        )
    tools = _convert_tools(body.get("tools"), unsupported)
    tool_config = _convert_tool_choice(body.get("tool_choice"), tools is not None, unsupported)
    return GenerateContentRequest(
        contents=contents,
        system_instruction=Content(parts=system) if system else None,
        tools=tools,
        tool_config=tool_config,
        generation_config=_generation_config(body, unsupported, include_thoughts),
    )


def _check_fields(body: Mapping[str, Any], unsupported: Unsupported) -> None:
    refuse_unknown_chat_fields(body, unsupported)
    refuse_untranslated_outputs(body, unsupported)


def _append(contents: list[Content], role: str, parts: list[Part]) -> None:
    """Add a turn, merging it into the previous one when the role is the same."""
    if not parts:
        return
    if contents and contents[-1].role == role:
        contents[-1].parts.extend(parts)
    else:
        contents.append(Content(role=role, parts=parts))


def _convert_messages(
    messages: list[Any], unsupported: Unsupported
) -> tuple[list[Part], list[Content]]:
    system: list[Part] = []
    contents: list[Content] = []
    call_names: dict[str, str] = {}
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise invalid(where, "expected an object")
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_text_parts(content, f"{where}.content", unsupported))
        elif role == "user":
            _append(contents, "user", _user_parts(content, f"{where}.content", unsupported))
        elif role == "assistant":
            parts = _assistant_parts(message, where, call_names, unsupported)
            _append(contents, "model", parts)
        elif role == "tool":
            _append(contents, "user", [_tool_result(message, where, call_names, unsupported)])
        elif role == "function":
            raise unsupported(f"{where}.role", "legacy 'function' messages; use 'tool'")
        else:
            raise invalid(f"{where}.role", f"unknown role {role!r}")
    return system, contents


def _text_parts(content: Any, where: str, unsupported: Unsupported) -> list[Part]:
    """Text-only content (system, tool and assistant messages)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [Part(text=content)] if content else []
    if not isinstance(content, list):
        raise invalid(where, "expected a string or a list of content parts")
    parts = []
    for j, item in enumerate(content):
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind in ("text", "refusal"):
            parts.extend(_text_part(item, kind, f"{where}[{j}]"))
        elif kind is None:
            raise invalid(f"{where}[{j}]", "expected a content part with a 'type'")
        else:
            raise unsupported(f"{where}[{j}].type", f"{kind!r} parts in this message role")
    return parts


def _text_part(item: Mapping[str, Any], kind: str, where: str) -> list[Part]:
    text = item.get(kind)
    if not isinstance(text, str):
        raise invalid(f"{where}.{kind}", "expected a string")
    return [Part(text=text)] if text else []


def _user_parts(content: Any, where: str, unsupported: Unsupported) -> list[Part]:
    if not isinstance(content, list):
        return _text_parts(content, where, unsupported)
    parts = []
    for j, item in enumerate(content):
        here = f"{where}[{j}]"
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind == "text":
            parts.extend(_text_part(item, kind, here))
        elif kind is None:
            raise invalid(here, "expected a content part with a 'type'")
        elif kind == "image_url":
            parts.append(_image_part(item.get("image_url"), f"{here}.image_url", unsupported))
        elif kind == "input_audio":
            parts.append(_audio_part(item.get("input_audio"), f"{here}.input_audio"))
        elif kind == "file":
            parts.append(_file_part(item.get("file"), f"{here}.file", unsupported))
        else:
            raise unsupported(f"{here}.type", f"content parts of type {kind!r}")
    return parts


def _data_url(url: str, where: str) -> Blob:
    header, comma, data = url.partition(",")
    mime, *parameters = header[5:].split(";")
    if not comma or parameters[-1:] != ["base64"] or not mime or not data:
        raise invalid(where, "a data: URL must look like data:<mime type>;base64,<data>")
    return Blob(mime_type=mime, data=data)


def _image_part(image: Any, where: str, unsupported: Unsupported) -> Part:
    url = image.get("url") if isinstance(image, Mapping) else image
    if not isinstance(url, str) or not url:
        raise invalid(f"{where}.url", "expected an image URL or a data: URL")
    if url.startswith("data:"):
        return Part(inline_data=_data_url(url, f"{where}.url"))
    if url.startswith(("https://", "http://", "gs://")):
        guessed, _ = mimetypes.guess_type(url.split("?", 1)[0])
        mime = guessed if guessed and guessed.startswith("image/") else "image/jpeg"
        return Part(file_data=FileData(file_uri=url, mime_type=mime))
    raise unsupported(f"{where}.url", "images must be data:, http(s):// or gs:// URLs")


def _audio_part(audio: Any, where: str) -> Part:
    if not isinstance(audio, Mapping) or not isinstance(audio.get("data"), str):
        raise invalid(where, "expected {'data': <base64>, 'format': 'wav' | 'mp3'}")
    audio_format = audio.get("format")
    if audio_format not in ("wav", "mp3"):
        raise invalid(f"{where}.format", "expected 'wav' or 'mp3'")
    return Part(inline_data=Blob(mime_type=f"audio/{audio_format}", data=audio["data"]))


def _file_part(file: Any, where: str, unsupported: Unsupported) -> Part:
    if not isinstance(file, Mapping):
        raise invalid(where, "expected an object with 'file_data'")
    if file.get("file_id"):
        raise unsupported(f"{where}.file_id", "OpenAI file ids; send the file as file_data")
    data = file.get("file_data")
    if not isinstance(data, str) or not data:
        raise invalid(f"{where}.file_data", "expected a data: URL")
    if data.startswith("data:"):
        return Part(inline_data=_data_url(data, f"{where}.file_data"))
    filename = file.get("filename")
    guessed = mimetypes.guess_type(filename)[0] if isinstance(filename, str) else None
    if guessed is None:
        raise invalid(f"{where}.file_data", "expected a data: URL (or a filename with a type)")
    return Part(inline_data=Blob(mime_type=guessed, data=data))


def _assistant_parts(
    message: Mapping[str, Any],
    where: str,
    call_names: dict[str, str],
    unsupported: Unsupported,
) -> list[Part]:
    for legacy in ("function_call", "audio"):
        if message.get(legacy) is not None:
            raise unsupported(f"{where}.{legacy}")
    parts = _text_parts(message.get("content"), f"{where}.content", unsupported)
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
        if call.get("type", "function") != "function":
            raise unsupported(f"{here}.type", f"tool calls of type {call.get('type')!r}")
        name = function["name"]
        args = _arguments(function.get("arguments"), f"{here}.function.arguments")
        call_id = call.get("id")
        signature = None
        if isinstance(call_id, str):
            call_names[call_id] = name
            signature = signature_of(call_id)
        parts.append(
            Part(function_call=FunctionCall(name=name, args=args), thought_signature=signature)
        )
    return parts


def _arguments(raw: Any, where: str) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    if not isinstance(raw, str):
        raise invalid(where, "expected a JSON object encoded as a string")
    try:
        value = _decode(raw)
    except msgspec.DecodeError:
        raise invalid(where, "not valid JSON") from None
    if not isinstance(value, dict):
        raise invalid(where, "expected a JSON object")
    return value


def _tool_result(
    message: Mapping[str, Any],
    where: str,
    call_names: Mapping[str, str],
    unsupported: Unsupported,
) -> Part:
    call_id = message.get("tool_call_id")
    name = call_names.get(call_id) if isinstance(call_id, str) else None
    if name is None:
        name = message.get("name") if isinstance(message.get("name"), str) else None
    if name is None:
        raise invalid(
            f"{where}.tool_call_id",
            f"{call_id!r} does not match a tool call of an earlier assistant message",
        )
    parts = _text_parts(message.get("content"), f"{where}.content", unsupported)
    text = "".join(part.text or "" for part in parts)
    return Part(function_response=FunctionResponse(name=name, response=_result_object(text)))


def _result_object(text: str) -> dict[str, Any]:
    """Gemini wants an object: a JSON object result as it is, anything else as output."""
    if text.startswith("{"):
        try:
            value = _decode(text)
        except msgspec.DecodeError:
            value = None
        if isinstance(value, dict):
            return value
    return {"output": text}


def _convert_tools(tools: Any, unsupported: Unsupported) -> list[Tool] | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise invalid("tools", "expected a list")
    if not tools:
        return None
    declarations = []
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
        declarations.append(
            FunctionDeclaration(
                name=function["name"],
                description=function.get("description") or None,
                parameters_json_schema=dict(parameters) if parameters else None,
            )
        )
    return [Tool(function_declarations=declarations)]


def _convert_tool_choice(
    choice: Any, have_tools: bool, unsupported: Unsupported
) -> ToolConfig | None:
    if choice is None:
        return None
    if not have_tools:
        if choice == "none" or choice == "auto":
            return None
        raise invalid("tool_choice", "a tool choice needs 'tools'")
    if choice == "auto":
        mode, names = "AUTO", None
    elif choice == "none":
        mode, names = "NONE", None
    elif choice == "required":
        mode, names = "ANY", None
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        function = choice.get("function")
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise invalid("tool_choice.function", "expected {'name': <function name>}")
        mode, names = "ANY", [function["name"]]
    elif isinstance(choice, Mapping) and isinstance(choice.get("type"), str):
        raise unsupported("tool_choice.type", f"tool choice {choice['type']!r}")
    else:
        raise invalid("tool_choice", "expected 'auto', 'none', 'required' or a function")
    config = FunctionCallingConfig(mode=mode, allowed_function_names=names)
    return ToolConfig(function_calling_config=config)


def _generation_config(
    body: Mapping[str, Any], unsupported: Unsupported, include_thoughts: bool = False
) -> GenerationConfig | None:
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    mime, schema = _response_format(body.get("response_format"), unsupported)
    thinking = None
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in _THINKING_BUDGETS:
            allowed = ", ".join(_THINKING_BUDGETS)
            raise invalid("reasoning_effort", f"expected one of {allowed}")
        budget = _THINKING_BUDGETS[effort]
        thoughts = True if include_thoughts and budget else None
        thinking = ThinkingConfig(thinking_budget=budget, include_thoughts=thoughts)
    config = GenerationConfig(
        stop_sequences=stop or None,
        response_mime_type=mime,
        response_json_schema=schema,
        candidate_count=body.get("n"),
        max_output_tokens=max_tokens,
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        top_k=body.get("top_k"),
        seed=body.get("seed"),
        presence_penalty=body.get("presence_penalty"),
        frequency_penalty=body.get("frequency_penalty"),
        thinking_config=thinking,
    )
    return None if config == GenerationConfig() else config


def _response_format(
    response_format: Any, unsupported: Unsupported
) -> tuple[str | None, dict[str, Any] | None]:
    if response_format is None:
        return None, None
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind == "text":
        return None, None
    if kind == "json_object":
        return "application/json", None
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, Mapping):
            raise invalid("response_format.json_schema", "expected {'name', 'schema'}")
        schema = spec.get("schema")
        if schema is not None and not isinstance(schema, Mapping):
            raise invalid("response_format.json_schema.schema", "expected a JSON Schema object")
        return "application/json", dict(schema) if schema else None
    if isinstance(kind, str):
        raise unsupported("response_format.type", f"response format {kind!r}")
    raise invalid("response_format", "expected {'type': 'text' | 'json_object' | 'json_schema'}")


# ================================================================ Gemini -> OpenAI


def finish_reason(reason: str | None, has_tool_calls: bool) -> str:
    """OpenAI's finish reason for a Gemini one (unknown reasons count as a plain stop)."""
    mapped = _FINISH.get(reason or "STOP", "stop")
    if has_tool_calls and mapped == "stop":
        return "tool_calls"
    return mapped


def token_counts(usage: UsageMetadata | None) -> tuple[int, int, int]:
    """(prompt, completion, cached) tokens; thinking tokens count as completion, as OpenAI's."""
    if usage is None:
        return 0, 0, 0
    completion = usage.candidates_token_count + usage.thoughts_token_count
    prompt = usage.prompt_token_count + usage.tool_use_prompt_token_count
    return prompt, completion, usage.cached_content_token_count


def _openai_usage(usage: UsageMetadata | None) -> dict[str, Any]:
    prompt, completion, cached = token_counts(usage)
    thoughts = usage.thoughts_token_count if usage else 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def _split_parts(content: Content | None) -> tuple[str, list[dict[str, Any]], str]:
    """The visible text, the OpenAI tool calls and the thought summaries of one
    candidate's parts (thoughts come only when the request asked for them)."""
    if content is None:
        return "", [], ""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in content.parts:
        if part.thought:
            if part.text:
                thoughts.append(part.text)
            continue
        if part.text:
            texts.append(part.text)
        elif part.function_call is not None:
            calls.append(_tool_call(part, len(calls)))
    return "".join(texts), calls, "".join(thoughts)


def _tool_call(part: Part, index: int) -> dict[str, Any]:
    call = part.function_call
    assert call is not None
    return {
        "index": index,
        "id": make_call_id(part.thought_signature, call.id),
        "type": "function",
        "function": {"name": call.name, "arguments": _encode(call.args or {}).decode()},
    }


def _completion_id(response_id: str | None) -> str:
    return "chatcmpl-" + (response_id or secrets.token_hex(12))


def from_gemini(
    response: GenerateContentResponse, *, model: str, provider: str, created: int | None = None
) -> tuple[bytes, UsageMetadata | None]:
    """The OpenAI ``chat.completion`` body for a whole Gemini answer, and its usage."""
    if response.error is not None:
        raise UpstreamUnavailable(
            f"provider {provider!r} failed: {response.error.message}", provider=provider
        )
    choices = []
    for candidate in response.candidates:
        text, calls, thoughts = _split_parts(candidate.content)
        for call in calls:
            del call["index"]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text if text or not calls else None,
            "refusal": None,
        }
        if thoughts:  # the field OpenAI-compatible hosts use for reasoning text
            message["reasoning_content"] = thoughts
        if calls:
            message["tool_calls"] = calls
        choices.append(
            {
                "index": candidate.index,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(candidate.finish_reason, bool(calls)),
            }
        )
    if not choices:
        choices.append(_blocked_choice(response, provider))
    body = {
        "id": _completion_id(response.response_id),
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": response.model_version or model,
        "choices": choices,
        "usage": _openai_usage(response.usage_metadata),
    }
    return _encode(body), response.usage_metadata


def _blocked_choice(response: GenerateContentResponse, provider: str) -> dict[str, Any]:
    """A prompt Gemini refused outright: an empty answer finished by the content filter."""
    reason = response.prompt_feedback.block_reason if response.prompt_feedback else None
    if not reason:
        raise UpstreamUnavailable(
            f"provider {provider!r} answered with no candidates", provider=provider
        )
    message = {
        "role": "assistant",
        "content": "",
        "refusal": f"The prompt was blocked by the provider ({reason}).",
    }
    return {"index": 0, "message": message, "logprobs": None, "finish_reason": "content_filter"}


class StreamTranslator:
    """Turns Gemini stream events into OpenAI ``chat.completion.chunk`` SSE frames.

    Feed each decoded event to ``feed``; call ``finish`` when the upstream stream ends.
    The role chunk comes first, then text and tool-call deltas as they arrive, one
    finish chunk per choice, the usage chunk when ``include_usage`` asked for it, and
    ``[DONE]``. A stream that ends before every choice finished raises
    ``UpstreamUnavailable`` from ``finish``, so the client sees an error, not a
    truncated answer passed off as complete. ``usage`` is the latest usage reported.
    """

    def __init__(
        self, *, model: str, provider: str, include_usage: bool, created: int | None = None
    ) -> None:
        self.usage: UsageMetadata | None = None
        self._model = model
        self._provider = provider
        self._include_usage = include_usage
        self._created = created if created is not None else int(time.time())
        self._id: str | None = None
        self._calls: dict[int, int] = {}
        self._finished: set[int] = set()

    def _frame(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
            **extra,
        }
        return b"data: " + _encode(chunk) + b"\n\n"

    def _delta(self, index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._frame([choice])

    def feed(self, event: GenerateContentResponse) -> list[bytes]:
        """The OpenAI frames for one Gemini event (possibly none)."""
        if event.error is not None:
            raise UpstreamUnavailable(
                f"provider {self._provider!r} failed mid-stream: {event.error.message}",
                provider=self._provider,
            )
        if event.usage_metadata is not None:
            self.usage = event.usage_metadata
        if self._id is None:
            self._id = _completion_id(event.response_id)
            self._model = event.model_version or self._model
        frames: list[bytes] = []
        for candidate in event.candidates:
            frames.extend(self._candidate(candidate.index, candidate))
        if not event.candidates and event.prompt_feedback and event.prompt_feedback.block_reason:
            if 0 not in self._calls:
                self._calls[0] = 0
                frames.append(self._delta(0, {"role": "assistant", "content": ""}))
            if 0 not in self._finished:
                self._finished.add(0)
                frames.append(self._delta(0, {}, "content_filter"))
        return frames

    def _candidate(self, index: int, candidate: Candidate) -> list[bytes]:
        frames = []
        if index not in self._calls:
            self._calls[index] = 0
            frames.append(self._delta(index, {"role": "assistant", "content": ""}))
        text, calls, thoughts = _split_parts(candidate.content)
        if thoughts:
            frames.append(self._delta(index, {"reasoning_content": thoughts}))
        if text:
            frames.append(self._delta(index, {"content": text}))
        if calls:
            for call in calls:
                call["index"] += self._calls[index]
            self._calls[index] += len(calls)
            frames.append(self._delta(index, {"tool_calls": calls}))
        if candidate.finish_reason and index not in self._finished:
            self._finished.add(index)
            reason = finish_reason(candidate.finish_reason, self._calls[index] > 0)
            frames.append(self._delta(index, {}, reason))
        return frames

    def finish(self) -> list[bytes]:
        """The closing frames; raises if the upstream stopped before finishing."""
        if not self._calls:
            raise UpstreamUnavailable(
                f"provider {self._provider!r} ended the stream without an answer",
                provider=self._provider,
            )
        if set(self._calls) - self._finished:
            raise UpstreamUnavailable(
                f"provider {self._provider!r} ended the stream before the answer was complete",
                provider=self._provider,
            )
        frames = []
        if self._include_usage:
            frames.append(self._frame([], usage=_openai_usage(self.usage)))
        frames.append(b"data: [DONE]\n\n")
        return frames
