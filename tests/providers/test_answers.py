"""A 200 whose body is not an answer in the provider's format is a failed attempt."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest

from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.errors import UpstreamUnavailable
from fkllmproxy.providers import ChatRequest, EmbeddingRequest, MessagesCall, build_provider
from fkllmproxy.providers.answers import chat_answer_usage, embeddings_answer_usage
from fkllmproxy.providers.anthropic import AnthropicProvider

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


def _provider(kind: str, body: bytes) -> Any:
    def transport(_: ProviderConfig) -> httpx.AsyncBaseTransport:
        return httpx.MockTransport(lambda request: httpx.Response(200, content=body))

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

    def transport(_: ProviderConfig) -> httpx.AsyncBaseTransport:
        return httpx.MockTransport(lambda request: httpx.Response(200, content=b"{}"))

    config = ProviderConfig(name="az", type="azure", api_key="k", base_url="https://r.example")
    provider = build_provider(config, transport)
    request = ChatRequest(
        raw=b'{"model": "d", "messages": []}', model="d", stream=False, client_model="d"
    )
    with pytest.raises(UpstreamUnavailable, match="not an answer"):
        await provider.chat(request)
    await provider.aclose()
