"""Back-pressure in both directions for one connection.

Reading pauses while the app has not consumed what is buffered; writing
(`send`) waits while the transport's buffer is above its high-water mark.
"""

from __future__ import annotations

import asyncio

# Request body bytes buffered for the app before the socket stops being read.
HIGH_WATER_LIMIT = 65536


class FlowControl:
    __slots__ = ("_transport", "read_paused", "write_paused", "_drain_waiter")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.read_paused = False
        self.write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    async def drain(self) -> None:
        """Wait until the transport can take more; returns at once when it can."""
        if not self.write_paused:
            return
        if self._drain_waiter is None:
            self._drain_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._drain_waiter)

    def pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused:
            self.read_paused = False
            self._transport.resume_reading()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        """Also called when the connection is lost, so that no writer waits forever."""
        self.write_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
