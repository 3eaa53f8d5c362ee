"""The process name ps, top and pgrep show (``/proc/PID/comm``).

Run as ``/usr/local/bin/fkllmproxy`` the process is really ``python3.11``, so the
runbook's ``top -p $(pgrep fkllmproxy)`` would find nothing. The supervising process
takes the name ``fkllmproxy``; worker processes take one pgrep's pattern does not match,
so that command still gets the single PID it expects.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["DAEMON_NAME", "WORKER_NAME", "set_process_name"]

DAEMON_NAME = "fkllmproxy"
WORKER_NAME = "fkllm-worker"
_PR_SET_NAME = 15


def set_process_name(name: str) -> bool:
    """Set this process's short name (15 bytes at most); ``False`` where not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return int(libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False
