"""A provider type's spec: where its key comes from, its checks, what credentials enable."""

from __future__ import annotations

from fkllmproxy.config.provider_types import AutoProvider, Problem
from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.providers.mock import MockProvider
from fkllmproxy.providers.spec import KeyOffer, ProviderSpec


def _build(config: ProviderConfig, transport: object) -> MockProvider:
    return MockProvider(config)


def _no_url(config: ProviderConfig, environ: object) -> list[Problem]:
    return [] if config.base_url else [Problem("base_url", None, "needs base_url")]


class TestKeyOffer:
    def test_enables_a_block_reading_its_key_from_the_variable(self) -> None:
        """A set variable brings a block that names it, and the offered models."""
        offer = KeyOffer("EX_KEY", "ex", {"ex-1": "upstream-1"}, base_url="https://ex.test")
        found = offer({"EX_KEY": "k"})
        assert found == AutoProvider(
            {"name": "ex", "api_key_env": "EX_KEY", "base_url": "https://ex.test"},
            {"ex-1": "upstream-1"},
        )

    def test_an_unset_or_empty_variable_enables_nothing(self) -> None:
        offer = KeyOffer("EX_KEY", "ex", {"ex-1": "ex-1"})
        assert offer({}) is None
        assert offer({"EX_KEY": ""}) is None


class TestProviderSpec:
    def test_a_key_is_required_when_the_type_has_a_key_variable(self) -> None:
        """By default a type with ``key_env`` needs a key, and one without does not."""
        block = ProviderConfig(name="p", type="ex")
        assert ProviderSpec(type="ex", build=_build, key_env="EX_KEY").needs_key(block)
        assert not ProviderSpec(type="ex", build=_build).needs_key(block)

    def test_key_required_overrides_the_default(self) -> None:
        spec = ProviderSpec(
            type="ex", build=_build, key_env="EX_KEY", key_required=lambda c: c.base_url is None
        )
        assert spec.needs_key(ProviderConfig(name="p", type="ex"))
        assert not spec.needs_key(ProviderConfig(name="p", type="ex", base_url="http://h"))

    def test_model_in_path_holds_models_to_the_path_segment_rule(self) -> None:
        """Only a type that puts the model in the URL path refuses ``../x`` as a model."""
        in_path = ProviderSpec(type="ex", build=_build, model_in_path=True)
        in_body = ProviderSpec(type="ex", build=_build)
        assert in_path.model_problem("../../v1/files") is not None
        assert in_path.model_problem("claude-3-5-sonnet@20240620") is None
        assert in_body.model_problem("meta-llama/Llama-3") is None

    def test_auto_providers_carry_the_type(self) -> None:
        """Each offer's block gets the spec's type; unset variables bring nothing."""
        spec = ProviderSpec(
            type="ex",
            build=_build,
            offers=(KeyOffer("A_KEY", "a", {"m": "m"}), KeyOffer("B_KEY", "b", {"n": "n"})),
        )
        found = spec.auto_providers({"B_KEY": "k"})
        assert [f.block for f in found] == [{"name": "b", "type": "ex", "api_key_env": "B_KEY"}]

    def test_validate_and_resolve_default_to_nothing(self) -> None:
        block = ProviderConfig(name="p", type="ex")
        spec = ProviderSpec(type="ex", build=_build)
        assert spec.validate(block, {}) == []
        assert spec.resolve(block, {"ANYTHING": "x"}) is block
        assert ProviderSpec(type="ex", build=_build, validate=_no_url).validate(block, {})
