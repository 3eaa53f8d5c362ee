"""Gemini's wire format (Gemini API ``v1beta`` and Vertex AI ``v1``), as msgspec Structs.

Both services speak the same JSON for ``generateContent`` and ``streamGenerateContent``
(``?alt=sse``: one whole ``GenerateContentResponse`` per event); they differ in URL,
credentials and embeddings (``embedContent``/``batchEmbedContents`` on the Gemini API,
``:predict`` on Vertex). Field names are camelCase on the wire, snake_case here
(``rename="camel"``). Request structs omit unset fields, so what goes upstream is only
what the client asked for; response structs ignore fields we do not read, so new
upstream fields never break decoding.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct, field

__all__ = [
    "BatchEmbedContentsRequest",
    "BatchEmbedContentsResponse",
    "Blob",
    "Candidate",
    "Content",
    "ContentEmbedding",
    "EmbedContentRequest",
    "EmbedContentResponse",
    "ErrorBody",
    "ErrorDetail",
    "ErrorInfo",
    "FileData",
    "FunctionCall",
    "FunctionCallingConfig",
    "FunctionDeclaration",
    "FunctionResponse",
    "GenerateContentRequest",
    "GenerateContentResponse",
    "GenerationConfig",
    "Part",
    "PromptFeedback",
    "SafetyRating",
    "ThinkingConfig",
    "Tool",
    "ToolConfig",
    "UsageMetadata",
    "VertexEmbeddingInstance",
    "VertexPredictRequest",
    "VertexPredictResponse",
    "decode_batch_embed_contents",
    "decode_embed_content",
    "decode_error",
    "decode_response",
    "decode_vertex_predict",
    "encode",
]


class _Wire(Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Common base: camelCase names, unset fields left out of the JSON."""


# ---------------------------------------------------------------- content and parts


class Blob(_Wire):
    """Bytes sent inline (``inlineData``): base64 ``data`` with its MIME type."""

    mime_type: str
    data: str


class FileData(_Wire):
    """A file by URI (``fileData``): Files API, ``gs://`` or a public URL."""

    file_uri: str
    mime_type: str | None = None


class FunctionCall(_Wire):
    """The model asks for a function; ``args`` is a JSON object. ``id`` only on some APIs."""

    name: str
    args: dict[str, Any] | None = None
    id: str | None = None


class FunctionResponse(_Wire):
    """A function's result sent back; matched to its call by name and order."""

    name: str
    response: dict[str, Any]
    id: str | None = None


class Part(_Wire):
    """One piece of a turn. Exactly one of the data fields is set.

    ``thought`` marks the model's thought summaries (never shown to OpenAI clients);
    ``thought_signature`` is the opaque token thinking models attach to function
    calls and want back on the next turn.
    """

    text: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None
    thought: bool | None = None
    thought_signature: str | None = None


class Content(_Wire):
    """One turn: ``role`` is ``user`` or ``model`` (absent for ``systemInstruction``)."""

    parts: list[Part] = field(default_factory=list)
    role: str | None = None


# ---------------------------------------------------------------- tools and config


class FunctionDeclaration(_Wire):
    """A callable tool. ``parameters_json_schema`` takes plain JSON Schema as clients write it."""

    name: str
    description: str | None = None
    parameters_json_schema: dict[str, Any] | None = None


class Tool(_Wire):
    function_declarations: list[FunctionDeclaration] = field(default_factory=list)


class FunctionCallingConfig(_Wire):
    """``mode``: ``AUTO``, ``ANY`` (must call) or ``NONE``; names only with ``ANY``."""

    mode: str
    allowed_function_names: list[str] | None = None


class ToolConfig(_Wire):
    function_calling_config: FunctionCallingConfig


class ThinkingConfig(_Wire):
    thinking_budget: int | None = None
    include_thoughts: bool | None = None  # answer with thought summaries (``thought`` parts)


class GenerationConfig(_Wire):
    stop_sequences: list[str] | None = None
    response_mime_type: str | None = None
    response_json_schema: dict[str, Any] | None = None
    candidate_count: int | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    thinking_config: ThinkingConfig | None = None


class GenerateContentRequest(_Wire):
    """The body of ``models/{model}:generateContent`` and ``:streamGenerateContent``."""

    contents: list[Content]
    system_instruction: Content | None = None
    tools: list[Tool] | None = None
    tool_config: ToolConfig | None = None
    generation_config: GenerationConfig | None = None


# ---------------------------------------------------------------- responses


class SafetyRating(_Wire):
    category: str | None = None
    probability: str | None = None
    blocked: bool | None = None


class Candidate(_Wire):
    """One answer. ``finish_reason`` is absent until the last frame of a stream."""

    content: Content | None = None
    finish_reason: str | None = None
    index: int = 0
    safety_ratings: list[SafetyRating] | None = None
    finish_message: str | None = None


class PromptFeedback(_Wire):
    """Set when the prompt itself was blocked: then there are no candidates."""

    block_reason: str | None = None
    safety_ratings: list[SafetyRating] | None = None


class UsageMetadata(_Wire):
    """Token counts. ``prompt_token_count`` already includes the cached tokens."""

    prompt_token_count: int = 0
    candidates_token_count: int = 0
    total_token_count: int = 0
    cached_content_token_count: int = 0
    thoughts_token_count: int = 0
    tool_use_prompt_token_count: int = 0


class ErrorDetail(_Wire):
    reason: str | None = None


class ErrorInfo(_Wire):
    code: int | None = None
    message: str = ""
    status: str | None = None
    details: list[ErrorDetail] | None = None


class GenerateContentResponse(_Wire):
    """A whole answer, or one event of a stream (the same shape, partial content)."""

    candidates: list[Candidate] = field(default_factory=list)
    prompt_feedback: PromptFeedback | None = None
    usage_metadata: UsageMetadata | None = None
    model_version: str | None = None
    response_id: str | None = None
    # Not part of a successful answer: a stream that fails after it started sends
    # Google's error envelope as one of its events.
    error: ErrorInfo | None = None


class ErrorBody(_Wire):
    """Google's error envelope: ``{"error": {"code", "message", "status", "details"}}``."""

    error: ErrorInfo | None = None


# ---------------------------------------------------------------- embeddings


class EmbedContentRequest(_Wire):
    """``models/{model}:embedContent``, also one item of ``batchEmbedContents``."""

    content: Content
    model: str | None = None
    output_dimensionality: int | None = None


class BatchEmbedContentsRequest(_Wire):
    requests: list[EmbedContentRequest]


class ContentEmbedding(_Wire):
    values: list[float] = field(default_factory=list)


class EmbedContentResponse(_Wire):
    embedding: ContentEmbedding | None = None


class BatchEmbedContentsResponse(_Wire):
    embeddings: list[ContentEmbedding] = field(default_factory=list)


class VertexEmbeddingInstance(_Wire):
    content: str


class VertexPredictParameters(_Wire):
    output_dimensionality: int | None = None


class VertexPredictRequest(_Wire):
    """Vertex ``publishers/google/models/{model}:predict`` for text embedding models."""

    instances: list[VertexEmbeddingInstance]
    parameters: VertexPredictParameters | None = None


class VertexEmbeddingStatistics(Struct, kw_only=True):
    # Vertex spells these in snake_case on the wire.
    token_count: int = 0
    truncated: bool = False


class VertexEmbedding(Struct, kw_only=True):
    values: list[float] = field(default_factory=list)
    statistics: VertexEmbeddingStatistics | None = None


class VertexPrediction(Struct, kw_only=True):
    embeddings: VertexEmbedding | None = None


class VertexPredictResponse(_Wire):
    predictions: list[VertexPrediction] = field(default_factory=list)


encode = msgspec.json.Encoder().encode
_response_decoder = msgspec.json.Decoder(GenerateContentResponse)
_error_decoder = msgspec.json.Decoder(ErrorBody)
_embed_decoder = msgspec.json.Decoder(EmbedContentResponse)
_batch_embed_decoder = msgspec.json.Decoder(BatchEmbedContentsResponse)
_predict_decoder = msgspec.json.Decoder(VertexPredictResponse)


def decode_response(data: bytes) -> GenerateContentResponse:
    """A ``GenerateContentResponse`` (raises ``msgspec.DecodeError`` on anything else)."""
    return _response_decoder.decode(data)


def decode_error(data: bytes) -> ErrorBody:
    return _error_decoder.decode(data)


def decode_embed_content(data: bytes) -> EmbedContentResponse:
    return _embed_decoder.decode(data)


def decode_batch_embed_contents(data: bytes) -> BatchEmbedContentsResponse:
    return _batch_embed_decoder.decode(data)


def decode_vertex_predict(data: bytes) -> VertexPredictResponse:
    return _predict_decoder.decode(data)
