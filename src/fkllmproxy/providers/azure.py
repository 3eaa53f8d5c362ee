"""Azure OpenAI (``type = "azure"``): OpenAI's API under deployment URLs.

``base_url`` is the resource endpoint (``https://NAME.openai.azure.com``); a target's
model is the deployment name. Chat goes to ``/openai/deployments/{deployment}/chat/
completions?api-version=...`` and embeddings to ``.../embeddings``, with the key in the
``api-key`` header. The JSON is OpenAI's both ways, so the client's bytes go up as
they came (Azure picks the model from the URL, not the body) and Azure's answer comes
back untouched, streams included.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from fkllmproxy.config.provider_types import NOTHING, AutoProvider, Problem
from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.providers.answers import chat_answer_usage, embeddings_answer_usage
from fkllmproxy.providers.base import (
    ChatRequest,
    Completion,
    EmbeddingRequest,
    StreamingCompletion,
    Usage,
)
from fkllmproxy.providers.http import TransportFactory, build_client
from fkllmproxy.providers.openai import OpenAIProvider
from fkllmproxy.providers.responses import configured_responses_api
from fkllmproxy.providers.spec import ProviderSpec
from fkllmproxy.translate._common import Unsupported

__all__ = ["DEFAULT_API_VERSION", "SPEC", "AzureProvider"]

# The latest generally available data-plane version with chat, tools, JSON schema
# output and stream usage. Set ``api_version`` to use another.
DEFAULT_API_VERSION = "2024-10-21"


class AzureProvider(OpenAIProvider):
    """An Azure OpenAI resource; each target model names a deployment."""

    type = "azure"

    def __init__(self, config: ProviderConfig, transport: TransportFactory) -> None:
        assert config.base_url, "checked by SPEC.validate"
        self.name = config.name
        self.config = config
        self.unsupported = Unsupported(config.name, self.type)  # words every refusal
        self.api_version = config.api_version or DEFAULT_API_VERSION
        headers = {"api-key": config.api_key} if config.api_key else {}
        self.client = build_client(
            config, transport, base_url=config.base_url.rstrip("/"), headers=headers
        )
        self._total = config.timeout_secs
        self.responses_api = configured_responses_api(config)

    def _path(self, deployment: str, operation: str) -> str:
        name = quote(deployment, safe="")
        return f"/openai/deployments/{name}/{operation}?api-version={quote(self.api_version)}"

    async def chat(self, request: ChatRequest) -> Completion | StreamingCompletion:
        path = self._path(request.model, "chat/completions")
        content = request.upstream_bytes(self.unsupported)
        if not request.stream:
            body = await self._post_whole(path, content)
            return Completion(body=body, usage=self._checked_usage(body, chat_answer_usage))
        response = await self._post(path, content, stream=True)
        usage = Usage()
        return StreamingCompletion(
            chunks=self._relay(response, usage), aclose=response.aclose, usage=usage
        )

    def _responses_path(self, model: str) -> str:
        # The Responses API lives under Azure's v1 path; the model (deployment) is in the body.
        return "/openai/v1/responses"

    async def embeddings(self, request: EmbeddingRequest) -> Completion:
        path = self._path(request.model, "embeddings")
        body = await self._post_whole(path, request.upstream_bytes())
        return Completion(body=body, usage=self._checked_usage(body, embeddings_answer_usage))


def _problems(config: ProviderConfig, environ: Mapping[str, str]) -> list[Problem]:
    if config.base_url:
        return []
    return [
        Problem("base_url", NOTHING, "azure needs its endpoint, e.g. https://NAME.openai.azure.com")
    ]


def _offer(environ: Mapping[str, str]) -> AutoProvider | None:
    """``AZURE_OPENAI_API_KEY`` with ``AZURE_OPENAI_ENDPOINT``: the deployments named in
    ``AZURE_OPENAI_DEPLOYMENTS`` (comma-separated), each served under its own name."""
    endpoint = environ.get("AZURE_OPENAI_ENDPOINT")
    if not (environ.get("AZURE_OPENAI_API_KEY") and endpoint):
        return None
    block = {"name": "azure", "base_url": endpoint, "api_key_env": "AZURE_OPENAI_API_KEY"}
    deployments = environ.get("AZURE_OPENAI_DEPLOYMENTS", "gpt-4o,gpt-4o-mini")
    names = filter(None, (d.strip() for d in deployments.split(",")))
    return AutoProvider(block, {name: name for name in names})


SPEC = ProviderSpec(
    type="azure",
    build=AzureProvider,
    key_env="AZURE_OPENAI_API_KEY",
    model_in_path=True,
    validate=_problems,
    offers=(_offer,),
)
