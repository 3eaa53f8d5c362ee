"""The Gemini API's requests as clients send them to the proxy, as msgspec Structs.

``wire/gemini.py`` holds what the proxy sends Google (only fields it sets) and reads
back (lenient answers). These are the other direction: the bodies of
``models/{model}:generateContent`` (and ``:streamGenerateContent``), ``:countTokens``,
``:embedContent`` and ``:batchEmbedContents`` as the google-genai SDKs and the Gemini
CLI send them, camelCase on the wire. Decoding checks the types of the fields the
proxy reads, so a wrong type is a 400 naming its path; fields not declared here are
skipped by the decode (a passthrough keeps them in the raw bytes, a translation looks
for them by name and refuses what it cannot carry).
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct, field

__all__ = [
    "BatchEmbedBody",
    "CountTokensBody",
    "EmbedContentBody",
    "GenerateContentBody",
    "InBlob",
    "InContent",
    "InFileData",
    "InFunctionCall",
    "InFunctionDeclaration",
    "InFunctionResponse",
    "InGenerationConfig",
    "InPart",
    "InThinkingConfig",
    "InTool",
    "batch_embed_decoder",
    "count_tokens_decoder",
    "embed_content_decoder",
    "generate_content_decoder",
]


class _In(Struct, rename="camel", kw_only=True):
    """Common base: camelCase names; undeclared fields skipped."""


class InBlob(_In):
    mime_type: str
    data: str


class InFileData(_In):
    file_uri: str
    mime_type: str | None = None


class InFunctionCall(_In):
    name: str
    args: dict[str, Any] | None = None
    id: str | None = None


class InFunctionResponse(_In):
    name: str
    response: dict[str, Any] | None = None
    id: str | None = None


class InPart(_In):
    """One part; ``thought_signature`` is the opaque token thinking models want back."""

    text: str | None = None
    inline_data: InBlob | None = None
    file_data: InFileData | None = None
    function_call: InFunctionCall | None = None
    function_response: InFunctionResponse | None = None
    thought: bool | None = None
    thought_signature: str | None = None


class InContent(_In):
    parts: list[InPart] = field(default_factory=list)
    role: str | None = None


class InFunctionDeclaration(_In):
    """``parameters`` is Google's OpenAPI subset; ``parameters_json_schema`` plain JSON Schema.

    Protobuf JSON takes both spellings, and the google-genai SDK sends declarations as
    it holds them (``parameters_json_schema``): both are read.
    """

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    parameters_json_schema: dict[str, Any] | None = None
    parameters_json_schema_snake: dict[str, Any] | None = field(
        default=None, name="parameters_json_schema"
    )

    @property
    def json_schema(self) -> dict[str, Any] | None:
        return self.parameters_json_schema or self.parameters_json_schema_snake


class InTool(_In):
    function_declarations: list[InFunctionDeclaration] | None = None
    function_declarations_snake: list[InFunctionDeclaration] | None = field(
        default=None, name="function_declarations"
    )

    @property
    def declarations(self) -> list[InFunctionDeclaration]:
        return self.function_declarations or self.function_declarations_snake or []


class InThinkingConfig(_In):
    include_thoughts: bool | None = None
    thinking_budget: int | None = None
    thinking_level: str | None = None


class InGenerationConfig(_In):
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    max_output_tokens: int | None = None
    stop_sequences: list[str] | None = None
    candidate_count: int | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_mime_type: str | None = None
    response_schema: dict[str, Any] | None = None
    response_json_schema: dict[str, Any] | None = None
    response_modalities: list[str] | None = None
    thinking_config: InThinkingConfig | None = None


class InFunctionCallingConfig(_In):
    mode: str | None = None
    allowed_function_names: list[str] | None = None


class InToolConfig(_In):
    function_calling_config: InFunctionCallingConfig | None = None


class GenerateContentBody(_In):
    """``:generateContent`` / ``:streamGenerateContent``; the model is in the URL."""

    contents: list[InContent]
    system_instruction: InContent | None = None
    tools: list[InTool] | None = None
    tool_config: InToolConfig | None = None
    generation_config: InGenerationConfig | None = None
    safety_settings: list[dict[str, Any]] | None = None


class CountTokensBody(_In):
    """``:countTokens``: ``contents``, or a whole ``generateContentRequest``."""

    contents: list[InContent] | None = None
    generate_content_request: GenerateContentBody | None = None


class EmbedContentBody(_In):
    """``:embedContent``, also one item of ``:batchEmbedContents``."""

    content: InContent
    model: str | None = None
    task_type: str | None = None
    title: str | None = None
    output_dimensionality: int | None = None


class BatchEmbedBody(_In):
    requests: list[EmbedContentBody]


generate_content_decoder = msgspec.json.Decoder(GenerateContentBody)
count_tokens_decoder = msgspec.json.Decoder(CountTokensBody)
embed_content_decoder = msgspec.json.Decoder(EmbedContentBody)
batch_embed_decoder = msgspec.json.Decoder(BatchEmbedBody)
