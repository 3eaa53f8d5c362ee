"""The deadline on reading a request body (``server.body_timeout_secs``).

Granian times out a request's head but not its body, so a client that sends its
headers and then a byte a second (or nothing) would hold a connection and a task for
good; five hundred of them are five hundred open sockets. Each body read registers its
task with a deadline here, and one sweeper task per process, running only while a
read is in progress, cancels the reads past it; ``read_body`` turns that cancellation
into a 408 and the connection is closed (the body was not read to its end).

Why a sweeper and not ``asyncio.timeout`` around each read: a per-request timer is a
heap entry that a cancelled timer leaves behind until it would have fired (30 s of
requests at thousands a second) and costs microseconds per request on the loop; a
dict entry costs a tenth of one.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["BodyDeadlines", "body_deadlines"]

_SWEEP_SECS = 0.25  # how late past its deadline a read may be ended


class BodyDeadlines:
    """Tasks reading a request body, and when each must be done by (monotonic seconds)."""

    def __init__(self, sweep_secs: float = _SWEEP_SECS) -> None:
        self._reading: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._sweep_secs = sweep_secs

    def watch(self, task: asyncio.Task[object], seconds: float) -> None:
        """``task`` is reading a body; cancel it if it is still at it in ``seconds``."""
        self._reading[task] = time.monotonic() + seconds
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def done(self, task: asyncio.Task[object]) -> bool:
        """The read is over; ``True`` if it was ended by its deadline."""
        self._reading.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    async def _sweep(self) -> None:
        reading = self._reading
        while reading:
            await asyncio.sleep(self._sweep_secs)
            now = time.monotonic()
            for task, deadline in list(reading.items()):
                if deadline <= now:
                    del reading[task]
                    self._expired.add(task)
                    task.cancel()


_deadlines: BodyDeadlines | None = None


def body_deadlines() -> BodyDeadlines:
    """This process's registry (one event loop per process)."""
    global _deadlines
    if _deadlines is None:
        _deadlines = BodyDeadlines()
    return _deadlines
