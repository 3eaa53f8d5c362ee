"""Cohere v2 chat (``POST /v2/chat``) <-> the canonical conversation, provider side only.

There is no inbound Cohere API: a conversation goes up as a ``wire.cohere.ChatRequest``,
a whole answer comes back as an ``Answer``, a stream as ``StreamEvent``s. Nothing here
does I/O.

The mapping, in short:

- ``system``/``developer`` turns -> one ``system`` message first (Cohere wants the
  system turn first; several are joined by blank lines, in order, wherever they were);
  ``user`` -> ``user`` (text, and images as Cohere's ``image_url`` block: a ``data:``
  URI or a web URL, with ``detail``); ``assistant`` -> ``assistant``, its text in
  ``tool_plan`` when it calls tools (the reflection Cohere writes before calls, which
  comes back the same way) and its reasoning as ``thinking`` blocks (reasoning with no
  text, only a signature or redacted data, has no place in Cohere and is left out);
  each tool result -> a ``tool`` message by ``tool_call_id`` (a failed one as a
  ``document`` block ``{"error": text}``, since Cohere has no error flag).
- ``tools`` -> function ``tools``; tool choice ``none``/``required`` -> ``NONE``/
  ``REQUIRED``; a named tool -> ``REQUIRED`` with only that tool offered.
- ``max_tokens``, ``stop``, ``temperature``, ``top_p`` (``p``), ``top_k`` (``k``),
  ``seed``, the penalties as they are; a JSON response format -> ``json_object`` (with
  ``json_schema`` for a schema); reasoning -> ``thinking`` (effort ``none`` or a zero
  budget disables it), whose text comes back as ``Reasoning``.
- Finish reasons: ``COMPLETE``/``STOP_SEQUENCE`` -> ``stop``, ``MAX_TOKENS`` -> ``length``,
  ``TOOL_CALL`` -> ``tool_calls``; ``ERROR`` and ``TIMEOUT`` are upstream failures.
- Usage: ``billed_units`` (what Cohere charges for), else ``tokens``; ``cached_tokens``.
- Anything asked for that Cohere cannot do (several candidates, log probabilities,
  non-text output, documents and audio, content the client's codec left ``Unmapped``,
  a field it left in ``extra``) is a ``BadRequest`` naming the field (the client's own
  path for ``Unmapped`` content) and the provider: nothing is dropped silently but
  the cache hints (Cohere caches by itself) and ``user``/``metadata``, which change
  nothing Cohere would do.
"""

from __future__ import annotations

import secrets

import msgspec

from fkllmproxy.errors import BadRequest, UpstreamTimeout, UpstreamUnavailable
from fkllmproxy.translate._common import Unsupported, invalid, split_frame
from fkllmproxy.translate.canonical import (
    Answer,
    Conversation,
    Document,
    Finish,
    FinishReason,
    Image,
    Part,
    Reasoning,
    ReasoningConfig,
    ReasoningDelta,
    Refusal,
    Start,
    StreamEvent,
    Text,
    TextDelta,
    ToolArgsDelta,
    ToolCallStart,
    ToolChoice,
    ToolResult,
    Unmapped,
    Usage,
)
from fkllmproxy.translate.canonical import ResponseFormat as CanonicalResponseFormat
from fkllmproxy.translate.canonical import Tool as CanonicalTool
from fkllmproxy.translate.canonical import ToolCall as CanonicalToolCall
from fkllmproxy.wire.cohere import (
    CallFunction,
    ChatRequest,
    ContentBlock,
    ImageUrl,
    Message,
    ResponseFormat,
    Thinking,
    Tool,
    ToolCall,
    ToolFunction,
    decode_chat,
    decode_event,
)
from fkllmproxy.wire.cohere import StreamEvent as CohereEvent
from fkllmproxy.wire.cohere import Usage as CohereUsage

__all__ = [
    "StreamDecoder",
    "decode_answer",
    "encode_request",
    "finish_reason",
    "usage_of",
]

_FINISH: dict[str, FinishReason] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}

# Reasoning effort -> thinking token budget.
_THINKING_BUDGETS = {"minimal": 128, "low": 1024, "medium": 8192, "high": 24576}

_IMAGE_SCHEMES = ("data:", "https://", "http://")
_NO_PARAMETERS = {"type": "object", "properties": {}}

# What a refused request field is called in the client's API, where it is not Chat's name.
_FIELD_NAMES = {
    "gemini": {
        "n": "generationConfig.candidateCount",
        "logprobs": "generationConfig.responseLogprobs",
        "top_logprobs": "generationConfig.logprobs",
        "modalities": "generationConfig.responseModalities",
        "reasoning_effort": "generationConfig.thinkingConfig",
    },
    "responses": {"reasoning_effort": "reasoning.effort"},
    "messages": {"reasoning_effort": "thinking"},
}


def _field(conversation: Conversation, name: str) -> str:
    return _FIELD_NAMES.get(conversation.api, {}).get(name, name)


# ================================================================ the request


def encode_request(conversation: Conversation, *, model: str, provider: str) -> ChatRequest:
    """The Cohere request for ``conversation``; ``stream`` is set when it streams."""
    unsupported = Unsupported(provider, "Cohere")
    _refuse_what_cohere_cannot_do(conversation, unsupported)
    if not conversation.messages:
        raise invalid("messages", "expected a non-empty list of messages")
    messages = _messages(conversation, unsupported)
    if not any(message.role != "system" for message in messages):
        raise BadRequest(
            "'messages' has no user or assistant content: Cohere needs at least one "
            "non-empty user message besides the system prompt.",
            param="messages",
        )
    tools, tool_choice = _tools(conversation.tools, conversation.tool_choice)
    return ChatRequest(
        model=model,
        messages=messages,
        stream=True if conversation.stream else None,
        tools=tools,
        tool_choice=tool_choice,
        response_format=_response_format(conversation.response_format),
        max_tokens=conversation.max_tokens,
        stop_sequences=conversation.stop or None,
        temperature=conversation.temperature,
        seed=conversation.seed,
        frequency_penalty=conversation.frequency_penalty,
        presence_penalty=conversation.presence_penalty,
        k=conversation.top_k,
        p=conversation.top_p,
        thinking=_thinking(conversation.reasoning, _field(conversation, "reasoning_effort")),
    )


def _refuse_what_cohere_cannot_do(conversation: Conversation, unsupported: Unsupported) -> None:
    for name in conversation.extra:
        raise unsupported(name)
    if conversation.candidate_count not in (None, 1):
        raise unsupported(_field(conversation, "n"), "Cohere returns one answer per request")
    if conversation.logprobs:
        raise unsupported(
            _field(conversation, "logprobs"), "token log probabilities are not translated"
        )
    if conversation.top_logprobs is not None:
        raise unsupported(
            _field(conversation, "top_logprobs"), "token log probabilities are not translated"
        )
    modalities = conversation.modalities
    if modalities is not None and modalities != ["text"]:
        raise unsupported(_field(conversation, "modalities"), "only text output is translated")


def _kind(part: Part) -> str:
    """A part's type as errors name it (``image``, ``document``, ``audio``, ...)."""
    if isinstance(part, Document) and (part.media_type or "").startswith("audio/"):
        return "audio"
    return str(part.__struct_config__.tag)


def _unfit(part: Part, where: str, what: str, unsupported: Unsupported) -> BadRequest:
    """The 400 for a part Cohere cannot take at ``where``: content the client's codec
    could not map is named by its own path and kind."""
    if isinstance(part, Unmapped):
        return unsupported(part.where, part.kind)
    return unsupported(f"{where}.type", what)


def _messages(conversation: Conversation, unsupported: Unsupported) -> list[Message]:
    system: list[str] = []
    out: list[Message] = []
    for i, message in enumerate(conversation.messages):
        where = f"messages[{i}]"
        if message.role in ("system", "developer"):
            text = _text(message.parts, f"{where}.content", unsupported)
            if text:
                system.append(text)
        elif message.role == "user":
            out.extend(_user(message.parts, where, unsupported))
        elif message.role == "assistant":
            assistant = _assistant(message.parts, where, unsupported)
            if assistant is not None:
                out.append(assistant)
        else:
            out.extend(_tool_turn(message.parts, where, unsupported))
    if system:
        out.insert(0, Message(role="system", content="\n\n".join(system)))
    return out


def _text(parts: list[Part], where: str, unsupported: Unsupported) -> str:
    """Text-only content (system turns) as one string."""
    texts = []
    for j, part in enumerate(parts):
        if not isinstance(part, Text | Refusal):
            raise _unfit(
                part, f"{where}[{j}]", f"{_kind(part)!r} parts in this message role", unsupported
            )
        texts.append(part.text)
    return "".join(texts)


def _user(parts: list[Part], where: str, unsupported: Unsupported) -> list[Message]:
    """The user turn, after a ``tool`` message for each tool result in it (Anthropic
    answers calls in a user turn)."""
    results: list[Message] = []
    blocks: list[ContentBlock] = []
    for j, part in enumerate(parts):
        here = f"{where}.content[{j}]"
        if isinstance(part, Text):
            if part.text:
                blocks.append(ContentBlock(type="text", text=part.text))
        elif isinstance(part, Image):
            blocks.append(_image(part, here, unsupported))
        elif isinstance(part, ToolResult):
            results.append(_tool_result(part, here, unsupported))
        else:
            raise _unfit(part, here, f"content parts of type {_kind(part)!r}", unsupported)
    if not blocks:
        return results
    if len(blocks) == 1 and blocks[0].type == "text":
        return [*results, Message(role="user", content=blocks[0].text)]
    return [*results, Message(role="user", content=blocks)]


def _image(image: Image, where: str, unsupported: Unsupported) -> ContentBlock:
    if image.data is not None:
        url = f"data:{image.media_type or 'application/octet-stream'};base64,{image.data}"
    elif image.url:
        url = image.url
    else:
        raise invalid(f"{where}.image_url.url", "expected an image URL or a data: URL")
    if not url.startswith(_IMAGE_SCHEMES):
        raise unsupported(f"{where}.image_url.url", "images must be data: or http(s):// URLs")
    if image.detail is not None and image.detail not in ("auto", "low", "high"):
        raise invalid(f"{where}.image_url.detail", "expected 'auto', 'low' or 'high'")
    return ContentBlock(type="image_url", image_url=ImageUrl(url=url, detail=image.detail))


def _assistant(parts: list[Part], where: str, unsupported: Unsupported) -> Message | None:
    texts: list[str] = []
    thinking: list[ContentBlock] = []
    calls: list[ToolCall] = []
    for j, part in enumerate(parts):
        if isinstance(part, Text | Refusal):
            texts.append(part.text)
        elif isinstance(part, Reasoning):
            if part.text:  # a signature or redacted data alone has no place in Cohere
                thinking.append(ContentBlock(type="thinking", thinking=part.text))
        elif isinstance(part, CanonicalToolCall):
            calls.append(_tool_call(part, f"{where}.tool_calls[{len(calls)}]"))
        else:
            raise _unfit(
                part,
                f"{where}.content[{j}]",
                f"{_kind(part)!r} parts in this message role",
                unsupported,
            )
    text = "".join(texts)
    if calls:
        return Message(
            role="assistant", content=thinking or None, tool_calls=calls, tool_plan=text or None
        )
    if not text:
        return None  # Cohere refuses an empty turn; an empty answer adds nothing to replay
    if thinking:
        return Message(role="assistant", content=[*thinking, ContentBlock(type="text", text=text)])
    return Message(role="assistant", content=text)


def _tool_call(call: CanonicalToolCall, where: str) -> ToolCall:
    if not call.id:
        raise invalid(f"{where}.id", "expected the tool call's id")
    return ToolCall(
        id=call.id,
        type="function",
        function=CallFunction(
            name=call.name, arguments=_arguments(call.arguments, f"{where}.function.arguments")
        ),
    )


def _arguments(raw: str, where: str) -> str:
    """The arguments as Cohere wants them: a JSON object, encoded as a string."""
    if not raw:
        return "{}"
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise invalid(where, "not valid JSON") from None
    if not isinstance(value, dict):
        raise invalid(where, "expected a JSON object")
    return raw


def _tool_turn(parts: list[Part], where: str, unsupported: Unsupported) -> list[Message]:
    """One ``tool`` message per result (a turn of one result is named as the message)."""
    out = []
    for j, part in enumerate(parts):
        here = where if len(parts) == 1 else f"{where}.content[{j}]"
        if not isinstance(part, ToolResult):
            raise _unfit(
                part,
                f"{where}.content[{j}]",
                f"{_kind(part)!r} parts in this message role",
                unsupported,
            )
        out.append(_tool_result(part, here, unsupported))
    return out


def _tool_result(result: ToolResult, where: str, unsupported: Unsupported) -> Message:
    if not result.call_id:
        raise invalid(f"{where}.tool_call_id", "expected the id of the tool call it answers")
    texts = []
    for k, part in enumerate(result.content):
        if not isinstance(part, Text):
            raise _unfit(
                part,
                f"{where}.content[{k}]",
                f"{_kind(part)!r} parts in this message role",
                unsupported,
            )
        texts.append(part.text)
    text = "".join(texts)
    block = (
        ContentBlock(type="document", document={"data": {"error": text}})
        if result.is_error
        else ContentBlock(type="text", text=text)
    )
    return Message(role="tool", tool_call_id=result.call_id, content=[block])


def _tools(
    tools: list[CanonicalTool] | None, choice: ToolChoice | None
) -> tuple[list[Tool] | None, str | None]:
    """The tools to offer and Cohere's ``tool_choice`` (``NONE``, ``REQUIRED`` or unset)."""
    offered = [
        Tool(
            type="function",
            function=ToolFunction(
                name=tool.name,
                # Cohere requires a schema; a function without one takes no arguments.
                parameters=dict(tool.parameters or _NO_PARAMETERS),
                description=tool.description or None,
            ),
        )
        for tool in tools or ()
    ] or None
    mode = choice.mode if choice is not None else "auto"
    if mode == "auto":
        return offered, None
    if offered is None:
        if mode == "none":
            return None, None
        raise invalid("tool_choice", "a tool choice needs 'tools'")
    if mode == "none":
        return offered, "NONE"
    if mode == "required":
        return offered, "REQUIRED"
    name = choice.name if choice is not None else None
    chosen = [tool for tool in offered if tool.function.name == name]
    if not chosen:
        raise invalid("tool_choice.function.name", f"no tool is named {name!r}")
    # Cohere cannot name the tool to call: offering only that one and requiring a call
    # means the same.
    return chosen, "REQUIRED"


def _response_format(response_format: CanonicalResponseFormat | None) -> ResponseFormat | None:
    if response_format is None or response_format.kind == "text":
        return None
    if response_format.kind == "json_object":
        return ResponseFormat(type="json_object")
    schema = dict(response_format.schema) if response_format.schema else None
    return ResponseFormat(type="json_object", json_schema=schema)


def _thinking(config: ReasoningConfig | None, field: str) -> Thinking | None:
    """Cohere's ``thinking`` for a reasoning config: a budget as it is, an effort by
    ``_THINKING_BUDGETS``, adaptive thinking as the model's own budget."""
    if config is None:
        return None
    if config.effort == "none" or config.budget_tokens == 0:
        return Thinking(type="disabled")
    if config.budget_tokens is not None:
        return Thinking(type="enabled", token_budget=config.budget_tokens)
    if config.effort is not None:
        if config.effort not in _THINKING_BUDGETS:
            allowed = ", ".join(["none", *_THINKING_BUDGETS])
            raise invalid(field, f"expected one of {allowed}")
        return Thinking(type="enabled", token_budget=_THINKING_BUDGETS[config.effort])
    if config.adaptive:
        return Thinking(type="enabled")
    return None


# ================================================================ the answer


def finish_reason(reason: str | None, *, provider: str, error: str | None = None) -> FinishReason:
    """The canonical finish reason for Cohere's; ``ERROR`` and ``TIMEOUT`` raise, since
    the answer is not whole (another target may do better). Unknown reasons count as stop."""
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


def usage_of(usage: CohereUsage | None) -> Usage:
    """The token counts: the billed units when Cohere sends them (the tokens it charges
    for, without the prompt template it adds), else the raw tokens."""
    if usage is None:
        return Usage()
    units = usage.billed_units or usage.tokens
    cached = int(usage.cached_tokens)
    if units is None:
        return Usage(cached_tokens=cached)
    return Usage(
        input_tokens=int(units.input_tokens),
        output_tokens=int(units.output_tokens),
        cached_tokens=cached,
    )


def _call_id(given: str | None) -> str:
    return given or "call_" + secrets.token_hex(12)


def decode_answer(body: bytes, *, provider: str) -> Answer:
    """The answer in a whole ``V2ChatResponse`` body. Its reflection before tool calls
    (``tool_plan``) is the answer's text when it has no other."""
    try:
        response = decode_chat(body)
    except msgspec.DecodeError as exc:
        what = str(exc).split(" - at ", 1)[0][:120]
        raise UpstreamUnavailable(
            f"provider {provider!r} answered 200 with a body that is not an answer ({what})",
            provider=provider,
            upstream_status=200,
        ) from None
    message = response.message
    parts: list[Part] = []
    texts: list[str] = []
    for block in message.content or ():
        if block.type == "thinking" and block.thinking:
            parts.append(Reasoning(text=block.thinking))
        elif block.type == "text" and block.text:
            texts.append(block.text)
    calls = [
        CanonicalToolCall(
            id=_call_id(call.id),
            name=(call.function or CallFunction()).name or "",
            arguments=(call.function or CallFunction()).arguments or "{}",
        )
        for call in message.tool_calls or ()
    ]
    text = "".join(texts)
    if calls and not text and message.tool_plan:
        text = message.tool_plan
    if text:
        parts.append(Text(text=text))
    parts.extend(calls)
    reason = finish_reason(response.finish_reason, provider=provider)
    if calls and reason == "stop":
        reason = "tool_calls"
    return Answer(
        id=response.id or secrets.token_hex(12),
        model="",
        parts=parts,
        finish=reason,
        usage=usage_of(response.usage),
    )


# ================================================================ the stream


class StreamDecoder:
    """Canonical events for the frames of one ``/v2/chat`` stream, as Cohere sends them.

    - ``message-start`` (or whatever comes first) -> ``Start``.
    - ``content-start``/``content-delta`` -> ``TextDelta``, or ``ReasoningDelta`` for a
      reasoning model's ``thinking`` blocks; ``content-end`` nothing.
    - ``tool-plan-delta`` -> ``TextDelta``: the reflection Cohere writes before its calls
      is the text another model writes before them.
    - ``tool-call-start`` -> ``ToolCallStart`` (calls numbered from 0 in the order they
      start); ``tool-call-delta`` -> ``ToolArgsDelta``; ``tool-call-end`` nothing.
    - ``citation-start``/``citation-end``, ``debug`` and unknown events: nothing (the
      cited text is already in the content; Cohere may add event types).
    - ``message-end`` -> ``Finish`` with the usage; an ``error`` or an ``ERROR``/``TIMEOUT``
      finish raises, as a stream cut before it does from ``finish``, so a client never
      takes a broken answer for a whole one.
    """

    def __init__(self, *, provider: str) -> None:
        self._provider = provider
        self._started = False
        self._finished = False
        self._calls = 0  # tool calls started so far
        self._call_index: dict[int, int] = {}  # Cohere's index -> ours
        self._thinking_block: int | None = -1  # Cohere's index of the last thinking block

    def feed(self, frame: bytes) -> list[StreamEvent]:
        """The events of one SSE frame (possibly none)."""
        _, data = split_frame(frame)
        if not data or data == b"[DONE]":
            return []
        try:
            event = decode_event(data)
        except msgspec.DecodeError:
            raise UpstreamUnavailable(
                f"provider {self._provider!r} sent a stream event that is not JSON of the "
                "expected shape",
                provider=self._provider,
            ) from None
        events: list[StreamEvent] = []
        if not self._started:
            self._started = True
            events.append(Start(id=event.id or secrets.token_hex(12), model=""))
        events.extend(self._events(event))
        return events

    def _events(self, event: CohereEvent) -> list[StreamEvent]:
        kind = event.type
        message = event.delta.message if event.delta else None
        if kind in ("content-start", "content-delta"):
            content = message.content if message else None
            found: list[StreamEvent] = []
            if content is not None and content.thinking:
                found.append(self._thinking(content.thinking, event.index))
            if content is not None and content.text:
                found.append(TextDelta(text=content.text))
            return found
        if kind == "tool-plan-delta":
            plan = message.tool_plan if message else None
            return [TextDelta(text=plan)] if plan else []
        if kind == "tool-call-start":
            return self._call_start(event)
        if kind == "tool-call-delta":
            call = message.tool_calls if message else None
            arguments = call.function.arguments if call and call.function else None
            if not arguments:
                return []
            return [ToolArgsDelta(index=self._index_of(event.index), fragment=arguments)]
        if kind == "message-end":
            return self._end(event)
        return []

    def _thinking(self, text: str, index: int | None) -> ReasoningDelta:
        """More thinking; ``new`` on the first delta of each of Cohere's thinking blocks,
        so that two blocks in a row stay two."""
        new = index != self._thinking_block
        self._thinking_block = index
        return ReasoningDelta(text=text, new=new)

    def _index_of(self, cohere_index: int | None) -> int:
        if cohere_index is not None and cohere_index in self._call_index:
            return self._call_index[cohere_index]
        return max(self._calls - 1, 0)

    def _call_start(self, event: CohereEvent) -> list[StreamEvent]:
        message = event.delta.message if event.delta else None
        call = message.tool_calls if message else None
        if call is None:
            return []
        index = self._calls
        self._calls += 1
        if event.index is not None:
            self._call_index[event.index] = index
        function = call.function
        found: list[StreamEvent] = [
            ToolCallStart(
                index=index,
                id=_call_id(call.id),
                name=function.name if function and function.name else "",
            )
        ]
        if function and function.arguments:
            found.append(ToolArgsDelta(index=index, fragment=function.arguments))
        return found

    def _end(self, event: CohereEvent) -> list[StreamEvent]:
        delta = event.delta
        reason = finish_reason(
            delta.finish_reason if delta else None,
            provider=self._provider,
            error=delta.error if delta else None,
        )
        if self._calls and reason == "stop":
            reason = "tool_calls"
        if self._finished:
            return []
        self._finished = True
        usage = usage_of(delta.usage) if delta is not None and delta.usage is not None else None
        return [Finish(reason=reason, usage=usage)]

    def finish(self) -> list[StreamEvent]:
        """Nothing more; raises if the upstream stopped before ``message-end``."""
        if not self._finished:
            raise UpstreamUnavailable(
                f"provider {self._provider!r} ended the stream before the answer was complete",
                provider=self._provider,
            )
        return []
