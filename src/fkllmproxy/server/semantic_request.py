"""Which chat requests the semantic cache may answer, and what of them must match exactly.

Replaying an earlier answer to a differently worded question is only safe when the
question is all that differs and the answer does not depend on anything else, so a
request qualifies only with:

- one user turn, after at most one system (or developer) message, in plain text (no
  image, audio or file part);
- no tools or functions (an answer could be a call to one) and one choice (``n`` 1);
- no ``logprobs`` (a replay has none);
- ``temperature`` absent or 0, unless the model's ``allow_temperature`` says otherwise.

Everything else in the body (the system prompt, ``max_tokens``, ``response_format``,
``stop``, ``seed``...) goes into the *partition*: a digest that an earlier answer's
must equal, with the route, the model, the owner (the caller, unless shared) and the
embedding model. Only the user's text is embedded. ``stream`` and ``stream_options``
are left out: a streamed answer serves a whole-answer request and the other way round.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec

__all__ = ["SemanticQuestion", "semantic_question"]

_encode_sorted = msgspec.json.Encoder(order="sorted").encode
_SYSTEM_ROLES = frozenset({"system", "developer"})
_UNSAFE_KEYS = ("tools", "functions", "tool_choice", "function_call")
_LEFT_OUT = frozenset({"stream", "stream_options"})


@dataclass(frozen=True, slots=True)
class SemanticQuestion:
    """An eligible request: the text to embed and the partition its answer belongs to."""

    text: str
    partition: str


def semantic_question(
    raw: bytes,
    *,
    route: str,
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
    if not isinstance(body, dict) or not _eligible(body, allow_temperature):
        return None
    messages = body["messages"]
    text = _text(messages[-1].get("content"))
    if text is None or not text.strip():
        return None
    rest = {k: v for k, v in body.items() if k not in _LEFT_OUT}
    asked = {k: v for k, v in messages[-1].items() if k != "content"}
    rest["messages"] = [*messages[:-1], asked]
    digest = hashlib.sha256(_encode_sorted(rest))
    for part in (route, model, owner, embedding_model):
        digest.update(b"\0" + part.encode())
    return SemanticQuestion(text=text, partition=digest.hexdigest())


def _eligible(body: dict[str, Any], allow_temperature: bool) -> bool:
    if any(body.get(key) for key in _UNSAFE_KEYS):
        return False
    if body.get("n") not in (None, 1) or body.get("logprobs"):
        return False
    temperature = body.get("temperature")
    if temperature not in (None, 0) and not allow_temperature:
        return False
    messages = body.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= 2:
        return False
    if not all(isinstance(m, dict) for m in messages):
        return False
    if messages[-1].get("role") != "user":
        return False
    if len(messages) == 2:
        system = messages[0]
        if system.get("role") not in _SYSTEM_ROLES or _text(system.get("content")) is None:
            return False
    return True


def _text(content: Any) -> str | None:
    """Plain text content (a string, or only text parts), else ``None``."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        return None
    texts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text":
            return None
        text = part.get("text")
        if not isinstance(text, str):
            return None
        texts.append(text)
    return "\n".join(texts)
