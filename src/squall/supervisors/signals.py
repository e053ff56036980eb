"""Signals as events in a supervisor's own loop.

A supervisor spends its time blocked (in `select`, or in a file watcher), and
must not do real work inside a signal handler: the handler may run between
any two bytecodes of the code it interrupts.  So the handler only records the
signal; the supervisor handles it when its loop comes round, and the wakeup
fd (plus `arrived`) makes sure that happens at once rather than at the next
timeout.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections import deque
from collections.abc import Iterable
from types import FrameType
from typing import Any


class SignalQueue:
    """Catch `signals` while in a `with` block; `drain()` returns those received.

    `fileno()` becomes readable when a signal arrives (for `select`), and the
    `arrived` event is set (for code that waits on an event instead).
    """

    def __init__(self, signals: Iterable[int]) -> None:
        self.signals = tuple(signals)
        self.arrived = threading.Event()
        self._pending: deque[int] = deque()
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._previous: dict[int, Any] = {}
        self._previous_wakeup_fd = -1

    def __enter__(self) -> SignalQueue:
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._record)
        self._previous_wakeup_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        return self

    def __exit__(self, *exc_info: object) -> None:
        signal.set_wakeup_fd(self._previous_wakeup_fd)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._reader.close()
        self._writer.close()

    def _record(self, sig: int, frame: FrameType | None) -> None:
        self._pending.append(sig)
        self.arrived.set()

    def fileno(self) -> int:
        return self._reader.fileno()

    def drain(self) -> list[int]:
        """The signals received since the last call, oldest first."""
        # Cleared before reading, so a signal landing mid-drain sets it again.
        self.arrived.clear()
        try:
            while self._reader.recv(512):
                pass
        except BlockingIOError:
            pass
        received = []
        while self._pending:
            received.append(self._pending.popleft())
        return received
