"""Gemini on Vertex AI (``type = "vertex"``): the Gemini JSON, Google Cloud's URLs and auth.

Chat goes to ``/v1/projects/{project}/locations/{location}/publishers/google/models/
{model}:generateContent`` (and ``:streamGenerateContent?alt=sse``) on
``https://{location}-aiplatform.googleapis.com`` (``aiplatform.googleapis.com`` for the
``global`` location); text embedding models answer ``:predict``. Requests carry an
OAuth2 bearer token from the service account in ``credentials_file`` (default
``$GOOGLE_APPLICATION_CREDENTIALS``), cached and refreshed ahead of expiry by
``GoogleTokenSource``. The project is ``project`` from the config, else the service
account's own; the location is ``location``, default ``us-central1``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

from fkllmproxy.config.provider_types import NOTHING, AutoProvider, Problem
from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.errors import ConfigError
from fkllmproxy.providers.base import Completion, EmbeddingRequest, Usage
from fkllmproxy.providers.gemini import GEMINI_MODELS, GeminiProvider
from fkllmproxy.providers.google_auth import GoogleTokenSource, load_google_credentials
from fkllmproxy.providers.http import TransportFactory
from fkllmproxy.providers.spec import ProviderSpec
from fkllmproxy.translate.gemini_embeddings import (
    embedding_inputs,
    from_vertex_predict,
    openai_embeddings,
    to_vertex_predict,
)
from fkllmproxy.wire.gemini import decode_vertex_predict, encode

__all__ = ["DEFAULT_LOCATION", "SPEC", "VertexProvider"]

DEFAULT_LOCATION = "us-central1"


class VertexProvider(GeminiProvider):
    """Gemini through Vertex AI, authenticated with a Google service account."""

    type = "vertex"
    default_version = "v1"
    # Publisher models embed through ``:predict``: Gemini embedding calls are translated.
    gemini_methods = frozenset({"generateContent", "streamGenerateContent", "countTokens"})

    def __init__(self, config: ProviderConfig, transport: TransportFactory) -> None:
        assert config.credentials_file, "checked by SPEC.validate"
        credentials, file_project = load_google_credentials(
            config.credentials_file, provider=config.name
        )
        project = config.project or file_project
        if not project:
            raise ConfigError(
                [
                    f"provider {config.name!r}: no project: set project, or use a "
                    "service-account file that names its project_id"
                ]
            )
        self.project = project
        self.location = config.location or DEFAULT_LOCATION
        self.tokens = GoogleTokenSource(
            credentials, provider=config.name, timeout=config.timeout_secs
        )
        super().__init__(config, transport)

    def base_url(self, config: ProviderConfig) -> str:
        if config.base_url:
            return config.base_url.rstrip("/")
        if self.location == "global":
            return "https://aiplatform.googleapis.com"
        return f"https://{self.location}-aiplatform.googleapis.com"

    def static_headers(self, config: ProviderConfig) -> dict[str, str]:
        return {}

    async def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {await self.tokens.token()}"}

    async def renew_credentials(self, used: dict[str, str]) -> bool:
        self.tokens.invalidate(used.get("authorization", "").removeprefix("Bearer "))
        return True

    def model_path(self, model: str, method: str) -> str:
        """A publisher model by name, or any full resource path (``projects/...``) as is."""
        if model.startswith("projects/"):
            return f"/{self.version}/{model}:{method}"
        if not model.startswith("publishers/"):
            model = f"publishers/google/models/{model}"
        scope = f"projects/{self.project}/locations/{self.location}"
        return f"/{self.version}/{scope}/{model}:{method}"

    async def embeddings(self, request: EmbeddingRequest) -> Completion:
        body = request.body
        texts = embedding_inputs(body, provider=self.name)
        payload = encode(to_vertex_predict(texts, dimensions=body.get("dimensions")))
        raw = await self._post_whole(self.model_path(request.model, "predict"), payload)
        try:
            answer = decode_vertex_predict(raw)
        except msgspec.DecodeError:
            raise self._bad_answer() from None
        vectors, tokens = from_vertex_predict(answer, expected=len(texts), provider=self.name)
        out = openai_embeddings(
            vectors,
            model=request.model,
            encoding_format=body.get("encoding_format"),
            prompt_tokens=tokens,
        )
        return Completion(body=out, usage=Usage(prompt_tokens=tokens))

    async def aclose(self) -> None:
        self.tokens.close()
        await super().aclose()


_CREDENTIALS_ENV = "GOOGLE_APPLICATION_CREDENTIALS"


def _with_credentials(config: ProviderConfig, environ: Mapping[str, str]) -> ProviderConfig:
    """A block naming no ``credentials_file`` takes ``$GOOGLE_APPLICATION_CREDENTIALS``."""
    if config.credentials_file is None and environ.get(_CREDENTIALS_ENV):
        return msgspec.structs.replace(config, credentials_file=environ[_CREDENTIALS_ENV])
    return config


def _problems(config: ProviderConfig, environ: Mapping[str, str]) -> list[Problem]:
    path = config.credentials_file
    if not path:
        return [
            Problem(
                "credentials_file",
                NOTHING,
                f"missing credentials: set {_CREDENTIALS_ENV} to a service-account JSON file",
            )
        ]
    if not os.access(path, os.R_OK):
        return [
            Problem(
                "credentials_file",
                path,
                "the service-account JSON file does not exist or cannot be read",
            )
        ]
    return []


def _offer(environ: Mapping[str, str]) -> AutoProvider | None:
    """``GOOGLE_APPLICATION_CREDENTIALS`` alone: the Gemini API's model names but
    ``gemini-embedding-001``, each the fallback of the Gemini API's when both are set."""
    if not environ.get(_CREDENTIALS_ENV):
        return None
    models = {k: v for k, v in GEMINI_MODELS.items() if k != "gemini-embedding-001"}
    return AutoProvider({"name": "vertex"}, models)


SPEC = ProviderSpec(
    type="vertex",
    build=VertexProvider,
    model_in_path=True,
    resolve=_with_credentials,
    validate=_problems,
    offers=(_offer,),
)
