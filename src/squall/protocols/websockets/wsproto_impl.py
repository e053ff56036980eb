"""--ws wsproto: frames read and written by the `wsproto` library.

The handshake was validated by the shared code, so wsproto's low-level
`Connection` (the frame layer, already OPEN) is used rather than
`WSConnection`, which would parse the request again with h11.  wsproto has
no message size limit: --ws-max-size is enforced here, on the decompressed
size, as the message arrives, and so is the limit on its number of frames.
wsproto reports a frame in parts as its bytes arrive: each part held counts
as a frame, since each costs as much to hold.
"""

from __future__ import annotations

from typing import Any

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import FrameProtocol
from wsproto.utilities import LocalProtocolError

from squall.protocols.websockets.asgi import CLOSE_MESSAGE_TOO_BIG, WebSocketProtocol, too_many_frames_reason
from squall.protocols.websockets.handshake import HandshakeRequest

# Pongs are serialized apart from the connection: wsproto's `Connection`
# refuses to send one once our close frame is out, but RFC 6455 5.5.2 asks
# for a pong to every ping until the peer's close frame.  A control frame
# depends on no connection state (permessage-deflate leaves it alone).
_CONTROL_FRAMES = FrameProtocol(client=False, extensions=[])


def _negotiate_deflate(offers: list[bytes]) -> tuple[PerMessageDeflate, bytes] | None:
    """The first permessage-deflate offer wsproto can accept (RFC 7692 5: the server picks one)."""
    for value in offers:
        for offer in value.decode("latin-1").split(","):
            if offer.split(";", 1)[0].strip() != PerMessageDeflate.name:
                continue
            extension = PerMessageDeflate()
            try:
                params = extension.accept(offer.strip())
            except ValueError:  # a malformed parameter: decline this offer
                continue
            if params is None or params is False:
                continue
            header = f"{PerMessageDeflate.name}; {params}" if isinstance(params, str) and params else PerMessageDeflate.name
            return extension, header.encode("latin-1")
    return None


class WSProtocol(WebSocketProtocol):
    _conn: Connection
    # The message being received: its parts so far (all str or all bytes)
    # and its size in bytes.
    _parts: list[Any]
    _size: int

    def _negotiate(self, request: HandshakeRequest) -> bytes | None:
        self._parts = []
        self._size = 0
        negotiated = None
        if self.per_message_deflate and request.extension_offers:
            negotiated = _negotiate_deflate(request.extension_offers)
        if negotiated is None:
            self._conn = Connection(ConnectionType.SERVER)
            return None
        extension, header = negotiated
        self._conn = Connection(ConnectionType.SERVER, [extension])
        return header

    def _receive_frames(self, data: bytes) -> None:
        conn = self._conn
        try:
            conn.receive_data(data)
        except LocalProtocolError:
            return  # the close handshake is complete: what follows is moot
        for event in conn.events():
            if isinstance(event, TextMessage):
                text = event.data
                # str.isascii() is O(1): only non-ASCII text pays for an encode to count its bytes.
                size = len(text) if text.isascii() else len(text.encode("utf-8"))
                if not self._add_part(text, size, event.message_finished):
                    return
            elif isinstance(event, BytesMessage):
                if not self._add_part(event.data, len(event.data), event.message_finished):
                    return
            elif isinstance(event, Ping):
                self.transport.write(bytes(_CONTROL_FRAMES.pong(event.payload)))
            elif isinstance(event, Pong):
                self._on_pong(bytes(event.payload))
            elif isinstance(event, CloseConnection):
                self._close_event(event)
                return

    def _add_part(self, data: str | bytes | bytearray, size: int, last: bool) -> bool:
        """Add a piece of the message being received; False if it made the message too big."""
        self._size += size
        if self.max_size is not None and self._size > self.max_size:
            self._fail(CLOSE_MESSAGE_TOO_BIG, f"message larger than {self.max_size} bytes")
            return False
        max_frames = self.max_frames
        if max_frames is not None and len(self._parts) >= max_frames:
            self._fail(CLOSE_MESSAGE_TOO_BIG, too_many_frames_reason(max_frames))
            return False
        if not last:
            self._parts.append(data)
            return True
        parts = self._parts
        if parts:
            parts.append(data)
            self._parts = []
            data = "".join(parts) if isinstance(data, str) else b"".join(parts)
        self._size = 0
        if isinstance(data, str):
            self._deliver({"type": "websocket.receive", "text": data})
        else:
            self._deliver({"type": "websocket.receive", "bytes": data if type(data) is bytes else bytes(data)})
        return True

    def _close_event(self, event: CloseConnection) -> None:
        conn = self._conn
        state = conn.state
        code = int(event.code)
        reason = event.reason or ""
        if state is ConnectionState.REMOTE_CLOSING:
            # The peer starts the close handshake: echo its code.
            self.transport.write(conn.send(event.response()))
            self._on_peer_close(code, reason)
        elif state is ConnectionState.CLOSED:
            self._on_peer_close(code, reason)  # the peer's answer to our close frame
        else:
            # wsproto reports a frame it could not parse as a close event in
            # an unchanged state: failing the connection is our job.
            self._fail(code, reason)

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7), with a close frame unless ours is already out."""
        conn = self._conn
        if conn.state is ConnectionState.OPEN:
            self.transport.write(conn.send(CloseConnection(code=code, reason=reason)))
        self._on_protocol_error(code, reason)

    def _send_text(self, text: str) -> None:
        self.transport.write(self._conn.send(TextMessage(data=text)))

    def _send_bytes(self, data: bytes | bytearray | memoryview) -> None:
        self.transport.write(self._conn.send(BytesMessage(data=data)))  # type: ignore[arg-type]

    def _send_close(self, code: int, reason: str) -> None:
        self.transport.write(self._conn.send(CloseConnection(code=code, reason=reason)))

    def _send_ping(self, payload: bytes) -> None:
        self.transport.write(self._conn.send(Ping(payload=payload)))
