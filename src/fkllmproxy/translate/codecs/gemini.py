"""Google's ``generateContent`` API <-> the canonical conversation, both directions.

To the ``gemini`` and ``vertex`` providers (the same JSON on both services):
``encode_request`` writes a ``GenerateContentRequest``, ``decode_answer`` and
``StreamDecoder`` read what comes back. From clients of the inbound Gemini API
(``/v1beta/models/{model}:generateContent``): ``decode_request``, ``encode_answer`` and
``StreamEncoder``, in ``_gemini_client.py`` and re-exported here.

The mapping to Gemini, in short:

- ``system``/``developer`` turns -> ``systemInstruction`` (in order, wherever they
  appear); ``user`` -> ``user``; ``assistant`` -> ``model``; ``tool`` ->
  ``functionResponse`` parts of a ``user`` turn. Adjacent turns of one role merge.
- Gemini pairs calls and results by name and order and wants no ids: a result finds
  its function's name through the id of the call it answers. A call's thought
  signature (``ToolCall.signature``, or carried in its id by ``codecs/_ids.py``) goes
  back as the ``functionCall`` part's ``thoughtSignature``; signed reasoning goes back
  as a ``thought`` part with its signature. Reasoning without a signature (or only
  another provider's ``redacted`` data) has no place in Gemini and is left out.
- Images and documents (PDF, text, audio, video) as inline base64 -> ``inlineData``;
  by ``http(s)``/``gs`` URL -> ``fileData`` with a MIME type guessed from the name.
- ``tools``/``tool_choice`` -> ``functionDeclarations`` (JSON Schema as given, through
  ``parametersJsonSchema``) and ``functionCallingConfig`` (auto/none/required/named).
- Sampling and limits -> ``generationConfig``; ``response_format`` -> JSON MIME type
  and ``responseJsonSchema``; ``reasoning`` -> a thinking budget, and when the client
  wants the reasoning back (``ReasoningConfig.include``) thought summaries.
- Cache hints are dropped: Gemini caches prompts by itself (implicit caching).
- Anything else the client asked for that Gemini cannot do (``Conversation.extra``
  included) is a ``BadRequest`` naming the field and the provider.

Paths in errors name the conversation as Chat Completions does
(``messages[1].tool_calls[0].function.arguments``), the API it was modelled on.
"""

from __future__ import annotations

import mimetypes
import secrets
from collections.abc import Iterator

import msgspec

from fkllmproxy.errors import BadRequest, UpstreamUnavailable
from fkllmproxy.translate._common import Unsupported, invalid, parse_data_url, split_frame
from fkllmproxy.translate.canonical import (
    Answer,
    Choice,
    Conversation,
    Document,
    Finish,
    FinishReason,
    Image,
    Message,
    Reasoning,
    ReasoningConfig,
    ReasoningDelta,
    Refusal,
    ResponseFormat,
    Start,
    StreamEvent,
    Text,
    TextDelta,
    ToolArgsDelta,
    ToolCall,
    ToolCallStart,
    ToolChoice,
    ToolResult,
    Unmapped,
    Usage,
    UsageUpdate,
)
from fkllmproxy.translate.canonical import Part as CanonicalPart
from fkllmproxy.translate.canonical import Tool as CanonicalTool
from fkllmproxy.translate.codecs._gemini_client import (
    StreamEncoder,
    decode_request,
    encode_answer,
    json_schema_of,
)
from fkllmproxy.translate.codecs._ids import GEMINI, own_proof, signature_of, tagged
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
    decode_response,
)

__all__ = [
    "THINKING_BUDGETS",
    "StreamDecoder",
    "StreamEncoder",
    "decode_answer",
    "decode_request",
    "encode_answer",
    "encode_request",
    "finish_reason",
    "json_schema_of",
    "usage_of",
]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode

_FINISH: dict[str, FinishReason] = {
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

# reasoning effort -> thinking budget in tokens (Gemini 2.5's own scale; xhigh its maximum).
THINKING_BUDGETS = {
    "none": 0,
    "minimal": 128,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": 32768,
}
_DYNAMIC_BUDGET = -1  # Gemini decides how much to think (Anthropic's adaptive thinking)

# MIME types Gemini reads as documents, besides images, audio and video.
_DOCUMENT_TYPES = ("application/pdf", "application/json", "application/rtf", "text/")
_MEDIA_TYPES = ("image/", "audio/", "video/")


# ================================================================ conversation -> Gemini


def encode_request(
    conversation: Conversation, *, model: str = "", provider: str
) -> GenerateContentRequest:
    """The Gemini request for ``conversation``; the model goes in the URL, not here.

    ``provider`` is the provider's name, as errors name it.
    """
    unsupported = Unsupported(provider, "Gemini")
    _refuse_settings(conversation, unsupported)
    system, contents = _Turns(unsupported).convert(conversation.messages)
    if not contents:
        raise BadRequest(
            "'messages' has no user or assistant content: Gemini needs at least one "
            "non-empty user message besides the system prompt.",
            param="messages",
        )
    tools = _tools(conversation.tools)
    return GenerateContentRequest(
        contents=contents,
        system_instruction=Content(parts=system) if system else None,
        tools=tools,
        tool_config=_tool_config(conversation.tool_choice, tools is not None),
        generation_config=_generation_config(conversation, unsupported),
    )


def _refuse_settings(conversation: Conversation, unsupported: Unsupported) -> None:
    """A 400 for what the client asked for that no Gemini answer we translate carries."""
    for name in conversation.extra:
        raise unsupported(name)
    if conversation.logprobs:
        raise unsupported("logprobs", "token log probabilities are not translated")
    if conversation.top_logprobs is not None:
        raise unsupported("top_logprobs", "token log probabilities are not translated")
    modalities = conversation.modalities
    if modalities is not None and modalities != ["text"]:
        raise unsupported("modalities", "only text output is translated")


def _append(contents: list[Content], role: str, parts: list[Part]) -> None:
    """Add a turn, merging it into the previous one when the role is the same."""
    if not parts:
        return
    if contents and contents[-1].role == role:
        contents[-1].parts.extend(parts)
    else:
        contents.append(Content(role=role, parts=parts))


class _Turns:
    """One conversion of the messages; remembers each call's function name by its id."""

    def __init__(self, unsupported: Unsupported) -> None:
        self.unsupported = unsupported
        self.call_names: dict[str, str] = {}

    def convert(self, messages: list[Message]) -> tuple[list[Part], list[Content]]:
        system: list[Part] = []
        contents: list[Content] = []
        for i, message in enumerate(messages):
            where = f"messages[{i}]"
            if message.role in ("system", "developer"):
                system.extend(self._text_only(message, where))
            elif message.role == "user":
                _append(contents, "user", self._user(message, where))
            elif message.role == "assistant":
                _append(contents, "model", self._model(message, where))
            else:
                _append(contents, "user", self._results(message, where))
        return system, contents

    def _refusal(self, part: CanonicalPart, where: str, why: str) -> BadRequest:
        """The 400 for a part Gemini cannot take here; content the client's API has and
        the canonical model does not is named by the client's own path."""
        if isinstance(part, Unmapped):
            return self.unsupported(part.where, part.kind)
        kind = part.__struct_config__.tag
        return self.unsupported(f"{where}.type", f"{kind!r} parts {why}")

    def _text_only(self, message: Message, where: str) -> list[Part]:
        parts = []
        for j, part in enumerate(message.parts):
            if isinstance(part, Text | Refusal):
                parts.extend(_text(part.text))
            else:
                raise self._refusal(part, f"{where}.content[{j}]", "in this message role")
        return parts

    def _user(self, message: Message, where: str) -> list[Part]:
        parts: list[Part] = []
        for j, part in enumerate(message.parts):
            here = f"{where}.content[{j}]"
            if isinstance(part, Text):
                parts.extend(_text(part.text))
            elif isinstance(part, Image):
                parts.append(self._image(part, here))
            elif isinstance(part, Document):
                parts.append(self._document(part, here))
            elif isinstance(part, ToolResult):
                parts.append(self._result(part, f"{here}.tool_call_id"))
            else:
                raise self._refusal(part, here, "in a user message")
        return parts

    def _image(self, image: Image, where: str) -> Part:
        if image.data is not None:
            return Part(
                inline_data=Blob(mime_type=image.media_type or "image/jpeg", data=image.data)
            )
        url = image.url or ""
        if url.startswith("data:"):
            return Part(inline_data=_data_url(url, f"{where}.image_url.url"))
        if url.startswith(("https://", "http://", "gs://")):
            guessed, _ = mimetypes.guess_type(url.split("?", 1)[0])
            mime = guessed if guessed and guessed.startswith("image/") else "image/jpeg"
            return Part(file_data=FileData(file_uri=url, mime_type=image.media_type or mime))
        raise self.unsupported(
            f"{where}.image_url.url", "images must be data:, http(s):// or gs:// URLs"
        )

    def _document(self, document: Document, where: str) -> Part:
        if document.file_id:
            raise self.unsupported(
                f"{where}.file.file_id", "file ids; send the file's data instead"
            )
        if document.citations:
            raise self.unsupported(f"{where}.citations", "citations of documents")
        if document.context:
            raise self.unsupported(f"{where}.context", "context for a document")
        if document.text is not None:
            return Part(text=document.text)
        if document.data is not None:
            parsed = parse_data_url(document.data)
            mime, data = parsed if parsed else (document.media_type, document.data)
            mime = mime or _guess(document.filename)
            if mime is None:
                raise invalid(
                    f"{where}.file.file_data", "expected a data: URL (or a filename with a type)"
                )
            return Part(inline_data=Blob(mime_type=self._readable(mime, where), data=data))
        url = document.url or ""
        if url.startswith(("https://", "http://", "gs://")):
            mime = document.media_type or _guess(url.split("?", 1)[0]) or "application/pdf"
            return Part(file_data=FileData(file_uri=url, mime_type=self._readable(mime, where)))
        raise self.unsupported(
            f"{where}.url", "documents must be inline or http(s):// or gs:// URLs"
        )

    def _readable(self, mime: str, where: str) -> str:
        if mime.startswith(_DOCUMENT_TYPES + _MEDIA_TYPES):
            return mime
        raise self.unsupported(f"{where}.media_type", f"documents of type {mime!r}")

    def _model(self, message: Message, where: str) -> list[Part]:
        parts: list[Part] = []
        signature: str | None = None  # a text's signature, for the part that follows
        calls = 0
        for j, part in enumerate(message.parts):
            if isinstance(part, Reasoning):
                proof = own_proof(GEMINI, part.signature)
                if proof and part.text:
                    parts.append(Part(text=part.text, thought=True, thought_signature=proof))
                elif proof:
                    signature = proof
                continue  # unsigned (or another provider's) reasoning: Gemini cannot take it
            if isinstance(part, Text | Refusal):
                found = _text(part.text)
            elif isinstance(part, ToolCall):
                found = [self._call(part, f"{where}.tool_calls[{calls}]")]
                calls += 1
            else:
                raise self._refusal(part, f"{where}.content[{j}]", "in this message role")
            if found and signature and found[0].thought_signature is None:
                found[0].thought_signature = signature
                signature = None
            parts.extend(found)
        if signature:
            parts.append(Part(text="", thought_signature=signature))
        return parts

    def _call(self, call: ToolCall, where: str) -> Part:
        self.call_names[call.id] = call.name
        args = _arguments(call.arguments, f"{where}.function.arguments")
        signature = call.signature or signature_of(call.id)
        return Part(
            function_call=FunctionCall(name=call.name, args=args), thought_signature=signature
        )

    def _results(self, message: Message, where: str) -> list[Part]:
        parts = []
        for j, part in enumerate(message.parts):
            here = where if len(message.parts) == 1 else f"{where}.content[{j}]"
            if not isinstance(part, ToolResult):
                raise self._refusal(part, here, "in a tool message")
            parts.append(self._result(part, f"{here}.tool_call_id"))
        return parts

    def _result(self, result: ToolResult, where: str) -> Part:
        name = self.call_names.get(result.call_id) or result.name
        if name is None:
            raise invalid(
                where,
                f"{result.call_id!r} does not match a tool call of an earlier assistant message",
            )
        texts = []
        for k, item in enumerate(result.content):
            if not isinstance(item, Text):
                kind = item.__struct_config__.tag
                path = where.removesuffix(".tool_call_id") + f".content[{k}].type"
                raise self.unsupported(path, f"{kind!r} parts in this message role")
            texts.append(item.text)
        text = "".join(texts)
        response = {"error": text} if result.is_error else _result_object(text)
        return Part(function_response=FunctionResponse(name=name, response=response))


def _text(text: str) -> list[Part]:
    return [Part(text=text)] if text else []


def _guess(name: str | None) -> str | None:
    return mimetypes.guess_type(name)[0] if name else None


def _data_url(url: str, where: str) -> Blob:
    header, comma, data = url.partition(",")
    mime, *parameters = header[5:].split(";")
    if not comma or parameters[-1:] != ["base64"] or not mime or not data:
        raise invalid(where, "a data: URL must look like data:<mime type>;base64,<data>")
    return Blob(mime_type=mime, data=data)


def _arguments(raw: str, where: str) -> dict[str, object]:
    if not raw:
        return {}
    try:
        value = _decode(raw)
    except msgspec.DecodeError:
        raise invalid(where, "not valid JSON") from None
    if not isinstance(value, dict):
        raise invalid(where, "expected a JSON object")
    return value


def _result_object(text: str) -> dict[str, object]:
    """Gemini wants an object: a JSON object result as it is, anything else as output."""
    if text.startswith("{"):
        try:
            value = _decode(text)
        except msgspec.DecodeError:
            value = None
        if isinstance(value, dict):
            return value
    return {"output": text}


def _tools(tools: list[CanonicalTool] | None) -> list[Tool] | None:
    if not tools:
        return None
    declarations = [
        FunctionDeclaration(
            name=tool.name,
            description=tool.description or None,
            parameters_json_schema=tool.parameters or None,
        )
        for tool in tools
    ]
    return [Tool(function_declarations=declarations)]


def _tool_config(choice: ToolChoice | None, have_tools: bool) -> ToolConfig | None:
    if choice is None:
        return None
    if not have_tools:
        if choice.mode in ("auto", "none"):
            return None
        raise invalid("tool_choice", "a tool choice needs 'tools'")
    mode, names = (
        {"auto": "AUTO", "none": "NONE", "required": "ANY", "tool": "ANY"}[choice.mode],
        None,
    )
    if choice.mode == "tool":
        if not choice.name:
            raise invalid("tool_choice.function", "expected {'name': <function name>}")
        names = [choice.name]
    return ToolConfig(
        function_calling_config=FunctionCallingConfig(mode=mode, allowed_function_names=names)
    )


def _generation_config(
    conversation: Conversation, unsupported: Unsupported
) -> GenerationConfig | None:
    mime, schema = _response_format(conversation.response_format)
    config = GenerationConfig(
        stop_sequences=conversation.stop or None,
        response_mime_type=mime,
        response_json_schema=schema,
        candidate_count=conversation.candidate_count,
        max_output_tokens=conversation.max_tokens,
        temperature=conversation.temperature,
        top_p=conversation.top_p,
        top_k=conversation.top_k,
        seed=conversation.seed,
        presence_penalty=conversation.presence_penalty,
        frequency_penalty=conversation.frequency_penalty,
        thinking_config=_thinking(conversation.reasoning),
    )
    return None if config == GenerationConfig() else config


def _response_format(
    response_format: ResponseFormat | None,
) -> tuple[str | None, dict[str, object] | None]:
    if response_format is None or response_format.kind == "text":
        return None, None
    if response_format.kind == "json_object":
        return "application/json", None
    return "application/json", response_format.schema or None


def _thinking(reasoning: ReasoningConfig | None) -> ThinkingConfig | None:
    """The thinking budget: Anthropic's and Gemini's as given, OpenAI's effort by the table."""
    if reasoning is None:
        return None
    if reasoning.budget_tokens is not None:
        budget: int | None = reasoning.budget_tokens
    elif reasoning.effort is not None:
        if reasoning.effort not in THINKING_BUDGETS:
            allowed = ", ".join(THINKING_BUDGETS)
            raise invalid("reasoning_effort", f"expected one of {allowed}")
        budget = THINKING_BUDGETS[reasoning.effort]
    elif reasoning.adaptive:
        budget = _DYNAMIC_BUDGET
    else:
        budget = None
    thoughts = True if reasoning.include and budget != 0 else None
    if budget is None and thoughts is None:
        return None
    return ThinkingConfig(thinking_budget=budget, include_thoughts=thoughts)


# ================================================================ Gemini -> answer


def finish_reason(reason: str | None, has_tool_calls: bool) -> FinishReason:
    """The canonical finish reason for a Gemini one (unknown reasons count as a plain stop)."""
    mapped = _FINISH.get(reason or "STOP", "stop")
    if has_tool_calls and mapped == "stop":
        return "tool_calls"
    return mapped


def usage_of(usage: UsageMetadata | None) -> Usage:
    """Token counts; thinking tokens count as output (and as reasoning), as OpenAI's do."""
    if usage is None:
        return Usage()
    return Usage(
        input_tokens=usage.prompt_token_count + usage.tool_use_prompt_token_count,
        output_tokens=usage.candidates_token_count + usage.thoughts_token_count,
        cached_tokens=usage.cached_content_token_count,
        reasoning_tokens=usage.thoughts_token_count,
    )


def _new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def _parts_of(content: Content | None) -> Iterator[CanonicalPart]:
    """The canonical parts of one candidate, in order; a signature on a text part is
    kept on the reasoning before it (a block of its own when there is none)."""
    if content is None:
        return
    reasoning: Reasoning | None = None
    for part in content.parts:
        signature = part.thought_signature
        proof = tagged(GEMINI, signature) if signature else None
        if part.thought:
            if reasoning is not None and reasoning.signature is None:
                reasoning.text += part.text or ""
                reasoning.signature = proof
                continue
            reasoning = Reasoning(text=part.text or "", signature=proof)
            yield reasoning
            continue
        if part.function_call is not None:
            call = part.function_call
            arguments = _encode(call.args or {}).decode()
            yield ToolCall(
                id=call.id or _new_call_id(),
                name=call.name,
                arguments=arguments,
                signature=signature,
            )
        elif proof:
            if reasoning is not None and reasoning.signature is None:
                reasoning.signature = proof
            else:
                yield Reasoning(signature=proof)
        if part.text:
            yield Text(text=part.text)
        elif part.inline_data is not None:
            yield _media(part.inline_data)
        reasoning = None


def _media(blob: Blob) -> Image | Document:
    if blob.mime_type.startswith("image/"):
        return Image(media_type=blob.mime_type, data=blob.data)
    return Document(media_type=blob.mime_type, data=blob.data)


def _choice(candidate: Candidate) -> Choice:
    parts = list(_parts_of(candidate.content))
    calls = any(isinstance(part, ToolCall) for part in parts)
    reason = finish_reason(candidate.finish_reason, calls)
    return Choice(index=candidate.index, parts=parts, finish=reason)


def _bad_answer(provider: str) -> UpstreamUnavailable:
    return UpstreamUnavailable(
        f"provider {provider!r} sent an answer that is not valid JSON of the expected shape",
        provider=provider,
    )


def decode_answer(body: bytes, *, provider: str, model: str = "") -> Answer:
    """The answer in a whole Gemini ``GenerateContentResponse``.

    ``model`` names the answer when Gemini does not (``modelVersion``); candidates
    after the first are the answer's ``more``.
    """
    try:
        response = decode_response(body)
    except msgspec.DecodeError:
        raise _bad_answer(provider) from None
    if response.error is not None:
        raise UpstreamUnavailable(
            f"provider {provider!r} failed: {response.error.message}", provider=provider
        )
    choices = [_choice(c) for c in sorted(response.candidates, key=lambda c: c.index)]
    if not choices:
        choices.append(_blocked(response, provider))
    first, *more = choices
    return Answer(
        id=response.response_id or secrets.token_hex(12),
        model=response.model_version or model,
        parts=first.parts,
        finish=first.finish,
        usage=usage_of(response.usage_metadata),
        more=more,
    )


def _blocked(response: GenerateContentResponse, provider: str) -> Choice:
    """A prompt Gemini refused outright: a refusal finished by the content filter."""
    reason = response.prompt_feedback.block_reason if response.prompt_feedback else None
    if not reason:
        raise UpstreamUnavailable(
            f"provider {provider!r} answered with no candidates", provider=provider
        )
    refusal = Refusal(text=f"The prompt was blocked by the provider ({reason}).")
    return Choice(index=0, parts=[refusal], finish="content_filter")


class _Candidate:
    """What a stream said so far of one candidate."""

    __slots__ = ("calls", "finished", "open_reasoning")

    def __init__(self) -> None:
        self.calls = 0
        self.finished = False
        self.open_reasoning = False  # the last part was reasoning awaiting its signature


class StreamDecoder:
    """Gemini stream events (``?alt=sse``, one whole response per event) as stream events.

    ``Start`` comes with the first event, then text, reasoning and tool calls as they
    arrive (Gemini sends each call whole), each with its candidate's number as
    ``choice``, and ``Finish`` per candidate with its reason and the usage reported so
    far (a ``UsageUpdate`` when usage comes after). ``finish`` raises
    ``UpstreamUnavailable`` for a stream that ended before every candidate finished, so
    the client sees an error, not a cut answer passed off as complete; so does an error
    event mid-stream. ``usage`` is the latest usage reported.
    """

    def __init__(self, *, provider: str, model: str = "") -> None:
        self.usage: Usage | None = None
        self._provider = provider
        self._model = model
        self._started = False
        self._candidates: dict[int, _Candidate] = {}

    def feed(self, frame: bytes) -> list[StreamEvent]:
        """The events of one SSE frame (possibly none)."""
        _, data = split_frame(frame)
        if not data.strip():
            return []
        try:
            event = decode_response(data)
        except msgspec.DecodeError:
            raise _bad_answer(self._provider) from None
        if event.error is not None:
            raise UpstreamUnavailable(
                f"provider {self._provider!r} failed mid-stream: {event.error.message}",
                provider=self._provider,
            )
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            ident = event.response_id or secrets.token_hex(12)
            out.append(Start(id=ident, model=event.model_version or self._model))
        finished = self._all_finished()
        if event.usage_metadata is not None:
            self.usage = usage_of(event.usage_metadata)
            if finished:
                out.append(UsageUpdate(usage=self.usage))
        for candidate in event.candidates:
            out.extend(self._candidate(candidate))
        blocked = event.prompt_feedback.block_reason if event.prompt_feedback else None
        if not event.candidates and blocked:
            state = self._candidates.setdefault(0, _Candidate())
            if not state.finished:
                state.finished = True
                out.append(Finish(reason="content_filter", usage=self.usage))
        return out

    def _all_finished(self) -> bool:
        return bool(self._candidates) and all(c.finished for c in self._candidates.values())

    def _candidate(self, candidate: Candidate) -> list[StreamEvent]:
        choice = candidate.index
        state = self._candidates.setdefault(choice, _Candidate())
        out: list[StreamEvent] = []
        for part in candidate.content.parts if candidate.content else ():
            signature = part.thought_signature
            proof = tagged(GEMINI, signature) if signature else None
            if part.thought:
                new = not state.open_reasoning
                text = part.text or ""
                out.append(ReasoningDelta(text=text, signature=proof, new=new, choice=choice))
                state.open_reasoning = signature is None
                continue
            if part.function_call is not None:
                call = part.function_call
                index = state.calls
                state.calls += 1
                ident = call.id or _new_call_id()
                name = call.name
                out.append(
                    ToolCallStart(
                        index=index, id=ident, name=name, signature=signature, choice=choice
                    )
                )
                fragment = _encode(call.args or {}).decode()
                out.append(ToolArgsDelta(index=index, fragment=fragment, choice=choice))
            elif proof:
                new = not state.open_reasoning
                out.append(ReasoningDelta(signature=proof, new=new, choice=choice))
            if part.text:
                out.append(TextDelta(text=part.text, choice=choice))
            state.open_reasoning = False
        if candidate.finish_reason and not state.finished:
            state.finished = True
            reason = finish_reason(candidate.finish_reason, state.calls > 0)
            out.append(Finish(reason=reason, usage=self.usage, choice=choice))
        return out

    def finish(self) -> list[StreamEvent]:
        """Nothing more to say; raises if the upstream stopped before finishing."""
        if not self._started or not self._candidates:
            raise UpstreamUnavailable(
                f"provider {self._provider!r} ended the stream without an answer",
                provider=self._provider,
            )
        if not self._all_finished():
            raise UpstreamUnavailable(
                f"provider {self._provider!r} ended the stream before the answer was complete",
                provider=self._provider,
            )
        return []
