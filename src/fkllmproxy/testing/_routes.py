"""Which handler answers which method and path, for every wire format the fake speaks."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import msgspec

from fkllmproxy.testing import _anthropic, _cohere, _google, _openai, _responses
from fkllmproxy.testing._flow import Exchange

__all__ = ["ROUTES", "Handler"]

Handler = Callable[[Exchange, "re.Match[str]"], Awaitable[None]]


async def _openai_chat(ex: Exchange, _: re.Match[str]) -> None:
    await _openai.chat(ex, _openai.OPENAI)


async def _openai_embeddings(ex: Exchange, _: re.Match[str]) -> None:
    await _openai.embeddings(ex, _openai.OPENAI)


async def _openai_responses(ex: Exchange, _: re.Match[str]) -> None:
    await _responses.responses(ex)


async def _openai_models(ex: Exchange, _: re.Match[str]) -> None:
    await _openai.models(ex)


async def _azure(ex: Exchange, match: re.Match[str]) -> None:
    headers = ex.request.headers
    if not headers.get("api-key") and not headers.get("authorization", "").startswith("Bearer "):
        # ``api-key`` for keys; ``Authorization: Bearer`` for Microsoft Entra ID tokens.
        body = {
            "error": {
                "code": "401",
                "message": "Access denied due to invalid subscription key or wrong API "
                "endpoint. Make sure to provide a valid key for an active subscription "
                "and use a correct regional API endpoint for your resource.",
            }
        }
        await ex.send_json(401, msgspec.json.encode(body))
        return
    if match.re is not _AZURE_RESPONSES and not ex.request.query.get("api-version"):
        body = {"error": {"code": "404", "message": "Resource not found"}}
        await ex.send_json(404, msgspec.json.encode(body))
        return
    if match.re is _AZURE_RESPONSES:
        await _responses.responses(ex)  # the v1 path: no api-version, model in the body
        return
    deployment, operation = match.group(1), match.group(2)
    if operation == "chat/completions":
        await _openai.chat(ex, _openai.AZURE, deployment)
    else:
        await _openai.embeddings(ex, _openai.AZURE, deployment)


async def _anthropic_messages(ex: Exchange, _: re.Match[str]) -> None:
    await _anthropic.messages(ex)


async def _anthropic_count(ex: Exchange, _: re.Match[str]) -> None:
    await _anthropic.count_tokens_route(ex)


async def _cohere_chat(ex: Exchange, _: re.Match[str]) -> None:
    await _cohere.chat(ex)


async def _cohere_embed(ex: Exchange, _: re.Match[str]) -> None:
    await _cohere.embed(ex)


async def _gemini(ex: Exchange, match: re.Match[str]) -> None:
    await _google.gemini(ex, match.group(1), match.group(2))


async def _vertex(ex: Exchange, match: re.Match[str]) -> None:
    await _google.vertex(ex, match.group(1), match.group(2))


async def _token(ex: Exchange, _: re.Match[str]) -> None:
    await _google.token(ex)


_AZURE_RESPONSES = re.compile(r"/openai/v1/responses")

_GOOGLE_METHODS = (
    "generateContent|streamGenerateContent|embedContent|batchEmbedContents|countTokens|predict"
)

ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("POST", re.compile(r"/v1/chat/completions"), _openai_chat),
    ("POST", re.compile(r"/v1/embeddings"), _openai_embeddings),
    ("POST", re.compile(r"/v1/responses"), _openai_responses),
    ("GET", re.compile(r"/v1/models"), _openai_models),
    ("POST", re.compile(r"/v1/messages"), _anthropic_messages),
    ("POST", re.compile(r"/v1/messages/count_tokens"), _anthropic_count),
    ("POST", re.compile(r"/v2/chat"), _cohere_chat),
    ("POST", re.compile(r"/v2/embed"), _cohere_embed),
    ("POST", re.compile(rf"/v1(?:beta)?/models/([^/:]+):({_GOOGLE_METHODS})"), _gemini),
    (
        "POST",
        re.compile(
            rf"/v1(?:beta1)?/projects/[^/]+/locations/[^/]+/publishers/google/models/([^/:]+):({_GOOGLE_METHODS})"
        ),
        _vertex,
    ),
    ("POST", re.compile(r"/token"), _token),
    (
        "POST",
        re.compile(r"/openai/deployments/([^/]+)/(chat/completions|embeddings)"),
        _azure,
    ),
    ("POST", _AZURE_RESPONSES, _azure),
]
