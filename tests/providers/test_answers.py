"""A 200 whose body is not an answer in the provider's format is a failed attempt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest

from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.errors import UpstreamUnavailable
from fkllmproxy.providers import (
    ChatRequest,
    Completion,
    EmbeddingRequest,
    GeminiCall,
    MessagesCall,
    StreamingCompletion,
    build_provider,
)
from fkllmproxy.providers.answers import (
    chat_answer_usage,
    embeddings_answer_usage,
    gemini_answer_metadata,
)
from fkllmproxy.providers.anthropic import AnthropicProvider
from fkllmproxy.providers.exchange import Transport
from fkllmproxy.providers.responses import ResponsesCall, responses_answer_usage
from tests.conftest import mock_transport

NOT_ANSWERS = [
    b"{}",
    b'{"choices": "not-a-list"}',
    b'{"choices": [1, 2]}',
    b"<html>",
    b"[]",
    b"null",
]
COMPLETION = (
    b'{"id": "c", "choices": [{"index": 0}], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}'
)


class TestChatAnswerUsage:
    def test_a_completion_gives_its_usage(self) -> None:
        """A completion's usage is read on the same pass as its shape."""
        usage = chat_answer_usage(COMPLETION)
        assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (3, 4)

    def test_a_completion_without_usage_is_still_an_answer(self) -> None:
        """``usage`` is optional; ``choices`` is not."""
        assert chat_answer_usage(b'{"choices": []}') is None

    @pytest.mark.parametrize("body", NOT_ANSWERS)
    def test_what_is_not_a_completion_is_refused(self, body: bytes) -> None:
        """Wrong shape, missing choices, not JSON: a decode error."""
        with pytest.raises(msgspec.DecodeError):
            chat_answer_usage(body)

    def test_embeddings_need_a_data_list(self) -> None:
        """An embeddings answer is an object whose ``data`` is a list of objects."""
        assert embeddings_answer_usage(b'{"data": [{"embedding": [0.1]}]}') is None
        with pytest.raises(msgspec.DecodeError):
            embeddings_answer_usage(b'{"data": "x"}')


def _provider(kind: str, body: bytes, *, streamed: bool = False) -> Any:
    """A ``kind`` provider whose upstream answers 200 with ``body`` (as a stream when
    ``streamed``: httpx reads a bytes body at once, which a streamed call cannot relay)."""

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks() if streamed else body)

    def transport(_: ProviderConfig) -> Transport:
        return mock_transport(answer)

    return build_provider(ProviderConfig(name="p", type=kind, api_key="k"), transport)  # type: ignore[arg-type]


@pytest.mark.parametrize("body", NOT_ANSWERS)
async def test_openai_chat_refuses_a_200_that_is_not_a_completion(body: bytes) -> None:
    """The router then tries the next target (UpstreamUnavailable is retryable)."""
    provider = _provider("openai", body)
    request = ChatRequest(
        raw=b'{"model": "m", "messages": []}', model="m", stream=False, client_model="m"
    )
    with pytest.raises(UpstreamUnavailable, match="not an answer"):
        await provider.chat(request)
    await provider.aclose()


async def test_openai_embeddings_refuse_a_200_that_is_not_an_answer() -> None:
    """Embeddings are checked the same way."""
    provider = _provider("openai", b"{}")
    with pytest.raises(UpstreamUnavailable, match="not an answer"):
        await provider.embeddings(
            EmbeddingRequest(raw=b'{"model": "m", "input": "x"}', model="m", client_model="m")
        )
    await provider.aclose()


@pytest.mark.parametrize("body", [b"{}", b'{"content": "x"}', b"<html>"])
async def test_anthropic_messages_refuse_a_200_that_is_not_a_message(body: bytes) -> None:
    """/v1/messages to an Anthropic provider: a Message needs its ``content`` list."""
    provider = _provider("anthropic", body)
    assert isinstance(provider, AnthropicProvider)
    with pytest.raises(UpstreamUnavailable, match="not a Message"):
        await provider.messages(MessagesCall(raw=b'{"model": "m"}', model="m", client_model="m"))
    await provider.aclose()


async def test_azure_chat_refuses_a_200_that_is_not_a_completion() -> None:
    """Azure is OpenAI's format behind another path: the same check."""

    def transport(_: ProviderConfig) -> Transport:
        return mock_transport(lambda request: httpx.Response(200, content=b"{}"))

    config = ProviderConfig(name="az", type="azure", api_key="k", base_url="https://r.example")
    provider = build_provider(config, transport)
    request = ChatRequest(
        raw=b'{"model": "d", "messages": []}', model="d", stream=False, client_model="d"
    )
    with pytest.raises(UpstreamUnavailable, match="not an answer"):
        await provider.chat(request)
    await provider.aclose()


RESPONSE = (
    b'{"id": "resp_1", "object": "response", "output": [{"type": "message"}],'
    b' "usage": {"input_tokens": 5, "output_tokens": 2}}'
)
NOT_RESPONSES = [b"{}", b'{"output": "not-a-list"}', b'{"output": [1]}', b"<html>", b"[]"]


class TestResponsesAnswerUsage:
    def test_a_response_gives_its_usage(self) -> None:
        """A Response's usage is read on the same pass as its shape."""
        usage = responses_answer_usage(RESPONSE)
        assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (5, 2)

    def test_a_queued_response_with_no_output_yet_is_an_answer(self) -> None:
        """A background response answers with an empty ``output`` list."""
        assert responses_answer_usage(b'{"id": "r", "status": "queued", "output": []}') is None

    @pytest.mark.parametrize("body", NOT_RESPONSES)
    def test_what_is_not_a_response_is_refused(self, body: bytes) -> None:
        """No ``output`` list of objects: a decode error."""
        with pytest.raises(msgspec.DecodeError):
            responses_answer_usage(body)


GENERATED = (
    b'{"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}],'
    b' "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 1}}'
)
BLOCKED = b'{"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 4}}'


class TestGeminiAnswerMetadata:
    def test_an_answer_gives_its_usage(self) -> None:
        """generateContent's usageMetadata is read on the same pass as its shape."""
        metadata = gemini_answer_metadata("generateContent", GENERATED)
        assert metadata is not None and metadata.prompt_token_count == 4

    def test_a_blocked_prompt_is_an_answer(self) -> None:
        """No candidates but a block reason: Google refused the prompt, an answer all the same."""
        metadata = gemini_answer_metadata("generateContent", BLOCKED)
        assert metadata is not None and metadata.prompt_token_count == 4

    @pytest.mark.parametrize(
        "body",
        [
            b"{}",
            b'{"candidates": "not-a-list"}',
            b'{"candidates": []}',
            b'{"candidates": [1]}',
            b'{"promptFeedback": {}}',
            b"<html>",
            b"[]",
        ],
    )
    def test_what_is_not_a_generated_answer_is_refused(self, body: bytes) -> None:
        """Neither candidates nor a blocked prompt: a decode error."""
        with pytest.raises(msgspec.DecodeError):
            gemini_answer_metadata("generateContent", body)

    @pytest.mark.parametrize(
        ("method", "answer", "not_answer"),
        [
            ("countTokens", b'{"totalTokens": 7}', b'{"totalTokens": "seven"}'),
            ("countTokens", b"{}", b"<html>"),
            ("embedContent", b'{"embedding": {"values": [0.1]}}', b"{}"),
            ("batchEmbedContents", b'{"embeddings": [{"values": [0.1]}]}', b'{"embeddings": {}}'),
        ],
    )
    def test_the_other_methods_are_checked_for_their_own_shape(
        self, method: str, answer: bytes, not_answer: bytes
    ) -> None:
        """Each method's answer has its own top-level shape (they carry no usage)."""
        assert gemini_answer_metadata(method, answer) is None
        with pytest.raises(msgspec.DecodeError):
            gemini_answer_metadata(method, not_answer)


@pytest.mark.parametrize("body", NOT_RESPONSES)
async def test_responses_passthrough_refuses_a_200_that_is_not_a_response(body: bytes) -> None:
    """/v1/responses to a provider with the Responses API: the router tries the next target."""
    provider = _provider("openai", body)
    call = ResponsesCall(
        raw=b'{"model": "m", "input": "x"}', model="m", stream=False, client_model="m"
    )
    with pytest.raises(UpstreamUnavailable, match="not an answer"):
        await provider.responses(call)
    await provider.aclose()


async def test_responses_passthrough_relays_a_response_untouched() -> None:
    """The check reads the body; the client still gets the provider's bytes."""
    provider = _provider("openai", RESPONSE)
    call = ResponsesCall(
        raw=b'{"model": "m", "input": "x"}', model="m", stream=False, client_model="m"
    )
    result = await provider.responses(call)
    assert isinstance(result, Completion) and result.body == RESPONSE
    await provider.aclose()


@pytest.mark.parametrize("body", [b"{}", b'{"candidates": "not-a-list"}', b"<html>"])
async def test_gemini_native_refuses_a_200_that_is_not_an_answer(body: bytes) -> None:
    """The Gemini API passed through to a Google provider: the same check, Google's shape."""
    provider = _provider("gemini", body)
    call = GeminiCall(
        raw=b'{"contents": []}', model="m", method="generateContent", client_model="m"
    )
    with pytest.raises(UpstreamUnavailable, match="not an answer"):
        await provider.gemini(call)
    await provider.aclose()


async def test_gemini_native_relays_an_answer_untouched() -> None:
    """A real answer goes back byte for byte, its usage read."""
    provider = _provider("gemini", GENERATED)
    call = GeminiCall(
        raw=b'{"contents": []}', model="m", method="generateContent", client_model="m"
    )
    result = await provider.gemini(call)
    assert isinstance(result, Completion) and result.body == GENERATED
    assert result.usage is not None and result.usage.prompt_tokens == 4
    await provider.aclose()


HTML = b"<!DOCTYPE html>\n<html><body>\n\n<h1>502 Bad Gateway</h1>\n\n</body></html>\n"


async def _first_chunk(result: Completion | StreamingCompletion) -> bytes:
    assert isinstance(result, StreamingCompletion)
    try:
        return await anext(aiter(result.chunks))
    finally:
        await result.aclose()


@pytest.mark.parametrize(
    ("kind", "call"),
    [
        ("openai", ResponsesCall(raw=b'{"model": "m"}', model="m", stream=True, client_model="m")),
        ("gemini", GeminiCall(raw=b"{}", model="m", method="streamGenerateContent", stream=True)),
        (
            "anthropic",
            MessagesCall(raw=b'{"model": "m"}', model="m", stream=True, client_model="m"),
        ),
    ],
    ids=["responses", "gemini", "messages"],
)
async def test_a_passthrough_stream_that_is_not_an_event_stream_fails_at_its_first_chunk(
    kind: str, call: ResponsesCall | GeminiCall | MessagesCall
) -> None:
    """An HTML page answered 200 to a stream fails before a byte is relayed (the router
    awaits the first chunk, so the next target is tried), as chat streams do."""
    provider = _provider(kind, HTML, streamed=True)
    send = {
        "openai": lambda: provider.responses(call),
        "gemini": lambda: provider.gemini(call),
        "anthropic": lambda: provider.messages(call),
    }[kind]
    with pytest.raises(UpstreamUnavailable, match="not an event stream"):
        await _first_chunk(await send())
    await provider.aclose()


@pytest.mark.parametrize(
    ("kind", "call", "stream"),
    [
        (
            "openai",
            ResponsesCall(raw=b'{"model": "m"}', model="m", stream=True, client_model="m"),
            b'event: response.created\ndata: {"type": "response.created"}\n\n',
        ),
        (
            "gemini",
            GeminiCall(raw=b"{}", model="m", method="streamGenerateContent", stream=True),
            b'data: {"candidates": [{"content": {"parts": [{"text": "hi"}]}}]}\n\n',
        ),
        (
            "anthropic",
            MessagesCall(raw=b'{"model": "m"}', model="m", stream=True, client_model="m"),
            b'event: message_start\ndata: {"type": "message_start"}\n\n',
        ),
    ],
    ids=["responses", "gemini", "messages"],
)
async def test_a_passthrough_event_stream_is_relayed_from_its_first_chunk(
    kind: str, call: ResponsesCall | GeminiCall | MessagesCall, stream: bytes
) -> None:
    """The first-chunk check lets a real event stream through untouched."""
    provider = _provider(kind, stream, streamed=True)
    send = {
        "openai": lambda: provider.responses(call),
        "gemini": lambda: provider.gemini(call),
        "anthropic": lambda: provider.messages(call),
    }[kind]
    assert await _first_chunk(await send()) == stream
    await provider.aclose()
