"""From a validated configuration to a runtime that can serve: one path for every process.

The single-process daemon, each worker of the multi-process server and every reload
build their runtime here, so what a process needs before its first request is written
once: the configuration's secrets registered for scrubbing from logs, the key store's
keys merged with ``[[auth.keys]]``, the usage ledger opened (or a clear reason why it
cannot be).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from fkllmproxy import __version__
from fkllmproxy.auth.store import store_keys
from fkllmproxy.config import Config, LoadedConfig
from fkllmproxy.config.redact import secret_values
from fkllmproxy.observability.logging import register_secrets
from fkllmproxy.observability.metrics import Metrics, process_metrics
from fkllmproxy.observability.tracing import setup_tracing
from fkllmproxy.observability.usage import LedgerError, UsageLedger, open_ledger
from fkllmproxy.server import Runtime, RuntimeHolder, build_runtime

__all__ = [
    "StartupError",
    "build_holder",
    "build_runtime_for",
    "observed_by",
    "start_ledger",
    "startup_fields",
]


class StartupError(Exception):
    """Raised when the daemon cannot start for a reason other than its config."""


def observed_by(config: Config) -> Metrics | None:
    """The process's metrics, which ``config`` may switch off: what every observer that
    counts something (the router, the breakers, budgets, the ledger) is handed."""
    return process_metrics() if config.metrics.enabled else None


def start_ledger(config: Config) -> UsageLedger | None:
    """The usage ledger, or a ``StartupError`` saying why its file cannot be used."""
    try:
        return open_ledger(config, observed_by(config))
    except LedgerError as exc:
        raise StartupError(f"{exc} (set usage.path, or usage.enabled = false)") from None


def build_runtime_for(loaded: LoadedConfig, *, previous: Runtime | None = None) -> Runtime:
    """The runtime for ``loaded`` (carrying ``previous``'s state and tracing on a reload),
    its secrets registered with the log scrubber once it is known to be valid. The first
    runtime of a process sets up its tracing (on only with the otel extra and
    ``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
    tracing = setup_tracing() if previous is None else None
    runtime = build_runtime(
        loaded, previous=previous, extra_keys=store_keys(loaded.config), tracing=tracing
    )
    register_secrets(secret_values(loaded.config))
    return runtime


def build_holder(
    loaded: LoadedConfig,
    *,
    started: float | None = None,
    reloader: Callable[[], Awaitable[list[str]]] | None = None,
) -> RuntimeHolder:
    """A process's handle on its first runtime, with the usage ledger it writes to."""
    holder = RuntimeHolder(
        build_runtime_for(loaded), reloader=reloader, ledger=start_ledger(loaded.config)
    )
    if started is not None:  # a worker counts its uptime from the supervisor's start
        holder.started = started
    return holder


def startup_fields(loaded: LoadedConfig) -> dict[str, Any]:
    """The fields of the "started" and "configuration reloaded" log lines."""
    config = loaded.config
    return {
        "version": __version__,
        "listen": f"{config.server.host}:{config.server.port}",
        "pid": os.getpid(),
        "workers": config.server.workers,
        "config_file": str(loaded.config_path) if loaded.config_path else None,
        "env_file": str(loaded.env_file) if loaded.env_file else None,
        "providers": [f"{p.name}:{p.type}" for p in config.providers],
        "models": [m.name for m in config.models],
        "auth": _auth_mode(config),
    }


def _auth_mode(config: Config) -> str:
    auth = config.auth
    keys = auth.master_key is not None or bool(auth.keys)
    if auth.oidc is None:
        return "keys" if keys else "off"
    return "keys+oidc" if keys else "oidc"
