"""``server.workers > 1``: Granian's multi-process server, one app per worker.

Each worker builds its own runtime from the same options (passed through the
environment), so per-process state (buckets, breakers) is per worker; use the Redis
state backend for limits shared across workers. Granian owns signals in this mode.

Metrics must still add up over all workers: before Granian forks them, the parent
makes a fresh directory for prometheus-client's multiprocess files and switches the
library into that mode (see ``observability.metrics.use_multiprocess``); the
directory is removed when the server stops. Workers run the ASGI lifespan so that
each one flushes its usage ledger when it is stopped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Any

import msgspec

from fkllmproxy.config import LoadedConfig
from fkllmproxy.observability.logging import configure_logging, get_logger
from fkllmproxy.observability.metrics import use_multiprocess

__all__ = ["serve_workers", "worker_app"]

_OPTIONS_ENV = "FKLLM_WORKER_OPTIONS"
_STARTED_ENV = "FKLLM_STARTED_AT"
_log = get_logger("daemon")


def _metrics_directory() -> str:
    """A fresh directory for this start's metric files (systemd's RuntimeDirectory if any)."""
    parent = (os.environ.get("RUNTIME_DIRECTORY") or "").split(":")[0] or None
    if parent and not os.access(parent, os.W_OK):
        parent = None
    return tempfile.mkdtemp(prefix="fkllm-metrics-", dir=parent)


def serve_workers(options: Any, loaded: LoadedConfig) -> int:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces

    from fkllmproxy.daemon.notify import Notifier
    from fkllmproxy.daemon.run import _startup_fields, start_ledger

    config = loaded.config
    ledger = start_ledger(config)  # fail here, once, rather than in every worker
    if ledger is not None:
        ledger.close()
    directory = _metrics_directory()
    use_multiprocess(directory)
    os.environ[_STARTED_ENV] = repr(time.time())
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
        interface=Interfaces.ASGI,
        http=HTTPModes.http1,
        websockets=False,
        workers=config.server.workers,
        backlog=config.server.backlog,
        backpressure=config.server.backpressure,
        workers_kill_timeout=int(config.server.drain_timeout_secs) or None,
        log_enabled=True,
    )
    configure_logging(config.logging.level, config.logging.format)
    _log.info("fkllmproxy started", extra=_startup_fields(loaded))
    Notifier().send("READY=1", f"STATUS=serving with {config.server.workers} workers")
    try:
        server.serve()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    _log.info("fkllmproxy stopped", extra={"pid": os.getpid()})
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
    from fkllmproxy.daemon.run import start_ledger

    loaded = options.load()
    configure_logging(loaded.config.logging.level, loaded.config.logging.format, with_pid=True)
    started = float(os.environ.get(_STARTED_ENV) or time.time())
    holder = RuntimeHolder(
        build_runtime(loaded), started=started, ledger=start_ledger(loaded.config)
    )
    app = create_app(holder)

    def flush() -> None:
        holder.close_observers()
        _log.info("worker stopped", extra={"pid": os.getpid()})

    app.on_shutdown.append(flush)
    _log.info("worker started", extra={"pid": os.getpid()})
    return app
