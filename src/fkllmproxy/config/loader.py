"""Building the effective configuration from its four layers.

Later layers win: built-in defaults < TOML file < environment (``APP_<SECTION>__<KEY>``,
the env file's values over the inherited ones) < CLI flags. Everything is merged as
plain data first and validated once at the end, so that every problem is found in one
pass and reported together, each naming the field path, the env name that sets it,
what was given (secrets redacted) and what is allowed.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec

from fkllmproxy.config.credentials import credential_providers
from fkllmproxy.config.egress import egress_problems
from fkllmproxy.config.envfile import read_env_file
from fkllmproxy.config.provider_types import NOTHING, ProviderRules, registered_provider_types
from fkllmproxy.config.schema import SECRET_FIELDS, Config, OidcConfig
from fkllmproxy.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_ENV_FILE",
    "LoadedConfig",
    "env_name",
    "load_config",
    "resolve_environ",
]

DEFAULT_CONFIG_PATH = Path("/etc/fkllmproxy/config.toml")
DEFAULT_ENV_FILE = Path("/etc/fkllmproxy/env")
ENV_PREFIX = "APP_"
_LIST_SECTIONS = frozenset({"providers", "models", "pricing"})
_FILE_ONLY = "set in the config file"
# Lists of tables inside a section: only a config file can write those.
_FILE_ONLY_LISTS = frozenset({("auth", "keys"), ("auth", "oidc", "groups")})


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config plus where it came from (shown by check-config and startup)."""

    config: Config
    config_path: Path | None
    env_file: Path | None
    environ: Mapping[str, str] = field(repr=False)
    auto_providers: bool = False
    # The CLI flags it was loaded with, so that a new file is checked as it will be loaded.
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)


def env_name(path: tuple[str | int, ...]) -> str:
    """The ``APP_`` variable that sets ``path``, or a note that only the file can."""
    if any(isinstance(part, int) for part in path) or (path and path[0] in _LIST_SECTIONS):
        return _FILE_ONLY
    if tuple(path) in _FILE_ONLY_LISTS:
        return _FILE_ONLY
    return ENV_PREFIX + "__".join(str(part).upper() for part in path)


def _dotted(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


def _shown(path: tuple[str | int, ...], value: Any) -> str:
    # A malformed key_sha256 is most often the raw key pasted by mistake: never echo it.
    if path and (path[-1] in SECRET_FIELDS or path[-1] == "key_sha256"):
        return "<redacted>"
    text = msgspec.json.encode(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Problems:
    """Collects problems with the source of each value, so messages say where to fix it."""

    def __init__(self, sources: dict[tuple[str | int, ...], str]) -> None:
        self.items: list[str] = []
        self._sources = sources

    def add(self, path: tuple[str | int, ...], given: Any, allowed: str) -> None:
        where = self._sources.get(path)
        setter = where or env_name(path)
        given_text = "nothing" if given is _MISSING else _shown(path, given)
        self.items.append(f"{_dotted(path)} ({setter}): got {given_text}; {allowed}")

    def note(self, message: str) -> None:
        self.items.append(message)


_MISSING = NOTHING  # a value not given at all ("got nothing"); provider types use it too


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``| None`` to find a Struct or ``list[Struct]`` inside."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _unwrap(get_args(tp)[0])
    if origin is Union or (origin is not None and "UnionType" in str(origin)):
        inner = [a for a in get_args(tp) if a is not type(None)]
        if len(inner) == 1:
            return _unwrap(inner[0])
    return tp


def _struct_type(tp: Any) -> type[msgspec.Struct] | None:
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, msgspec.Struct) else None


def _list_item_struct(tp: Any) -> type[msgspec.Struct] | None:
    tp = _unwrap(tp)
    if get_origin(tp) is list:
        return _struct_type(get_args(tp)[0])
    return None


def _allowed(error: msgspec.ValidationError) -> str:
    text = str(error).split(" - at `", 1)[0]
    return text[0].lower() + text[1:] if text else "invalid value"


def _check(value: Any, tp: Any, path: tuple[str | int, ...], problems: _Problems) -> Any:
    """Validate ``value`` against ``tp`` field by field; return clean data or ``_MISSING``."""
    struct = _struct_type(tp)
    if struct is not None:
        if not isinstance(value, dict):
            problems.add(path, value, "expected a table")
            return _MISSING
        fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
        clean: dict[str, Any] = {}
        for key, item in value.items():
            info = fields.get(key)
            if info is None:
                close = difflib.get_close_matches(str(key), list(fields), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                names = ", ".join(fields)
                problems.add((*path, key), item, f"unknown key (known keys: {names}){hint}")
                continue
            checked = _check(item, info.type, (*path, key), problems)
            if checked is not _MISSING:
                clean[key] = checked
        for name, info in fields.items():
            if info.required and name not in value:
                problems.add((*path, name), _MISSING, "this key is required")
        return clean
    item_struct = _list_item_struct(tp)
    if item_struct is not None and isinstance(value, list):
        items = [_check(v, item_struct, (*path, i), problems) for i, v in enumerate(value)]
        kept = [item for item in items if item is not _MISSING]
        if not value:
            try:
                msgspec.convert(value, tp, strict=False)
            except msgspec.ValidationError as exc:
                problems.add(path, value, _allowed(exc))
        return kept
    try:
        return msgspec.to_builtins(msgspec.convert(value, tp, strict=False))
    except msgspec.ValidationError as exc:
        inner = _unwrap(tp)
        if get_origin(inner) is list:  # a list of choices: say which are allowed
            inner = _unwrap(get_args(inner)[0])
        choices = _choices(inner)
        allowed = f"allowed: {', '.join(map(str, choices))}" if choices else _allowed(exc)
        problems.add(path, value, allowed)
        return _MISSING


def _choices(tp: Any) -> tuple[Any, ...]:
    """The values a ``Literal`` (or a union of literals and ``bool``) allows, else ``()``
    (``bool`` as TOML spells it)."""
    if get_origin(tp) is Literal:
        return get_args(tp)
    if get_origin(tp) is Union or "UnionType" in str(get_origin(tp)):
        members = get_args(tp)
        if all(m is bool or get_origin(m) is Literal for m in members):
            return tuple(
                v for m in members for v in (("true", "false") if m is bool else get_args(m))
            )
    return ()


def _read_toml(path: Path, raw: bytes | None = None) -> dict[str, Any]:
    """The file's TOML (``raw``, when given, stands for its content)."""
    try:
        if raw is None:
            raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"config file {path}: no such file"]) from None
    except OSError as exc:
        raise ConfigError([f"config file {path}: cannot be read ({exc.strerror})"]) from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError([f"config file {path}: not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"config file {path}: TOML syntax error: {exc}"]) from None


def _apply_env(
    data: dict[str, Any],
    environ: Mapping[str, str],
    sources: dict[tuple[str | int, ...], str],
    problems: _Problems,
) -> None:
    """Overlay every ``APP_SECTION__KEY`` variable; unknown names are problems."""
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = tuple(name[len(ENV_PREFIX) :].lower().split("__"))
        info = _env_field(parts)
        if info is None:
            problems.note(_unknown_env(name))
            continue
        value: Any = environ[name]
        if get_origin(_unwrap(info.type)) in (list, dict):
            try:
                value = msgspec.json.decode(value)
            except msgspec.DecodeError:
                problems.add(parts, value, "expected a JSON list or object")
                continue
        table = data
        for part in parts[:-1]:  # a table the file did not have is made (e.g. [auth.oidc])
            inner = table.get(part)
            if not isinstance(inner, dict):
                inner = table[part] = {}
            table = inner
        table[parts[-1]] = value
        sources[parts] = name


def _env_field(parts: tuple[str, ...]) -> Any:
    """The schema field that ``APP_A__B[__C]`` names, or ``None`` if it names none.

    Each part but the last names a section (a table, such as ``auth.oidc``); the last a
    plain value. Tables and lists of tables are for the config file.
    """
    struct: type[msgspec.Struct] | None = Config
    info = None
    for part in parts:
        if struct is None:
            return None
        fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
        info = fields.get(part)
        if info is None:
            return None
        struct = _struct_type(info.type)
    if len(parts) < 2 or info is None or struct is not None:
        return None
    return None if _list_item_struct(info.type) is not None else info


def _known_env_names(
    struct: type[msgspec.Struct] = Config, path: tuple[str, ...] = ()
) -> list[str]:
    names = []
    for info in msgspec.structs.fields(struct):
        inner = _struct_type(info.type)
        where = (*path, info.encode_name)
        if inner is not None:
            names.extend(_known_env_names(inner, where))
        elif path and _list_item_struct(info.type) is None:
            names.append(env_name(where))
    return names


def _unknown_env(name: str) -> str:
    close = difflib.get_close_matches(name, _known_env_names(), n=1, cutoff=0.7)
    hint = f" Did you mean {close[0]}?" if close else ""
    return f"{name}: unknown setting (APP_<SECTION>__<KEY> names a config key).{hint}"


def resolve_environ(
    env_file: str | Path | None, base: Mapping[str, str] | None = None
) -> tuple[dict[str, str], Path | None]:
    """The environment the config sees: ``base`` overlaid by the env file's values.

    With no ``env_file`` given, ``/etc/fkllmproxy/env`` is read when it exists. One that
    exists but cannot be read is an error, not skipped: under systemd its values arrive
    anyway (PID 1 reads ``EnvironmentFile=`` as root), so skipping it would serve the old
    values and silently ignore every later change on reload.
    """
    environ = dict(os.environ if base is None else base)
    path: Path | None = Path(env_file) if env_file else None
    if path is None and _present(DEFAULT_ENV_FILE):
        path = DEFAULT_ENV_FILE
    if path is not None:
        environ.update(read_env_file(path))
    return environ, path


def _present(path: Path) -> bool:
    """Whether ``path`` exists, counting one we may not even look at (EACCES) as present."""
    try:
        path.stat()
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _config_path(explicit: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    if explicit:
        return Path(explicit)
    if environ.get("FKLLM_CONFIG"):
        return Path(environ["FKLLM_CONFIG"])
    if DEFAULT_CONFIG_PATH.exists():
        return DEFAULT_CONFIG_PATH
    return None


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_types(blocks: Any, types: Mapping[str, ProviderRules], problems: _Problems) -> None:
    """Each ``[[providers]]`` block names a registered type (the schema takes any name)."""
    if not isinstance(blocks, list):
        return
    for i, block in enumerate(blocks):
        given = block.get("type") if isinstance(block, dict) else None
        if isinstance(given, str) and given not in types:
            problems.add(("providers", i, "type"), given, f"allowed: {', '.join(types)}")


def _resolve_keys(
    config: Config,
    environ: Mapping[str, str],
    problems: _Problems,
    types: Mapping[str, ProviderRules],
) -> Config:
    """Cross-field checks, and provider keys read from the variables they name."""
    provider_names = [p.name for p in config.providers]
    for name in {n for n in provider_names if provider_names.count(n) > 1}:
        problems.note(f"providers: the name {name!r} is used more than once")
    model_names = [m.name for m in config.models]
    for model_name in {n for n in model_names if model_names.count(n) > 1}:
        problems.note(f"models: the name {model_name!r} is used more than once")
    key_names = [k.name for k in config.auth.keys]
    for name in {n for n in key_names if key_names.count(n) > 1}:
        problems.note(f"auth.keys: the name {name!r} is used more than once")

    known = set(provider_names)
    for i, model in enumerate(config.models):
        for j, target in enumerate(model.targets):
            if target.provider not in known:
                choices = ", ".join(sorted(known)) or "none are configured"
                problems.add(
                    ("models", i, "targets", j, "provider"),
                    target.provider,
                    f"no provider has that name (providers: {choices})",
                )
    models = set(model_names)
    for i, key in enumerate(config.auth.keys):
        for allowed in key.models:
            if allowed not in models:
                problems.add(("auth", "keys", i, "models"), allowed, "no model has that name")

    rules_of = {p.name: types[p.type] for p in config.providers}
    for i, model in enumerate(config.models):
        for j, target in enumerate(model.targets):
            rules = rules_of.get(target.provider)
            problem = rules.model_problem(target.model) if rules else None
            if problem:
                problems.add(("models", i, "targets", j, "model"), target.model, problem)

    providers = []
    for i, provider in enumerate(config.providers):
        rules = types[provider.type]
        variable = provider.api_key_env or rules.key_env
        if provider.api_key is None and variable and environ.get(variable):
            provider = msgspec.structs.replace(provider, api_key=environ[variable])
        elif provider.api_key is None and rules.needs_key(provider):
            problems.add(
                ("providers", i, "api_key_env"),
                variable,
                f"missing credentials: set {variable} in the environment or the env file",
            )
        proxy_env = rules.reads_proxy_env
        for field_name, value, problem in egress_problems(provider, environ, proxy_env=proxy_env):
            problems.add(("providers", i, field_name), value, problem)
        provider = rules.resolve(provider, environ)
        for found in rules.validate(provider, environ):
            problems.add(("providers", i, found.field), found.given, found.message)
        providers.append(provider)

    if not config.providers:
        problems.note(
            "no providers configured: add [[providers]] and [[models]] to the config file, "
            "or set a credential such as GOOGLE_API_KEY or OPENAI_API_KEY"
        )
    elif not config.models:
        problems.note("no models configured: add [[models]] blocks naming provider targets")

    state = config.state
    if state.backend == "redis" and not (
        state.url and state.url.startswith(("redis://", "rediss://", "unix://"))
    ):
        problems.add(
            ("state", "url"),
            state.url if state.url else _MISSING,
            'backend = "redis" needs url = "redis://host:port/db" (or rediss://, unix://)',
        )

    auth = config.auth
    if auth.oidc is not None:
        _check_oidc(auth.oidc, models, problems)
    _check_budgets(config, problems)
    _check_semantic_caches(config, problems)
    open_door = not auth.master_key and not auth.keys and auth.oidc is None
    if open_door and not auth.allow_unauthenticated and not _is_loopback(config.server.host):
        problems.add(
            ("server", "host"),
            config.server.host,
            "refusing to listen beyond loopback with no keys: set APP_AUTH__MASTER_KEY "
            "(or auth.allow_unauthenticated = true)",
        )
    return msgspec.structs.replace(config, providers=providers)


def unpriced_models(config: Config, allowed: list[str]) -> list[str]:
    """The models among ``allowed`` (empty: all) with a target the ``[[pricing]]`` table
    cannot price (the lookup of ``observability.usage.PriceTable``, restated)."""
    prices = {(p.provider, p.model) for p in config.pricing}

    def priced(provider: str, upstream: str, name: str) -> bool:
        return any((who, what) in prices for what in (upstream, name) for who in (provider, None))

    names = set(allowed)
    if names:  # a semantic model's embedding calls are charged to its callers too
        names |= {
            model.semantic.embedding_model
            for model in config.models
            if model.name in names and model.cache == "semantic" and model.semantic is not None
        }
    return [
        model.name
        for model in config.models
        if (not names or model.name in names)
        and not all(priced(t.provider, t.model, model.name) for t in model.targets)
    ]


def _check_budgets(config: Config, problems: _Problems) -> None:
    """A budget is only as good as its prices: every model a budgeted key or group may
    use needs a ``[[pricing]]`` entry for each of its targets."""
    owners: list[tuple[tuple[str | int, ...], float | None, list[str]]] = [
        (("auth", "keys", i, "budget_usd"), key.budget_usd, key.models)
        for i, key in enumerate(config.auth.keys)
    ]
    if config.auth.oidc is not None:
        owners += [
            (("auth", "oidc", "groups", i, "budget_usd"), group.budget_usd, group.models)
            for i, group in enumerate(config.auth.oidc.groups)
        ]
    for path, budget, allowed in owners:
        if budget is None:
            continue
        missing = unpriced_models(config, allowed)
        if missing:
            problems.add(
                path,
                budget,
                "a budgeted key may use models without a price: add [[pricing]] for "
                + ", ".join(repr(m) for m in missing),
            )


def _check_semantic_caches(config: Config, problems: _Problems) -> None:
    """``cache = "semantic"`` needs its ``semantic`` table, whose ``embedding_model`` is
    another configured model; a ``semantic`` table on a model without it is a mistake."""
    names = {model.name for model in config.models}
    for i, model in enumerate(config.models):
        semantic = model.semantic
        if model.cache == "semantic" and semantic is None:
            problems.add(
                ("models", i, "semantic"),
                _MISSING,
                'cache = "semantic" needs a [models.semantic] table with embedding_model',
            )
        elif semantic is not None and model.cache != "semantic":
            problems.add(
                ("models", i, "cache"),
                model.cache,
                'this model has a [models.semantic] table: set cache = "semantic" to use it',
            )
        elif semantic is not None and semantic.embedding_model not in names - {model.name}:
            others = ", ".join(sorted(names - {model.name})) or "none are configured"
            problems.add(
                ("models", i, "semantic", "embedding_model"),
                semantic.embedding_model,
                f"expected another configured model with embeddings (models: {others})",
            )


def _check_oidc(oidc: OidcConfig, models: set[str], problems: _Problems) -> None:
    """The issuer and key URLs are https (plain http on loopback only, for tests and a
    local issuer); group names are unique and name configured models."""
    for key in ("issuer", "jwks_url"):
        url = getattr(oidc, key)
        if url is not None and not _is_trusted_url(url):
            problems.add(
                ("auth", "oidc", key),
                url,
                "expected an https:// URL (http:// only to a loopback address)",
            )
    values = [group.claim_value for group in oidc.groups]
    for value in {v for v in values if values.count(v) > 1}:
        problems.note(f"auth.oidc.groups: the claim_value {value!r} is used more than once")
    for i, group in enumerate(oidc.groups):
        for allowed in group.models:
            if allowed not in models:
                problems.add(
                    ("auth", "oidc", "groups", i, "models"), allowed, "no model has that name"
                )


def _is_trusted_url(url: str) -> bool:
    # The rule of ``auth.jwks.is_trusted_url``, restated (config imports nothing of ours).
    scheme, sep, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    host = host[1:].split("]", 1)[0] if host.startswith("[") else host.split(":", 1)[0]
    if not sep or not host:
        return False
    if scheme == "https":
        return True
    return scheme == "http" and (host == "localhost" or _is_loopback(host))


def load_config(
    *,
    config_path: str | Path | None = None,
    env_file: str | Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
    config_content: bytes | None = None,
    provider_types: Sequence[ProviderRules] | None = None,
) -> LoadedConfig:
    """Load, merge and validate every layer; raise ``ConfigError`` listing all problems.

    ``environ`` replaces ``os.environ`` (tests pass their own); the env file's values are
    laid over it. ``overrides`` are the CLI flags, as ``{"server": {"port": 4001}}``.
    ``config_content`` is checked as if ``config_path`` held it (a text about to replace
    the file, validated without writing anything): problems name the real file.
    ``provider_types`` replaces the registered ones (``config/provider_types.py``).
    """
    types = (
        {rules.type: rules for rules in provider_types}
        if provider_types is not None
        else registered_provider_types()
    )
    merged_environ, env_path = resolve_environ(env_file, environ)
    path = _config_path(config_path, merged_environ)
    data: dict[str, Any] = _read_toml(path, config_content) if path else {}
    sources: dict[tuple[str | int, ...], str] = {}
    problems = _Problems(sources)
    _apply_env(data, merged_environ, sources, problems)
    for section, values in (overrides or {}).items():
        for key, value in values.items():
            if value is not None:
                data.setdefault(section, {})[key] = value
                sources[(section, key)] = f"--{key.replace('_', '-')}"

    auto = False
    if not data.get("providers"):
        providers, models = credential_providers(merged_environ, types.values())
        if providers:
            auto = True
            data["providers"] = providers
            data.setdefault("models", [])
            data["models"] = list(data["models"]) + models

    clean = _check(data, Config, (), problems)
    _check_types(data.get("providers"), types, problems)
    if problems.items:
        raise ConfigError(problems.items)
    try:
        config = msgspec.convert(clean, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError([f"config: {exc}"]) from None
    config = _resolve_keys(config, merged_environ, problems, types)
    if problems.items:
        raise ConfigError(problems.items)
    return LoadedConfig(
        config=config,
        config_path=path,
        env_file=env_path,
        environ=merged_environ,
        auto_providers=auto,
        overrides=overrides or {},
    )
