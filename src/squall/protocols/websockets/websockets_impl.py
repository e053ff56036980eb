"""--ws websockets: frames read and written by the `websockets` library.

websockets' sans-I/O `ServerProtocol` parses and serializes frames, applies
permessage-deflate, enforces --ws-max-size, answers pings and runs the close
handshake's state machine; this module only moves bytes between it and the
transport and turns its frames into ASGI messages.  Its `asyncio` connection
classes are not used: they own the transport, the keepalive, the queue and
the close timers, which `WebSocketProtocol` keeps the same for every
implementation.  (The `websockets.legacy` protocol Uvicorn's `--ws
websockets` is built on is deprecated.)

The handshake was validated by the shared code; the library starts in the
OPEN state and is only asked to negotiate extensions.

The commonest frames skip the library's generator-based parser, on the
pure-Python path too (this is plain Python; under asyncio's own loop an
echo takes about a quarter less CPU with it): while no extension is in use, a
read that holds only whole, unfragmented, masked text, binary or pong frames
(lengths up to 65535) is read here, and text and binary messages are
written here, as the library would.  The first read that holds anything else
(a partial frame, a ping or close, a fragment, a bad byte) goes to the
library, which then reads everything after it: it starts at a frame boundary,
with nothing of its state skipped (data frames change none of it).  A
subclass that sets `plain_frames = False` leaves every frame to the library
(the tests run both ways).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Close, Frame, Opcode, apply_mask
from websockets.protocol import State
from websockets.server import ServerProtocol

from squall.protocols.websockets.asgi import (
    CLOSE_ABNORMAL,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NO_STATUS,
    WebSocketProtocol,
    too_many_frames_reason,
)
from squall.protocols.websockets.handshake import HandshakeRequest

_TEXT = Opcode.TEXT
_BINARY = Opcode.BINARY
_CONT = Opcode.CONT
_PONG = Opcode.PONG
# RFC 6455 8.1: invalid UTF-8 in a text message fails the connection with 1007.
_CLOSE_INVALID_DATA = 1007
_INVALID_UTF8 = "invalid UTF-8 in a text message"

_new_utf8_decoder: Callable[[], codecs.IncrementalDecoder] = codecs.getincrementaldecoder("utf-8")
_OPEN = State.OPEN

# First bytes of the frames read without the library: FIN, no RSV bits, and
# the opcode (RFC 6455 5.2).
_PLAIN_TEXT = 0x81
_PLAIN_BINARY = 0x82
_PLAIN_PONG = 0x8A


def _deflate_factory() -> ServerPerMessageDeflateFactory:
    # websockets' recommended server settings: a 4 KiB window and memLevel 5
    # keep each connection's zlib state near 64 KiB instead of ~300 KiB, at
    # a small cost in compression ratio.
    return ServerPerMessageDeflateFactory(
        server_max_window_bits=12,
        client_max_window_bits=12,
        compress_settings={"memLevel": 5},
    )


class WebSocketsProtocol(WebSocketProtocol):
    # Whether the commonest frames may skip the library (see the module's doc).
    plain_frames = True
    _ws: ServerProtocol
    # This connection's reads may still skip the library; its writes may.
    _plain_in: bool
    _plain_out: bool
    # A fragmented message being received: its frames so far, and for text
    # the incremental decoder that fails it at the first invalid byte.
    _fragments: list[bytes | str]
    _decoder: codecs.IncrementalDecoder | None

    def _negotiate(self, request: HandshakeRequest) -> bytes | None:
        self._fragments = []
        self._decoder = None
        factories = [_deflate_factory()] if self.per_message_deflate else None
        ws = ServerProtocol(extensions=factories, state=State.OPEN, max_size=self.max_size)
        self._ws = ws
        self._plain_in = self._plain_out = self.plain_frames
        if not factories or not request.extension_offers:
            return None
        offers = Headers([("Sec-WebSocket-Extensions", value.decode("latin-1")) for value in request.extension_offers])
        try:
            header, ws.extensions = ws.process_extensions(offers)
        except InvalidHandshake:
            # RFC 7692 5: an offer the server cannot parse is declined, not fatal.
            return None
        if ws.extensions:
            self._plain_in = self._plain_out = False  # frames are compressed: the library's business
        return header.encode("ascii") if header is not None else None

    def _read_plain_frames(self, data: bytes) -> bool:
        """Deliver `data` if it is only whole plain frames (see the module's doc); else False, nothing delivered."""
        messages: list[tuple[int, bytes | str]] = []
        max_size = self.max_size
        pos = 0
        end = len(data)
        while pos < end:
            if end - pos < 6:
                return False
            first = data[pos]
            length = data[pos + 1] ^ 0x80  # the mask bit a client must set
            if length == 126:
                if end - pos < 8:
                    return False
                length = (data[pos + 2] << 8) | data[pos + 3]
                mask_at = pos + 4
            elif length < 126:
                mask_at = pos + 2
            else:
                return False  # unmasked, or a 64-bit length
            pos = mask_at + 4 + length
            if pos > end:
                return False
            if first == _PLAIN_PONG:
                if length > 125:
                    return False
            elif first != _PLAIN_TEXT and first != _PLAIN_BINARY or max_size is not None and length > max_size:
                return False
            payload = apply_mask(data[mask_at + 4 : pos], data[mask_at : mask_at + 4])
            if first == _PLAIN_TEXT:
                try:
                    messages.append((first, payload.decode("utf-8")))
                except UnicodeDecodeError:
                    return False
            else:
                messages.append((first, payload))
        for first, message in messages:
            if first == _PLAIN_TEXT:
                self._deliver({"type": "websocket.receive", "text": message})
            elif first == _PLAIN_BINARY:
                self._deliver({"type": "websocket.receive", "bytes": message})
            else:
                self._on_pong(message)  # type: ignore[arg-type]
        return True

    def _write_plain_frame(self, first: int, payload: bytes) -> None:
        """A server frame (unmasked), as the library writes it."""
        length = len(payload)
        if length < 126:
            header = bytes((first, length))
        elif length < 65536:
            header = bytes((first, 126)) + length.to_bytes(2, "big")
        else:
            header = bytes((first, 127)) + length.to_bytes(8, "big")
        self.transport.write(header + payload)

    def _receive_frames(self, data: bytes) -> None:
        ws = self._ws
        if self._plain_in:
            if ws.state is _OPEN and self._read_plain_frames(data):
                return
            self._plain_in = False
        ws.receive_data(data)
        # Only frames: the protocol was created OPEN, past the handshake's events.
        frames: list[Frame] = ws.events_received()  # type: ignore[assignment]
        for frame in frames:
            opcode = frame.opcode
            if opcode is _TEXT:
                if frame.fin:
                    try:
                        text = str(frame.data, "utf-8")
                    except UnicodeDecodeError:
                        self._fail(_CLOSE_INVALID_DATA, _INVALID_UTF8)
                        return
                    self._deliver({"type": "websocket.receive", "text": text})
                else:
                    self._decoder = _new_utf8_decoder()
                    if not self._add_fragment(frame.data, False):
                        return
            elif opcode is _BINARY:
                payload = frame.data
                if frame.fin:
                    message = payload if type(payload) is bytes else bytes(payload)
                    self._deliver({"type": "websocket.receive", "bytes": message})
                else:
                    self._decoder = None
                    if not self._add_fragment(payload, False):
                        return
            elif opcode is _CONT:
                if not self._add_fragment(frame.data, frame.fin):
                    return
                if frame.fin:
                    self._end_fragmented()
            elif opcode is _PONG:
                self._on_pong(bytes(frame.data))
            # A ping was answered by the library; a close frame is seen below.
        received = ws.close_rcvd
        if ws.parser_exc is not None and received is not None:
            self._close_mid_message(received)
            return
        self._flush()
        if ws.parser_exc is not None:
            sent = ws.close_sent
            if sent is not None:
                self._on_protocol_error(sent.code, sent.reason)
            else:
                self._on_protocol_error(CLOSE_ABNORMAL, "")
        elif received is not None:
            self._on_peer_close(received.code, received.reason)

    def _close_mid_message(self, received: Close) -> None:
        """The peer's close frame interrupted a fragmented message.

        RFC 6455 5.4 lets control frames, Close included, come between the
        fragments of a message; the unfinished message is simply dropped and
        the close echoed like any other (Autobahn case 7.1.5).  websockets
        instead fails the connection with 1002: it records the close frame,
        then raises, so this is the one failure with `close_rcvd` set.  Its
        failure output is a 1002 close frame and the end-of-stream marker
        (unless our own close frame was already out): replace them with the
        echo.
        """
        ws = self._ws
        out = ws.data_to_send()
        if ws.close_rcvd_then_sent:
            del out[-2:]
            payload = b"" if received.code == CLOSE_NO_STATUS else received.serialize()
            out.append(Frame(Opcode.CLOSE, payload).serialize(mask=False))
        write = self.transport.write
        for chunk in out:
            if chunk:
                write(chunk)
        self._fragments = []
        self._decoder = None
        self._on_peer_close(received.code, received.reason)

    def _add_fragment(self, data: bytes | bytearray | memoryview, final: bool) -> bool:
        """Keep a fragment; False if the connection had to be failed for it."""
        fragments = self._fragments
        max_frames = self.max_frames
        if max_frames is not None and len(fragments) >= max_frames:
            # websockets counts only the payload against max_size: empty frames would pile up.
            self._fail(CLOSE_MESSAGE_TOO_BIG, too_many_frames_reason(max_frames))
            return False
        decoder = self._decoder
        if decoder is None:
            fragments.append(bytes(data))
            return True
        try:
            fragments.append(decoder.decode(data, final))
        except UnicodeDecodeError:
            self._fail(_CLOSE_INVALID_DATA, _INVALID_UTF8)
            return False
        return True

    def _end_fragmented(self) -> None:
        fragments = self._fragments
        self._fragments = []
        if self._decoder is not None:
            self._decoder = None
            self._deliver({"type": "websocket.receive", "text": "".join(fragments)})  # type: ignore[arg-type]
        else:
            self._deliver({"type": "websocket.receive", "bytes": b"".join(fragments)})  # type: ignore[arg-type]

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7) for a reason the library does not check itself."""
        self._ws.fail(code, reason)
        self._flush()
        self._on_protocol_error(code, reason)

    def _flush(self) -> None:
        write = self.transport.write
        for chunk in self._ws.data_to_send():
            if chunk:  # b"" asks for a half-close; the shared code closes the transport instead
                write(chunk)

    def _send_text(self, text: str) -> None:
        if self._plain_out and self._ws.state is _OPEN:
            self._write_plain_frame(_PLAIN_TEXT, text.encode("utf-8"))
            return
        self._ws.send_text(text.encode("utf-8"))
        self._flush()

    def _send_bytes(self, data: bytes | bytearray | memoryview) -> None:
        if self._plain_out and self._ws.state is _OPEN:
            self._write_plain_frame(_PLAIN_BINARY, bytes(data))
            return
        self._ws.send_binary(data)
        self._flush()

    def _send_close(self, code: int, reason: str) -> None:
        self._ws.send_close(code, reason)
        self._flush()

    def _send_ping(self, payload: bytes) -> None:
        self._ws.send_ping(payload)
        self._flush()
