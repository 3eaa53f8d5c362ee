"""OpenAI Responses API request shapes (``POST /v1/responses``), written from its reference.

Two views of one request:

* ``ResponsesRequest`` is what the door checks for every request (model, stream, store,
  previous_response_id and the types of what the proxy reads): lenient, so a request
  passed through to a provider with the Responses API keeps fields we do not know;
* ``StrictResponsesRequest`` is what translation to another provider accepts
  (``translate/codecs/responses.py``): every field and item type it can carry, unknown
  ones refused (``translate/_common.validation_error`` names them). Input items and
  content parts are tagged unions on ``type``; a message item may omit its ``type`` (the
  SDK's "easy" message), which the codec fills in.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

__all__ = [
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "FunctionTool",
    "InputFile",
    "InputImage",
    "InputText",
    "MessageItem",
    "OutputRefusal",
    "OutputText",
    "ReasoningItem",
    "ResponsesRequest",
    "StrictResponsesRequest",
    "responses_request_decoder",
]


class _Format(Struct, kw_only=True):
    type: str


class _Text(Struct, kw_only=True):
    format: _Format | None = None


class ResponsesRequest(Struct, kw_only=True):
    """The fields every ``/v1/responses`` request is checked for, whoever answers it."""

    model: Annotated[str, Meta(min_length=1)]
    input: str | list[Any] | None = None
    instructions: str | None = None
    stream: bool | None = None
    store: bool | None = None
    previous_response_id: Annotated[str, Meta(min_length=1, max_length=256)] | None = None
    max_output_tokens: Annotated[int, Meta(ge=1)] | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: _Text | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    include: list[str] | None = None


responses_request_decoder = msgspec.json.Decoder(ResponsesRequest)


# ---- input items and their content parts (strict) ---------------------------------------


class _Strict(Struct, kw_only=True, forbid_unknown_fields=True, tag_field="type"):
    """Base of the tagged shapes translation accepts."""


class InputText(_Strict, tag="input_text"):
    text: str


class InputImage(_Strict, tag="input_image"):
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["auto", "low", "high", "original"] | None = None


class InputFile(_Strict, tag="input_file"):
    file_data: str | None = None
    file_id: str | None = None
    file_url: str | None = None
    filename: str | None = None


class OutputText(_Strict, tag="output_text"):
    text: str
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None


class OutputRefusal(_Strict, tag="refusal"):
    refusal: str


ContentPart = InputText | InputImage | InputFile | OutputText | OutputRefusal


class MessageItem(_Strict, tag="message"):
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[ContentPart]
    id: str | None = None
    status: str | None = None
    phase: str | None = None


class FunctionCallItem(_Strict, tag="function_call"):
    call_id: Annotated[str, Meta(min_length=1)]
    name: Annotated[str, Meta(min_length=1)]
    arguments: str
    id: str | None = None
    status: str | None = None
    namespace: str | None = None


class FunctionCallOutputItem(_Strict, tag="function_call_output"):
    call_id: Annotated[str, Meta(min_length=1)]
    output: str | list[InputText | InputImage | InputFile]
    id: str | None = None
    status: str | None = None


class _Summary(Struct, kw_only=True):
    text: str
    type: str = "summary_text"


class ReasoningItem(_Strict, tag="reasoning"):
    """A reasoning item handed back: its summary (or text) and proof go to providers
    that take reasoning back."""

    id: str | None = None
    summary: list[_Summary] = msgspec.field(default_factory=list)
    content: list[Any] | None = None
    encrypted_content: str | None = None
    status: str | None = None


InputItem = MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem


class FunctionTool(_Strict, tag="function"):
    name: Annotated[str, Meta(min_length=1, max_length=128)]
    parameters: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class _FunctionChoice(Struct, kw_only=True, forbid_unknown_fields=True):
    type: Literal["function"]
    name: Annotated[str, Meta(min_length=1)]


class _FormatText(_Strict, tag="text"):
    pass


class _FormatJsonObject(_Strict, tag="json_object"):
    pass


class _FormatJsonSchema(_Strict, tag="json_schema"):
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    schema: dict[str, Any]
    description: str | None = None
    strict: bool | None = None


class _StrictText(Struct, kw_only=True, forbid_unknown_fields=True):
    format: _FormatText | _FormatJsonObject | _FormatJsonSchema | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class _Reasoning(Struct, kw_only=True, forbid_unknown_fields=True):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class _StreamOptions(Struct, kw_only=True, forbid_unknown_fields=True):
    include_obfuscation: bool | None = None


class StrictResponsesRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    """Everything a Responses request may hold when it is translated for another provider.

    Hints that steer OpenAI's own service and change nothing in the answer are accepted
    and not carried: ``client_metadata`` (the Codex CLI's), ``prompt_cache_retention``,
    ``truncation``, ``stream_options``, ``reasoning.summary``, ``text.verbosity``.
    """

    model: str
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    stream: bool | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    max_output_tokens: Annotated[int, Meta(ge=1)] | None = None
    temperature: float | None = None
    top_p: float | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["auto", "none", "required"] | _FunctionChoice | None = None
    parallel_tool_calls: bool | None = None
    text: _StrictText | None = None
    reasoning: _Reasoning | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    include: list[str] | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    service_tier: str | None = None
    # hints (see the docstring)
    client_metadata: dict[str, Any] | None = None
    prompt_cache_retention: str | None = None
    truncation: Literal["auto", "disabled"] | None = None
    stream_options: _StreamOptions | None = None
