"""OpenAI embeddings <-> Gemini batchEmbedContents and Vertex :predict."""

from __future__ import annotations

import base64
import struct
from typing import Any

import msgspec
import pytest

from fkllmproxy.errors import BadRequest, UpstreamUnavailable
from fkllmproxy.translate.gemini_embeddings import (
    embedding_inputs,
    from_gemini_embeddings,
    from_vertex_predict,
    openai_embeddings,
    to_gemini_embeddings,
    to_vertex_predict,
)
from fkllmproxy.wire.gemini import decode_batch_embed_contents, decode_vertex_predict


def as_json(struct_value: Any) -> Any:
    return msgspec.json.decode(msgspec.json.encode(struct_value))


class TestInputs:
    def test_one_string_or_a_list(self) -> None:
        assert embedding_inputs({"input": "a"}, provider="g") == ["a"]
        assert embedding_inputs({"input": ["a", "b"]}, provider="g") == ["a", "b"]

    @pytest.mark.parametrize(
        ("body", "words"),
        [
            ({"input": [[1, 2, 3]]}, "token ids"),
            ({"input": [1, 2]}, "token ids"),
            ({"input": [""]}, "empty"),
            ({"input": []}, "expected a string"),
            ({"input": "a", "extra_thing": 1}, "'extra_thing'"),
        ],
    )
    def test_what_gemini_cannot_embed_is_refused(self, body: dict[str, Any], words: str) -> None:
        with pytest.raises(BadRequest) as info:
            embedding_inputs(body, provider="g")
        assert words in info.value.message


def test_gemini_request_shape() -> None:
    request = to_gemini_embeddings(["a", "b"], model="gemini-embedding-001", dimensions=256)
    assert as_json(request) == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "a"}]},
                "outputDimensionality": 256,
            },
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "b"}]},
                "outputDimensionality": 256,
            },
        ]
    }


def test_gemini_response_vectors_in_order() -> None:
    answer = decode_batch_embed_contents(
        b'{"embeddings": [{"values": [0.5, 1.0]}, {"values": [-1.0, 0.25]}]}'
    )
    assert from_gemini_embeddings(answer, expected=2, provider="g") == [[0.5, 1.0], [-1.0, 0.25]]
    with pytest.raises(UpstreamUnavailable):
        from_gemini_embeddings(answer, expected=3, provider="g")


def test_vertex_request_and_response() -> None:
    assert as_json(to_vertex_predict(["x"], dimensions=None)) == {"instances": [{"content": "x"}]}
    assert as_json(to_vertex_predict(["x"], dimensions=8)) == {
        "instances": [{"content": "x"}],
        "parameters": {"outputDimensionality": 8},
    }
    answer = decode_vertex_predict(
        b'{"predictions": [{"embeddings": {"values": [1.0], '
        b'"statistics": {"token_count": 3, "truncated": false}}},'
        b'{"embeddings": {"values": [2.0], "statistics": {"token_count": 4}}}]}'
    )
    assert from_vertex_predict(answer, expected=2, provider="v") == ([[1.0], [2.0]], 7)


def test_openai_body_floats_and_base64() -> None:
    floats = msgspec.json.decode(
        openai_embeddings([[0.5, -2.0]], model="m", encoding_format=None, prompt_tokens=3)
    )
    assert floats == {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -2.0]}],
        "model": "m",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }
    packed = msgspec.json.decode(
        openai_embeddings([[0.5, -2.0]], model="m", encoding_format="base64", prompt_tokens=0)
    )
    raw = base64.b64decode(packed["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (0.5, -2.0)
