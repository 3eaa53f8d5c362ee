"""Stop upstream work the moment the client hangs up.

A client that gives up on a long answer should not keep a provider busy (and billed)
until it finishes. Litestar's ``Stream`` already cancels its iterator on disconnect;
this covers the time before a response exists: waiting for a non-streaming answer, for
a stream's first chunk, or between fallback attempts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from fkllmproxy.errors import ClientDisconnected

__all__ = ["unless_disconnected"]

T = TypeVar("T")


async def unless_disconnected(receive: Any, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise ``ClientDisconnected``.

    ``receive`` is the request's ASGI receive, called only after the body has been read,
    so the next message it gives is ``http.disconnect``. The work runs in the current
    task (no extra task on the hot path); a small watcher task cancels it.
    """
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        except Exception:
            return  # the server cannot tell us: nothing to watch
        gone = True
        task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if gone and task.uncancel() == 0:
            raise ClientDisconnected("The client closed the connection.") from None
        raise
    finally:
        watcher.cancel()
