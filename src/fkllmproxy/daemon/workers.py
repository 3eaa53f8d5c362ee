"""``server.workers > 1``: Granian's multi-process server, one app per worker.

Each worker builds its own runtime from the same options (passed through the
environment), so per-process state (buckets, breakers) is per worker; use the Redis
state backend for limits shared across workers. Granian owns signals in this mode.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

from fkllmproxy.config import LoadedConfig
from fkllmproxy.observability.logging import configure_logging, get_logger

__all__ = ["serve_workers", "worker_app"]

_OPTIONS_ENV = "FKLLM_WORKER_OPTIONS"
_log = get_logger("daemon")


def serve_workers(options: Any, loaded: LoadedConfig) -> int:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces

    from fkllmproxy.daemon.notify import Notifier

    config = loaded.config
    os.environ[_OPTIONS_ENV] = msgspec.json.encode(
        {
            "config_path": options.config_path,
            "env_file": options.env_file,
            "overrides": options.overrides,
        }
    ).decode()
    server = Granian(
        "fkllmproxy.daemon.workers:worker_app",
        factory=True,
        address=config.server.host,
        port=config.server.port,
        interface=Interfaces.ASGINL,
        http=HTTPModes.http1,
        websockets=False,
        workers=config.server.workers,
        backlog=config.server.backlog,
        backpressure=config.server.backpressure,
        workers_kill_timeout=int(config.server.drain_timeout_secs) or None,
        log_enabled=True,
    )
    configure_logging(config.logging.level, config.logging.format)
    _log.info(
        "fkllmproxy started",
        extra={
            "listen": f"{config.server.host}:{config.server.port}",
            "workers": config.server.workers,
        },
    )
    Notifier().send("READY=1", f"STATUS=serving with {config.server.workers} workers")
    server.serve()
    return 0


def worker_app() -> Any:
    """Granian's factory in each worker: load the config and build the app."""
    from fkllmproxy.daemon.run import ServeOptions
    from fkllmproxy.server import RuntimeHolder, build_runtime, create_app

    raw = msgspec.json.decode(os.environ.get(_OPTIONS_ENV, "{}"))
    options = ServeOptions(
        config_path=raw.get("config_path"),
        env_file=raw.get("env_file"),
        overrides=raw.get("overrides") or {},
    )
    loaded = options.load()
    configure_logging(loaded.config.logging.level, loaded.config.logging.format)
    from fkllmproxy.auth.store import store_keys
    from fkllmproxy.config.redact import secret_values
    from fkllmproxy.observability.logging import register_secrets

    register_secrets(secret_values(loaded.config))
    return create_app(RuntimeHolder(build_runtime(loaded, extra_keys=store_keys(loaded.config))))
