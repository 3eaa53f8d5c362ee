"""The OpenAI Responses API (``POST /v1/responses``) codec, inbound side.

Used when a ``/v1/responses`` client reaches a provider without the Responses API; one
that has it gets the client's bytes untouched (``providers/responses.py``).

Request (``decode_request``), every mapping of the former Responses -> Chat translator:

* ``instructions`` -> a leading ``system`` message; ``input`` as a string -> one user
  message; ``message`` items keep their role (``system``, ``developer``, ``user``,
  ``assistant``): ``input_text`` / ``output_text`` -> ``Text``, ``input_image`` ->
  ``Image`` (a data URL inline, with ``detail``), ``input_file`` -> ``Document``
  (``file_data`` inline, or ``file_id``), an assistant's ``refusal`` -> ``Refusal``.
* ``reasoning`` items -> ``Reasoning`` parts of the assistant turn they open (``id``,
  the summary text, ``encrypted_content`` -> ``redacted``, or ``signature`` when it is
  one this codec packed); ``function_call`` items -> ``ToolCall`` parts of that turn
  (a thought signature read back out of ``call_id``, see ``codecs/_ids.py``);
  ``function_call_output`` -> ``ToolResult`` parts of a ``tool`` turn.
* ``tools`` (type ``function``) -> ``Tool``; ``tool_choice`` and ``parallel_tool_calls``
  -> ``ToolChoice``; ``max_output_tokens`` -> ``max_tokens``; ``temperature``, ``top_p``,
  ``service_tier``, ``user`` (or ``safety_identifier``); ``text.format`` -> ``ResponseFormat``; ``reasoning.effort`` / ``summary`` ->
  ``ReasoningConfig`` (asking for either asks for the thoughts back).
* ``metadata``, ``store``, ``previous_response_id`` are the proxy's own business (echoed
  in the ``response``, kept by the store); ``prompt_cache_key`` goes to a Chat host (a
  hint to the others); ``include`` shapes the answer
  (``reasoning.encrypted_content``); the hints ``wire.responses.StrictResponsesRequest``
  lists are accepted and not carried. Hosted tools (``web_search``, ``namespace``, ...),
  other item or part types and unknown fields are a 400 naming the field and provider.

Answer (``encode_answer``) and stream (``StreamEncoder``, in ``_responses_stream.py``):
a ``response`` object echoing the request (``response_envelope``), whose output holds
a ``reasoning`` item per ``Reasoning`` part, a ``message`` per run of text or per
refusal, and a ``function_call`` per ``ToolCall``. Reasoning text is the item's summary
when the request asked for one (``reasoning.summary``), else its ``reasoning_text``
content (as OpenAI's open-weight models return raw reasoning); its opaque proof goes in
``encrypted_content`` when ``include`` asks for it, so the next turn sends it back.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from typing import Any

import msgspec

from fkllmproxy.errors import BadRequest
from fkllmproxy.translate._common import (
    bad_answer,
    client_paths,
    decode_json,
    encode_json,
    invalid,
    missing,
    parse_data_url,
    unsupported,
    validation_error,
)
from fkllmproxy.translate.canonical import (
    Answer,
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
)
from fkllmproxy.translate.codecs._ids import signature_of
from fkllmproxy.translate.codecs._responses_items import (
    ReasoningStyle,
    call_id_of,
    finish_status,
    function_call_item,
    message_item,
    opaque_of,
    proof_of,
    reasoning_item,
    response_envelope,
    responses_usage,
)
from fkllmproxy.translate.codecs._responses_stream import StreamEncoder, event_frame
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
    "StreamEncoder",
    "decode_request",
    "encode_answer",
    "event_frame",
    "in_responses_terms",
    "input_items",
    "response_envelope",
]

_TOOL_HINTS = {
    "web_search": "web search runs only on OpenAI's Responses API"
    ' (Codex CLI: set web_search = "disabled" in its config.toml)',
    "namespace": "only plain function tools are translated"
    " (Codex CLI: set [agents] enabled = false in its config.toml)",
}


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


# ================================================================ the request


def decode_request(request: Mapping[str, Any], *, provider: str) -> Conversation:
    """The conversation of Responses request ``request`` (plain data, ``input`` whole).

    It takes plain data, not bytes, because the handler has already put a stored
    conversation's items before the new input (``previous_response_id``).
    ``provider`` (``'main' (openai)``) is named in every 400 about something the
    translation cannot carry.
    """
    _check_tool_types(request.get("tools"), provider)
    try:
        parsed = msgspec.convert(
            {**request, "input": input_items(request.get("input"))}, StrictResponsesRequest
        )
    except msgspec.ValidationError as exc:
        raise validation_error(exc, provider) from None
    messages: list[Message] = []
    if parsed.instructions:
        messages.append(Message(role="system", parts=[Text(text=parsed.instructions)]))
    assert not isinstance(parsed.input, str)
    turns = _Turns(messages, provider)
    turns.add(parsed.input or [])
    return Conversation(
        model=parsed.model,
        messages=messages,
        api="responses",
        stream=bool(parsed.stream),
        include_usage=bool(parsed.stream),
        tools=[_tool(tool) for tool in parsed.tools] if parsed.tools else None,
        tool_choice=_tool_choice(parsed),
        max_tokens=parsed.max_output_tokens,
        temperature=parsed.temperature,
        top_p=parsed.top_p,
        user=parsed.user or parsed.safety_identifier,
        service_tier=parsed.service_tier,
        prompt_cache_key=parsed.prompt_cache_key,
        response_format=_response_format(parsed),
        reasoning=_reasoning(parsed),
        paths=client_paths(messages, turns.where_of),
    )


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


class _Turns:
    """Input items into messages: the items of one assistant turn (its reasoning, text
    and calls) join one message; each function output is a ``tool`` message."""

    def __init__(self, messages: list[Message], provider: str) -> None:
        self.messages = messages
        self.provider = provider
        self.names: dict[str, str] = {}  # call_id -> function name, for Gemini's pairing
        self.where_of: dict[int, str] = {}  # id(part) -> its item (or content part) in input

    def add(self, items: list[Any]) -> None:
        for index, item in enumerate(items):
            where = f"input[{index}]"
            if isinstance(item, MessageItem):
                self._message(item, where)
            elif isinstance(item, FunctionCallItem):
                self.names[item.call_id] = item.name
                call = ToolCall(
                    id=item.call_id,
                    name=item.name,
                    arguments=item.arguments,
                    signature=signature_of(item.call_id),
                )
                self.where_of[id(call)] = where
                self._turn().parts.append(call)
            elif isinstance(item, FunctionCallOutputItem):
                result = self._output(item, where)
                self.where_of[id(result)] = where
                self.messages.append(Message(role="tool", parts=[result]))
            else:
                assert isinstance(item, ReasoningItem)
                reasoning = _reasoning_part(item)
                self.where_of[id(reasoning)] = where
                self._turn().parts.append(reasoning)

    def _turn(self) -> Message:
        """The assistant turn under way (the last message), or a new one."""
        last = self.messages[-1] if self.messages else None
        if last is None or last.role != "assistant":
            last = Message(role="assistant", parts=[])
            self.messages.append(last)
        return last

    def _message(self, item: MessageItem, where: str) -> None:
        if isinstance(item.content, str):
            parts: list[Part] = [Text(text=item.content)]
            self.where_of[id(parts[0])] = f"{where}.content"
        else:
            parts = []
            for i, given in enumerate(item.content):
                part = _part(given, f"{where}.content[{i}]", self.provider, item.role)
                self.where_of[id(part)] = f"{where}.content[{i}]"
                parts.append(part)
        last = self.messages[-1] if self.messages else None
        if (
            item.role == "assistant"
            and last is not None
            and last.role == "assistant"
            and all(isinstance(part, Reasoning) for part in last.parts)
        ):  # the answer its reasoning items opened
            last.parts.extend(parts)
            return
        # ``developer`` is a system message, as the Chat translation always made it: the
        # chat templates of self-hosted models know no other instruction role.
        role = "system" if item.role == "developer" else item.role
        self.messages.append(Message(role=role, parts=parts))

    def _output(self, item: FunctionCallOutputItem, where: str) -> ToolResult:
        if isinstance(item.output, str):
            content: list[Text | Image | Document] = [Text(text=item.output)]
        else:
            content = []
            for i, part in enumerate(item.output):
                piece = _part(part, f"{where}.output[{i}]", self.provider, "tool")
                assert isinstance(piece, Text | Image | Document)
                content.append(piece)
        return ToolResult(call_id=item.call_id, content=content, name=self.names.get(item.call_id))


def _part(part: Any, where: str, provider: str, role: str) -> Part:
    if isinstance(part, InputText | OutputText):
        return Text(text=part.text)
    if isinstance(part, OutputRefusal):
        return Refusal(text=part.refusal) if role == "assistant" else Text(text=part.refusal)
    if isinstance(part, InputImage):
        return _image(part, where)
    assert isinstance(part, InputFile)
    return _file(part, where, provider)


def _image(part: InputImage, where: str) -> Image | Document:
    if not part.image_url:
        if part.file_id:
            return Document(file_id=part.file_id)
        raise missing(f"{where}.image_url")
    detail = part.detail if part.detail in ("low", "high", "auto") else None
    inline = parse_data_url(part.image_url)
    if inline is None:
        return Image(url=part.image_url, detail=detail)
    media_type, data = inline
    return Image(media_type=media_type, data=data, detail=detail)


def _file(part: InputFile, where: str, provider: str) -> Document:
    if part.file_data is not None:
        inline = parse_data_url(part.file_data)
        if inline is None:  # bare base64: the type from the file's name
            guessed = mimetypes.guess_type(part.filename or "")[0]
            inline = guessed or "application/octet-stream", part.file_data
        media_type, data = inline
        return Document(media_type=media_type, data=data, filename=part.filename)
    if part.file_id is not None:
        return Document(file_id=part.file_id, filename=part.filename)
    if part.file_url is not None:
        raise unsupported(f"{where}.file_url", provider, "send the file inline as file_data")
    raise missing(f"{where}.file_data")


def _reasoning_part(item: ReasoningItem) -> Reasoning:
    """A reasoning item handed back: its summary (or raw reasoning text) and its proof."""
    texts = [summary.text for summary in item.summary]
    if not texts:
        texts = [
            part["text"]
            for part in item.content or ()
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
    signature, redacted = proof_of(item.encrypted_content)
    return Reasoning(text="\n\n".join(texts), id=item.id, signature=signature, redacted=redacted)


def _tool(tool: FunctionTool) -> Tool:
    return Tool(
        name=tool.name,
        description=tool.description or None,
        parameters=tool.parameters or {"type": "object", "properties": {}},
        strict=tool.strict,
    )


def _tool_choice(request: StrictResponsesRequest) -> ToolChoice | None:
    choice = request.tool_choice
    if choice is not None and not request.tools and choice not in ("auto", "none"):
        raise invalid("tool_choice", "a tool must be chosen from 'tools', and there are none")
    parallel = request.parallel_tool_calls if request.tools else None
    if choice is None or not (request.tools or choice == "none"):
        return ToolChoice(parallel=parallel) if parallel is not None else None
    if isinstance(choice, str):
        return ToolChoice(mode=choice, parallel=parallel)
    return ToolChoice(mode="tool", name=choice.name, parallel=parallel)


def _response_format(request: StrictResponsesRequest) -> ResponseFormat | None:
    text_format = request.text.format if request.text else None
    if text_format is None:
        return None
    kind = text_format.__struct_config__.tag
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat(kind="json_object")
    return ResponseFormat(
        kind="json_schema",
        name=text_format.name,  # type: ignore[union-attr]
        schema=text_format.schema,  # type: ignore[union-attr]
        strict=text_format.strict,  # type: ignore[union-attr]
        description=text_format.description,  # type: ignore[union-attr]
    )


def _reasoning(request: StrictResponsesRequest) -> ReasoningConfig | None:
    """``reasoning``: a Responses answer from a reasoning model has its reasoning item, so
    asking for reasoning (an effort or a summary) asks for the thoughts back."""
    reasoning = request.reasoning
    if reasoning is None:
        return None
    summary = reasoning.summary or reasoning.generate_summary
    if reasoning.effort is None and summary is None:
        return None
    return ReasoningConfig(
        effort=reasoning.effort,
        summary=summary,
        include=summary is not None or reasoning.effort not in (None, "none"),
    )


# The Chat fields a Responses request reaches a Chat-speaking provider as, by the name
# the client used.
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


# ================================================================ the answer


def encode_answer(
    answer: Answer, *, model: str, request: Mapping[str, Any], provider: str
) -> bytes:
    """The finished ``response`` object for ``answer``.

    ``model`` is the name the client sent; ``request`` its request as plain data, echoed
    in the envelope and saying how reasoning comes back (``ReasoningStyle``);
    ``provider`` is named when the answer holds a call a client could not run (no
    function name, arguments that are not JSON).
    """
    response = response_envelope(request, model=model)
    response["output"] = _output(answer.parts, ReasoningStyle.of(request), provider)
    response["usage"] = responses_usage(answer.usage)
    finish_status(response, answer.finish)
    return encode_json(response)


def _output(parts: list[Part], style: ReasoningStyle, provider: str) -> list[dict[str, Any]]:
    """The output items of ``parts``: a run of text parts is one message."""
    output: list[dict[str, Any]] = []
    text: list[str] = []
    calls = 0
    for part in parts:
        if not isinstance(part, Text) and text:
            output.append(message_item("".join(text)))
            text = []
        if isinstance(part, Text):
            text.append(part.text)
        elif isinstance(part, Reasoning):
            opaque = opaque_of(part.signature, part.redacted)
            if part.text or (opaque is not None and style.encrypted):
                output.append(reasoning_item(part.text, style, item_id=part.id, opaque=opaque))
        elif isinstance(part, Refusal):
            output.append(message_item(part.text, refusal=True))
        elif isinstance(part, ToolCall):
            _check_call(part, calls, provider)
            calls += 1
            call_id = call_id_of(part.id, part.signature)
            output.append(function_call_item(call_id, part.name, part.arguments))
    if text:
        output.append(message_item("".join(text)))
    return output


def _check_call(call: ToolCall, index: int, provider: str) -> None:
    if not call.name:
        raise bad_answer(provider, f"tool call {index} without a function name")
    try:
        decode_json(call.arguments)
    except msgspec.DecodeError:
        raise bad_answer(provider, f"tool call {call.name!r} with invalid JSON") from None
