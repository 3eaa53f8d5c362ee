"""Recent outcomes in fixed-size rings, readable across worker processes.

``/metrics`` reports latency percentiles and each provider's recent error rate over
the last few thousand requests. Keeping them exactly (not from histogram buckets)
costs one record per event: a ring of ``(time, seconds, ok)`` records in an ``mmap``.
With one process the map is anonymous memory; with several workers each process
writes its own file in the per-start metrics directory and whoever answers a scrape
reads them all. Each ring has exactly one writer (its process's event loop), so no
locks: the writer stores the record, then bumps the count in the header.

Layout of a ring: a 280-byte header (magic, capacity, count written so far, label)
then ``capacity`` records of 16 bytes (``<dfI``: wall time, seconds, ok flag).
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

__all__ = ["Record", "Ring", "percentile", "read_ring_files"]

_MAGIC = b"FKRW"
_HEADER = struct.Struct("<4sIQ")  # magic, capacity, count written so far
_LABEL_SIZE = 264
_RECORD = struct.Struct("<dfI")  # wall-clock time, seconds, ok (1) or failed (0)
_COUNT_OFFSET = 8
_DATA_OFFSET = _HEADER.size + _LABEL_SIZE
SUFFIX = ".ring"


class Record(NamedTuple):
    at: float
    seconds: float
    ok: bool


class Ring:
    """A fixed-size ring of the most recent records under one ``label``.

    ``path`` None keeps it in anonymous memory (one process); otherwise the file is
    created (replacing any old one) so other processes can read it.
    """

    def __init__(self, label: str, capacity: int, path: Path | None = None) -> None:
        self.label = label
        self.capacity = capacity
        self.path = path
        size = _DATA_OFFSET + capacity * _RECORD.size
        if path is None:
            self._map = mmap.mmap(-1, size)
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.ftruncate(fd, size)
                self._map = mmap.mmap(fd, size)
            finally:
                os.close(fd)
        encoded = label.encode()[:_LABEL_SIZE]
        _HEADER.pack_into(self._map, 0, _MAGIC, capacity, 0)
        self._map[_HEADER.size : _HEADER.size + len(encoded)] = encoded
        self._count = 0

    def add(self, seconds: float, ok: bool, at: float | None = None) -> None:
        """Store one record, overwriting the oldest once the ring is full."""
        slot = self._count % self.capacity
        _RECORD.pack_into(
            self._map,
            _DATA_OFFSET + slot * _RECORD.size,
            time.time() if at is None else at,
            seconds,
            1 if ok else 0,
        )
        self._count += 1
        struct.pack_into("<Q", self._map, _COUNT_OFFSET, self._count)

    def records(self) -> list[Record]:
        return _decode(bytes(self._map))[1]

    def close(self) -> None:
        self._map.close()


def _decode(data: bytes) -> tuple[str, list[Record]]:
    magic, capacity, count = _HEADER.unpack_from(data, 0)
    if magic != _MAGIC:
        raise ValueError("not a ring file")
    label = data[_HEADER.size : _DATA_OFFSET].rstrip(b"\0").decode(errors="replace")
    used = min(count, capacity)
    end = _DATA_OFFSET + used * _RECORD.size
    if len(data) < end:
        raise ValueError("truncated ring file")
    records = [
        Record(at, seconds, bool(ok))
        for at, seconds, ok in _RECORD.iter_unpack(data[_DATA_OFFSET:end])
    ]
    return label, records


def read_ring_files(directory: Path) -> Iterator[tuple[str, list[Record]]]:
    """``(label, records)`` of every ring file in ``directory``; unreadable ones skipped."""
    for path in sorted(directory.glob("*" + SUFFIX)):
        try:
            yield _decode(path.read_bytes())
        except (OSError, ValueError, struct.error):
            continue


def percentile(ordered: list[float], fraction: float) -> float | None:
    """The value at ``fraction`` (0..1) of ``ordered`` (sorted), linearly interpolated."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
