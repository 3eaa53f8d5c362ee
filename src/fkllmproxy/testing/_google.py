"""Routes of the Gemini API, Vertex AI and Google's OAuth2 token endpoint.

Gemini API: ``/v1beta/models/{model}:{method}`` with the key in ``x-goog-api-key`` or
``?key=``. Vertex AI: ``/v1/projects/{p}/locations/{l}/publishers/google/models/
{model}:{method}`` with ``Authorization: Bearer <token>`` where the token came from
this fake's ``POST /token`` and has not expired. ``streamGenerateContent`` answers SSE
with ``?alt=sse`` and a streamed JSON array without it, as Google does.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fkllmproxy.testing._flow import Exchange, Invalid, respond, run_fault
from fkllmproxy.testing._gemini import (
    GEMINI,
    GeminiFormat,
    check_signatures,
    contents_tokens,
    read_generate,
)
from fkllmproxy.testing._oauth import GrantError, check_assertion
from fkllmproxy.testing.behaviour import (
    Answer,
    Prompt,
    count_tokens,
    embedding_vector,
    parse_behaviour,
)

__all__ = ["gemini", "token", "vertex"]

_encode = msgspec.json.encode
_EMBED_FIELDS = frozenset(
    {
        "model",
        "content",
        "taskType",
        "task_type",
        "title",
        "outputDimensionality",
        "output_dimensionality",
    }
)


class _JsonArrayStream:
    """GenerateContent streaming without ``alt=sse``: one JSON array, sent element by element."""

    def __init__(self, inner: GeminiFormat) -> None:
        self.inner = inner

    def error_body(self, status: int, message: str) -> bytes:
        return self.inner.error_body(status, message)

    def render(self, answer: Answer, prompt: Prompt) -> bytes:
        return self.inner.render(answer, prompt)

    def midstream_error(self) -> bytes:
        return (
            b",\r\n"
            + self.inner.error_body(500, "An internal error has occurred (error-midstream).")
            + b"]"
        )

    def stream_frames(self, answer: Answer, prompt: Prompt) -> list[bytes]:
        bodies = [frame[len(b"data: ") : -4] for frame in self.inner.stream_frames(answer, prompt)]
        frames = [b"[" + bodies[0], *(b",\r\n" + body for body in bodies[1:])]
        frames[-1] += b"]"
        return frames


_ARRAY = _JsonArrayStream(GEMINI)


async def _error(ex: Exchange, status: int, message: str) -> None:
    await ex.send_json(status, GEMINI.error_body(status, message))


def _embed_text(request: Any, where: str) -> tuple[str, int]:
    if not isinstance(request, dict):
        raise Invalid(f"Invalid value at '{where}': expected an object.")
    for name in request:
        if name not in _EMBED_FIELDS:
            at = f" at '{where}'" if where else ""
            raise Invalid(
                f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'
            )
    content = request.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        raise Invalid(
            f"* EmbedContentRequest.{where + '.' if where else ''}content: content is not specified"
        )
    text = " ".join(
        p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
    )
    dimensions = request.get("outputDimensionality", request.get("output_dimensionality", 8))
    if not isinstance(dimensions, int) or dimensions < 1:
        raise Invalid(
            f"Invalid value at '{where}output_dimensionality': must be a positive integer."
        )
    return text, dimensions


async def _generate(ex: Exchange, model: str, method: str, *, vertex: bool) -> None:
    body = ex.json if isinstance(ex.json, dict) else None
    try:
        if body is None:
            raise Invalid("Invalid JSON payload received. Expected an object.")
        if method in ("generateContent", "streamGenerateContent"):
            prompt = read_generate(body, model)
            if parse_behaviour(model).signed:
                signatures = ex.upstream.thought_signatures
                check_signatures(body["contents"], signatures)
                prompt.sign = signatures.issue
            stream = method == "streamGenerateContent"
            api = GEMINI if not stream or ex.request.query.get("alt") == "sse" else _ARRAY
            await respond(ex, api, prompt, stream=stream)
            return
        if method == "countTokens":
            tokens = contents_tokens(body, model)
            if await run_fault(ex, GEMINI, ex.upstream.behaviour_for(model)):
                return
            answer: dict[str, Any] = {"totalTokens": tokens}
            if vertex:
                answer["totalBillableCharacters"] = tokens * 4
            else:
                answer["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": tokens}]
            await ex.send_json(200, _encode(answer))
            return
        await _embeddings(ex, model, method, body)
    except Invalid as exc:
        await _error(ex, exc.status, exc.message)


async def _embeddings(ex: Exchange, model: str, method: str, body: dict[str, Any]) -> None:
    if method == "embedContent":
        text, dimensions = _embed_text(body, "")
        result: dict[str, Any] = {"embedding": {"values": embedding_vector(text, dimensions)}}
    elif method == "batchEmbedContents":
        requests = body.get("requests")
        if set(body) - {"requests"} or not isinstance(requests, list) or not requests:
            raise Invalid("* BatchEmbedContentsRequest.requests: requests is not specified")
        vectors = []
        for index, request in enumerate(requests):
            if not isinstance(request, dict) or not isinstance(request.get("model"), str):
                raise Invalid(
                    f"* BatchEmbedContentsRequest.requests[{index}].model: model is required"
                )
            if request["model"].removeprefix("models/") != model:
                raise Invalid(
                    f"* BatchEmbedContentsRequest.requests[{index}].model: model "
                    f"{request['model']!r} does not match the request's model 'models/{model}'."
                )
            text, dimensions = _embed_text(request, f"requests[{index}]")
            vectors.append({"values": embedding_vector(text, dimensions)})
        result = {"embeddings": vectors}
    else:  # Vertex ``predict`` for text-embedding models
        result = _predict(body)
    if await run_fault(ex, GEMINI, ex.upstream.behaviour_for(model)):
        return
    await ex.send_json(200, _encode(result))


def _predict(body: dict[str, Any]) -> dict[str, Any]:
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances:
        raise Invalid("Invalid value at 'instances': at least one instance is required.")
    parameters = body.get("parameters") or {}
    dimensions = parameters.get("outputDimensionality", 8) if isinstance(parameters, dict) else 8
    predictions = []
    characters = 0
    for index, instance in enumerate(instances):
        content = instance.get("content") if isinstance(instance, dict) else None
        if not isinstance(content, str):
            raise Invalid(f"Invalid value at 'instances[{index}].content': a string is required.")
        characters += len(content)
        statistics = {"truncated": False, "token_count": count_tokens(content)}
        predictions.append(
            {
                "embeddings": {
                    "statistics": statistics,
                    "values": embedding_vector(content, dimensions),
                }
            }
        )
    return {"predictions": predictions, "metadata": {"billableCharacterCount": characters}}


async def gemini(ex: Exchange, model: str, method: str) -> None:
    """A Gemini API model method; the key comes as ``x-goog-api-key`` or ``?key=``."""
    if not (ex.request.headers.get("x-goog-api-key") or ex.request.query.get("key")):
        await _error(
            ex,
            403,
            "Method doesn't allow unregistered callers (callers without established "
            "identity). Please use API Key or other form of API consumer identity to call "
            "this API.",
        )
        return
    if method == "predict":
        await _error(
            ex,
            404,
            f"models/{model} is not found for API version v1beta, or is not supported for predict.",
        )
        return
    await _generate(ex, model, method, vertex=False)


async def vertex(ex: Exchange, model: str, method: str) -> None:
    """A Vertex AI publisher-model method; needs a live token from ``POST /token``."""
    authorization = ex.request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not ex.upstream.tokens.valid(token.strip()):
        await _error(
            ex,
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
        )
        return
    if method in ("embedContent", "batchEmbedContents"):
        await _error(ex, 404, f"Method {method} is not served by Vertex AI publisher models.")
        return
    await _generate(ex, model, method, vertex=True)


async def token(ex: Exchange) -> None:
    """``POST /token``: the OAuth2 JWT-bearer grant of a service account."""
    upstream = ex.upstream
    behaviour = upstream.behaviour_for("/token")
    if await run_fault(ex, _OAuthErrors(), behaviour):
        return
    try:
        claims = check_assertion(ex.request.body, f"{upstream.url}/token", upstream.service_key)
    except GrantError as exc:
        body = {"error": exc.error, "error_description": exc.description}
        await ex.send_json(400, _encode(body))
        return
    upstream.token_claims.append(claims)
    access = upstream.tokens.issue(upstream.token_lifetime_secs)
    answer = {
        "access_token": access,
        "expires_in": int(upstream.token_lifetime_secs),
        "token_type": "Bearer",
    }
    await ex.send_json(200, _encode(answer))


class _OAuthErrors:
    """Just enough of a wire format for the token endpoint's faults."""

    def error_body(self, status: int, message: str) -> bytes:
        error = (
            "invalid_client"
            if status == 401
            else "invalid_request"
            if status == 400
            else "server_error"
        )
        return _encode({"error": error, "error_description": message})

    def render(self, answer: Answer, prompt: Prompt) -> bytes:  # pragma: no cover - unused
        raise NotImplementedError

    def stream_frames(self, answer: Answer, prompt: Prompt) -> list[bytes]:  # pragma: no cover
        raise NotImplementedError

    def midstream_error(self) -> bytes:  # pragma: no cover - unused
        raise NotImplementedError
