"""The daemon the Responses-API client tests share: one model per provider type and behaviour."""

from __future__ import annotations

PROVIDERS = """
[[providers]]
name = "oai"
type = "openai"
base_url = "{url}/v1"
api_key = "sk-upstream-openai"

[[providers]]
name = "native"
type = "openai"
base_url = "{url}/v1"
api_key = "sk-upstream-openai"
responses_api = true

[[providers]]
name = "claude"
type = "anthropic"
base_url = "{url}"
api_key = "sk-ant-upstream"

[[providers]]
name = "gem"
type = "gemini"
base_url = "{url}"
api_key = "google-key"
"""


def responses_config(url: str, behaviours: tuple[str, ...] = ("ok", "tools")) -> str:
    """A config with models ``<provider>-<behaviour>`` for oai, native, claude and gem."""
    models = "".join(
        f'\n[[models]]\nname = "{provider}-{behaviour}"\n'
        f'targets = [{{ provider = "{provider}", model = "{behaviour}" }}]\n'
        for provider in ("oai", "native", "claude", "gem")
        for behaviour in behaviours
    )
    return PROVIDERS.format(url=url) + models
