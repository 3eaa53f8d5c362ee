"""OpenAI embeddings <-> Cohere v2 ``/v2/embed``, as pure functions.

OpenAI takes one string or a list of them; Cohere takes ``texts`` (at most 96 a call,
so a longer list becomes several calls, in order) and needs an ``input_type`` for its
v3 and newer models, which OpenAI's API has no field for. A client may send Cohere's
own ``input_type`` in the body (``search_document``, ``search_query``,
``classification``, ``clustering``); without one the texts are embedded as
``search_document``, what an index is built from. ``dimensions`` becomes
``output_dimension`` (embed-v4 and newer). Vectors are always asked for as floats
and packed here when the client wants base64 (``gemini_embeddings.openai_embeddings``).
Token-id inputs and any other field are refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fkllmproxy.errors import BadRequest, UpstreamUnavailable
from fkllmproxy.wire.cohere import EmbedRequest, EmbedResponse

__all__ = [
    "BATCH",
    "INPUT_TYPES",
    "cohere_embedding_inputs",
    "from_cohere_embed",
    "to_cohere_embed",
]

BATCH = 96  # Cohere's limit of texts per /v2/embed call
INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")
_HANDLED = frozenset({"model", "input", "encoding_format", "dimensions", "user", "input_type"})


def cohere_embedding_inputs(body: Mapping[str, Any], *, provider: str) -> tuple[list[str], str]:
    """The texts to embed and their ``input_type``; anything else is refused by name."""
    for name, value in body.items():
        if name not in _HANDLED and value is not None:
            raise BadRequest(
                f"'{name}' is not supported by provider {provider!r} (Cohere) for embeddings.",
                param=name,
            )
    input_type = body.get("input_type") or "search_document"
    if input_type not in INPUT_TYPES:
        raise BadRequest(
            f"Invalid value for 'input_type': expected one of {', '.join(INPUT_TYPES)}.",
            param="input_type",
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
    return items, input_type


def to_cohere_embed(
    texts: Sequence[str], *, model: str, input_type: str, dimensions: int | None
) -> list[EmbedRequest]:
    """The ``/v2/embed`` bodies for ``texts``, at most ``BATCH`` texts each, in order."""
    return [
        EmbedRequest(
            model=model,
            texts=list(texts[start : start + BATCH]),
            input_type=input_type,
            output_dimension=dimensions,
        )
        for start in range(0, len(texts), BATCH)
    ]


def from_cohere_embed(
    response: EmbedResponse, *, expected: int, provider: str
) -> tuple[list[list[float]], int]:
    """The float vectors of one answer and the input tokens Cohere billed for it."""
    vectors = response.embeddings.float_ or []
    if len(vectors) != expected:
        raise UpstreamUnavailable(
            f"provider {provider!r} returned {len(vectors)} embeddings for {expected} inputs",
            provider=provider,
        )
    units = response.meta.billed_units if response.meta else None
    return vectors, int(units.input_tokens) if units else 0
