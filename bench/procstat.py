"""CPU time and memory of a process and all its descendants, read from /proc.

A gateway may be several processes (a node runtime, a Python master and its workers),
so every figure is summed over the tree rooted at the PID we started.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TreeSample", "descendants", "sample_tree"]

_TICKS = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name sits in parentheses and may contain spaces: split after it.
    return text[text.rindex(")") + 2 :].split()


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def _rss_kib(pid: int) -> int:
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass(frozen=True)
class TreeSample:
    """CPU seconds used so far (user + system) and resident memory, over the tree."""

    cpu_s: float
    rss_mib: float
    processes: int


def sample_tree(root: int) -> TreeSample:
    cpu_ticks = 0
    rss = 0
    pids = descendants(root)
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # After the name: state(0) ppid(1) ... utime(11) stime(12), as in proc(5) 14 and 15.
        cpu_ticks += int(fields[11]) + int(fields[12])
        rss += _rss_kib(pid)
    return TreeSample(cpu_s=cpu_ticks / _TICKS, rss_mib=rss / 1024, processes=len(pids))
