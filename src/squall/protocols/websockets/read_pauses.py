"""Why a WebSocket connection has stopped reading from its socket.

Reading pauses for independent reasons, and resumes only once none is left:
the app falling behind must not let a peer that never reads (and so fills
our write buffer with pongs) be read again, and the reverse.  The reasons
are bits of one int, checked on the message path.
"""

from __future__ import annotations

import asyncio

# The app has --ws-max-queue messages waiting for its receive().
QUEUE_FULL = 1
# The transport's write buffer is over its high-water mark: the peer is not
# reading what we write, and what it sends may need answers (pongs, the
# echoed close) that would pile up.
WRITE_BUFFER_FULL = 2
# The peer sent frames before the 101, and as many as we keep are held
# until the app decides.
EARLY_DATA = 4


class ReadPauses:
    __slots__ = ("_transport", "reasons")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        # The reasons reading is paused for (a bitmask of the constants above); 0 when reading.
        self.reasons = 0

    def pause(self, reason: int) -> None:
        if not self.reasons:
            self._transport.pause_reading()
        self.reasons |= reason

    def resume(self, reason: int) -> None:
        """Drop one reason; read again if it was the last."""
        if self.reasons & reason:
            self.reasons &= ~reason
            if not self.reasons:
                self._transport.resume_reading()

