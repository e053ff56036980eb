"""Squall's own HTTP/2 wire layer: frames, stream states and flow control, written for speed.

The h2 library (`h2_wire.H2LibWire`) is the reference; this does the same
job for a server with a fraction of its cost per request, which the
benchmarks showed is dominated by h2's generality.  HPACK decoding is the
hpack library's; a header block made only of indexed fields (what clients
send for repeated requests) is looked up in a small cache instead, keyed
by the block and the decoder's table generation, since such a block cannot
change the table.  Responses are encoded without the dynamic table:
literal fields, indexed names where the static table has them.

Stream states, as this server sees them (RFC 9113 5.1):

    state         event                              next state
    -----------   --------------------------------   ---------------
    idle          HEADERS received                   open (half-closed (remote) with END_STREAM)
    open          END_STREAM received                half-closed (remote)
    open          END_STREAM sent                    half-closed (local)
    half-closed   END_STREAM on the other side       closed
    any           RST_STREAM sent or received        closed

An open stream is an entry of `streams`; an id above `highest_id` is
idle, one at or below it that has no entry is closed.  Ids we reset lately
are remembered (boundedly), because frames the peer sent before it saw our
RST_STREAM must be dropped, not treated as errors.
"""

from __future__ import annotations

import struct
from collections import OrderedDict

from squall._compiled import speedups
from squall.protocols.http2.request import H2Request, MalformedRequest, parse_request
from squall.protocols.http2.wire import (
    ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR,
    NO_ERROR,
    PROTOCOL_ERROR,
    STREAM_CLOSED,
    H2Events,
    H2Settings,
    WireError,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 6).
DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9

# Flags.
FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8
FLAG_PRIORITY = 0x20

# Settings (RFC 9113 6.5.2, RFC 8441 3).
S_HEADER_TABLE_SIZE = 0x1
S_ENABLE_PUSH = 0x2
S_MAX_CONCURRENT_STREAMS = 0x3
S_INITIAL_WINDOW_SIZE = 0x4
S_MAX_FRAME_SIZE = 0x5
S_MAX_HEADER_LIST_SIZE = 0x6
S_ENABLE_CONNECT_PROTOCOL = 0x8

COMPRESSION_ERROR = 0x9
FRAME_SIZE_ERROR = 0x6

MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65535

_FRAME_HEADER = struct.Struct(">HBBBL")
_SETTING = struct.Struct(">HL")
_U32 = struct.Struct(">L")
_GOAWAY = struct.Struct(">LL")

# Header blocks of indexed fields only, decoded before: (block, generation) -> request.
_CACHE_SIZE = 64
# Ids of streams we reset, whose in-flight frames are dropped silently.
_RESET_MEMORY = 256
# A header block may take this many frames (HEADERS plus CONTINUATIONs).
_MAX_BLOCK_FRAMES = 64
# Empty DATA frames without END_STREAM a connection may send (each costs us
# a frame's work and means nothing).
_MAX_EMPTY_DATA = 1000

# The bytes 0x80-0xff: a block with nothing else is a list of indexed fields
# (each index below 127, one byte).
_HIGH_BYTES = bytes(range(0x80, 0x100))

# Static table (RFC 7541 appendix A) indices of names, for encoding responses.
_STATIC_NAMES: dict[bytes, int] = {}
for _index, _name in enumerate(
    b":authority :method :method :path :path :scheme :scheme :status :status :status :status :status :status"
    b" :status accept-charset accept-encoding accept-language accept-ranges accept access-control-allow-origin"
    b" age allow authorization cache-control content-disposition content-encoding content-language"
    b" content-length content-location content-range content-type cookie date etag expect expires from host"
    b" if-match if-modified-since if-none-match if-range if-unmodified-since last-modified link location"
    b" max-forwards proxy-authenticate proxy-authorization range referer refresh retry-after server"
    b" set-cookie strict-transport-security transfer-encoding user-agent vary via www-authenticate".split(),
    start=1,
):
    _STATIC_NAMES.setdefault(_name, _index)
_STATIC_STATUS = {b"200": 8, b"204": 9, b"206": 10, b"304": 11, b"400": 12, b"404": 13, b"500": 14}


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    """An HPACK integer (RFC 7541 5.1) with `first`'s high bits above the prefix."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(data: bytes) -> bytes:
    return _integer(len(data), 7, 0) + data


_encoded_names: dict[bytes, bytes] = {}


def encode_headers(fields: list[tuple[bytes, bytes]]) -> bytes:
    """An HPACK block for a response: no dynamic table, no Huffman coding."""
    parts = []
    for name, value in fields:
        if name == b":status":
            index = _STATIC_STATUS.get(value)
            if index is not None:
                parts.append(bytes((0x80 | index,)))
                continue
        prefix = _encoded_names.get(name)
        if prefix is None:
            index = _STATIC_NAMES.get(name)
            # Literal without indexing: the name by static index, or as a string.
            prefix = _integer(index, 4, 0) if index is not None else b"\x00" + _string(name)
            if len(_encoded_names) < 1024:
                _encoded_names[name] = prefix
        parts.append(prefix)
        parts.append(_string(value))
    return b"".join(parts)


pure_encode_headers = encode_headers
if speedups is not None:
    # The compiled hot path: the same function for lists of (bytes, bytes),
    # handing anything else to the one above.
    speedups.setup_hpack(pure_encode_headers, _STATIC_NAMES, _STATIC_STATUS)
    encode_headers = speedups.encode_headers  # noqa: F811


def _frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    size = len(payload)
    return _FRAME_HEADER.pack(size >> 8, size & 0xFF, kind, flags, stream_id) + payload


class _Stream:
    __slots__ = ("id", "remote_open", "local_open", "recv_window", "recv_unacked", "send_window", "expected", "received")

    def __init__(self, stream_id: int, recv_window: int, send_window: int) -> None:
        self.id = stream_id
        self.remote_open = True  # the client may still send
        self.local_open = True  # we may still send
        self.recv_window = recv_window
        self.recv_unacked = 0
        self.send_window = send_window
        # The request's content-length, and the body bytes received so far.
        self.expected: int | None = None
        self.received = 0


class SquallWire:
    """A server-side HTTP/2 wire layer (see `wire.H2Wire`)."""

    def __init__(self, events: H2Events, settings: H2Settings) -> None:
        self.events = events
        self.settings = settings
        self.streams: dict[int, _Stream] = {}
        self.highest_id = 0
        self._recently_reset: OrderedDict[int, None] = OrderedDict()
        self._out: list[bytes] = []
        self._buffer = bytearray()
        self._preface_seen = False
        self._settings_seen = False
        # Imported here: most servers never see an HTTP/2 connection, and
        # hpack's tables cost every process memory.
        from hpack import Decoder

        self._decoder = Decoder()
        self._decoder.max_header_list_size = settings.max_header_list_size
        self._decoder.max_allowed_table_size = 4096
        self._generation = 0
        self._cache: dict[bytes, tuple[int, H2Request | MalformedRequest]] = {}
        # A header block in progress: (stream id, END_STREAM, valid, fragments, frames).
        self._block: tuple[int, bool, bool, list[bytes], int] | None = None
        self._block_limit = settings.max_header_list_size + settings.max_header_list_size // 4 + 1024
        self._empty_data = 0
        # Flow control: what the peer may still send us, and what we may send.
        self._recv_window = DEFAULT_WINDOW
        self._recv_unacked = 0
        self._recv_target = DEFAULT_WINDOW
        self._send_window = DEFAULT_WINDOW
        self._peer_initial_window = DEFAULT_WINDOW
        self._peer_max_frame = 16384
        self._goaway_sent = False

    # -- setup -------------------------------------------------------------------------

    def initiate(self, upgrade_settings: bytes | None = None) -> None:
        s = self.settings
        payload = b"".join(
            _SETTING.pack(code, value)
            for code, value in (
                (S_MAX_CONCURRENT_STREAMS, s.max_concurrent_streams),
                (S_INITIAL_WINDOW_SIZE, s.initial_window_size),
                (S_MAX_FRAME_SIZE, s.max_frame_size),
                (S_MAX_HEADER_LIST_SIZE, s.max_header_list_size),
                (S_ENABLE_CONNECT_PROTOCOL, int(s.enable_connect_protocol)),
                (S_ENABLE_PUSH, 0),
            )
        )
        self._out.append(_frame(SETTINGS, 0, 0, payload))
        if s.connection_window_size > DEFAULT_WINDOW:
            self._recv_window = self._recv_target = s.connection_window_size
            self._out.append(_frame(WINDOW_UPDATE, 0, 0, _U32.pack(s.connection_window_size - DEFAULT_WINDOW)))
        if upgrade_settings is not None:
            import base64

            try:
                raw = base64.urlsafe_b64decode(upgrade_settings + b"=" * (-len(upgrade_settings) % 4))
            except ValueError:
                raise WireError("Invalid HTTP2-Settings header.", PROTOCOL_ERROR) from None
            self._apply_settings(raw)
            # Stream 1 is the upgraded request, already complete (RFC 7540 3.2).
            stream = self._open(1)
            stream.remote_open = False

    # -- receiving ---------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._preface_seen:
            if len(buffer) < len(PREFACE):
                if not PREFACE.startswith(bytes(buffer)):
                    raise self._error("Invalid connection preface.", PROTOCOL_ERROR)
                return
            if buffer[: len(PREFACE)] != PREFACE:
                raise self._error("Invalid connection preface.", PROTOCOL_ERROR)
            del buffer[: len(PREFACE)]
            self._preface_seen = True
        offset = 0
        size = len(buffer)
        max_frame = self.settings.max_frame_size
        try:
            while size - offset >= 9:
                hi, lo, kind, flags, stream_id = _FRAME_HEADER.unpack_from(buffer, offset)
                length = (hi << 8) | lo
                if length > max_frame:
                    raise self._error(f"A frame of {length} bytes.", FRAME_SIZE_ERROR)
                end = offset + 9 + length
                if end > size:
                    break
                payload = bytes(buffer[offset + 9 : end])
                offset = end
                self._frame(kind, flags, stream_id & 0x7FFFFFFF, payload)
        finally:
            del buffer[:offset]

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self._block is not None and kind != CONTINUATION:
            raise self._error("A frame in the middle of a header block.", PROTOCOL_ERROR)
        if not self._settings_seen:
            if kind != SETTINGS or flags & FLAG_ACK:
                raise self._error("The connection preface must end with SETTINGS.", PROTOCOL_ERROR)
            self._settings_seen = True
        if kind == HEADERS:
            self._headers(flags, stream_id, payload)
        elif kind == DATA:
            self._data(flags, stream_id, payload)
        elif kind == WINDOW_UPDATE:
            self._window_update(stream_id, payload)
        elif kind == CONTINUATION:
            self._continuation(flags, stream_id, payload)
        elif kind == SETTINGS:
            self._settings(flags, stream_id, payload)
        elif kind == PING:
            if stream_id:
                raise self._error("PING on a stream.", PROTOCOL_ERROR)
            if len(payload) != 8:
                raise self._error("PING of the wrong size.", FRAME_SIZE_ERROR)
            if not flags & FLAG_ACK:
                self._out.append(_frame(PING, FLAG_ACK, 0, payload))
                self.events.on_control_frame()
        elif kind == RST_STREAM:
            self._rst_stream(stream_id, payload)
        elif kind == PRIORITY:
            self._priority(stream_id, payload)
        elif kind == GOAWAY:
            if stream_id:
                raise self._error("GOAWAY on a stream.", PROTOCOL_ERROR)
            if len(payload) < 8:
                raise self._error("GOAWAY too short.", FRAME_SIZE_ERROR)
            last, code = _GOAWAY.unpack_from(payload)
            self.events.on_goaway(code, last & 0x7FFFFFFF)
        elif kind == PUSH_PROMISE:
            raise self._error("PUSH_PROMISE from a client.", PROTOCOL_ERROR)
        # Unknown frame types are ignored (RFC 9113 4.1).

    def _unpad(self, flags: int, payload: bytes) -> bytes:
        if flags & FLAG_PADDED:
            if not payload:
                raise self._error("A padded frame without its pad length.", FRAME_SIZE_ERROR)
            pad = payload[0]
            if pad >= len(payload):
                raise self._error("Padding longer than the frame.", PROTOCOL_ERROR)
            return payload[1 : len(payload) - pad]
        return payload

    def _headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise self._error("HEADERS on stream 0.", PROTOCOL_ERROR)
        fragment = self._unpad(flags, payload)
        # A stream that depends on itself is a stream error (RFC 9113 5.3.1);
        # its block is decoded all the same.
        valid = True
        if flags & FLAG_PRIORITY:
            if len(fragment) < 5:
                raise self._error("HEADERS too short for its priority.", FRAME_SIZE_ERROR)
            valid = _U32.unpack_from(fragment)[0] & 0x7FFFFFFF != stream_id
            fragment = fragment[5:]
        end_stream = bool(flags & FLAG_END_STREAM)
        if flags & FLAG_END_HEADERS:
            self._header_block(stream_id, end_stream, valid, fragment)
        else:
            self._block = (stream_id, end_stream, valid, [fragment], 1)

    def _continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        block = self._block
        if block is None or block[0] != stream_id:
            raise self._error("CONTINUATION without a header block to continue.", PROTOCOL_ERROR)
        fragments = block[3]
        fragments.append(payload)
        count = block[4] + 1
        if count > _MAX_BLOCK_FRAMES or sum(map(len, fragments)) > self._block_limit:
            raise self._error("A header block too large.", ENHANCE_YOUR_CALM)
        if flags & FLAG_END_HEADERS:
            self._block = None
            self._header_block(stream_id, block[1], block[2], b"".join(fragments))
        else:
            self._block = (stream_id, block[1], block[2], fragments, count)

    def _decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        try:
            fields = self._decoder.decode(block, raw=True)
        except Exception as exc:
            from hpack.exceptions import HPACKError, OversizedHeaderListError

            if isinstance(exc, OversizedHeaderListError):
                raise self._error("A header list over the limit.", ENHANCE_YOUR_CALM) from None
            if isinstance(exc, HPACKError):
                raise self._error(f"HPACK: {exc}", COMPRESSION_ERROR) from None
            raise
        return fields  # type: ignore[return-value]

    def _request(self, block: bytes) -> H2Request | MalformedRequest:
        """The request a header block makes, or why it is malformed (cached alike)."""
        pure = not block.translate(None, _HIGH_BYTES)
        if pure:
            cached = self._cache.get(block)
            if cached is not None and cached[0] == self._generation:
                return cached[1]
        fields = self._decode(block)
        if not pure:
            self._generation += 1  # the block may have changed the dynamic table
        result: H2Request | MalformedRequest
        try:
            result = parse_request(fields)
        except MalformedRequest as exc:
            result = exc
        if pure:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[block] = (self._generation, result)
        return result

    def _header_block(self, stream_id: int, end_stream: bool, valid: bool, block: bytes) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None:
            # Trailers: they end the request, and carry no pseudo-header fields.
            fields = self._decode(block)
            self._generation += 1
            if not stream.remote_open:
                self._stream_error(stream_id, STREAM_CLOSED)
            elif not end_stream or not valid or any(name[:1] == b":" for name, _ in fields):
                self._stream_error(stream_id, PROTOCOL_ERROR)
            else:
                self.events.on_trailers(stream_id, fields)
                self._remote_end(stream)
            return
        # Decoded whatever comes of it: HPACK state is the connection's.
        request = self._request(block)
        if stream_id <= self.highest_id:
            if stream_id in self._recently_reset:
                return
            raise self._error("HEADERS on a closed stream.", STREAM_CLOSED)
        if stream_id % 2 == 0:
            raise self._error("A client stream with an even id.", PROTOCOL_ERROR)
        self.highest_id = stream_id
        if self._goaway_sent:
            return
        stream = self._open(stream_id)
        if isinstance(request, MalformedRequest) or not valid:
            self._stream_error(stream_id, PROTOCOL_ERROR)
            return
        stream.expected = request.content_length
        self.events.on_request(stream_id, request)
        if end_stream and stream_id in self.streams:
            self._remote_end(stream)

    def _open(self, stream_id: int) -> _Stream:
        stream = _Stream(stream_id, self.settings.initial_window_size, self._peer_initial_window)
        self.streams[stream_id] = stream
        self.highest_id = max(self.highest_id, stream_id)
        return stream

    def _remote_end(self, stream: _Stream) -> None:
        if stream.expected is not None and stream.expected != stream.received:
            self._stream_error(stream.id, PROTOCOL_ERROR)
            return
        stream.remote_open = False
        if not stream.local_open:
            del self.streams[stream.id]
        self.events.on_stream_end(stream.id)

    def _data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise self._error("DATA on stream 0.", PROTOCOL_ERROR)
        size = len(payload)
        self._recv_window -= size
        if self._recv_window < 0:
            raise self._error("DATA beyond the connection window.", FLOW_CONTROL_ERROR)
        # Invalid padding is a connection error whatever the stream's state (RFC 9113 6.1).
        data = self._unpad(flags, payload)
        stream = self.streams.get(stream_id)
        if stream is None or not stream.remote_open:
            if stream is None and stream_id > self.highest_id:
                raise self._error("DATA on an idle stream.", PROTOCOL_ERROR)
            self.ack_data(0, size)  # counted against the connection, then dropped
            if stream is not None or stream_id not in self._recently_reset:
                self._stream_error(stream_id, STREAM_CLOSED)
            return
        stream.recv_window -= size
        if stream.recv_window < 0:
            self.ack_data(0, size)
            self._stream_error(stream_id, FLOW_CONTROL_ERROR)
            return
        end_stream = flags & FLAG_END_STREAM
        if not data and not end_stream:
            self._empty_data += 1
            if self._empty_data > _MAX_EMPTY_DATA:
                raise self._error("Too many empty DATA frames.", ENHANCE_YOUR_CALM)
        stream.received += len(data)
        if stream.expected is not None and stream.received > stream.expected:
            self.ack_data(0, size)
            self._stream_error(stream_id, PROTOCOL_ERROR)
            return
        self.events.on_data(stream_id, data, size)
        if end_stream and stream_id in self.streams:
            self._remote_end(stream)

    def _window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise self._error("WINDOW_UPDATE of the wrong size.", FRAME_SIZE_ERROR)
        increment = _U32.unpack(payload)[0] & 0x7FFFFFFF
        if stream_id == 0:
            if increment == 0:
                raise self._error("WINDOW_UPDATE of 0.", PROTOCOL_ERROR)
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                raise self._error("The connection window overflowed.", FLOW_CONTROL_ERROR)
            self.events.on_window_open(0)
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self.highest_id:
                raise self._error("WINDOW_UPDATE on an idle stream.", PROTOCOL_ERROR)
            return  # a closed stream: frames in flight are allowed
        if increment == 0:
            self._stream_error(stream_id, PROTOCOL_ERROR)
            return
        stream.send_window += increment
        if stream.send_window > MAX_WINDOW:
            self._stream_error(stream_id, FLOW_CONTROL_ERROR)
            return
        self.events.on_window_open(stream_id)

    def _settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id:
            raise self._error("SETTINGS on a stream.", PROTOCOL_ERROR)
        if flags & FLAG_ACK:
            if payload:
                raise self._error("A SETTINGS acknowledgement with a payload.", FRAME_SIZE_ERROR)
            return
        if len(payload) % 6:
            raise self._error("SETTINGS of the wrong size.", FRAME_SIZE_ERROR)
        opened = self._apply_settings(payload)
        self._out.append(_frame(SETTINGS, FLAG_ACK, 0))
        self.events.on_control_frame()
        if opened:
            # After the acknowledgement: a client may count on a larger window only once it has it.
            self.events.on_window_open(0)

    def _apply_settings(self, payload: bytes) -> bool:
        """Apply the peer's settings; whether they opened the stream windows."""
        opened = False
        for offset in range(0, len(payload) - len(payload) % 6, 6):
            code, value = _SETTING.unpack_from(payload, offset)
            if code == S_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise self._error("SETTINGS_INITIAL_WINDOW_SIZE too large.", FLOW_CONTROL_ERROR)
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                for stream in self.streams.values():
                    stream.send_window += delta
                    if stream.send_window > MAX_WINDOW:
                        raise self._error("A stream window overflowed.", FLOW_CONTROL_ERROR)
                opened = opened or delta > 0
            elif code == S_MAX_FRAME_SIZE:
                if not 16384 <= value <= 16777215:
                    raise self._error("SETTINGS_MAX_FRAME_SIZE out of range.", PROTOCOL_ERROR)
                self._peer_max_frame = value
            elif code == S_ENABLE_PUSH:
                if value > 1:
                    raise self._error("SETTINGS_ENABLE_PUSH not 0 or 1.", PROTOCOL_ERROR)
            elif code == S_ENABLE_CONNECT_PROTOCOL:
                if value > 1:
                    raise self._error("SETTINGS_ENABLE_CONNECT_PROTOCOL not 0 or 1.", PROTOCOL_ERROR)
            # HEADER_TABLE_SIZE: our encoder uses no dynamic table, any size suits it.
        return opened

    def _rst_stream(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise self._error("RST_STREAM of the wrong size.", FRAME_SIZE_ERROR)
        if stream_id == 0:
            raise self._error("RST_STREAM on stream 0.", PROTOCOL_ERROR)
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            if stream_id > self.highest_id:
                raise self._error("RST_STREAM on an idle stream.", PROTOCOL_ERROR)
            return
        self.events.on_reset(stream_id, _U32.unpack(payload)[0], True)

    def _priority(self, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise self._error("PRIORITY on stream 0.", PROTOCOL_ERROR)
        if len(payload) != 5:
            self._stream_error(stream_id, FRAME_SIZE_ERROR)
            return
        if _U32.unpack_from(payload)[0] & 0x7FFFFFFF == stream_id:
            self._stream_error(stream_id, PROTOCOL_ERROR)

    # -- errors ----------------------------------------------------------------------------

    def _error(self, message: str, code: int) -> WireError:
        """A connection error: queue the GOAWAY, and give the exception to raise."""
        if not self._goaway_sent:
            self.goaway(code, self.highest_id)
        return WireError(message, code)

    def _stream_error(self, stream_id: int, code: int) -> None:
        """A stream error (RFC 9113 5.4.2): reset the stream; the connection goes on."""
        self.reset_stream(stream_id, code)
        self.events.on_reset(stream_id, code, False)

    # -- sending -----------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        data = b"".join(out) if len(out) > 1 else out[0]
        out.clear()
        return data

    def send_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        block = encode_headers(headers)
        flags = FLAG_END_STREAM if end_stream else 0
        limit = self._peer_max_frame
        if len(block) <= limit:
            self._out.append(_frame(HEADERS, flags | FLAG_END_HEADERS, stream_id, block))
        else:
            self._out.append(_frame(HEADERS, flags, stream_id, block[:limit]))
            rest = block[limit:]
            while rest:
                chunk, rest = rest[:limit], rest[limit:]
                self._out.append(_frame(CONTINUATION, 0 if rest else FLAG_END_HEADERS, stream_id, chunk))
        if end_stream:
            self._local_end(stream_id)

    def send_window(self, stream_id: int) -> int:
        stream = self.streams.get(stream_id)
        if stream is None or not stream.local_open:
            return 0
        window = min(self._send_window, stream.send_window)
        return window if window > 0 else 0

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or not stream.local_open:
            return
        size = len(data)
        self._send_window -= size
        stream.send_window -= size
        limit = self._peer_max_frame
        out = self._out
        if size <= limit:
            out.append(_frame(DATA, FLAG_END_STREAM if end_stream else 0, stream_id, bytes(data)))
        else:
            view = memoryview(data)
            for start in range(0, size, limit):
                last = start + limit >= size
                flags = FLAG_END_STREAM if end_stream and last else 0
                out.append(_frame(DATA, flags, stream_id, view[start : start + limit].tobytes()))
        if end_stream:
            self._local_end(stream_id)

    def _local_end(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.local_open = False
            if not stream.remote_open:
                del self.streams[stream_id]

    def ack_data(self, stream_id: int, size: int) -> None:
        if size <= 0:
            return
        # The connection window reopens by every byte handed back; a
        # stream's only while the client may still send on it.  Updates
        # wait until half the window is used, to send few frames.
        self._recv_unacked += size
        if self._recv_unacked >= self._recv_target // 2:
            self._recv_window += self._recv_unacked
            self._out.append(_frame(WINDOW_UPDATE, 0, 0, _U32.pack(self._recv_unacked)))
            self._recv_unacked = 0
        stream = self.streams.get(stream_id) if stream_id else None
        if stream is not None and stream.remote_open:
            stream.recv_unacked += size
            if stream.recv_unacked >= self.settings.initial_window_size // 2:
                stream.recv_window += stream.recv_unacked
                self._out.append(_frame(WINDOW_UPDATE, 0, stream_id, _U32.pack(stream.recv_unacked)))
                stream.recv_unacked = 0

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        self.streams.pop(stream_id, None)
        recent = self._recently_reset
        recent[stream_id] = None
        if len(recent) > _RESET_MEMORY:
            recent.popitem(last=False)
        self._out.append(_frame(RST_STREAM, 0, stream_id, _U32.pack(error_code)))

    def goaway(self, error_code: int, last_stream_id: int) -> None:
        self._goaway_sent = True
        self._out.append(_frame(GOAWAY, 0, 0, _GOAWAY.pack(last_stream_id, error_code)))

    def is_closed(self, stream_id: int) -> bool:
        return stream_id not in self.streams


__all__ = ["NO_ERROR", "SquallWire", "encode_headers"]
