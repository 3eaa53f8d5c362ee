"""Signals in multi-process mode, where Granian's supervisor owns them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fkllmproxy.daemon.workers import _announce


class FakeGranian:
    """The parts of Granian's server ``_announce`` wraps; its interrupt handler can be
    made to receive a second signal while it is running, as a real process can."""

    def __init__(self) -> None:
        self.interrupts = 0
        self.signal_again: Callable[[], None] | None = None

    def signal_handler_interrupt(self, *args: Any) -> None:
        self.interrupts += 1
        again, self.signal_again = self.signal_again, None
        if again is not None:
            again()

    def signal_handler_reload(self, *args: Any) -> None:
        pass

    def on_startup(self, hook: Callable[[], None]) -> None:
        pass

    def on_reload(self, hook: Callable[[], None]) -> None:
        pass


class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[tuple[str, ...]] = []

    def send(self, *lines: str) -> None:
        self.sent.append(lines)


def test_a_second_stop_signal_during_the_first_is_ignored() -> None:
    """Granian's handler sets a threading.Event: entering it again from a signal that
    interrupted it deadlocks the supervisor, so only the first signal may reach it."""
    server = FakeGranian()
    notifier = RecordingNotifier()
    _announce(server, notifier, 2)  # type: ignore[arg-type]
    server.signal_again = lambda: server.signal_handler_interrupt(15, None)
    server.signal_handler_interrupt(15, None)
    server.signal_handler_interrupt(2, None)  # and a later Ctrl-C
    assert server.interrupts == 1
    assert [lines[0] for lines in notifier.sent] == ["STOPPING=1"]
