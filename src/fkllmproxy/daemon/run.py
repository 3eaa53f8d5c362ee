"""``fkllm serve``: the daemon's life from start to clean exit.

By default one process: Granian's embedded server on our own event loop, so all state
(buckets, breakers, pools, metrics) lives in one place and the daemon owns its signals:
SIGTERM/SIGINT drain and stop, SIGHUP reloads. ``server.workers > 1`` hands the socket
to Granian's multi-process server instead (see ``workers.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from fkllmproxy.config import LoadedConfig
from fkllmproxy.daemon.bootstrap import StartupError, build_holder, startup_fields
from fkllmproxy.daemon.collector import tune_collector
from fkllmproxy.daemon.notify import Notifier, watchdog_interval
from fkllmproxy.daemon.options import ServeOptions
from fkllmproxy.daemon.procname import DAEMON_NAME, set_process_name
from fkllmproxy.daemon.reloading import Reloader
from fkllmproxy.daemon.workers import serve_workers
from fkllmproxy.observability.logging import configure_logging, get_logger
from fkllmproxy.observability.metrics import use_multiprocess
from fkllmproxy.server import create_app

__all__ = ["ServeOptions", "StartupError", "exit_now", "serve"]

_log = get_logger("daemon")
# After the drain deadline: how long streams get to send their closing error event.
_LAST_WORDS_SECS = 2.0


def _check_port(host: str, port: int) -> None:
    """Fail early and clearly when the address is taken (Granian's error is opaque)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {host} is already in use; find the other process "
                f"with 'sudo lsof -i :{port}' or choose another port (--port)"
            ) from None
        if exc.errno == errno.EACCES:
            raise StartupError(
                f"not allowed to listen on {host}:{port} (ports below 1024 need privileges)"
            ) from None
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


class Daemon:
    """One embedded-Granian process with its signal handling, reload and drain."""

    def __init__(self, options: ServeOptions, loaded: LoadedConfig) -> None:
        self.options = options
        self.notifier = Notifier()
        self.reloader = Reloader(options, self.notifier)
        self.holder = build_holder(loaded, reloader=self.reloader)
        self.reloader.holder = self.holder
        tune_collector()
        self._reload_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def config(self) -> Any:
        return self.holder.runtime.config

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> bool:
        """Re-read env file and config; swap them in atomically, or keep the old on error."""
        return not await self.reloader()

    async def _watchdog(self, interval: float) -> None:
        while True:
            self.notifier.send("WATCHDOG=1")
            await asyncio.sleep(interval)

    def _on_stop_signal(self, name: str) -> None:
        if not self._stopping.is_set():
            _log.info("stop requested; draining", extra={"signal": name})
            self._stopping.set()

    async def run(self) -> int:
        from granian.constants import HTTPModes, Interfaces
        from granian.server.embed import Server

        server_config = self.config.server
        server = Server(
            create_app(self.holder),
            address=server_config.host,
            port=server_config.port,
            interface=Interfaces.ASGINL,
            http=HTTPModes.http1,
            websockets=False,
            backlog=server_config.backlog,
            backpressure=server_config.backpressure,
            log_enabled=True,
        )
        # Granian configured its own text logging in the constructor: put ours back.
        configure_logging(self.config.logging.level, self.config.logging.format)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_stop_signal, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self._on_stop_signal, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload()))

        self.holder.runtime.auth.start()  # the OIDC issuer's keys, off the request path
        serving = loop.create_task(server.serve())
        await asyncio.sleep(0)
        running = type(asyncio.get_running_loop()).__module__.split(".")[0]
        fields = startup_fields(self.holder.runtime.loaded)
        _log.info("fkllmproxy started", extra={**fields, "event_loop": running})
        self.notifier.send(
            "READY=1", f"STATUS=serving on {server_config.host}:{server_config.port}"
        )
        interval = watchdog_interval()
        if interval:
            self._spawn(self._watchdog(interval))

        stop_wait = loop.create_task(self._stopping.wait())
        done, _ = await asyncio.wait({serving, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if serving in done:
            stop_wait.cancel()
            exc = serving.exception()
            await self.holder.runtime.aclose()
            await asyncio.to_thread(self.holder.close_observers)
            raise StartupError(f"the HTTP server stopped unexpectedly: {exc}")

        self.holder.draining = True
        self.notifier.send("STOPPING=1", "STATUS=draining in-flight requests")
        grace = self.holder.runtime.config.server.drain_timeout_secs
        server.stop()
        try:
            await asyncio.wait_for(asyncio.shield(serving), timeout=grace)
        except TimeoutError:
            _log.warning(
                "drain deadline passed; closing the remaining connections",
                extra={"drain_timeout_secs": grace},
            )
            # End what still waits on a provider with an answer the client can read
            # (a 503, or an error event closing its stream) rather than a torn
            # connection; whatever is left after that is cancelled.
            self.holder.runtime.router.abort_in_flight()
            try:
                await asyncio.wait_for(asyncio.shield(serving), timeout=_LAST_WORDS_SECS)
            except TimeoutError:
                serving.cancel()
                with contextlib.suppress(BaseException):
                    await serving
        for task in list(self._tasks):
            task.cancel()
        self.reloader.cancel()
        await self.holder.runtime.aclose()
        # After the drain: every finished request is queued, so nothing is lost.
        await asyncio.to_thread(self.holder.close_observers)
        _log.info("fkllmproxy stopped", extra={"pid": os.getpid()})
        self.notifier.close()
        return 0


def serve(options: ServeOptions, loaded: LoadedConfig) -> int:
    """Run the daemon until stopped; returns the exit status."""
    config = loaded.config
    configure_logging(config.logging.level, config.logging.format)
    _check_port(config.server.host, config.server.port)
    set_process_name(DAEMON_NAME)
    if config.server.workers > 1:
        return serve_workers(options, loaded)
    use_multiprocess(None)  # one process: metrics in memory, whatever the environment says
    with asyncio.Runner(loop_factory=event_loop_factory(config.server.event_loop)) as runner:
        return runner.run(Daemon(options, loaded).run())


def exit_now(code: int) -> NoReturn:
    """Leave without interpreter finalization once the daemon has stopped.

    Everything is closed and flushed by now. Granian's Rust runtime threads can still
    be unwinding while CPython tears itself down, and that intermittently aborts the
    process ("panic in a function that cannot unwind", exit 134) after a clean stop —
    which would turn systemd's view of a clean stop into a crash.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def event_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The daemon's event loop: uvloop unless the operator chose the standard one.

    uvloop takes about a tenth off the CPU each proxied request costs (``make bench``,
    fixed upstream at c=64: 0.47 vs 0.51 ms), mostly in socket I/O and in the wake-ups
    Granian's threads send the loop.
    """
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def default_state_dir() -> Path:
    return Path(os.environ.get("STATE_DIRECTORY", "/var/lib/fkllmproxy"))
