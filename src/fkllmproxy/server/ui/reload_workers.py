"""Console changes that every worker must see, on the multi-process daemon.

One worker cannot change another's runtime, but it can ask them all to reload:
``holder.reload_workers`` does, as a config saved over ``/admin/config/source`` does,
and every worker reloads the config file, the env file and the key store from disk in
place (``daemon/reloading.py``). Those files are checked first, here, the way a worker
loads them: a file broken on disk is reported on the page instead of being refused by
every worker in its log.
"""

from __future__ import annotations

import asyncio

from litestar.background_tasks import BackgroundTask

from fkllmproxy.auth.store import store_keys
from fkllmproxy.config import LoadedConfig
from fkllmproxy.config.loader import load_config
from fkllmproxy.errors import ConfigError
from fkllmproxy.server.runtime import RuntimeHolder

__all__ = ["reload_workers"]


def _problems(loaded: LoadedConfig) -> list[str]:
    """Why a worker would refuse to reload the files as they are now (blocking)."""
    try:
        fresh = load_config(
            config_path=loaded.config_path, env_file=loaded.env_file, overrides=loaded.overrides
        )
        store_keys(fresh.config)
    except ConfigError as exc:
        return list(exc.problems)
    return []


async def reload_workers(holder: RuntimeHolder) -> tuple[list[str], BackgroundTask | None]:
    """The problems that stop a reload, or none and the task that asks for it.

    The task goes on the page's response, so the worker answering sends its page before
    it reloads too. ``([], None)`` when this process has no other workers.
    """
    if holder.reload_workers is None:
        return [], None
    problems = await asyncio.to_thread(_problems, holder.runtime.loaded)
    if problems:
        return problems, None
    return [], BackgroundTask(holder.reload_workers)
