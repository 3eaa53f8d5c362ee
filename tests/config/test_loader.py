"""The four configuration layers and validation that reports every problem at once."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from fkllmproxy.config import load_config
from fkllmproxy.config.schema import Config
from fkllmproxy.errors import ConfigError

MOCK = """
[[providers]]
name = "mock"
type = "mock"

[[models]]
name = "m"
targets = [{ provider = "mock", model = "x" }]
"""


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(**kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(**kwargs)  # type: ignore[arg-type]
    return info.value.problems


class TestLayers:
    def test_defaults_match_contract(self, tmp_path: Path) -> None:
        """Listen 127.0.0.1:4000, 10 MiB bodies, rate limit 1000/100, breaker 10/60 s."""
        config = load_config(config_path=write(tmp_path, MOCK), environ={}).config
        assert (config.server.host, config.server.port) == ("127.0.0.1", 4000)
        assert config.server.max_request_size == 10 * 1024 * 1024
        assert config.rate_limit.enabled
        assert (config.rate_limit.capacity, config.rate_limit.refill_per_second) == (1000, 100)
        assert config.circuit_breaker.failure_threshold == 10
        assert config.circuit_breaker.timeout_secs == 60

    def test_file_then_env_then_flags(self, tmp_path: Path) -> None:
        """Environment beats the file and flags beat the environment."""
        path = write(tmp_path, MOCK + "\n[server]\nport = 5001\nhost = '127.0.0.2'\n")
        config = load_config(
            config_path=path,
            environ={"APP_SERVER__PORT": "5002", "APP_SERVER__HOST": "127.0.0.3"},
            overrides={"server": {"port": 5003, "host": None}},
        ).config
        assert config.server.port == 5003
        assert config.server.host == "127.0.0.3"

    def test_runbook_env_names_parse_into_types(self, tmp_path: Path) -> None:
        """Every APP_ name in the runbook is accepted and typed."""
        environ = {
            "APP_AUTH__MASTER_KEY": "k",
            "APP_SERVER__PORT": "4100",
            "APP_SERVER__MAX_REQUEST_SIZE": "52428800",
            "APP_RATE_LIMIT__CAPACITY": "5000",
            "APP_RATE_LIMIT__REFILL_PER_SECOND": "500",
            "APP_CIRCUIT_BREAKER__FAILURE_THRESHOLD": "20",
            "APP_CIRCUIT_BREAKER__TIMEOUT_SECS": "120",
            "APP_RATE_LIMIT__ENABLED": "false",
        }
        config = load_config(config_path=write(tmp_path, MOCK), environ=environ).config
        assert config.auth.master_key == "k"
        assert config.server.port == 4100
        assert config.server.max_request_size == 52428800
        assert config.rate_limit.capacity == 5000
        assert config.rate_limit.refill_per_second == 500.0
        assert config.circuit_breaker.failure_threshold == 20
        assert config.circuit_breaker.timeout_secs == 120.0
        assert config.rate_limit.enabled is False

    def test_env_file_wins_over_inherited_environment(self, tmp_path: Path) -> None:
        env_file = write(
            tmp_path, "# comment\nAPP_SERVER__PORT=4200\nexport APP_AUTH__MASTER_KEY='q k'\n", "env"
        )
        loaded = load_config(
            config_path=write(tmp_path, MOCK),
            env_file=env_file,
            environ={"APP_SERVER__PORT": "4100"},
        )
        assert loaded.config.server.port == 4200
        assert loaded.config.auth.master_key == "q k"
        assert loaded.env_file == env_file

    def test_config_path_from_fkllm_config(self, tmp_path: Path) -> None:
        path = write(tmp_path, MOCK)
        loaded = load_config(environ={"FKLLM_CONFIG": str(path)})
        assert loaded.config_path == path

    def test_credentials_enable_providers_without_a_file(self) -> None:
        """GOOGLE_API_KEY alone serves gemini-pro, with its key read from the variable."""
        loaded = load_config(environ={"GOOGLE_API_KEY": "g-key"})
        assert loaded.auto_providers
        provider = loaded.config.provider("gemini")
        assert provider is not None and provider.api_key == "g-key"
        names = {m.name for m in loaded.config.models}
        assert "gemini-pro" in names

    def test_two_credentials_merge_into_fallbacks(self, tmp_path: Path) -> None:
        sa = write(tmp_path, "{}", "sa.json")
        loaded = load_config(
            environ={"GOOGLE_API_KEY": "g", "GOOGLE_APPLICATION_CREDENTIALS": str(sa)}
        )
        model = next(m for m in loaded.config.models if m.name == "gemini-pro")
        assert [t.provider for t in model.targets] == ["gemini", "vertex"]

    def test_provider_key_from_named_variable(self, tmp_path: Path) -> None:
        text = (
            MOCK
            + '\n[[providers]]\nname = "up"\ntype = "openai"\nbase_url = "http://127.0.0.1:9/v1"\napi_key_env = "MY_KEY"\n'
        )
        config = load_config(config_path=write(tmp_path, text), environ={"MY_KEY": "abc"}).config
        provider = config.provider("up")
        assert provider is not None and provider.api_key == "abc"


class TestValidation:
    def test_every_problem_reported_at_once(self, tmp_path: Path) -> None:
        text = MOCK + '\n[server]\nport = 0\nhots = "x"\n[rate_limit]\ncapacity = "many"\n'
        problems = problems_of(
            config_path=write(tmp_path, text),
            environ={"APP_CIRCUIT_BREAKER__TIMEOUT_SECS": "-1"},
        )
        joined = "\n".join(problems)
        assert len(problems) == 4, joined
        assert "server.port (APP_SERVER__PORT): got 0; expected `int` >= 1" in joined
        assert "server.hots" in joined and "did you mean 'host'" in joined
        assert "rate_limit.capacity (APP_RATE_LIMIT__CAPACITY): got 'many'" in joined
        assert (
            "circuit_breaker.timeout_secs (APP_CIRCUIT_BREAKER__TIMEOUT_SECS): got '-1'" in joined
        )

    def test_unknown_app_variable_is_named(self, tmp_path: Path) -> None:
        problems = problems_of(config_path=write(tmp_path, MOCK), environ={"APP_SERVR__PORT": "1"})
        assert problems == [
            "APP_SERVR__PORT: unknown setting (APP_<SECTION>__<KEY> names a config key). "
            "Did you mean APP_SERVER__PORT?"
        ]

    def test_unknown_key_in_known_section(self, tmp_path: Path) -> None:
        problems = problems_of(config_path=write(tmp_path, MOCK), environ={"APP_SERVER__PROT": "1"})
        assert "APP_SERVER__PROT" in problems[0]

    def test_bad_enum_names_the_allowed_values(self, tmp_path: Path) -> None:
        text = MOCK.replace('type = "mock"', 'type = "opena"')
        problems = problems_of(config_path=write(tmp_path, text), environ={})
        assert problems and "providers[0].type" in problems[0] and "'opena'" in problems[0]
        assert "openai" in problems[0]

    def test_secret_values_are_never_echoed(self, tmp_path: Path) -> None:
        text = MOCK + "\n[auth]\nmaster_key = 12345\n"
        problems = problems_of(config_path=write(tmp_path, text), environ={})
        assert "12345" not in "\n".join(problems)
        assert "<redacted>" in problems[0]

    def test_target_must_name_a_provider(self, tmp_path: Path) -> None:
        text = MOCK.replace('provider = "mock"', 'provider = "nope"')
        problems = problems_of(config_path=write(tmp_path, text), environ={})
        assert any("models[0].targets[0].provider" in p and "'nope'" in p for p in problems)

    def test_missing_credentials_name_the_variable(self, tmp_path: Path) -> None:
        text = MOCK + '\n[[providers]]\nname = "g"\ntype = "gemini"\n'
        problems = problems_of(config_path=write(tmp_path, text), environ={})
        assert any("GOOGLE_API_KEY" in p and "missing credentials" in p for p in problems)

    def test_no_providers_at_all(self) -> None:
        problems = problems_of(environ={})
        assert problems[0].startswith("no providers configured")

    def test_open_listener_beyond_loopback_refused(self, tmp_path: Path) -> None:
        problems = problems_of(
            config_path=write(tmp_path, MOCK), environ={"APP_SERVER__HOST": "0.0.0.0"}
        )
        assert any("server.host" in p and "APP_AUTH__MASTER_KEY" in p for p in problems)

    def test_toml_syntax_error_has_a_line(self, tmp_path: Path) -> None:
        problems = problems_of(config_path=write(tmp_path, "[server\nport=1"), environ={})
        assert "line 1" in problems[0]

    def test_missing_file(self, tmp_path: Path) -> None:
        problems = problems_of(config_path=tmp_path / "absent.toml", environ={})
        assert problems == [f"config file {tmp_path / 'absent.toml'}: no such file"]

    def test_duplicate_names(self, tmp_path: Path) -> None:
        text = MOCK + MOCK.replace('"m"', '"m2"')
        problems = problems_of(config_path=write(tmp_path, text), environ={})
        assert any("'mock' is used more than once" in p for p in problems)


def test_schema_defaults_construct() -> None:
    """The schema builds with no input, so defaults are self-consistent."""
    assert msgspec.convert({}, Config).server.port == 4000


OIDC = """
[auth.oidc]
issuer = "https://login.example.com/realms/main"
audience = "fkllmproxy"
"""


class TestOidc:
    def test_defaults(self, tmp_path: Path) -> None:
        """[auth.oidc] needs only issuer and audience; the rest has the contract's defaults."""
        oidc = load_config(config_path=write(tmp_path, MOCK + OIDC), environ={}).config.auth.oidc
        assert oidc is not None
        assert oidc.algorithms == ["RS256", "ES256"]
        assert (oidc.leeway_secs, oidc.name_claim, oidc.jwks_refresh_secs) == (60, "sub", 3600)
        assert (oidc.jwks_url, oidc.models_claim, oidc.groups_claim) == (None, None, "groups")

    def test_env_names_reach_the_nested_table(self, tmp_path: Path) -> None:
        """APP_AUTH__OIDC__* set every plain key, even with no [auth.oidc] in the file."""
        oidc = load_config(
            config_path=write(tmp_path, MOCK),
            environ={
                "APP_AUTH__OIDC__ISSUER": "https://idp.example.com/",
                "APP_AUTH__OIDC__AUDIENCE": "proxy",
                "APP_AUTH__OIDC__ALGORITHMS": '["ES256"]',
                "APP_AUTH__OIDC__LEEWAY_SECS": "5",
            },
        ).config.auth.oidc
        assert oidc is not None
        assert (oidc.issuer, oidc.audience, oidc.algorithms, oidc.leeway_secs) == (
            "https://idp.example.com/",
            "proxy",
            ["ES256"],
            5,
        )

    def test_every_problem_at_once_with_path_and_env_name(self, tmp_path: Path) -> None:
        """HS256, a plain-http issuer, an unknown group model and a missing audience are
        all reported together, each with its field path and env name (or the file)."""
        text = MOCK + (
            "[auth.oidc]\nissuer = 'http://idp.example.com'\nalgorithms = ['RS256', 'HS256']\n"
            "[[auth.oidc.groups]]\nclaim_value = 'eng'\nmodels = ['nope']\n"
        )
        problems = problems_of(config_path=write(tmp_path, text), environ={})
        joined = "\n".join(problems)
        assert "auth.oidc.audience (APP_AUTH__OIDC__AUDIENCE): got nothing" in joined
        assert 'auth.oidc.algorithms (APP_AUTH__OIDC__ALGORITHMS): got ["RS256","HS256"]' in joined
        assert "allowed: RS256, RS384" in joined and "EdDSA" in joined
        problems = problems_of(
            config_path=write(
                tmp_path,
                text.replace(", 'HS256'", "").replace(
                    "[auth.oidc]\n", "[auth.oidc]\naudience = 'a'\n"
                ),
            ),
            environ={},
        )
        assert any(
            p.startswith("auth.oidc.issuer (APP_AUTH__OIDC__ISSUER): got 'http://idp.example.com'")
            and "https://" in p
            for p in problems
        )
        assert any(
            p.startswith("auth.oidc.groups[0].models (set in the config file)") for p in problems
        )

    def test_a_budgeted_group_needs_prices(self, tmp_path: Path) -> None:
        """A group's budget over models without a [[pricing]] entry is refused, by field."""
        text = MOCK + OIDC + "[[auth.oidc.groups]]\nclaim_value = 'eng'\nbudget_usd = 5\n"
        problems = problems_of(config_path=write(tmp_path, text), environ={})
        assert any(
            p.startswith("auth.oidc.groups[0].budget_usd") and "without a price" in p
            for p in problems
        )

    def test_oidc_alone_may_listen_beyond_loopback(self, tmp_path: Path) -> None:
        """With [auth.oidc] every caller needs a token: no master key is required."""
        text = MOCK + OIDC + "[server]\nhost = '0.0.0.0'\n"
        assert load_config(config_path=write(tmp_path, text), environ={}).config.auth.oidc

    def test_a_table_is_not_an_env_value(self, tmp_path: Path) -> None:
        """APP_AUTH__OIDC (a table) and APP_AUTH__OIDC__GROUPS (a list of tables) are unknown."""
        problems = problems_of(
            config_path=write(tmp_path, MOCK),
            environ={"APP_AUTH__OIDC": "{}", "APP_AUTH__OIDC__GROUPS": "[]"},
        )
        assert any(p.startswith("APP_AUTH__OIDC: unknown setting") for p in problems)
        assert any(p.startswith("APP_AUTH__OIDC__GROUPS: unknown setting") for p in problems)


class TestSemanticCache:
    """``cache = "semantic"`` and its ``semantic`` table are checked at load."""

    BASE = """
[[providers]]
name = "mock"
type = "mock"

[[models]]
name = "embed"
targets = [{ provider = "mock", model = "e" }]
"""

    def chat(self, lines: str) -> str:
        return (
            self.BASE
            + '\n[[models]]\nname = "chat"\ntargets = [{ provider = "mock", model = "m" }]\n'
            + lines
        )

    def test_a_valid_semantic_model_loads(self, tmp_path: Path) -> None:
        text = self.chat(
            'cache = "semantic"\nsemantic = { embedding_model = "embed", threshold = 0.93 }\n'
        )
        loaded = load_config(config_path=write(tmp_path, text), environ={})
        model = loaded.config.models[1]
        assert model.cache == "semantic" and model.semantic is not None
        assert (model.semantic.threshold, model.semantic.max_entries) == (0.93, 10_000)

    def test_a_budgeted_key_needs_a_price_for_the_embedding_model_too(self, tmp_path: Path) -> None:
        """The embedding calls are charged to the key: an unpriced embedding model is refused."""
        text = self.chat('cache = "semantic"\nsemantic = { embedding_model = "embed" }\n') + (
            '\n[[pricing]]\nmodel = "m"\ninput_per_mtok = 1\noutput_per_mtok = 1\n'
            '\n[[auth.keys]]\nname = "k"\nkey_sha256 = "' + "0" * 64 + '"\n'
            'models = ["chat"]\nbudget_usd = 5\n'
        )
        found = problems_of(config_path=write(tmp_path, text), environ={})
        assert any("without a price" in p and "'embed'" in p for p in found)
        priced = text + '\n[[pricing]]\nmodel = "e"\ninput_per_mtok = 1\noutput_per_mtok = 0\n'
        assert load_config(config_path=write(tmp_path, priced), environ={})

    def test_every_mistake_is_named(self, tmp_path: Path) -> None:
        text = self.chat('cache = "semantc"\n') + (
            '\n[[models]]\nname = "c2"\ntargets = [{ provider = "mock", model = "m" }]\n'
            'cache = "semantic"\n'
            '\n[[models]]\nname = "c3"\ntargets = [{ provider = "mock", model = "m" }]\n'
            'cache = "semantic"\nsemantic = { embedding_model = "nope" }\n'
            '\n[[models]]\nname = "c4"\ntargets = [{ provider = "mock", model = "m" }]\n'
            'semantic = { embedding_model = "embed", threshold = 1.5 }\n'
        )
        found = problems_of(config_path=write(tmp_path, text), environ={})
        assert found == [
            "models[1].cache (set in the config file): got 'semantc'; allowed: true, false, semantic",
            "models[4].semantic.threshold (set in the config file): got 1.5; expected `float` <= 1.0",
        ]
        text = text.replace('"semantc"', "true").replace("threshold = 1.5", "threshold = 1")
        found = problems_of(config_path=write(tmp_path, text), environ={})
        assert found == [
            "models[2].semantic (set in the config file): got nothing; "
            'cache = "semantic" needs a [models.semantic] table with embedding_model',
            "models[3].semantic.embedding_model (set in the config file): got 'nope'; "
            "expected another configured model with embeddings (models: c2, c4, chat, embed)",
            "models[4].cache (set in the config file): got false; "
            'this model has a [models.semantic] table: set cache = "semantic" to use it',
        ]
