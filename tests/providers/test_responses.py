"""Which providers get ``/v1/responses`` passed through, and the bytes they are sent."""

from __future__ import annotations

import msgspec
import pytest

from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.providers import build_provider, default_transport
from fkllmproxy.providers.responses import (
    ResponsesCall,
    has_responses_api,
    responses_answer_usage,
)


def provider(kind: str, base_url: str | None = None, flag: bool | None = None) -> object:
    config = ProviderConfig(
        name="p",
        type=kind,
        base_url=base_url,
        api_key="k",
        responses_api=flag,  # type: ignore[arg-type]
    )
    return build_provider(config, default_transport("httpx"))


@pytest.mark.parametrize(
    ("kind", "base_url", "flag", "expected"),
    [
        ("openai", None, None, True),  # api.openai.com by default
        ("openai", "https://api.openai.com/v1", None, True),
        ("openai", "http://127.0.0.1:8000/v1", None, False),  # vLLM and the like: translated
        ("openai", "http://127.0.0.1:8000/v1", True, True),
        ("openai", "https://api.openai.com/v1", False, False),
        ("azure", "https://x.openai.azure.com", None, False),
        ("azure", "https://x.openai.azure.com", True, True),
        ("anthropic", None, True, False),  # only OpenAI's API has it
    ],
)
def test_has_responses_api(
    kind: str, base_url: str | None, flag: bool | None, expected: bool
) -> None:
    assert has_responses_api(provider(kind, base_url, flag)) is expected  # type: ignore[arg-type]


def test_bytes_untouched_unless_the_model_or_the_conversation_changed() -> None:
    raw = b'{"model":"m","input":"x","unknown":[1]}'
    assert ResponsesCall(raw, "m", False, "m").upstream_bytes() is raw
    renamed = msgspec.json.decode(ResponsesCall(raw, "up", False, "m").upstream_bytes())
    assert renamed == {"model": "up", "input": "x", "unknown": [1]}
    expanded = ResponsesCall(raw, "m", False, "m", body={"model": "m", "input": []})
    assert msgspec.json.decode(expanded.upstream_bytes()) == {"model": "m", "input": []}


def test_usage_is_read_from_a_response() -> None:
    body = b'{"id":"r","output":[],"usage":{"input_tokens":5,"output_tokens":2,"input_tokens_details":{"cached_tokens":1}}}'
    usage = responses_answer_usage(body)
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (5, 2, 1)
    with pytest.raises(msgspec.DecodeError):
        responses_answer_usage(b"not json")
