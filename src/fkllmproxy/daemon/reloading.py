"""Reloading in place: re-read the env file and the config, swap in a new runtime.

The single-process daemon reloads this way on SIGHUP and ``POST /admin/reload``; each
worker of the multi-process daemon does when another worker asks every worker to
(``generation_file``), after a config written over ``/admin/config/source`` or a change
made in the console. No process restarts, so no connection is dropped: a worker that
Granian stops can close a connection it accepted but had not read yet, which a client
sees as "Server disconnected".
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from typing import Any

from fkllmproxy.config import Config
from fkllmproxy.daemon.bootstrap import build_runtime_for, observed_by, startup_fields
from fkllmproxy.daemon.notify import Notifier, reloading_lines
from fkllmproxy.daemon.options import ServeOptions
from fkllmproxy.errors import ConfigError
from fkllmproxy.observability.logging import get_logger
from fkllmproxy.observability.usage import LedgerError, PriceTable, open_ledger
from fkllmproxy.server import Runtime, RuntimeHolder

__all__ = ["Reloader", "bump_generation", "read_generation", "watch_generation"]

_log = get_logger("daemon")


class Reloader:
    """Swaps ``holder``'s runtime for one built from the files as they are now."""

    def __init__(self, options: ServeOptions, notifier: Notifier | None = None) -> None:
        self.options = options
        self.notifier = notifier
        self.holder: RuntimeHolder | None = None  # set once the holder exists
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    def _notify(self, *lines: str) -> None:
        if self.notifier is not None:
            self.notifier.send(*lines)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel(self) -> None:
        """Stop what a reload left running (retiring old runtimes), at shutdown."""
        for task in list(self._tasks):
            task.cancel()

    async def __call__(self) -> list[str]:
        """Reload, returning why it was refused (an empty list when it succeeded).

        One reload at a time (SIGHUP and ``POST /admin/reload`` may race). The new
        runtime is built completely before the one assignment that swaps it in, so a
        request sees either the old keys, limits and routes or the new ones, never a
        mix; requests already running finish on the old runtime, which is closed when
        its last one is done.
        """
        holder = self.holder
        assert holder is not None, "Reloader.holder is set when the holder is built"
        async with self._lock:
            self._notify(*reloading_lines("reloading configuration"))
            old = holder.runtime
            try:
                loaded = self.options.load()
                runtime = build_runtime_for(loaded, previous=old)
            except ConfigError as exc:
                _log.error(
                    "reload refused: the new configuration is invalid; keeping the old one",
                    extra={"problems": exc.problems},
                )
                self._notify("READY=1", "STATUS=reload refused; old configuration kept")
                return list(exc.problems)
            server = loaded.config.server
            if (server.host, server.port, server.workers) != (
                old.config.server.host,
                old.config.server.port,
                old.config.server.workers,
            ):
                _log.warning("reload: listen address and workers change only on restart")
            runtime.router.breakers.adopt(old.router.breakers)  # circuits survive a reload
            holder.runtime = runtime
            runtime.auth.start()
            self._reload_ledger(holder, old.config, loaded.config)
            self._spawn(self._retire(old, keep_state=runtime.state is old.state))
            _log.info("configuration reloaded", extra=startup_fields(loaded))
            self._notify("READY=1", "STATUS=serving (reloaded)")
            return []

    def _reload_ledger(self, holder: RuntimeHolder, old: Config, new: Config) -> None:
        """New prices apply at once; new ``[usage]`` settings open a new ledger."""
        ledger = holder.ledger
        if new.usage == old.usage:
            if ledger is not None:
                ledger.prices = PriceTable(new.pricing)
            return
        try:
            holder.ledger = open_ledger(new, observed_by(new))
        except LedgerError as exc:
            _log.error("reload: usage ledger not changed", extra={"error": str(exc)})
            return
        if ledger is not None:
            self._spawn(asyncio.to_thread(ledger.close))

    async def _retire(
        self, old: Runtime, *, keep_state: bool, poll: float = 0.2, limit: float = 3600.0
    ) -> None:
        """Close ``old``'s providers once its in-flight requests (streams too) are done;
        its state too unless the new runtime carries it on."""
        waited = 0.0
        while old.in_flight > 0 and waited < limit:
            await asyncio.sleep(poll)
            waited += poll
        await old.aclose(keep_state=keep_state)


# -- every worker at once -----------------------------------------------------------------------
#
# The supervisor makes a small file per start holding a counter; any worker bumps it to
# ask for a reload, and every worker (itself included) watches it and reloads when it
# moves. A file, because the workers share nothing else they can all see and wait on.


def read_generation(path: str) -> int:
    try:
        with open(path, "rb") as file:
            return int(file.read() or b"0")
    except (OSError, ValueError):
        return 0


def bump_generation(path: str) -> None:
    """Ask every worker to reload (under a lock: two workers asking at once both count)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        current = int(os.read(fd, 32) or b"0")
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, str(current + 1).encode())
    finally:
        os.close(fd)


async def watch_generation(path: str, reload: Reloader, interval: float = 0.25) -> None:
    """Reload whenever the counter at ``path`` moves (a read of a few bytes per interval)."""
    seen = read_generation(path)
    while True:
        await asyncio.sleep(interval)
        now = read_generation(path)
        if now != seen:
            seen = now
            await reload()
