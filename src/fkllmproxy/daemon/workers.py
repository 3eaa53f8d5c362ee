"""``server.workers > 1``: Granian's multi-process server, one app per worker.

Each worker builds its own runtime from the same options (passed through the
environment), so per-process state (buckets, breakers) is per worker; use the Redis
state backend for limits shared across workers. Granian owns signals in this mode.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import msgspec

from fkllmproxy.config import LoadedConfig
from fkllmproxy.daemon.notify import Notifier, reloading_lines, watchdog_interval
from fkllmproxy.observability.logging import configure_logging, get_logger

__all__ = ["serve_workers", "worker_app"]

_OPTIONS_ENV = "FKLLM_WORKER_OPTIONS"
_log = get_logger("daemon")


def serve_workers(options: Any, loaded: LoadedConfig) -> int:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces

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
    _announce(server, Notifier(), config.server.workers)
    server.serve()
    return 0


def _announce(server: Any, notifier: Notifier, workers: int) -> None:
    """sd_notify in multi-process mode, where Granian owns the main loop and the signals.

    READY once the shared socket is bound (Granian's startup hook), WATCHDOG from a thread
    of the supervising process, RELOADING/STOPPING from wrappers around Granian's own
    signal handlers (it installs whatever is on the instance when it starts).

    Workers are forked with these handlers installed: in a worker they only pass the
    signal on, and nothing here takes a lock a fork could leave held.
    """
    main_pid = os.getpid()
    interval = watchdog_interval()
    stopping = [False]

    def ping() -> None:
        while interval and not stopping[0]:
            notifier.send("WATCHDOG=1")
            time.sleep(interval)

    def on_startup() -> None:
        notifier.send("READY=1", f"STATUS=serving with {workers} workers")
        if interval:
            threading.Thread(target=ping, name="sd-watchdog", daemon=True).start()

    interrupt = server.signal_handler_interrupt
    reload = server.signal_handler_reload

    def on_interrupt(*args: Any) -> None:
        if os.getpid() == main_pid and not stopping[0]:
            stopping[0] = True
            notifier.send("STOPPING=1", "STATUS=stopping workers")
        interrupt(*args)

    def on_reload(*args: Any) -> None:
        if os.getpid() == main_pid:
            notifier.send(*reloading_lines("reloading: respawning workers"))
        reload(*args)

    server.signal_handler_interrupt = on_interrupt
    server.signal_handler_reload = on_reload
    server.on_startup(on_startup)
    # Granian calls its reload hooks before respawning; the old workers serve meanwhile.
    server.on_reload(lambda: notifier.send("READY=1", f"STATUS=serving with {workers} workers"))


def worker_app() -> Any:
    """Granian's factory in each worker: load the config and build the app."""
    from fkllmproxy.daemon.procname import WORKER_NAME, set_process_name
    from fkllmproxy.daemon.run import ServeOptions
    from fkllmproxy.server import RuntimeHolder, build_runtime, create_app

    set_process_name(WORKER_NAME)
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
