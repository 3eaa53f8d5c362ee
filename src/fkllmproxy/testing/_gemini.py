"""Google's GenerateContent wire format, shared by the Gemini API and Vertex AI.

Written from the Gemini API and Vertex AI references: ``contents`` of ``user`` and
``model`` turns made of ``parts``; ``systemInstruction``; ``tools`` with
``functionDeclarations`` whose ``parameters`` are the OpenAPI subset Google accepts;
``generationConfig``. Google's JSON parser rejects unknown field names ("Invalid JSON
payload received. Unknown name ..."), and the service insists that function responses
answer the function call turn right before them: the fake does both, so a proxy that
forwards an OpenAI field or misorders a tool turn fails here as it would there.
Field names are accepted in lowerCamelCase and snake_case, as protobuf JSON allows.
SSE frames end in CRLF CRLF, as Google's servers send them (valid SSE that a parser
splitting only on ``\n\n`` gets wrong); in a stream every chunk carries the usage
so far, so the last one holds the totals.

A signing model (``signed`` in the model name) acts as Google's thought-signatures
page describes Gemini 3: the first ``functionCall`` part of each answer (whole or
streamed) carries an opaque base64 ``thoughtSignature``; on later requests the current
turn (the contents after the last user content with standard parts, not just function
responses) must give each step's first call the signature back, and only signatures
this fake issued are taken. ``thoughtSignature`` is protobuf ``bytes``, so it is
compared decoded: standard or URL-safe base64, padded or not, as Google's JSON parser
reads it.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import threading
from typing import Any

import msgspec

from fkllmproxy.testing._flow import Invalid
from fkllmproxy.testing.behaviour import Answer, Prompt, ToolSpec, count_tokens

__all__ = [
    "GEMINI",
    "GeminiFormat",
    "ThoughtSignatures",
    "check_signatures",
    "read_generate",
    "snake",
]

_encode = msgspec.json.encode
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_FINISH = {
    "stop": "STOP",
    "stop_sequence": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "blocked_output": "SAFETY",
}


def snake(name: str) -> str:
    """``maxOutputTokens`` -> ``max_output_tokens``."""
    return _CAMEL.sub("_", name).lower()


def _names(*camel: str) -> frozenset[str]:
    return frozenset(camel) | frozenset(snake(name) for name in camel)


_REQUEST_FIELDS = _names(
    "contents", "tools", "toolConfig", "safetySettings", "systemInstruction",
    "generationConfig", "cachedContent", "labels", "model",
)  # fmt: skip
_CONTENT_FIELDS = _names("role", "parts")
_PART_DATA = _names(
    "text", "inlineData", "fileData", "functionCall", "functionResponse",
    "executableCode", "codeExecutionResult",
)  # fmt: skip
_PART_FIELDS = _PART_DATA | _names(
    "thought", "thoughtSignature", "videoMetadata", "mediaResolution"
)
_GENERATION_FIELDS = _names(
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema",
    "responseModalities", "candidateCount", "maxOutputTokens", "temperature", "topP",
    "topK", "seed", "presencePenalty", "frequencyPenalty", "responseLogprobs", "logprobs",
    "enableEnhancedCivicAnswers", "speechConfig", "thinkingConfig", "mediaResolution",
    "imageConfig", "audioTimestamp", "routingConfig",
)  # fmt: skip
_TOOL_FIELDS = _names(
    "functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution",
    "urlContext", "retrieval", "enterpriseWebSearch", "googleMaps", "computerUse",
)  # fmt: skip
_DECLARATION_FIELDS = _names(
    "name", "description", "parameters", "parametersJsonSchema", "response",
    "responseJsonSchema", "behavior",
)  # fmt: skip
_SCHEMA_FIELDS = _names(
    "type", "format", "title", "description", "nullable", "default", "items", "minItems",
    "maxItems", "enum", "properties", "propertyOrdering", "required", "minProperties",
    "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf", "minimum",
    "maximum",
)  # fmt: skip


def _get(obj: dict[str, Any], camel: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake(camel)) if value is None else value


def _unknown(obj: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    for name in obj:
        if name not in allowed:
            at = f" at '{where}'" if where else ""
            raise Invalid(
                f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'
            )


class GeminiFormat:
    """Renders answers as ``GenerateContentResponse`` objects and SSE frames."""

    def __init__(self) -> None:
        self._ids = 0

    def error_body(self, status: int, message: str) -> bytes:
        code = _STATUSES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
        return _encode({"error": {"code": status, "message": message, "status": code}})

    def midstream_error(self) -> bytes:
        body = self.error_body(500, "An internal error has occurred (error-midstream).")
        return b"data: " + body + b"\r\n\r\n"

    def _usage(self, answer: Answer, output_tokens: int | None = None) -> dict[str, Any]:
        out = answer.output_tokens if output_tokens is None else output_tokens
        usage: dict[str, Any] = {
            "promptTokenCount": answer.input_tokens,
            "candidatesTokenCount": out,
            "totalTokenCount": answer.input_tokens + out,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": answer.input_tokens}],
        }
        if answer.cached_tokens:
            usage["cachedContentTokenCount"] = answer.cached_tokens
        return usage

    def _response(
        self, prompt: Prompt, candidate: dict[str, Any] | None, usage: dict[str, Any]
    ) -> dict[str, Any]:
        self._ids += 1
        body: dict[str, Any] = {}
        if candidate is not None:
            body["candidates"] = [candidate]
        body["usageMetadata"] = usage
        body["modelVersion"] = prompt.model
        body["responseId"] = f"fake-response-{self._ids:06d}"
        return body

    def _parts(self, answer: Answer, prompt: Prompt) -> list[dict[str, Any]]:
        # A thought summary (asked for with thinkingConfig.includeThoughts) comes first.
        thought = [{"text": answer.thinking, "thought": True}] if answer.thinking else []
        if answer.tool_calls:
            calls: list[dict[str, Any]] = [
                {"functionCall": {"name": c.name, "args": c.arguments}} for c in answer.tool_calls
            ]
            if prompt.sign is not None:
                # Parallel calls: only the first is signed.
                calls[0]["thoughtSignature"] = prompt.sign(answer.tool_calls[0].name)
            return thought + calls
        return [*thought, {"text": answer.text}]

    def _blocked_prompt(self, answer: Answer, prompt: Prompt) -> dict[str, Any]:
        usage = {"promptTokenCount": answer.input_tokens, "totalTokenCount": answer.input_tokens}
        body = self._response(prompt, None, usage)
        body["promptFeedback"] = {
            "blockReason": "SAFETY",
            "safetyRatings": [
                {
                    "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                    "probability": "HIGH",
                    "blocked": True,
                }
            ],
        }
        return body

    def _candidate(
        self, answer: Answer, parts: list[dict[str, Any]] | None, finish: bool
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"index": 0}
        if parts is not None:
            candidate["content"] = {"parts": parts, "role": "model"}
        if finish:
            candidate["finishReason"] = _FINISH[answer.finish]
            if answer.finish == "blocked_output":
                candidate["safetyRatings"] = [
                    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}
                ]
        return candidate

    def render(self, answer: Answer, prompt: Prompt) -> bytes:
        if answer.finish == "blocked_prompt":
            return _encode(self._blocked_prompt(answer, prompt))
        parts = None if answer.finish == "blocked_output" else self._parts(answer, prompt)
        return _encode(
            self._response(prompt, self._candidate(answer, parts, True), self._usage(answer))
        )

    def stream_frames(self, answer: Answer, prompt: Prompt) -> list[bytes]:
        def frame(body: dict[str, Any]) -> bytes:
            return b"data: " + _encode(body) + b"\r\n\r\n"

        if answer.finish == "blocked_prompt":
            return [frame(self._blocked_prompt(answer, prompt))]
        if answer.finish == "blocked_output" or answer.tool_calls:
            # Gemini sends function calls whole, in one chunk; a blocked answer has no parts.
            parts = self._parts(answer, prompt) if answer.tool_calls else None
            candidate = self._candidate(answer, parts, True)
            return [frame(self._response(prompt, candidate, self._usage(answer)))]
        pieces = answer.text_pieces() or [""]
        frames = []
        if answer.thinking:
            thought = [{"text": answer.thinking, "thought": True}]
            candidate = self._candidate(answer, thought, False)
            frames.append(frame(self._response(prompt, candidate, self._usage(answer, 0))))
        produced = 0
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            produced = answer.output_tokens if last else produced + count_tokens(piece)
            candidate = self._candidate(answer, [{"text": piece}], last)
            frames.append(frame(self._response(prompt, candidate, self._usage(answer, produced))))
        return frames


GEMINI = GeminiFormat()

# Opaque bytes that always encode with ``+``, ``/`` and ``=`` padding, as a real
# signature may: an id that carries one must keep all three through the round trip.
_SIGNATURE_HEAD = b"\xfb\xef\xbe\xff\xff\xff"  # base64 "++++////"
_MISSING_SIGNATURE = (
    "Function call is missing a thought_signature in functionCall parts. This is required "
    "for tools to work correctly, and missing thought_signature may lead to degraded model "
    "performance. Additional data, function call `default_api:{name}`, position {position}."
)


class ThoughtSignatures:
    """The thought signatures a fake upstream's signing models issued, oldest first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._issued: dict[bytes, str] = {}  # decoded signature -> the function it signed
        self.issued: list[str] = []  # as sent, base64

    def issue(self, function: str) -> str:
        """A new signature for a call to ``function``, remembered."""
        raw = _SIGNATURE_HEAD + secrets.token_bytes(13)
        text = base64.b64encode(raw).decode()
        with self._lock:
            self._issued[raw] = function
            self.issued.append(text)
        return text

    def clear_record(self) -> None:
        """Empty ``issued``; the signatures stay valid."""
        with self._lock:
            self.issued.clear()

    def signed(self, signature: Any, function: str) -> bool:
        """Whether ``signature`` (as a request carries it) is one issued for ``function``."""
        raw = _decode_bytes(signature)
        with self._lock:
            return raw is not None and self._issued.get(raw) == function


def _decode_bytes(value: Any) -> bytes | None:
    """A protobuf JSON ``bytes`` value: standard or URL-safe base64, padding optional."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _standard_content(parts: list[Any]) -> bool:
    return any(
        isinstance(part, dict) and not ({"functionResponse", "function_response"} & set(part))
        for part in parts
    )


def check_signatures(contents: list[dict[str, Any]], ledger: ThoughtSignatures) -> None:
    """Refuse, as Gemini 3 does, a current turn whose calls lack their signatures.

    The current turn starts after the newest user content with standard parts (not only
    function responses); in it, the first ``functionCall`` part of every model content
    (one step) must carry a signature this fake issued for that call. Earlier turns are
    not checked. ``contents`` has passed ``read_generate``.
    """
    start = 0
    for index in range(len(contents) - 1, -1, -1):
        content = contents[index]
        if content.get("role", "user") == "user" and _standard_content(content["parts"]):
            start = index + 1
            break
    for content in contents[start:]:
        if content.get("role") != "model":
            continue
        for position, part in enumerate(content["parts"]):
            call = _get(part, "functionCall")
            if call is None:
                continue
            signature = _get(part, "thoughtSignature")
            if signature is None:
                raise Invalid(_MISSING_SIGNATURE.format(name=call["name"], position=position))
            if not ledger.signed(signature, call["name"]):
                raise Invalid("Invalid thought signature.")
            break  # only each step's first call is signed


def _read_schema(schema: Any, where: str) -> None:
    if not isinstance(schema, dict):
        raise Invalid(f"Invalid value at '{where}': expected an object.")
    _unknown(schema, _SCHEMA_FIELDS, where)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for name, sub in properties.items():
            _read_schema(sub, f"{where}.properties[{name}].value")
    if isinstance(schema.get("items"), dict):
        _read_schema(schema["items"], f"{where}.items")
    for index, sub in enumerate(_get(schema, "anyOf") or []):
        _read_schema(sub, f"{where}.any_of[{index}]")


def _read_tools(body: dict[str, Any], prompt: Prompt) -> None:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise Invalid("Invalid value at 'tools': expected a list.")
    for t_index, tool in enumerate(tools):
        where = f"tools[{t_index}]"
        if not isinstance(tool, dict):
            raise Invalid(f"Invalid value at '{where}': expected an object.")
        _unknown(tool, _TOOL_FIELDS, where)
        for d_index, declaration in enumerate(_get(tool, "functionDeclarations") or []):
            d_where = f"{where}.function_declarations[{d_index}]"
            if not isinstance(declaration, dict):
                raise Invalid(f"Invalid value at '{d_where}': expected an object.")
            _unknown(declaration, _DECLARATION_FIELDS, d_where)
            name = declaration.get("name")
            if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
                raise Invalid(
                    f"* GenerateContentRequest.{d_where}.name: Invalid function name. Must "
                    "start with a letter or an underscore. Must be alphameric (a-z, A-Z, "
                    "0-9), underscores (_), dots (.), colons (:), or dashes (-), with a "
                    "maximum length of 64."
                )
            parameters = declaration.get("parameters")
            if parameters is not None:
                _read_schema(parameters, f"{d_where}.parameters")
            schema = parameters or _get(declaration, "parametersJsonSchema")
            properties = schema.get("properties") if isinstance(schema, dict) else None
            first = next(iter(properties), "input") if isinstance(properties, dict) else "input"
            prompt.tools.append(ToolSpec(name, first))
    config = _get(body, "toolConfig") or {}
    calling = _get(config, "functionCallingConfig") or {} if isinstance(config, dict) else {}
    mode = str(calling.get("mode", "AUTO")).upper()
    allowed = _get(calling, "allowedFunctionNames") or []
    if mode == "NONE":
        prompt.tool_choice = "none"
    elif mode == "ANY":
        prompt.tool_choice = f"tool:{allowed[0]}" if len(allowed) == 1 else "required"


def _part_text(part: Any, where: str) -> tuple[str, str]:
    """Validate one part; returns (its kind, its text for counting)."""
    if not isinstance(part, dict):
        raise Invalid(f"Invalid value at '{where}': expected an object.")
    _unknown(part, _PART_FIELDS, where)
    data = [name for name in part if name in _PART_DATA]
    if not data:
        raise Invalid(
            f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one initialized field"
        )
    if len(data) > 1:
        raise Invalid(
            f"Invalid value at '{where}' (oneof), oneof field 'data' is already set. Cannot set '{data[1]}'"
        )
    kind = snake(data[0])
    value = part[data[0]]
    if kind == "text":
        if not isinstance(value, str):
            raise Invalid(f"Invalid value at '{where}.text': expected a string.")
        return kind, value
    if kind == "inline_data":
        if not isinstance(value, dict) or not _get(value, "mimeType") or not value.get("data"):
            raise Invalid(
                f"* GenerateContentRequest.{where}.inline_data: mime_type and data are required"
            )
    elif kind == "function_call":
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise Invalid(
                f"* GenerateContentRequest.{where}.function_call.name: Name cannot be empty."
            )
        _unknown(value, _names("name", "args", "id"), f"{where}.function_call")
        return kind, " ".join(str(v) for v in (value.get("args") or {}).values())
    elif kind == "function_response":
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise Invalid(
                f"* GenerateContentRequest.{where}.function_response.name: Name cannot be empty."
            )
        _unknown(
            value,
            _names("name", "response", "id", "parts", "willContinue", "scheduling"),
            f"{where}.function_response",
        )
        response = value.get("response")
        if not isinstance(response, dict):
            raise Invalid(
                f"Invalid value at '{where}.function_response.response' (type.googleapis.com/google.protobuf.Struct): expected an object."
            )
        return kind, " ".join(str(v) for v in response.values())
    return kind, ""


def _read_contents(contents: Any, prompt: Prompt) -> None:
    if not isinstance(contents, list) or not contents:
        raise Invalid("* GenerateContentRequest.contents: contents is not specified")
    previous_calls = 0
    previous_role = ""
    for index, content in enumerate(contents):
        where = f"contents[{index}]"
        if not isinstance(content, dict):
            raise Invalid(f"Invalid value at '{where}': expected an object.")
        _unknown(content, _CONTENT_FIELDS, where)
        role = content.get("role", "user")
        if role not in ("user", "model"):
            raise Invalid("Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise Invalid(
                f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty."
            )
        kinds_texts = [_part_text(part, f"{where}.parts[{n}]") for n, part in enumerate(parts)]
        kinds = [kind for kind, _ in kinds_texts]
        texts = [text for _, text in kinds_texts if text]
        prompt.input_text.append(" ".join(texts))
        calls = kinds.count("function_call")
        responses = kinds.count("function_response")
        if calls and previous_role == "model":
            raise Invalid(
                "Please ensure that function call turn comes immediately after a user turn "
                "or after a function response turn."
            )
        if responses:
            if not previous_calls:
                raise Invalid(
                    "Please ensure that function response turn comes immediately after a "
                    "function call turn."
                )
            if responses != previous_calls:
                raise Invalid(
                    "Please ensure that the number of function response parts is equal to "
                    "the number of function call parts of the function call turn."
                )
        previous_calls = calls
        previous_role = role
        if role == "user":
            prompt.tool_result = " ".join(texts) if responses else None
            words = [part["text"] for part in parts if isinstance(part.get("text"), str)]
            if words:
                prompt.last_user_text = " ".join(words)
        else:
            prompt.tool_result = None


def read_generate(body: Any, model: str) -> Prompt:
    """Validate a GenerateContent request as Google does and extract the fake's ``Prompt``."""
    if not isinstance(body, dict):
        raise Invalid("Invalid JSON payload received. Expected an object.")
    _unknown(body, _REQUEST_FIELDS, "")
    prompt = Prompt(model=model)
    system = _get(body, "systemInstruction")
    if system is not None:
        if not isinstance(system, dict) or not isinstance(system.get("parts"), list):
            raise Invalid(
                "Invalid value at 'system_instruction': expected a Content object with parts."
            )
        _unknown(system, _CONTENT_FIELDS, "system_instruction")
        for n, part in enumerate(system["parts"]):
            prompt.input_text.append(_part_text(part, f"system_instruction.parts[{n}]")[1])
    _read_contents(body.get("contents"), prompt)
    _read_tools(body, prompt)
    config = _get(body, "generationConfig") or {}
    if not isinstance(config, dict):
        raise Invalid("Invalid value at 'generation_config': expected an object.")
    _unknown(config, _GENERATION_FIELDS, "generation_config")
    limit = _get(config, "maxOutputTokens")
    if limit is not None:
        if not isinstance(limit, int) or limit < 1:
            raise Invalid(
                f"Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), {limit!r}"
            )
        prompt.max_tokens = limit
    thinking = _get(config, "thinkingConfig") or {}
    prompt.thinking = isinstance(thinking, dict) and _get(thinking, "includeThoughts") is True
    stops = _get(config, "stopSequences") or []
    if not isinstance(stops, list) or len(stops) > 5:
        raise Invalid(
            "* GenerateContentRequest.generation_config.stop_sequences: at most 5 stop sequences are allowed"
        )
    prompt.stop = [str(stop) for stop in stops]
    if _get(config, "responseSchema") is not None:
        _read_schema(_get(config, "responseSchema"), "generation_config.response_schema")
    prompt.json_mode = _get(config, "responseMimeType") == "application/json"
    return prompt


def contents_tokens(body: dict[str, Any], model: str) -> int:
    """Token count of a ``countTokens`` body (``contents`` or ``generateContentRequest``)."""
    inner = _get(body, "generateContentRequest")
    if isinstance(inner, dict):
        prompt = read_generate(inner, model)
    else:
        _unknown(body, _names("contents", "generateContentRequest", "instances"), "")
        prompt = read_generate({"contents": body.get("contents")}, model)
    return max(1, sum(count_tokens(text) for text in prompt.input_text))
