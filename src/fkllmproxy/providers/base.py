"""The small interface every provider adapter implements.

A chat client's request arrives as its bytes; any other API's arrives decoded into
the canonical conversation (``translate/canonical.py``). An adapter whose provider
speaks the client's API forwards the client's bytes untouched and answers with the
provider's; one that translates writes the conversation in its provider's API with
that API's codec (``translate/codecs/``) and answers in canonical form
(``Completion.answer``, or ``StreamEvent``s), which the client's route writes in the
client's API.

Usage::

    provider = build_provider(config, transport)
    result = await provider.chat(ChatRequest(raw=client_bytes, model="gpt-4o", stream=False))
    if isinstance(result, Completion):
        send(result.body if result.api == "chat" else chat.encode_answer(result.answer))
    else:
        async for chunk in result.chunks: send(chunk)  # bytes, or canonical events
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from fkllmproxy.translate._common import Unsupported
from fkllmproxy.translate.canonical import Answer, Conversation
from fkllmproxy.translate.codecs import chat

_encode = msgspec.json.Encoder().encode


def _decode_object(raw: bytes) -> dict[str, Any]:
    """The client's body as plain data; ``BadRequest`` for what the typed check let by.

    The typed decode at the door skips fields it does not declare, so a number no
    double can hold (``1e999``) or a deeper-than-int64 integer can still sit in one.
    """
    from fkllmproxy.errors import BadRequest

    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        reason = str(exc).split(" - at ", 1)[0]
        raise BadRequest(f"Invalid request body: {reason}.") from None
    except UnicodeDecodeError:
        raise BadRequest("Request body is not valid UTF-8 text.") from None
    if not isinstance(data, dict):
        raise BadRequest("Invalid request body: expected a JSON object.")
    return data


__all__ = [
    "ChatRequest",
    "Completion",
    "EmbeddingRequest",
    "GeminiApiProvider",
    "GeminiCall",
    "MessagesCall",
    "MessagesProvider",
    "Provider",
    "StreamingCompletion",
    "Usage",
]


@dataclass(slots=True)
class Usage:
    """Token counts as the provider reported them (zeros when it did not).

    ``prompt_tokens`` counts every input token in OpenAI's sense, prompt-cache reads
    (``cached_tokens``) and writes (``cache_write_tokens``, which only Anthropic reports)
    included.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(slots=True)
class ChatRequest:
    """One generation call for one target: a chat client's request, or another API's
    decoded into the canonical ``conversation``.

    ``raw`` is a chat client's exact bytes (``None`` for another API's request, then
    ``conversation`` holds it). ``model`` is the upstream model name;
    ``client_model`` the name the client sent. ``upstream_bytes`` forwards ``raw``
    untouched whenever nothing needs changing, and decodes only when something does.
    Whether the client wants the model's reasoning back is the conversation's
    ``reasoning.include``.
    """

    raw: bytes | None
    model: str
    stream: bool
    client_model: str | None = None
    include_usage: bool = False
    parsed: dict[str, Any] | None = None
    conversation: Conversation | None = None

    @property
    def body(self) -> dict[str, Any]:
        """A chat client's request as plain data, ``model`` set to the upstream name."""
        if self.parsed is None:
            data = _decode_object(self.raw or b"{}")
            data["model"] = self.model
            self.parsed = data
        return self.parsed

    def chat_body(self, unsupported: Unsupported) -> dict[str, Any]:
        """The request as a chat body: the client's, or another API's conversation
        written by the chat codec (``unsupported`` words the refusal of what Chat cannot
        carry, naming the target)."""
        if self.parsed is None and self.conversation is not None:
            self.parsed = chat.encode_request(
                self.conversation, model=self.model, unsupported=unsupported
            )
        return self.body

    def canonical(self, unsupported: Unsupported) -> Conversation:
        """The request as a canonical conversation (a chat body decoded once);
        ``unsupported`` words the refusal of what the provider cannot take."""
        if self.conversation is None:
            self.conversation = chat.decode_request(self.body, unsupported=unsupported)
        return self.conversation

    def upstream_bytes(self, unsupported: Unsupported) -> bytes:
        """The chat request to send: the client's bytes untouched when nothing needs
        changing (``unsupported`` as for ``chat_body``)."""
        if self.raw is not None and self.parsed is None and self.client_model == self.model:
            return self.raw
        return _encode(self.chat_body(unsupported))


@dataclass(slots=True)
class EmbeddingRequest:
    """One embeddings call; ``raw`` and ``model`` as for ``ChatRequest``."""

    raw: bytes
    model: str
    client_model: str | None = None
    parsed: dict[str, Any] | None = None

    @property
    def body(self) -> dict[str, Any]:
        if self.parsed is None:
            data = _decode_object(self.raw)
            data["model"] = self.model
            self.parsed = data
        return self.parsed

    def upstream_bytes(self) -> bytes:
        if self.parsed is None and self.client_model == self.model:
            return self.raw
        return _encode(self.body)


@dataclass(slots=True)
class MessagesCall:
    """One Anthropic Messages call forwarded untranslated (``/v1/messages`` and
    ``/v1/messages/count_tokens`` to an Anthropic provider).

    ``raw``, ``model`` and ``client_model`` as for ``ChatRequest``; ``beta`` is the
    client's ``anthropic-beta`` header, which turns on the features the body may use,
    and ``version`` its ``anthropic-version`` (both forwarded as sent).
    """

    raw: bytes
    model: str
    stream: bool = False
    client_model: str | None = None
    beta: str | None = None
    version: str | None = None

    def upstream_bytes(self) -> bytes:
        if self.client_model == self.model:
            return self.raw
        data = msgspec.json.decode(self.raw)
        data["model"] = self.model
        return _encode(data)


# The Gemini API methods whose bodies may name the model too (it must match the URL's).
_MODEL_IN_BODY = frozenset({"embedContent", "batchEmbedContents"})


@dataclass(slots=True)
class GeminiCall:
    """One Gemini API call forwarded untranslated (the inbound Gemini API to a Google
    provider): ``method`` is ``generateContent``, ``streamGenerateContent``,
    ``countTokens``, ``embedContent`` or ``batchEmbedContents``; the model travels in
    the URL, so the body goes up as sent except where Google wants the model inside
    it too (each ``batchEmbedContents`` request) and the names differ.
    """

    raw: bytes
    model: str
    method: str
    stream: bool = False
    client_model: str | None = None

    def upstream_bytes(self) -> bytes:
        if self.client_model == self.model or self.method not in _MODEL_IN_BODY:
            return self.raw
        data = msgspec.json.decode(self.raw)
        items = data.get("requests") if self.method == "batchEmbedContents" else [data]
        for item in items or ():
            if isinstance(item, dict) and "model" in item:
                item["model"] = f"models/{self.model}"
        return _encode(data)


@dataclass(slots=True)
class Completion:
    """A whole answer: the provider's JSON bytes in wire API ``api`` (``chat``,
    ``messages``, ``gemini``, ``responses``), or, when the provider translated it
    (``api == "canonical"``), the canonical ``answer`` and no body."""

    body: bytes
    usage: Usage | None = None
    status: int = 200
    api: str = "chat"
    answer: Answer | None = None


@dataclass(slots=True)
class StreamingCompletion:
    """An answer still arriving: SSE frames of wire API ``api`` as they come from
    upstream (``chat``: ``data: {...}\\n\\n`` ... ``[DONE]``), or, when the provider
    translates (``api == "canonical"``), canonical ``StreamEvent``s.

    ``aclose`` releases the upstream connection and must be called whatever happens.
    ``usage`` is filled in as the stream reports it, so it is complete once ``chunks``
    is exhausted.
    """

    chunks: AsyncIterator[Any]
    aclose: Callable[[], Awaitable[None]]
    usage: Usage = field(default_factory=Usage)
    api: str = "chat"


class Provider(abc.ABC):
    """A configured upstream. One instance per ``[[providers]]`` block, shared by all requests."""

    name: str
    type: str

    @abc.abstractmethod
    async def chat(self, request: ChatRequest) -> Completion | StreamingCompletion:
        """Send one chat request; raise an ``UpstreamError`` subclass on failure.

        A streaming call returns once the provider has accepted the request (status
        and headers received), so that a refusal can still fall back to another target.
        """

    async def embeddings(self, request: EmbeddingRequest) -> Completion:
        """Create embeddings; providers without them answer with a clear 400."""
        from fkllmproxy.errors import BadRequest

        raise BadRequest(
            f"provider {self.name!r} ({self.type}) does not offer embeddings", param="model"
        )

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections; called once when the provider is retired."""


class MessagesProvider(Provider):
    """A provider that speaks Anthropic's Messages API itself.

    ``/v1/messages`` uses ``messages`` instead of translating through ``chat`` when a
    target's provider is one of these, so Anthropic clients get the provider's bytes
    untouched. Here ``Completion.body`` and the stream's frames are Anthropic's shapes.
    """

    @abc.abstractmethod
    async def messages(self, call: MessagesCall) -> Completion | StreamingCompletion:
        """Send one Messages call as it is; raise an ``UpstreamError`` on failure."""

    @abc.abstractmethod
    async def count_tokens(self, call: MessagesCall) -> Completion:
        """Ask the provider to count the input tokens of ``call`` (``{"input_tokens": n}``)."""


class GeminiApiProvider(Provider):
    """A provider that speaks Google's Gemini API itself (the ``gemini`` and ``vertex`` types).

    The inbound Gemini API uses ``gemini`` instead of translating through ``chat`` when
    a target's provider is one of these and ``method`` is in ``gemini_methods``, so
    Gemini clients get the provider's bytes untouched (``Completion.body`` is Google's
    JSON, a stream's frames its SSE events).
    """

    gemini_methods: frozenset[str] = frozenset()

    @abc.abstractmethod
    async def gemini(self, call: GeminiCall) -> Completion | StreamingCompletion:
        """Send one Gemini API call as it is; raise an ``UpstreamError`` on failure."""
