"""The registry of provider types, and what a new type needs: its spec, nothing else.

``EXAMPLE`` below stands for a provider type added to the program; the config loader
takes it through ``provider_types=`` here exactly as it takes the registered ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from fkllmproxy.config import load_config
from fkllmproxy.config.provider_types import Problem, registered_provider_types
from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.errors import ConfigError
from fkllmproxy.providers import PROVIDER_SPECS, build_provider, default_transport, spec_of
from fkllmproxy.providers.azure import AzureProvider
from fkllmproxy.providers.mock import MockProvider
from fkllmproxy.providers.spec import KeyOffer, ProviderSpec


def _build_example(config: ProviderConfig, transport: object) -> MockProvider:
    return MockProvider(config)


def _https_only(config: ProviderConfig, environ: Mapping[str, str]) -> list[Problem]:
    url = config.base_url
    if url is None or url.startswith("https://"):
        return []
    return [Problem("base_url", url, "example is served over https only")]


EXAMPLE = ProviderSpec(
    type="example",
    build=_build_example,
    key_env="EXAMPLE_API_KEY",
    model_in_path=True,
    validate=_https_only,
    offers=(KeyOffer("EXAMPLE_API_KEY", "example", {"ex-large": "ex-large-2"}),),
)
TYPES = (*PROVIDER_SPECS, EXAMPLE)

BLOCK = """
[[providers]]
name = "ex"
type = "example"

[[models]]
name = "big"
targets = [{ provider = "ex", model = "ex-large-2" }]
"""


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def problems_of(path: Path | None, environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(config_path=path, environ=environ, provider_types=TYPES)
    return info.value.problems


class TestRegistry:
    def test_every_type_is_registered_with_the_config_loader_once(self) -> None:
        """Importing the providers package hands the loader every spec, in order."""
        types = [spec.type for spec in PROVIDER_SPECS]
        assert types == ["gemini", "vertex", "openai", "anthropic", "azure", "cohere", "mock"]
        assert list(registered_provider_types()) == types
        assert all(spec_of(t) is registered_provider_types()[t] for t in types)
        assert spec_of("cohere-ish") is None

    def test_an_unknown_type_names_the_registered_ones(self, tmp_path: Path) -> None:
        path = config_file(tmp_path, BLOCK.replace('type = "example"', 'type = "exampel"'))
        problems = problems_of(path, {"EXAMPLE_API_KEY": "k"})
        assert problems == [
            "providers[0].type (set in the config file): got 'exampel'; allowed: "
            "gemini, vertex, openai, anthropic, azure, cohere, mock, example"
        ]

    def test_build_runs_the_types_own_checks(self) -> None:
        """An adapter needs no checks of its own: building a block its spec refuses fails."""
        with pytest.raises(ConfigError) as info:
            build_provider(ProviderConfig(name="az", type="azure"), default_transport("h1"))
        assert info.value.problems == [
            "provider 'az': base_url: azure needs its endpoint, e.g. https://NAME.openai.azure.com"
        ]

    async def test_build_makes_the_types_adapter(self) -> None:
        block = ProviderConfig(name="az", type="azure", base_url="https://x.openai.azure.com")
        provider = build_provider(block, default_transport("h1"))
        assert isinstance(provider, AzureProvider)
        await provider.aclose()

    def test_a_type_nobody_registered_is_not_built(self) -> None:
        with pytest.raises(ConfigError) as info:
            build_provider(ProviderConfig(name="p", type="nope"), default_transport("h1"))
        assert "'nope'" in info.value.problems[0]


class TestANewType:
    """A type declared only by its spec gets every rule the loader applies."""

    def test_its_key_is_read_from_its_variable(self, tmp_path: Path) -> None:
        loaded = load_config(
            config_path=config_file(tmp_path, BLOCK),
            environ={"EXAMPLE_API_KEY": "ex-key"},
            provider_types=TYPES,
        )
        provider = loaded.config.provider("ex")
        assert provider is not None and provider.api_key == "ex-key"
        assert isinstance(build_example(provider), MockProvider)

    def test_its_missing_key_and_its_own_checks_are_problems(self, tmp_path: Path) -> None:
        text = BLOCK.replace('type = "example"', 'type = "example"\nbase_url = "http://ex.test"')
        problems = problems_of(config_file(tmp_path, text), {})
        assert problems == [
            "providers[0].api_key_env (set in the config file): got 'EXAMPLE_API_KEY'; "
            "missing credentials: set EXAMPLE_API_KEY in the environment or the env file",
            "providers[0].base_url (set in the config file): got 'http://ex.test'; "
            "example is served over https only",
        ]

    def test_its_model_names_are_held_to_the_path_rule(self, tmp_path: Path) -> None:
        path = config_file(tmp_path, BLOCK.replace("ex-large-2", "../v1/files"))
        problems = problems_of(path, {"EXAMPLE_API_KEY": "k"})
        assert len(problems) == 1 and "models[0].targets[0].model" in problems[0]

    def test_its_credential_enables_it_without_a_file(self) -> None:
        loaded = load_config(environ={"EXAMPLE_API_KEY": "k"}, provider_types=TYPES)
        assert loaded.auto_providers
        assert [p.name for p in loaded.config.providers] == ["example"]
        assert [(m.name, m.targets[0].model) for m in loaded.config.models] == [
            ("ex-large", "ex-large-2")
        ]


def build_example(provider: ProviderConfig) -> object:
    return EXAMPLE.build(provider, default_transport("h1"))


def test_credentials_alone_enable_providers_in_registry_order(tmp_path: Path) -> None:
    """Every well-known variable set, no file: one provider each, fallbacks in order."""
    service_account = tmp_path / "sa.json"
    service_account.write_text("{}")
    environ = {
        "GOOGLE_API_KEY": "g",
        "GOOGLE_APPLICATION_CREDENTIALS": str(service_account),
        "OPENAI_API_KEY": "o",
        "ANTHROPIC_API_KEY": "a",
        "GROQ_API_KEY": "q",
        "OPENROUTER_API_KEY": "r",
        "AZURE_OPENAI_API_KEY": "z",
        "AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com",
        "COHERE_API_KEY": "c",
    }
    config = load_config(environ=environ).config
    assert [p.name for p in config.providers] == [
        "gemini", "vertex", "openai", "groq", "openrouter", "anthropic", "azure", "cohere",
    ]  # fmt: skip
    targets = {m.name: [t.provider for t in m.targets] for m in config.models}
    assert targets["gemini-pro"] == ["gemini", "vertex"]
    assert targets["gpt-4o"] == ["openai", "azure"]
    assert targets["claude-sonnet-5"] == ["anthropic"]
    assert targets["command-a-03-2025"] == ["cohere"]
    assert targets["embed-v4.0"] == ["cohere"]
    groq = config.provider("groq")
    assert groq is not None and groq.type == "openai" and groq.api_key == "q"
