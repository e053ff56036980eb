"""Keepalive pings (--ws-ping-interval, --ws-ping-timeout).

Two loop timers per connection and nothing on the message path: a ping is
sent `interval` seconds after the previous one was answered, and a peer that
has not answered within `timeout` is given up on.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable


class Keepalive:
    __slots__ = ("_loop", "_interval", "_timeout", "_send_ping", "_on_timeout", "_timer", "_payload")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        interval: float,
        timeout: float | None,
        send_ping: Callable[[bytes], None],
        on_timeout: Callable[[], None],
    ) -> None:
        self._loop = loop
        self._interval = interval
        self._timeout = timeout
        self._send_ping = send_ping
        self._on_timeout = on_timeout
        self._timer: asyncio.TimerHandle | None = None
        # The payload of the ping awaiting its pong: unsolicited pongs, and
        # pongs to pings the app's client library sent itself, don't count.
        self._payload: bytes | None = None

    def start(self) -> None:
        self._timer = self._loop.call_later(self._interval, self._ping)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._payload = None

    def pong_received(self, payload: bytes) -> None:
        if self._payload is not None and payload == self._payload:
            self.stop()
            self.start()

    def _ping(self) -> None:
        self._payload = os.urandom(4)
        if self._timeout is None:
            # Nothing to wait for: keep pinging so that idle proxies see traffic.
            self._timer = self._loop.call_later(self._interval, self._ping)
        else:
            self._timer = self._loop.call_later(self._timeout, self._expired)
        self._send_ping(self._payload)

    def _expired(self) -> None:
        self._timer = None
        self._payload = None
        self._on_timeout()
