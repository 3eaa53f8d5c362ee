"""Where spend against budgets and tokens-per-minute buckets live: one process, the
workers of one daemon, or every host on one Redis.

A budget is two numbers per budget name and period: ``spent`` (settled cost) and
``reserved`` (estimates of the calls in flight). ``reserve`` admits a call while
``spent + reserved`` is under the limit and adds its estimate, atomically; ``settle``
takes the estimate back out and adds the real cost. So N concurrent calls overshoot
the limit by at most the estimates of the calls admitted before the spend caught up,
and sequential calls stop as soon as the spend reaches the limit. A period that has
ended is simply a new pair of numbers (the period's start is part of the record).

A tokens-per-minute bucket holds ``capacity`` tokens and refills ``capacity / 60`` per
second; a call is admitted while it holds any, and its real prompt + completion
tokens are taken afterwards (it may go below zero: the next calls wait for the debt).

Three stores, one interface:

* ``MemoryBudgets``: a dict, for one process.
* ``SharedFileBudgets``: a small memory-mapped file under ``flock`` that every worker
  of a daemon maps (the same fresh per-start directory as the workers' metrics), so
  the memory backend does not hand each of N workers the whole budget.
* ``RedisBudgets``: a hash per budget and period updated by Lua scripts (one round
  trip, atomic), shared by every host; it keeps spend across restarts by itself.

Nothing here queries SQLite: the spend a daemon starts from is read from the usage
ledger once, at start, and handed to ``seed`` (set only where nothing is recorded).
"""

from __future__ import annotations

import abc
import calendar
import fcntl
import hashlib
import mmap
import os
import struct
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from fkllmproxy.state.base import StateUnavailable

__all__ = [
    "BudgetStore",
    "CellBudgets",
    "MemoryBudgets",
    "RedisBudgets",
    "SharedFileBudgets",
    "Spend",
    "period_bounds",
]


def period_bounds(period: str, now: float) -> tuple[float, float]:
    """The UTC calendar ``period`` (day, week from Monday, month) holding ``now``: its
    start and end as Unix seconds."""
    moment = datetime.fromtimestamp(now, UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start, end = day, day + timedelta(days=1)
    elif period == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    elif period == "month":
        start = day.replace(day=1)
        days = calendar.monthrange(start.year, start.month)[1]
        end = start + timedelta(days=days)
    else:
        raise ValueError(f"unknown budget period {period!r}")
    return start.timestamp(), end.timestamp()


class Spend(msgspec.Struct, frozen=True, gc=False):
    """One budget at one moment: settled spend and the estimates still in flight (a
    msgspec struct: made three times per budgeted request, built in C where a named
    tuple or a dataclass runs Python code)."""

    allowed: bool
    spent: float
    reserved: float


class BudgetStore(abc.ABC):
    """Spend per budget name and period, and token buckets per caller."""

    @abc.abstractmethod
    async def reserve(self, name: str, period: int, limit: float, estimate: float) -> Spend:
        """Add ``estimate`` to the reserved amount if ``spent + reserved < limit``."""

    @abc.abstractmethod
    async def settle(self, name: str, period: int, reserved: float, cost: float) -> Spend:
        """Take ``reserved`` back out (when still the same period) and add ``cost``."""

    @abc.abstractmethod
    async def read(self, name: str, period: int) -> Spend:
        """The spend so far (``allowed`` is meaningless here)."""

    @abc.abstractmethod
    async def seed(self, name: str, period: int, spent: float) -> None:
        """Start ``name``'s spend for ``period`` at ``spent`` unless some is recorded."""

    @abc.abstractmethod
    async def tokens_left(self, name: str, capacity: int) -> float:
        """Tokens in ``name``'s per-minute bucket now (may be negative)."""

    @abc.abstractmethod
    async def take_tokens(self, name: str, capacity: int, used: int) -> None:
        """Take ``used`` tokens from ``name``'s per-minute bucket (it may go negative)."""

    def immediate(self) -> CellBudgets | None:
        """This store as plain calls, when it never waits on I/O (one process, or a mapped
        file): the request path then skips a coroutine per operation. ``None`` for Redis."""
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional
        """Release what the store holds."""


def _refilled(tokens: float, ts: float, now: float, capacity: int) -> float:
    return min(float(capacity), tokens + max(0.0, now - ts) * capacity / 60.0)


class CellBudgets(BudgetStore):
    """The budget and bucket arithmetic over cells of three floats, which subclasses
    keep somewhere (``_get`` returns ``None`` for a cell never written). Every operation
    is a plain call (``*_now``); the coroutines of ``BudgetStore`` only wrap them."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    def _get(self, key: str) -> tuple[float, float, float] | None:
        raise NotImplementedError

    def _put(self, key: str, a: float, b: float, c: float) -> None:
        raise NotImplementedError

    # Held around each read-modify-write of a cell: a context manager.
    _guard: Any

    def immediate(self) -> CellBudgets:
        return self

    def reserve_now(self, name: str, period: int, limit: float, estimate: float) -> Spend:
        key = "b:" + name
        with self._guard:
            cell = self._get(key)
            if cell is None or int(cell[0]) != period:
                spent = reserved = 0.0
            else:
                spent, reserved = cell[1], cell[2]
            if spent + reserved >= limit:
                return Spend(False, spent, reserved)
            self._put(key, period, spent, reserved + estimate)
            return Spend(True, spent, reserved + estimate)

    def settle_now(self, name: str, period: int, reserved: float, cost: float) -> Spend:
        key = "b:" + name
        with self._guard:
            cell = self._get(key)
            if cell is None or int(cell[0]) != period:
                # The period ended while the call ran: its reservation went with the old
                # record, and its cost belongs to the new period (the ledger agrees).
                self._put(key, period, cost, 0.0)
                return Spend(True, cost, 0.0)
            held = max(0.0, cell[2] - reserved)
            self._put(key, period, cell[1] + cost, held)
            return Spend(True, cell[1] + cost, held)

    def read_now(self, name: str, period: int) -> Spend:
        with self._guard:
            cell = self._get("b:" + name)
        if cell is None or int(cell[0]) != period:
            return Spend(True, 0.0, 0.0)
        return Spend(True, cell[1], cell[2])

    def tokens_left_now(self, name: str, capacity: int) -> float:
        with self._guard:
            cell = self._get("t:" + name)
        if cell is None:
            return float(capacity)
        return _refilled(cell[1], cell[2], self._clock(), capacity)

    def take_tokens_now(self, name: str, capacity: int, used: int) -> None:
        now = self._clock()
        with self._guard:
            cell = self._get("t:" + name)
            tokens = float(capacity) if cell is None else _refilled(cell[1], cell[2], now, capacity)
            self._put("t:" + name, 0.0, tokens - used, now)

    async def reserve(self, name: str, period: int, limit: float, estimate: float) -> Spend:
        return self.reserve_now(name, period, limit, estimate)

    async def settle(self, name: str, period: int, reserved: float, cost: float) -> Spend:
        return self.settle_now(name, period, reserved, cost)

    async def read(self, name: str, period: int) -> Spend:
        return self.read_now(name, period)

    async def seed(self, name: str, period: int, spent: float) -> None:
        with self._guard:
            cell = self._get("b:" + name)
            if cell is None or int(cell[0]) != period:
                self._put("b:" + name, period, spent, 0.0)

    async def tokens_left(self, name: str, capacity: int) -> float:
        return self.tokens_left_now(name, capacity)

    async def take_tokens(self, name: str, capacity: int, used: int) -> None:
        self.take_tokens_now(name, capacity, used)


class MemoryBudgets(CellBudgets):
    """Budgets of one process (the memory backend with one worker)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self._cells: dict[str, tuple[float, float, float]] = {}
        # Only the event loop's thread calls in, so this lock is never contended; it is
        # here because entering it runs no Python code (a no-op context manager would).
        self._guard = threading.Lock()
        self._get = self._cells.get  # type: ignore[method-assign,assignment]

    def _put(self, key: str, a: float, b: float, c: float) -> None:
        self._cells[key] = (a, b, c)


_SLOT = struct.Struct("<Qddd")  # name hash (0: empty), three floats
SLOTS = 8192  # budgets plus buckets of one daemon; 256 KiB


class _FileLock:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)


class SharedFileBudgets(CellBudgets):
    """Budgets shared by the worker processes of one daemon through a mapped file.

    The file is a table of ``SLOTS`` fixed-size slots found by a hash of the cell's
    name (open addressing); every read-modify-write holds an exclusive ``flock``, so
    workers take turns, costing two system calls and no I/O (the file is in memory,
    under /dev/shm or the runtime directory, made fresh at each start).
    """

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        size = SLOTS * _SLOT.size
        with _FileLock(self._fd):
            if os.fstat(self._fd).st_size < size:
                os.ftruncate(self._fd, size)
        self._map = mmap.mmap(self._fd, size)
        self._guard = _FileLock(self._fd)
        self._index: dict[str, int] = {}

    def _slot(self, key: str, create: bool) -> int | None:
        offset = self._index.get(key)
        if offset is not None:
            return offset
        digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest()) or 1
        start = digest % SLOTS
        for step in range(SLOTS):
            offset = ((start + step) % SLOTS) * _SLOT.size
            found = _SLOT.unpack_from(self._map, offset)[0]
            if found == digest:
                self._index[key] = offset
                return offset
            if found == 0:
                if not create:
                    return None
                _SLOT.pack_into(self._map, offset, digest, 0.0, 0.0, 0.0)
                self._index[key] = offset
                return offset
        raise StateUnavailable(f"the shared budget file {self.path} is full")

    def _get(self, key: str) -> tuple[float, float, float] | None:
        offset = self._slot(key, create=False)
        if offset is None:
            return None
        _, a, b, c = _SLOT.unpack_from(self._map, offset)
        return a, b, c

    def _put(self, key: str, a: float, b: float, c: float) -> None:
        offset = self._slot(key, create=True)
        assert offset is not None
        digest = _SLOT.unpack_from(self._map, offset)[0]
        _SLOT.pack_into(self._map, offset, digest, a, b, c)

    async def aclose(self) -> None:
        self._map.close()
        os.close(self._fd)


# KEYS[1] budget hash; ARGV limit, estimate, ttl ms. Returns {allowed, spent, reserved}.
_RESERVE = """
local h = redis.call('HMGET', KEYS[1], 'spent', 'reserved')
local spent = tonumber(h[1]) or 0
local reserved = tonumber(h[2]) or 0
if spent + reserved >= tonumber(ARGV[1]) then
  return {0, tostring(spent), tostring(reserved)}
end
reserved = reserved + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'spent', tostring(spent), 'reserved', tostring(reserved))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return {1, tostring(spent), tostring(reserved)}
"""
# KEYS[1] budget hash; ARGV reserved, cost, ttl ms. Returns {1, spent, reserved}.
_SETTLE = """
local h = redis.call('HMGET', KEYS[1], 'spent', 'reserved')
local spent = (tonumber(h[1]) or 0) + tonumber(ARGV[2])
local reserved = math.max(0, (tonumber(h[2]) or 0) - tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 'spent', tostring(spent), 'reserved', tostring(reserved))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return {1, tostring(spent), tostring(reserved)}
"""
# KEYS[1] bucket; ARGV capacity, tokens used (0: only read). Returns tokens left.
_TOKENS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local capacity = tonumber(ARGV[1])
local h = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(h[1])
local ts = tonumber(h[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * capacity / 60)
local used = tonumber(ARGV[2])
if used > 0 then
  tokens = tokens - used
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / capacity * 60000) + 1000)
end
return tostring(tokens)
"""
_KEEP_MS = 40 * 86400 * 1000  # a budget record outlives the longest period (a month)


class RedisBudgets(BudgetStore):
    """Budgets and buckets in Redis, shared by every daemon using it (and kept there
    across restarts: a record lives 40 days, longer than any period)."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)
        self._tokens = redis.register_script(_TOKENS)

    def _key(self, name: str, period: int) -> str:
        return f"{self._prefix}budget:{name}:{period}"

    async def _run(self, coro: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await coro
        except (RedisError, OSError) as exc:
            raise StateUnavailable(f"redis: {exc}") from exc

    async def reserve(self, name: str, period: int, limit: float, estimate: float) -> Spend:
        row = await self._run(
            self._reserve(keys=[self._key(name, period)], args=[limit, estimate, _KEEP_MS])
        )
        return Spend(bool(int(row[0])), float(row[1]), float(row[2]))

    async def settle(self, name: str, period: int, reserved: float, cost: float) -> Spend:
        row = await self._run(
            self._settle(keys=[self._key(name, period)], args=[reserved, cost, _KEEP_MS])
        )
        return Spend(True, float(row[1]), float(row[2]))

    async def read(self, name: str, period: int) -> Spend:
        spent, reserved = await self._run(
            self._redis.hmget(self._key(name, period), "spent", "reserved")
        )
        return Spend(True, float(spent or 0), float(reserved or 0))

    async def seed(self, name: str, period: int, spent: float) -> None:
        key = self._key(name, period)
        if await self._run(self._redis.hsetnx(key, "spent", repr(spent))):
            await self._run(self._redis.pexpire(key, _KEEP_MS))

    async def tokens_left(self, name: str, capacity: int) -> float:
        return float(await self._run(self._tokens(keys=[self._tpm(name)], args=[capacity, 0])))

    async def take_tokens(self, name: str, capacity: int, used: int) -> None:
        await self._run(self._tokens(keys=[self._tpm(name)], args=[capacity, used]))

    def _tpm(self, name: str) -> str:
        return f"{self._prefix}tpm:{name}"
