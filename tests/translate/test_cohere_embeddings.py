"""OpenAI embeddings <-> Cohere v2 embed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fkllmproxy.errors import BadRequest, UpstreamUnavailable
from fkllmproxy.translate.cohere_embeddings import (
    BATCH,
    cohere_embedding_inputs,
    from_cohere_embed,
    to_cohere_embed,
)
from fkllmproxy.wire.cohere import decode_embed, encode


class TestInputs:
    def test_one_string_or_a_list(self) -> None:
        assert cohere_embedding_inputs({"input": "a"}, provider="co") == (["a"], "search_document")
        body = {"input": ["a", "b"], "input_type": "search_query", "dimensions": 4, "user": "u"}
        assert cohere_embedding_inputs(body, provider="co") == (["a", "b"], "search_query")

    @pytest.mark.parametrize(
        ("body", "param"),
        [
            ({"input": [[1, 2]]}, "input"),
            ({"input": [""]}, "input"),
            ({"input": "a", "input_type": "everything"}, "input_type"),
            ({"input": "a", "truncate": "END"}, "truncate"),
        ],
    )
    def test_refusals_name_the_field(self, body: dict[str, Any], param: str) -> None:
        with pytest.raises(BadRequest) as caught:
            cohere_embedding_inputs(body, provider="co")
        assert caught.value.param == param


def test_requests_batch_96_texts_in_order() -> None:
    texts = [str(i) for i in range(BATCH + 3)]
    calls = to_cohere_embed(texts, model="embed-v4.0", input_type="clustering", dimensions=None)
    assert [len(c.texts) for c in calls] == [BATCH, 3]
    assert calls[1].texts == ["96", "97", "98"]
    assert json.loads(encode(calls[1])) == {
        "model": "embed-v4.0",
        "texts": ["96", "97", "98"],
        "input_type": "clustering",
        "embedding_types": ["float"],
    }


def test_answer_vectors_and_billing() -> None:
    raw = {
        "id": "e1",
        "embeddings": {"float": [[0.1, 0.2], [0.3, 0.4]]},
        "texts": ["a", "b"],
        "meta": {"billed_units": {"input_tokens": 2}},
    }
    vectors, tokens = from_cohere_embed(
        decode_embed(json.dumps(raw).encode()), expected=2, provider="co"
    )
    assert vectors == [[0.1, 0.2], [0.3, 0.4]] and tokens == 2


def test_a_short_answer_is_an_upstream_failure() -> None:
    raw = {"id": "e1", "embeddings": {"float": [[0.1]]}}
    with pytest.raises(UpstreamUnavailable):
        from_cohere_embed(decode_embed(json.dumps(raw).encode()), expected=2, provider="co")
