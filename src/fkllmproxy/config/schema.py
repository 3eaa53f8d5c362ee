"""The configuration schema: one frozen msgspec Struct per TOML section.

Defaults live here and only here; ``config.example.toml`` documents every field (a test
keeps the two in step). Constraints are msgspec ``Meta`` annotations, so a bad value is
reported with what is allowed. Field names are the TOML keys and, upper-cased under
``APP_<SECTION>__``, the environment names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct, field

__all__ = [
    "AuthConfig",
    "CacheConfig",
    "CircuitBreakerConfig",
    "ClientKey",
    "Config",
    "KeyRateLimit",
    "LoggingConfig",
    "MetricsConfig",
    "ModelConfig",
    "OidcConfig",
    "OidcGroup",
    "PriceConfig",
    "ProviderConfig",
    "RateLimitConfig",
    "ResponsesConfig",
    "RetryConfig",
    "RoutingConfig",
    "SemanticCacheConfig",
    "ServerConfig",
    "StateConfig",
    "Target",
    "UiConfig",
    "UsageConfig",
]

PositiveInt = Annotated[int, Meta(ge=1)]
Port = Annotated[int, Meta(ge=1, le=65535)]
PositiveFloat = Annotated[float, Meta(gt=0)]
NonNegativeFloat = Annotated[float, Meta(ge=0)]
Name = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:/@+-]+$")]
# A registered provider type's name: the loader checks it against the types the providers
# package registers (config/provider_types.py), and names them when it is not one.
ProviderType = Annotated[str, Meta(min_length=1)]

MIB = 1024 * 1024


class _Section(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Common base: immutable (shared across requests) and strict about unknown keys."""


class ServerConfig(_Section, frozen=True):
    host: str = "127.0.0.1"
    port: Port = 4000
    workers: Annotated[int, Meta(ge=1, le=64)] = 1
    max_request_size: PositiveInt = 10 * MIB
    backlog: Annotated[int, Meta(ge=16)] = 4096
    backpressure: Annotated[int, Meta(ge=16)] = 16384
    drain_timeout_secs: NonNegativeFloat = 30.0
    body_timeout_secs: PositiveFloat = 30.0
    http_transport: Literal["h1", "httpx"] = "h1"
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"


class KeyRateLimit(_Section, frozen=True):
    capacity: PositiveInt
    refill_per_second: PositiveFloat


# Budgets (limits/budgets.py): calendar periods in UTC, a week starting on Monday.
BudgetPeriod = Literal["day", "week", "month"]


class ClientKey(_Section, frozen=True):
    name: Name
    key_sha256: Annotated[str, Meta(pattern=r"^[0-9a-fA-F]{64}$")]
    models: list[str] = field(default_factory=list)
    rate_limit: KeyRateLimit | None = None
    budget_usd: PositiveFloat | None = None
    budget_period: BudgetPeriod = "month"
    tokens_per_minute: PositiveInt | None = None


# Asymmetric algorithms only: with an HMAC algorithm allowed, a token "signed" with the
# issuer's public key as the secret would pass. ``none`` is never allowed.
JwtAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]


class OidcGroup(_Section, frozen=True):
    """What callers whose token lists ``claim_value`` in its groups claim may do."""

    claim_value: Annotated[str, Meta(min_length=1)]
    models: list[str] = field(default_factory=list)
    rate_limit: KeyRateLimit | None = None
    budget_usd: PositiveFloat | None = None  # shared by every member of the group
    budget_period: BudgetPeriod = "month"
    tokens_per_minute: PositiveInt | None = None  # per member, like rate_limit


class OidcConfig(_Section, frozen=True):
    """Tokens from an OpenID Connect issuer, accepted as client identities (JWTs)."""

    issuer: Annotated[str, Meta(min_length=1)]
    audience: Annotated[str, Meta(min_length=1)]
    jwks_url: str | None = None
    algorithms: Annotated[list[JwtAlgorithm], Meta(min_length=1)] = field(
        default_factory=lambda: ["RS256", "ES256"]
    )
    leeway_secs: NonNegativeFloat = 60.0
    name_claim: Annotated[str, Meta(min_length=1)] = "sub"
    models_claim: Annotated[str, Meta(min_length=1)] | None = None
    groups_claim: Annotated[str, Meta(min_length=1)] = "groups"
    jwks_refresh_secs: Annotated[float, Meta(ge=60)] = 3600.0
    groups: list[OidcGroup] = field(default_factory=list)


class AuthConfig(_Section, frozen=True):
    master_key: str | None = None
    previous_master_key: str | None = None
    previous_key_grace_secs: NonNegativeFloat = 3600.0
    rotated_at: Annotated[datetime, Meta(tz=True)] | None = None
    allow_unauthenticated: bool = False
    keys: list[ClientKey] = field(default_factory=list)
    oidc: OidcConfig | None = None


class RateLimitConfig(_Section, frozen=True):
    enabled: bool = True
    capacity: PositiveInt = 1000
    refill_per_second: PositiveFloat = 100.0
    max_tracked_callers: Annotated[int, Meta(ge=16)] = 100_000


class CircuitBreakerConfig(_Section, frozen=True):
    failure_threshold: PositiveInt = 10
    timeout_secs: PositiveFloat = 60.0
    max_timeout_secs: PositiveFloat = 600.0
    when_all_open: Literal["fail_fast", "least_recently_failed"] = "fail_fast"


class RetryConfig(_Section, frozen=True):
    max_attempts: Annotated[int, Meta(ge=1, le=20)] = 3
    backoff_initial_ms: NonNegativeFloat = 100.0
    backoff_max_ms: NonNegativeFloat = 2000.0
    max_retry_after_secs: NonNegativeFloat = 5.0
    deadline_secs: PositiveFloat | None = None


class RoutingConfig(_Section, frozen=True):
    """``affinity_header``: requests carrying the same value of this header go to the same
    target of a weighted group while it is healthy (empty: no affinity)."""

    affinity_header: str = "x-claude-code-session-id"


class LoggingConfig(_Section, frozen=True):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"
    requests: bool = True


class MetricsConfig(_Section, frozen=True):
    enabled: bool = True
    require_auth: bool = False
    latency_window: Annotated[int, Meta(ge=16, le=1_000_000)] = 4096


class StateConfig(_Section, frozen=True):
    backend: Literal["memory", "redis"] = "memory"
    url: str | None = None
    on_failure: Literal["open", "closed"] = "open"
    key_prefix: str = "fkllm:"
    directory: str = "/var/lib/fkllmproxy"


class CacheConfig(_Section, frozen=True):
    enabled: bool = False
    ttl_secs: PositiveFloat = 300.0
    max_entries: PositiveInt = 10_000
    shared_across_keys: bool = False


class UsageConfig(_Section, frozen=True):
    enabled: bool = False
    path: str | None = None
    # Where POST /admin/usage/backup writes its copies (a directory; the API names the
    # files itself, so a client never chooses a path): default <ledger's directory>/backups.
    backup_dir: str | None = None
    flush_interval_secs: PositiveFloat = 0.1
    # Raw rows older than this many days are deleted by the ledger's writer (0: kept
    # forever); the daily rollups ``fkllm usage``, the console and budgets read stay.
    retention_days: Annotated[int, Meta(ge=0)] = 90
    # The energy estimate's coefficients for models without their own in [[pricing]]:
    # Wh per 1,000 tokens (see observability/energy.py for where the defaults come from).
    energy_wh_per_1k_prompt: NonNegativeFloat = 0.05
    energy_wh_per_1k_completion: NonNegativeFloat = 0.5


class ResponsesConfig(_Section, frozen=True):
    """``[responses]``: how long stored ``/v1/responses`` answers are kept, and how many bytes."""

    ttl_secs: PositiveFloat = 3600.0
    max_stored_bytes: PositiveInt = 64 * MIB


class UiConfig(_Section, frozen=True):
    """The web console under ``/ui/`` (server/ui): on by default, signed in with the master key."""

    enabled: bool = True
    session_hours: Annotated[float, Meta(gt=0, le=720)] = 12.0


class AdminConfig(_Section, frozen=True):
    """The operator's API (``/admin``): how many earlier config files a write keeps."""

    config_backups: Annotated[int, Meta(ge=1, le=1000)] = 10
    # false: the config routes only read and validate (a host whose file is managed by
    # configuration management); true writes where the daemon may write the file.
    config_writable: bool = True


class ProviderConfig(_Section, frozen=True):
    name: Name
    type: ProviderType
    base_url: str | None = None
    api_key_env: str | None = None
    api_key: str | None = None
    timeout_secs: PositiveFloat = 60.0
    connect_timeout_secs: PositiveFloat = 5.0
    first_byte_timeout_secs: PositiveFloat | None = None
    idle_timeout_secs: PositiveFloat | None = None
    max_connections: PositiveInt = 1000
    headers: dict[str, str] = field(default_factory=dict)
    api_version: str | None = None
    project: str | None = None
    location: str | None = None
    credentials_file: str | None = None
    default_max_tokens: PositiveInt = 4096
    mock_latency_ms: NonNegativeFloat = 0.0
    # openai/azure: whether the provider has the Responses API (/v1/responses passes
    # through); absent: true when base_url's host is api.openai.com.
    responses_api: bool | None = None
    # Egress (providers/egress.py): a forward proxy ("http://user:pass@host:port", or
    # "none"; absent: HTTPS_PROXY / HTTP_PROXY / NO_PROXY), the CAs trusted instead of the
    # system's, and a client certificate for mutual TLS (key absent: inside client_cert).
    proxy: str | None = None
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    # Bounds on what the provider may send back (providers/limits.py says why).
    max_response_head_bytes: Annotated[int, Meta(ge=1024)] = 64 * 1024
    max_response_headers: Annotated[int, Meta(ge=8)] = 100
    max_response_body_bytes: Annotated[int, Meta(ge=1024)] = 32 * MIB
    max_stream_event_bytes: Annotated[int, Meta(ge=1024)] = 4 * MIB
    max_stream_bytes: Annotated[int, Meta(ge=1024)] = 256 * MIB


class Target(_Section, frozen=True):
    """One provider + upstream model of a model name. ``reasoning = false`` marks a model
    that takes no reasoning setting (OpenAI's non-reasoning models refuse
    ``reasoning_effort``): the thinking an Anthropic client asks for is not sent to it."""

    provider: Name
    model: Annotated[str, Meta(min_length=1)]
    weight: Annotated[float, Meta(gt=0)] | None = None
    reasoning: bool = True


class SemanticCacheConfig(_Section, frozen=True):
    """A model's semantic cache (``cache = "semantic"``): how close an earlier question
    must be for its answer to serve, which configured model embeds the questions, and
    how long and how many answers are kept (server/semantic_cache.py)."""

    embedding_model: Annotated[str, Meta(min_length=1, max_length=256)]
    threshold: Annotated[float, Meta(gt=0, le=1)] = 0.95
    ttl_secs: PositiveFloat = 3600.0
    max_entries: Annotated[int, Meta(ge=1, le=1_000_000)] = 10_000
    shared_across_keys: bool = False
    # A sampled answer (temperature > 0) is one of many: replaying it is the operator's call.
    allow_temperature: bool = False


class ModelConfig(_Section, frozen=True):
    name: Annotated[str, Meta(min_length=1, max_length=256)]
    targets: Annotated[list[Target], Meta(min_length=1)]
    # true: the exact-match cache ([cache]); "semantic": the semantic cache ([models.semantic]).
    cache: bool | Literal["semantic"] = False
    semantic: SemanticCacheConfig | None = None


class PriceConfig(_Section, frozen=True):
    """What one model costs, for the usage ledger's estimate: USD per million tokens.

    ``model`` is matched against the upstream model first, then the name clients send;
    ``provider`` narrows it to one provider (absent: any). Prompt-cache reads and
    writes are priced at ``cache_read_per_million`` / ``cache_write_per_million`` when
    given, else at the input price.
    """

    model: Annotated[str, Meta(min_length=1)]
    input_per_mtok: NonNegativeFloat
    output_per_mtok: NonNegativeFloat = 0.0
    provider: Name | None = None
    cache_read_per_million: NonNegativeFloat | None = None
    cache_write_per_million: NonNegativeFloat | None = None
    # The energy estimate for this model, Wh per 1,000 tokens (absent: the [usage] defaults).
    energy_wh_per_1k_prompt: NonNegativeFloat | None = None
    energy_wh_per_1k_completion: NonNegativeFloat | None = None


class Config(_Section, frozen=True):
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    circuit_breaker: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    state: StateConfig = field(default_factory=StateConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    usage: UsageConfig = field(default_factory=UsageConfig)
    responses: ResponsesConfig = field(default_factory=ResponsesConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    providers: list[ProviderConfig] = field(default_factory=list)
    models: list[ModelConfig] = field(default_factory=list)
    pricing: list[PriceConfig] = field(default_factory=list)

    def provider(self, name: str) -> ProviderConfig | None:
        """The provider block called ``name``, if any."""
        for provider in self.providers:
            if provider.name == name:
                return provider
        return None


# Fields whose values are secrets: never printed, logged or echoed in an error.
SECRET_FIELDS = frozenset({"master_key", "previous_master_key", "api_key"})


def to_builtins(config: Config) -> dict[str, object]:
    """The config as plain data (for printing and TOML), secrets included."""
    data = msgspec.to_builtins(config)
    assert isinstance(data, dict)
    return data
