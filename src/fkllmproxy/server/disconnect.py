"""Stop upstream work the moment the client hangs up.

A client that gives up on a long answer should not keep a provider busy (and billed)
until it finishes. This covers the time before a response exists (waiting for a
non-streaming answer, for a stream's first chunk, or between fallback attempts) and,
in ``server/fast_routes.py``, the stream itself (as Litestar's ``Stream`` does for the
routes Litestar serves).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from fkllmproxy.errors import ClientDisconnected

__all__ = ["DisconnectWatch", "unless_disconnected"]

T = TypeVar("T")


class DisconnectWatch:
    """Inside ``with``: cancel the current task the moment the client disconnects.

    ``receive`` is the request's ASGI receive, watched only after the body has been
    read, so the next message it gives is ``http.disconnect``. The work stays in the
    current task (no extra task on the hot path); a small watcher task cancels it.
    On ``CancelledError``, ``caused_cancel()`` says whether the watch was the cause.
    """

    __slots__ = ("_receive", "_task", "_watcher", "gone")

    def __init__(self, receive: Any) -> None:
        self._receive = receive
        self.gone = False

    def __enter__(self) -> DisconnectWatch:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._watcher = asyncio.get_running_loop().create_task(self._watch())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._watcher.cancel()

    async def _watch(self) -> None:
        try:
            while (await self._receive())["type"] != "http.disconnect":
                pass
        except Exception:
            return  # the server cannot tell us: nothing to watch
        self.gone = True
        self._task.cancel()

    def caused_cancel(self) -> bool:
        """True when the ``CancelledError`` being handled is the watch's, and only it."""
        return self.gone and self._task.uncancel() == 0


async def unless_disconnected(receive: Any, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise ``ClientDisconnected``."""
    with DisconnectWatch(receive) as watch:
        try:
            return await work
        except asyncio.CancelledError:
            if watch.caused_cancel():
                raise ClientDisconnected("The client closed the connection.") from None
            raise
