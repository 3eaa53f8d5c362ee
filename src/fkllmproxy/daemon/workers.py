"""``server.workers > 1``: Granian's multi-process server, one app per worker.

Each worker builds its own runtime from the same options (passed through the
environment), so per-process state (buckets, breakers) is per worker; use the Redis
state backend for limits shared across workers. Granian owns signals in this mode:
SIGHUP makes it respawn the workers. A change made through a worker (a config written
over ``/admin/config/source``, a key created in the console) is instead reloaded in
place by every worker (``daemon/reloading.py``), which restarts nothing.

Metrics must still add up over all workers: before Granian forks them, the parent
makes a fresh directory for prometheus-client's multiprocess files and switches the
library into that mode (see ``observability.metrics.use_multiprocess``); the
directory is removed when the server stops. Workers run the ASGI lifespan so that
each one flushes its usage ledger when it is stopped.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import tempfile
import threading
import time
from typing import Any

from fkllmproxy.config import LoadedConfig
from fkllmproxy.daemon.bootstrap import StartupError, build_holder, start_ledger, startup_fields
from fkllmproxy.daemon.collector import tune_collector
from fkllmproxy.daemon.notify import Notifier, reloading_lines, watchdog_interval
from fkllmproxy.daemon.options import ServeOptions
from fkllmproxy.daemon.procname import WORKER_NAME, set_process_name
from fkllmproxy.daemon.reloading import Reloader, bump_generation, watch_generation
from fkllmproxy.observability.logging import configure_logging, get_logger
from fkllmproxy.observability.metrics import use_multiprocess
from fkllmproxy.server import create_app

__all__ = ["serve_workers", "worker_app"]

_OPTIONS_ENV = "FKLLM_WORKER_OPTIONS"
_GENERATION_ENV = "FKLLM_RELOAD_GENERATION"  # the file workers watch to reload together
_STARTED_ENV = "FKLLM_STARTED_AT"
_SUPERVISOR_ENV = "FKLLM_SUPERVISOR_PID"
_log = get_logger("daemon")


def _metrics_directory() -> str:
    """A fresh directory for this start's metric files, in the first place that takes one:
    systemd's RuntimeDirectory, /dev/shm (memory, where mmap files belong), the temp
    directory, then the unit's cache or state directory (a sandbox may leave only those)."""
    candidates = [
        (os.environ.get("RUNTIME_DIRECTORY") or "").split(":")[0],
        "/dev/shm",
        os.environ.get("TMPDIR") or "/tmp",
        (os.environ.get("CACHE_DIRECTORY") or "").split(":")[0],
        (os.environ.get("STATE_DIRECTORY") or "").split(":")[0],
        os.getcwd(),
    ]
    for parent in candidates:
        if parent and os.path.isdir(parent) and os.access(parent, os.W_OK | os.X_OK):
            try:
                return tempfile.mkdtemp(prefix="fkllm-metrics-", dir=parent)
            except OSError:
                continue
    raise StartupError(
        "no writable directory for the workers' metrics (tried RUNTIME_DIRECTORY, "
        "/dev/shm, the temp directory, CACHE_DIRECTORY, STATE_DIRECTORY and the working "
        "directory); set RuntimeDirectory= in the unit"
    )


def serve_workers(options: ServeOptions, loaded: LoadedConfig) -> int:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops

    config = loaded.config
    ledger = start_ledger(config)  # fail here, once, rather than in every worker
    if ledger is not None:
        ledger.close()
    directory = _metrics_directory()
    use_multiprocess(directory)
    os.environ[_STARTED_ENV] = repr(time.time())
    os.environ[_SUPERVISOR_ENV] = str(os.getpid())
    os.environ[_OPTIONS_ENV] = options.to_json()
    generation = os.path.join(directory, "reload-generation")
    with open(generation, "w") as file:
        file.write("0")
    os.environ[_GENERATION_ENV] = generation
    server = Granian(
        "fkllmproxy.daemon.workers:worker_app",
        factory=True,
        address=config.server.host,
        port=config.server.port,
        interface=Interfaces.ASGI,
        http=HTTPModes.http1,
        websockets=False,
        workers=config.server.workers,
        loop=Loops(config.server.event_loop),
        backlog=config.server.backlog,
        backpressure=config.server.backpressure,
        workers_kill_timeout=int(config.server.drain_timeout_secs) or None,
        log_enabled=True,
    )
    configure_logging(config.logging.level, config.logging.format)
    fields = startup_fields(loaded)
    _log.info("fkllmproxy started", extra={**fields, "event_loop": config.server.event_loop})
    _announce(server, Notifier(), config.server.workers)
    try:
        server.serve()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    _log.info("fkllmproxy stopped", extra={"pid": os.getpid()})
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
        # Only the first stop signal reaches Granian's handler: it sets a threading.Event,
        # and a second signal landing while the first is inside Event.set waits forever
        # for the lock the interrupted frame holds (a double Ctrl-C, or a stop racing
        # the unit's own SIGTERM, hung the daemon).
        if os.getpid() == main_pid:
            if stopping[0]:
                return
            stopping[0] = True
            interrupt(*args)
            notifier.send("STOPPING=1", "STATUS=stopping workers")
            return
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
    set_process_name(WORKER_NAME)
    options = ServeOptions.from_json(os.environ.get(_OPTIONS_ENV) or "{}")
    loaded = options.load()
    configure_logging(loaded.config.logging.level, loaded.config.logging.format, with_pid=True)
    started = float(os.environ.get(_STARTED_ENV) or time.time())
    holder = build_holder(loaded, started=started)
    # A config written over /admin/config/source, or a change made in the console,
    # reaches every worker: each reloads in place when the shared counter moves.
    reloader = Reloader(options)
    reloader.holder = holder
    generation = os.environ.get(_GENERATION_ENV)
    watching: list[asyncio.Task[None]] = []
    if generation:
        holder.reload_workers = functools.partial(bump_generation, generation)
    app = create_app(holder)
    tune_collector()

    def start() -> None:
        holder.runtime.auth.start()  # the OIDC issuer's keys, if any
        if generation:
            watching.append(asyncio.get_running_loop().create_task(
                watch_generation(generation, reloader)
            ))  # fmt: skip

    def flush() -> None:
        for task in watching:
            task.cancel()
        reloader.cancel()
        holder.close_observers()
        _log.info("worker stopped", extra={"pid": os.getpid()})

    app.on_startup.append(start)
    app.on_shutdown.append(flush)
    _log.info("worker started", extra={"pid": os.getpid()})
    return app
