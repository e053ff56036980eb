"""Back-pressure in both directions for one connection.

Reading can pause for several independent reasons at once (a request body
the app has not read, a full pipeline, a protocol switch waiting its turn,
our own writes backing up, a malformed request).  Each reason is a bit of
`ReadGate.reasons`: the transport reads again only when the last reason is
lifted, so that ending one pause can never undo another.

Writing is the other way round: the transport tells the protocol when its
buffer passes the high-water mark (`pause_writing`) and when it drained
(`resume_writing`); the connection passes that on to the streams that write.
"""

from __future__ import annotations

import asyncio
import contextvars

# Request body bytes buffered for the app before the socket stops being read.
HIGH_WATER_LIMIT = 65536

# Why reading is paused (bits of ReadGate.reasons).
PAUSE_BODY = 1  # a request body buffer is full: the app has not read it yet
PAUSE_PIPELINE = 2  # as many requests are queued as a connection may queue
PAUSE_SWITCH = 4  # a protocol switch (WebSocket, h2c) waits for earlier responses
PAUSE_WRITE = 8  # our own writes back up: the peer is not reading them
PAUSE_ERROR = 16  # malformed input was read: nothing more will be
PAUSE_QUEUE = 32  # a WebSocket app has --ws-max-queue messages waiting for receive()
PAUSE_EARLY_DATA = 64  # WebSocket frames sent before the 101 fill what is kept until the app decides
PAUSE_BACKLOG = 128  # HTTP/2: bytes already read wait their turn to be parsed


class ReadGate:
    """Pauses the transport's reading while any reason holds.

    `resume_reading` runs in `context`, the connection's own: asyncio's
    selector loop makes the reader callback anew on resume, in the context
    current at that moment, and every later `data_received` (so every
    request task created there) would inherit an app's context variables
    if an app's `receive` resumed it.
    """

    __slots__ = ("_transport", "_context", "reasons")

    def __init__(self, transport: asyncio.Transport, context: contextvars.Context) -> None:
        self._transport = transport
        self._context = context
        self.reasons = 0

    def pause(self, reason: int) -> None:
        if not self.reasons:
            self._transport.pause_reading()
        self.reasons |= reason

    def resume(self, reason: int) -> None:
        if self.reasons & reason:
            self.reasons &= ~reason
            if not self.reasons and not self._transport.is_closing():
                self._context.copy().run(self._transport.resume_reading)

    def paused_for(self, reason: int) -> bool:
        return bool(self.reasons & reason)



class WriteFlow:
    """Waiting for the transport to take more, for writers that wait in `send` (WebSockets)."""

    __slots__ = ("write_paused", "_drain_waiter")

    def __init__(self) -> None:
        self.write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    async def drain(self) -> None:
        """Wait until the transport can take more; returns at once when it can."""
        if not self.write_paused:
            return
        if self._drain_waiter is None:
            self._drain_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._drain_waiter)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        """Also called when the connection is lost, so that no writer waits forever."""
        self.write_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
