"""Which requests the semantic cache may answer, and what of them must match exactly.

Replaying an earlier answer to a differently worded question is only safe when the
question is all that differs and the answer does not depend on anything else, so a
request qualifies, whichever inbound API it came by, only with:

- one user turn, after at most a system prompt (chat's ``system`` or ``developer``
  message, Anthropic's ``system``, Responses' ``instructions`` or a ``system`` /
  ``developer`` item, Gemini's ``systemInstruction``), in plain text (no image, audio,
  file or document part);
- no tools (an answer could be a call to one), one choice and no log probabilities (a
  replay has none), no ``previous_response_id`` (a conversation, not a question);
- a temperature absent or 0, unless the model's ``allow_temperature`` says otherwise.

Everything else goes into the *partition*: a digest that an earlier answer's must
equal, with the model, the owner (the caller, unless shared) and the embedding model.
Only the user's text is embedded. The partition is worked out from the request in a
canonical form, so the same question asked through two APIs meets the same entries
when it means the same: the system prompt's text parts, and the parameters all four
APIs share under one name each (``max_output_tokens`` for chat's ``max_tokens`` /
``max_completion_tokens``, Anthropic's ``max_tokens``, Responses' ``max_output_tokens``
and Gemini's ``generationConfig.maxOutputTokens``; ``temperature``; ``top_p``; ``stop``
for the stop sequences). Any other field keeps its API's name (``messages.top_k``,
``gemini.safetySettings``...): a request carrying one shares only with requests of
its own API that carry the same value. Left out are only the fields that do not
change the answer: ``stream`` and ``stream_options`` (a streamed answer serves a
whole-answer request and the other way round) and Responses' ``store``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

__all__ = ["Api", "SemanticQuestion", "semantic_question"]

Api = Literal["chat", "messages", "responses", "gemini"]

_encode_sorted = msgspec.json.Encoder(order="sorted").encode
_FORMAT = b"\0semantic-v2"  # bumped whenever the partition's canonical form changes
_SYSTEM_ROLES = frozenset({"system", "developer"})


@dataclass(frozen=True, slots=True)
class SemanticQuestion:
    """An eligible request: the text to embed and the partition its answer belongs to."""

    text: str
    partition: str


@dataclass(slots=True)
class _Asked:
    """A request in canonical form: the system prompt's parts, the question's, the rest."""

    system: list[str]
    question: list[str]
    params: dict[str, Any]


class _Ineligible(Exception):
    """The request is not one the cache may answer."""


def semantic_question(
    raw: bytes,
    *,
    api: Api,
    model: str,
    owner: str,
    embedding_model: str,
    allow_temperature: bool,
) -> SemanticQuestion | None:
    """The request's question and partition, or ``None`` when it is not safe to cache."""
    try:
        body = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    try:
        asked = _CANONICAL[api](body)
    except _Ineligible:
        return None
    temperature = asked.params.get("temperature")
    if temperature not in (None, 0) and not allow_temperature:
        return None
    text = "\n".join(asked.question)
    if not text.strip():
        return None
    digest = hashlib.sha256(_encode_sorted({"system": asked.system, "params": asked.params}))
    for part in (model, owner, embedding_model):
        digest.update(b"\0" + part.encode())
    digest.update(_FORMAT)
    return SemanticQuestion(text=text, partition=digest.hexdigest())


def _require(condition: bool) -> None:
    if not condition:
        raise _Ineligible


def _text_parts(content: Any, part_type: str = "text") -> list[str]:
    """Plain text content (a string, or only text parts of ``part_type``) as its parts."""
    if isinstance(content, str):
        return [content]
    _require(isinstance(content, list) and bool(content))
    parts = []
    for part in content:
        _require(isinstance(part, dict) and part.get("type") == part_type)
        text = part.get("text")
        _require(isinstance(text, str))
        parts.append(text)
    return parts


def _shared(params: dict[str, Any], name: str, value: Any) -> None:
    if value is not None:
        params[name] = value


def _stop_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _rest(api: str, body: dict[str, Any], known: frozenset[str], params: dict[str, Any]) -> None:
    """Every field not read into the canonical form, under its API's name."""
    for name, value in body.items():
        if name not in known:
            params[f"{api}.{name}"] = value


# ---------------------------------------------------------------- chat completions

_CHAT_KNOWN = frozenset(
    {"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens"}
    | {"temperature", "top_p", "stop", "n", "logprobs"}
)


def _chat(body: dict[str, Any]) -> _Asked:
    for name in ("tools", "functions", "tool_choice", "function_call", "logprobs"):
        _require(not body.get(name))
    _require(body.get("n") in (None, 1))
    messages: Any = body.get("messages")
    _require(isinstance(messages, list) and 1 <= len(messages) <= 2)
    _require(all(isinstance(m, dict) for m in messages))
    _require(messages[-1].get("role") == "user")
    system: list[str] = []
    if len(messages) == 2:
        _require(messages[0].get("role") in _SYSTEM_ROLES)
        system = _text_parts(messages[0].get("content"))
    params: dict[str, Any] = {}
    extras = [{k: v for k, v in m.items() if k not in ("role", "content")} for m in messages]
    if any(extras):
        params["chat.messages"] = extras
    limits = [body.get(n) for n in ("max_tokens", "max_completion_tokens")]
    if limits[0] is not None and limits[1] is not None:
        params["chat.max_tokens"], params["chat.max_completion_tokens"] = limits
    else:
        _shared(params, "max_output_tokens", limits[0] if limits[0] is not None else limits[1])
    _shared(params, "temperature", body.get("temperature"))
    _shared(params, "top_p", body.get("top_p"))
    _shared(params, "stop", _stop_list(body.get("stop")) or None)
    _rest("chat", body, _CHAT_KNOWN, params)
    return _Asked(system, _text_parts(messages[-1].get("content")), params)


# ---------------------------------------------------------------- Anthropic messages

_MESSAGES_KNOWN = frozenset(
    {"model", "messages", "system", "stream", "max_tokens", "temperature", "top_p"}
    | {"stop_sequences"}
)


def _messages(body: dict[str, Any]) -> _Asked:
    _require(not body.get("tools") and not body.get("tool_choice"))
    messages: Any = body.get("messages")
    _require(isinstance(messages, list) and len(messages) == 1)
    (message,) = messages
    _require(isinstance(message, dict) and message.get("role") == "user")
    _require(set(message) <= {"role", "content"})
    system = body.get("system")
    params: dict[str, Any] = {}
    _shared(params, "max_output_tokens", body.get("max_tokens"))
    _shared(params, "temperature", body.get("temperature"))
    _shared(params, "top_p", body.get("top_p"))
    _shared(params, "stop", body.get("stop_sequences") or None)
    _rest("messages", body, _MESSAGES_KNOWN, params)
    return _Asked(
        _text_parts(system) if system else [], _text_parts(message.get("content")), params
    )


# ---------------------------------------------------------------- OpenAI Responses

_RESPONSES_KNOWN = frozenset(
    {"model", "input", "instructions", "stream", "store", "max_output_tokens", "temperature"}
    | {"top_p"}
)


def _responses(body: dict[str, Any]) -> _Asked:
    for name in ("tools", "tool_choice", "previous_response_id", "top_logprobs"):
        _require(not body.get(name))
    items: Any = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    _require(isinstance(items, list) and 1 <= len(items) <= 2)
    _require(all(isinstance(i, dict) and i.get("type", "message") == "message" for i in items))
    _require(all(set(i) <= {"type", "role", "content"} for i in items))
    _require(items[-1].get("role") == "user")
    system: list[str] = []
    instructions = body.get("instructions")
    if instructions:
        _require(isinstance(instructions, str))
        system.append(instructions)
    if len(items) == 2:
        _require(items[0].get("role") in _SYSTEM_ROLES)
        system.extend(_text_parts(items[0].get("content"), "input_text"))
    params: dict[str, Any] = {}
    _shared(params, "max_output_tokens", body.get("max_output_tokens"))
    _shared(params, "temperature", body.get("temperature"))
    _shared(params, "top_p", body.get("top_p"))
    _rest("responses", body, _RESPONSES_KNOWN, params)
    return _Asked(system, _text_parts(items[-1].get("content"), "input_text"), params)


# ---------------------------------------------------------------- Gemini

_GEMINI_KNOWN = frozenset({"contents", "systemInstruction", "generationConfig"})
_GENERATION_KNOWN = frozenset(
    {"maxOutputTokens", "temperature", "topP", "stopSequences", "candidateCount"}
)


def _gemini_parts(content: Any) -> list[str]:
    _require(isinstance(content, dict) and set(content) <= {"role", "parts"})
    parts: Any = content.get("parts")
    _require(isinstance(parts, list) and bool(parts))
    texts = []
    for part in parts:
        _require(isinstance(part, dict) and set(part) == {"text"})
        _require(isinstance(part["text"], str))
        texts.append(part["text"])
    return texts


def _gemini(body: dict[str, Any]) -> _Asked:
    _require(not body.get("tools") and not body.get("toolConfig"))
    contents: Any = body.get("contents")
    _require(isinstance(contents, list) and len(contents) == 1)
    _require(isinstance(contents[0], dict) and contents[0].get("role", "user") == "user")
    instruction = body.get("systemInstruction")
    system = _gemini_parts(instruction) if instruction else []
    generation: Any = body.get("generationConfig") or {}
    _require(isinstance(generation, dict))
    _require(generation.get("candidateCount") in (None, 1))
    _require(not generation.get("responseLogprobs"))
    params: dict[str, Any] = {}
    _shared(params, "max_output_tokens", generation.get("maxOutputTokens"))
    _shared(params, "temperature", generation.get("temperature"))
    _shared(params, "top_p", generation.get("topP"))
    _shared(params, "stop", generation.get("stopSequences") or None)
    _rest("gemini.generationConfig", generation, _GENERATION_KNOWN, params)
    _rest("gemini", body, _GEMINI_KNOWN, params)
    return _Asked(system, _gemini_parts(contents[0]), params)


_CANONICAL: dict[str, Callable[[dict[str, Any]], _Asked]] = {
    "chat": _chat,
    "messages": _messages,
    "responses": _responses,
    "gemini": _gemini,
}
