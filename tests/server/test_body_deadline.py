"""BodyDeadlines cancels only the reads that outlive their deadline."""

from __future__ import annotations

import asyncio

from fkllmproxy.server.body_deadline import BodyDeadlines


async def test_a_read_past_its_deadline_is_cancelled_and_marked() -> None:
    """The sweeper cancels the task, and ``done`` says the deadline did it."""
    deadlines = BodyDeadlines(sweep_secs=0.01)
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def read() -> bool:
        task = asyncio.current_task()
        assert task is not None
        deadlines.watch(task, 0.0)
        try:
            await never
        except asyncio.CancelledError:
            return deadlines.done(task)
        return False

    assert await asyncio.wait_for(read(), 10) is True


async def test_a_read_done_in_time_is_left_alone() -> None:
    """A finished read is forgotten; the sweeper stops once nothing is being read."""
    deadlines = BodyDeadlines(sweep_secs=0.01)
    task = asyncio.current_task()
    assert task is not None
    deadlines.watch(task, 60.0)
    assert deadlines.done(task) is False
    sweeper = deadlines._sweeper
    assert sweeper is not None
    await asyncio.wait_for(sweeper, 10)
