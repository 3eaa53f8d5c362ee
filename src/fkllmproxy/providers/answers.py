"""Is a 200 an answer? The cheap structural check made before a body is trusted.

A provider (or a proxy in front of it) can answer 200 with ``{}``, an HTML error page,
or ``{"choices": "not-a-list"}``. Passed on, the client gets a 200 it cannot use and
the router never tries the next target. So a 200's body is checked for the top-level
shape of its format, and a body that is not one is an upstream failure like a 5xx.

The check is one msgspec decode into Structs that name only the fields that make the
shape (elements are Structs with no fields: msgspec checks each is an object and skips
its contents), and it reads the usage on the same pass, so it replaces the decode that
was already made for usage: about 0.1 µs more per answer (the commit message has the
figures). The body itself is relayed byte for byte.

Every passthrough route checks its own format: chat and embeddings here, a Response
(``providers/responses.py``), a Message (``providers/anthropic.py``) and Google's
answers (``providers/gemini.py``); each refuses through ``not_an_answer``. A stream is
checked by its first bytes (``providers/sse.looks_like_sse``): one that is not an event
stream at all fails before anything reaches the client, so the next target is tried.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fkllmproxy.errors import UpstreamUnavailable
from fkllmproxy.providers.base import Usage
from fkllmproxy.wire.gemini import UsageMetadata

__all__ = [
    "chat_answer_usage",
    "embeddings_answer_usage",
    "gemini_answer_metadata",
    "not_an_answer",
    "not_an_event_stream",
]


class _Object(msgspec.Struct):
    """Any JSON object (its fields are skipped)."""


class _PromptDetails(msgspec.Struct):
    cached_tokens: int = 0


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: _PromptDetails | None = None


class _ChatAnswer(msgspec.Struct):
    choices: list[_Object]
    usage: _Usage | None = None


class _EmbeddingsAnswer(msgspec.Struct):
    data: list[_Object]
    usage: _Usage | None = None


class _Feedback(msgspec.Struct, rename="camel"):
    block_reason: str | None = None


class _Generated(msgspec.Struct, rename="camel"):
    """generateContent's answer: candidates, or none for a prompt blocked outright."""

    candidates: list[_Object] | None = None
    prompt_feedback: _Feedback | None = None
    usage_metadata: UsageMetadata | None = None


class _Counted(msgspec.Struct, rename="camel"):
    # Google's JSON leaves out a count of zero, so an empty object is still a count.
    total_tokens: int = 0


class _Embedded(msgspec.Struct):
    embedding: _Object


class _BatchEmbedded(msgspec.Struct):
    embeddings: list[_Object]


_chat = msgspec.json.Decoder(_ChatAnswer)
_embeddings = msgspec.json.Decoder(_EmbeddingsAnswer)
_generated = msgspec.json.Decoder(_Generated)
# The other methods' answers carry no usage; only their shape is checked.
_gemini_shapes: dict[str, msgspec.json.Decoder[Any]] = {
    "countTokens": msgspec.json.Decoder(_Counted),
    "embedContent": msgspec.json.Decoder(_Embedded),
    "batchEmbedContents": msgspec.json.Decoder(_BatchEmbedded),
}


def _usage(found: _Usage | None) -> Usage | None:
    if found is None:
        return None
    cached = found.prompt_tokens_details.cached_tokens if found.prompt_tokens_details else 0
    return Usage(found.prompt_tokens, found.completion_tokens, cached)


def chat_answer_usage(body: bytes) -> Usage | None:
    """The usage of an OpenAI chat completion; ``msgspec.DecodeError`` if ``body`` is none.

    A completion is a JSON object whose ``choices`` is a list of objects.
    """
    return _usage(_chat.decode(body).usage)


def embeddings_answer_usage(body: bytes) -> Usage | None:
    """The usage of an OpenAI embeddings answer (``data``: a list of objects), as above."""
    return _usage(_embeddings.decode(body).usage)


def gemini_answer_metadata(method: str, body: bytes) -> UsageMetadata | None:
    """The ``usageMetadata`` of a whole answer to the Gemini API ``method``;
    ``msgspec.DecodeError`` if ``body`` is not one.

    ``generateContent`` answers with a non-empty ``candidates`` list of objects, or with
    none and a ``promptFeedback.blockReason`` (the prompt was blocked): the same rule the
    translated route applies. ``countTokens`` answers with an object (``totalTokens`` an
    integer), ``embedContent`` with an ``embedding`` object, ``batchEmbedContents`` with
    an ``embeddings`` list of objects.
    """
    shape = _gemini_shapes.get(method)
    if shape is not None:
        shape.decode(body)
        return None
    answer = _generated.decode(body)
    blocked = answer.prompt_feedback is not None and answer.prompt_feedback.block_reason
    if not answer.candidates and not blocked:
        raise msgspec.ValidationError("Object has no candidates and no promptFeedback.blockReason")
    return answer.usage_metadata


def not_an_answer(provider: str, error: msgspec.DecodeError) -> UpstreamUnavailable:
    """The failed attempt a 200 makes whose body is not an answer: retryable, so the
    router tries the next target and the client gets 502 when none is left."""
    reason = str(error).split(" - at ", 1)[0][:120]
    return UpstreamUnavailable(
        f"provider {provider!r} answered 200 with a body that is not an answer ({reason})",
        provider=provider,
        upstream_status=200,
    )


def not_an_event_stream(provider: str) -> UpstreamUnavailable:
    """The failed attempt a 200 makes that was asked for a stream and is not one."""
    return UpstreamUnavailable(
        f"provider {provider!r} answered 200 with something that is not an event stream",
        provider=provider,
        upstream_status=200,
    )
