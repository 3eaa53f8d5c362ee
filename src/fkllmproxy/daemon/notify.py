"""sd_notify without a dependency: one datagram to ``$NOTIFY_SOCKET`` per message.

Outside systemd (no ``NOTIFY_SOCKET``) every call is a cheap no-op, so the daemon can
announce READY/RELOADING/STOPPING unconditionally.
"""

from __future__ import annotations

import os
import socket
import time

__all__ = ["Notifier", "reloading_lines", "watchdog_interval"]


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._address: str | None = None
        self._socket: socket.socket | None = None
        if address:
            # A leading "@" names an abstract socket, written with a NUL byte.
            self._address = "\0" + address[1:] if address.startswith("@") else address
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, *lines: str) -> None:
        """Send ``KEY=value`` lines; errors are swallowed (systemd may have gone away)."""
        if self._socket is None or self._address is None:
            return
        try:
            self._socket.sendto("\n".join(lines).encode(), self._address)
        except OSError:
            pass

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of ``WATCHDOG_USEC``), or ``None``."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


def reloading_lines(status: str) -> tuple[str, ...]:
    """``RELOADING=1`` with the ``MONOTONIC_USEC`` stamp systemd asks to accompany it."""
    return ("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}", f"STATUS={status}")
