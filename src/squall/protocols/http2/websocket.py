"""WebSockets over HTTP/2 (RFC 8441): one stream as a WebSocket protocol's transport.

A client that saw SETTINGS_ENABLE_CONNECT_PROTOCOL opens a WebSocket with an
extended CONNECT request (`:protocol websocket`); the stream's DATA frames
then carry the WebSocket frames both ways.  `StreamTransport` gives the
very WebSocket protocol classes that serve HTTP/1.1 upgrades an
`asyncio.Transport` over that stream, so the ASGI WebSocket behaviour —
messages, close codes, back-pressure, keepalive, shutdown — is the same
code for both.  Only the handshake's answer differs: `200` in a HEADERS
frame instead of `101 Switching Protocols` (`accept`), or a whole response
for a refusal (`respond`).

Flow control: bytes from the client are acknowledged (WINDOW_UPDATE) only
while the protocol reads, so a paused protocol closes the client's window;
what the protocol writes waits in `pending` for the peer's window, and the
protocol is told to pause writing past WRITE_HIGH_WATER, as a socket
transport would.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from squall.protocols.http2.connection import H2Connection

# What may wait for the peer's window before the protocol is asked to stop writing, and
# where it may go on.
WRITE_HIGH_WATER = 65536
WRITE_LOW_WATER = 16384


class StreamTransport(asyncio.Transport):
    def __init__(self, conn: H2Connection, stream_id: int) -> None:
        super().__init__()
        self._conn = conn
        self.stream_id = stream_id
        self._protocol: Any = None
        # Our side: closing (END_STREAM once `pending` is out), or gone.
        self._closing = False
        self.ended = False
        self.lost = False
        # The client's side has ended (END_STREAM received).
        self.peer_ended = False
        # Reading paused: DATA kept here, and not acknowledged, until resumed.
        self._paused = False
        self._held: list[bytes] = []
        self._unacked = 0
        self.pending = b""
        self._writing_paused = False
        # Loop time the window last blocked `pending`, for --timeout-write.
        self.blocked_since = 0.0

    # -- asyncio.Transport ---------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        transport = self._conn.transport
        return transport.get_extra_info(name, default) if transport is not None else default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    def is_closing(self) -> bool:
        return self._closing

    def is_reading(self) -> bool:
        return not self._paused

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        if not self._paused:
            return
        self._paused = False
        held, self._held = self._held, []
        for data in held:
            if self._paused or self.lost:
                self._held.append(data)
                continue
            self._protocol.data_received(data)
        if not self._paused and self._unacked:
            self._conn.tunnel_ack(self, self._unacked)
            self._unacked = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        self.pending += bytes(data)
        self._conn.tunnel_push(self)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("A WebSocket over HTTP/2 closes with END_STREAM: use close().")

    def get_write_buffer_size(self) -> int:
        return len(self.pending)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return WRITE_LOW_WATER, WRITE_HIGH_WATER

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """The limits are fixed: the peer's flow-control window bounds the stream anyway."""

    def close(self) -> None:
        """End our side of the stream once what is pending is out (the WebSocket's TCP close)."""
        if self._closing:
            return
        self._closing = True
        self._conn.tunnel_push(self)

    def abort(self) -> None:
        if self.lost:
            return
        self._closing = True
        self.pending = b""
        self._conn.tunnel_reset(self)

    # -- the handshake's answer ------------------------------------------------------------

    def accept(self, headers: list[tuple[bytes, bytes]]) -> None:
        """The WebSocket is accepted: a 200 response that leaves the stream open (RFC 8441 5)."""
        self._conn.tunnel_head(self, 200, headers, end_stream=False)

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """A whole HTTP response instead (a refusal, an error); our side of the stream then ends."""
        if body:
            self._conn.tunnel_head(self, status, headers, end_stream=False)
            self.pending += body
        else:
            self._conn.tunnel_head(self, status, headers, end_stream=True)
            self.ended = True
        self.close()

    # -- from the connection -----------------------------------------------------------------

    def feed(self, data: bytes, flow_controlled_length: int) -> None:
        if self.lost or self._closing and not data:
            self._conn.tunnel_ack(self, flow_controlled_length)
            return
        if self._paused:
            self._held.append(data)
            self._unacked += flow_controlled_length
            return
        self._conn.tunnel_ack(self, flow_controlled_length)
        if data:
            self._protocol.data_received(data)

    def on_peer_end(self) -> None:
        self.peer_ended = True
        if not self.lost and not self._protocol.eof_received():
            self.close()
        if self.ended:
            self.lose(None)

    def on_sent(self) -> None:
        """The connection sent some of `pending`: let the protocol write again once it drained."""
        if self._writing_paused and len(self.pending) <= WRITE_LOW_WATER:
            self._writing_paused = False
            self._protocol.resume_writing()

    def on_blocked(self) -> None:
        if not self._writing_paused and len(self.pending) > WRITE_HIGH_WATER:
            self._writing_paused = True
            self._protocol.pause_writing()

    def lose(self, exc: Exception | None) -> None:
        """The stream is over (both sides ended, or reset): the protocol hears of it."""
        if self.lost:
            return
        self.lost = True
        self._closing = True
        self.pending = b""
        self._held = []
        self._conn.tunnel_forget(self)
        self._conn.loop.call_soon(self._protocol.connection_lost, exc, context=self._conn.context)
