"""OpenAI embeddings <-> Gemini ``batchEmbedContents`` and Vertex ``:predict``, pure.

OpenAI takes one string or a list of them and answers with one vector per input.
The Gemini API embeds a list with ``batchEmbedContents`` (one request per text);
Vertex's text embedding models take ``instances`` through ``:predict`` and also report
token counts. ``dimensions`` becomes ``outputDimensionality`` on both. The official
OpenAI SDK asks for ``encoding_format: "base64"`` by default, so vectors are packed
here as OpenAI packs them: little-endian float32, base64.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from fkllmproxy.errors import BadRequest, UpstreamUnavailable
from fkllmproxy.wire.gemini import (
    BatchEmbedContentsRequest,
    BatchEmbedContentsResponse,
    Content,
    EmbedContentRequest,
    Part,
    VertexEmbeddingInstance,
    VertexPredictParameters,
    VertexPredictRequest,
    VertexPredictResponse,
)

__all__ = [
    "embedding_inputs",
    "from_gemini_embeddings",
    "from_vertex_predict",
    "openai_embeddings",
    "to_gemini_embeddings",
    "to_vertex_predict",
]

_encode = msgspec.json.Encoder().encode
_HANDLED = frozenset({"model", "input", "encoding_format", "dimensions", "user"})


def embedding_inputs(body: Mapping[str, Any], *, provider: str) -> list[str]:
    """The texts to embed; token-id inputs and unknown fields are refused by name."""
    for name, value in body.items():
        if name not in _HANDLED and value is not None:
            raise BadRequest(
                f"'{name}' is not supported by provider {provider!r} for embeddings.", param=name
            )
    raw = body.get("input")
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise BadRequest("Invalid value for 'input': expected a string or a list of strings.")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise BadRequest(
                f"'input[{i}]': token ids are not supported by provider {provider!r}; send text.",
                param="input",
            )
        if not item:
            raise BadRequest(f"Invalid value for 'input[{i}]': empty text.", param="input")
    return items


def to_gemini_embeddings(
    texts: Sequence[str], *, model: str, dimensions: int | None
) -> BatchEmbedContentsRequest:
    """One ``batchEmbedContents`` body for every text (``model`` as ``models/...``)."""
    name = model if "/" in model else f"models/{model}"
    return BatchEmbedContentsRequest(
        requests=[
            EmbedContentRequest(
                model=name,
                content=Content(parts=[Part(text=text)]),
                output_dimensionality=dimensions,
            )
            for text in texts
        ]
    )


def from_gemini_embeddings(
    response: BatchEmbedContentsResponse, *, expected: int, provider: str
) -> list[list[float]]:
    vectors = [embedding.values for embedding in response.embeddings]
    _check_count(len(vectors), expected, provider)
    return vectors


def to_vertex_predict(texts: Sequence[str], *, dimensions: int | None) -> VertexPredictRequest:
    parameters = VertexPredictParameters(output_dimensionality=dimensions) if dimensions else None
    return VertexPredictRequest(
        instances=[VertexEmbeddingInstance(content=text) for text in texts],
        parameters=parameters,
    )


def from_vertex_predict(
    response: VertexPredictResponse, *, expected: int, provider: str
) -> tuple[list[list[float]], int]:
    """The vectors and the prompt tokens Vertex counted."""
    vectors = []
    tokens = 0
    for prediction in response.predictions:
        embedding = prediction.embeddings
        vectors.append(embedding.values if embedding else [])
        if embedding and embedding.statistics:
            tokens += embedding.statistics.token_count
    _check_count(len(vectors), expected, provider)
    return vectors, tokens


def _check_count(got: int, expected: int, provider: str) -> None:
    if got != expected:
        raise UpstreamUnavailable(
            f"provider {provider!r} returned {got} embeddings for {expected} inputs",
            provider=provider,
        )


def _pack(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def openai_embeddings(
    vectors: Sequence[list[float]], *, model: str, encoding_format: str | None, prompt_tokens: int
) -> bytes:
    """OpenAI's embeddings list body, vectors as floats or base64 as asked."""
    packed = encoding_format == "base64"
    data = [
        {"object": "embedding", "index": i, "embedding": _pack(v) if packed else v}
        for i, v in enumerate(vectors)
    ]
    body = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
    return _encode(body)
