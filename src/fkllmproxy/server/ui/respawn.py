"""Console changes that every worker must see, on the multi-process daemon.

One worker cannot change another's runtime, but the supervisor can replace them all:
``holder.respawn`` sends it SIGHUP, as ``systemctl reload`` and a config saved over
``/admin/config/source`` do, and it respawns the workers one by one (each new worker
starts before its old one stops, so no request is refused). The new workers load the
config file, the env file and the key store from disk, so those are checked first,
here, the way a worker loads them: a file broken on disk is reported on the page
instead of leaving workers that cannot start.
"""

from __future__ import annotations

import asyncio

from litestar.background_tasks import BackgroundTask

from fkllmproxy.auth.store import store_keys
from fkllmproxy.config import LoadedConfig
from fkllmproxy.config.loader import load_config
from fkllmproxy.errors import ConfigError
from fkllmproxy.server.runtime import RuntimeHolder

__all__ = ["respawn_workers"]


def _problems(loaded: LoadedConfig) -> list[str]:
    """Why a new worker would refuse to start on the files as they are now (blocking)."""
    try:
        fresh = load_config(
            config_path=loaded.config_path, env_file=loaded.env_file, overrides=loaded.overrides
        )
        store_keys(fresh.config)
    except ConfigError as exc:
        return list(exc.problems)
    return []


async def respawn_workers(holder: RuntimeHolder) -> tuple[list[str], BackgroundTask | None]:
    """The problems that stop a respawn, or none and the task that asks for it.

    The task goes on the page's response, so the worker answering sends its page before
    it is replaced too. ``([], None)`` when this process cannot respawn workers.
    """
    if holder.respawn is None:
        return [], None
    problems = await asyncio.to_thread(_problems, holder.runtime.loaded)
    if problems:
        return problems, None
    return [], BackgroundTask(holder.respawn)
