"""HTTP/2 clients for the tests, over real sockets.

`H2Client` is a well-behaved client on the h2 library (its client side):
requests, bodies, resets and flow control as a conforming client does them,
with what the server sent collected per stream.

`FrameClient` writes frames exactly as a test builds them (hyperframe for
the framing, hpack for header blocks) and reads the server's frames one by
one: for malformed input and attacks that a conforming library refuses to
produce, and for asserting on the exact frames the server answers with.

Both are blocking and single-threaded; every read has a deadline.
"""

from __future__ import annotations

import base64
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

T = TypeVar("T")

DEADLINE = 5.0
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# The largest window a client may announce (RFC 9113 6.9.1).
MAX_WINDOW = 2**31 - 1

# RFC 9113 section 7.
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
ENHANCE_YOUR_CALM = 0xB

Headers = list[tuple[bytes, bytes]]


def request_headers(
    method: str = "GET", path: str = "/", *, authority: str | None = "127.0.0.1", scheme: str = "http", extra: Iterable[tuple[str | bytes, str | bytes]] = ()
) -> Headers:
    """A request's field list: pseudo-headers first, then `extra` as given."""
    fields: Headers = [(b":method", method.encode()), (b":scheme", scheme.encode()), (b":path", path.encode())]
    if authority is not None:
        fields.insert(1, (b":authority", authority.encode()))
    fields.extend((_b(name), _b(value)) for name, value in extra)
    return fields


def _b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def wait(predicate: Callable[[], T], pump: Callable[[float], Any], timeout: float, what: str) -> T:
    """Read (with `pump`) until `predicate()` is truthy; return its value (fail if the connection closes first)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        if not pump(min(remaining, 0.5)):
            result = predicate()
            if result:
                return result
            raise AssertionError(f"the connection closed while waiting for {what}")


# -- a conforming client --------------------------------------------------------------


@dataclass
class StreamResult:
    """What the server sent on one stream."""

    stream_id: int
    informational: list[Headers] = field(default_factory=list)
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    trailers: Headers | None = None
    data_frames: int = 0
    ended: bool = False
    reset: int | None = None

    @property
    def status(self) -> int:
        return int(dict(self.headers)[b":status"])

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None

    def header(self, name: str) -> str | None:
        values = self.header_all(name)
        assert len(values) <= 1, f"{name!r} appears {len(values)} times: {values}"
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        key = name.lower().encode()
        return [value.decode("latin-1") for field_name, value in self.headers if field_name == key]


class H2Client:
    """A conforming HTTP/2 client on one socket (cleartext prior knowledge, TLS with ALPN, or h2c upgrade)."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        window: int = MAX_WINDOW,
        auto_ack: bool = True,
        settings: dict[int, int] | None = None,
        upgrade_path: str | None = None,
        authority: str = "127.0.0.1",
        trickle: bool = False,
    ) -> None:
        self.sock = sock
        self.auto_ack = auto_ack
        self.authority = authority
        self.scheme = "https" if isinstance(sock, ssl.SSLSocket) else "http"
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        local = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window, h2.settings.SettingCodes.ENABLE_PUSH: 0}
        local.update(settings or {})
        self.conn.local_settings = h2.settings.Settings(client=True, initial_values=local)
        self.streams: dict[int, StreamResult] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.pings_acked = 0
        self.settings_received = False
        self.closed = False
        self.upgrade_response = b""
        if upgrade_path is None:
            self.conn.initiate_connection()
        else:
            self._upgrade(upgrade_path)
        if window > 65535 and auto_ack:
            self.conn.increment_flow_control_window(window - 65535)
        if trickle:
            # The preface and first frames one byte per segment: the server must reassemble them.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            data = self.conn.data_to_send()
            for i in range(len(data)):
                sock.send(data[i : i + 1])
        self.flush()
        # The server's SETTINGS (and the window it opens with them) before anything else.
        self.wait(lambda: self.settings_received, what="the server's SETTINGS")

    @classmethod
    def connect(cls, port: int, *, ssl_context: ssl.SSLContext | None = None, timeout: float = DEADLINE, **options: Any) -> H2Client:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(sock, server_hostname="127.0.0.1")
        return cls(sock, **options)

    def _upgrade(self, path: str) -> None:
        """RFC 7540 3.2: an HTTP/1.1 GET with Upgrade: h2c; the response comes on stream 1."""
        settings = self.conn.initiate_upgrade_connection()
        assert settings is not None
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {self.authority}\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            f"Upgrade: h2c\r\nHTTP2-Settings: {settings.decode()}\r\n\r\n"
        ).encode()
        self.sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"the server closed the connection during the upgrade: {head!r}")
            head += chunk
        self.upgrade_response, _, rest = head.partition(b"\r\n\r\n")
        if not self.upgrade_response.startswith(b"HTTP/1.1 101 "):
            raise AssertionError(f"no 101 to an h2c upgrade: {head!r}")
        self.streams[1] = StreamResult(1)
        if rest:
            self._receive(rest)

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    # -- sending --------------------------------------------------------------------

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.closed:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def request(
        self,
        method: str = "GET",
        path: str = "/",
        headers: Iterable[tuple[str | bytes, str | bytes]] = (),
        body: bytes | None = None,
        *,
        end_stream: bool = True,
    ) -> int:
        """Open a stream; return its id. With `end_stream=False` and no body, the body follows with `send_body`."""
        stream_id = self.conn.get_next_available_stream_id()
        fields = request_headers(method, path, authority=self.authority, scheme=self.scheme, extra=headers)
        self.streams[stream_id] = StreamResult(stream_id)
        self.conn.send_headers(stream_id, fields, end_stream=end_stream and not body)
        if body:
            self.flush()
            self.send_body(stream_id, body, end_stream=end_stream)
        self.flush()
        return stream_id

    def send_body(self, stream_id: int, data: bytes, *, end_stream: bool = True, timeout: float = DEADLINE) -> None:
        """Send `data`, waiting for the server's windows as needed."""
        view = memoryview(data)
        while True:
            window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            if window >= len(view):
                self.conn.send_data(stream_id, view.tobytes(), end_stream=end_stream)
                self.flush()
                return
            if window > 0:
                self.conn.send_data(stream_id, view[:window].tobytes())
                view = view[window:]
                self.flush()
                continue
            before = self.conn.local_flow_control_window(stream_id)
            opened = lambda before=before: self.conn.local_flow_control_window(stream_id) > before or self.streams[stream_id].done  # noqa: E731
            wait(opened, self.pump, timeout, "a WINDOW_UPDATE")
            if self.streams[stream_id].done:
                return

    def send_some(self, stream_id: int, data: bytes) -> int:
        """Send what the windows allow of `data` now, without waiting; how many bytes that was."""
        sent = 0
        while sent < len(data):
            size = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size, len(data) - sent)
            if size <= 0:
                break
            self.conn.send_data(stream_id, data[sent : sent + size])
            sent += size
        self.flush()
        return sent

    def reset(self, stream_id: int, code: int = CANCEL) -> None:
        self.conn.reset_stream(stream_id, code)
        self.flush()

    def ping(self) -> None:
        self.conn.ping(b"squall!!")
        self.flush()

    def ack(self, stream_id: int, size: int) -> None:
        """Open the windows by `size` (for a client created with auto_ack=False)."""
        self.conn.acknowledge_received_data(size, stream_id)
        self.flush()

    # -- receiving -------------------------------------------------------------------

    def pump(self, timeout: float = DEADLINE) -> bool:
        """Read once (waiting up to `timeout`) and handle what came; False once the connection is closed."""
        if self.closed:
            return False
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, socket.timeout):
            return True
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return False
        self._receive(data)
        return True

    def _receive(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            raise AssertionError(f"the server broke the protocol: {exc!r}") from None
        for event in events:
            self._handle(event)
        self.flush()

    def _handle(self, event: h2.events.Event) -> None:
        stream_id = getattr(event, "stream_id", 0)
        result = self.streams.get(stream_id) if stream_id else None
        if isinstance(event, h2.events.InformationalResponseReceived):
            assert result is not None
            result.informational.append(event.headers)
        elif isinstance(event, h2.events.ResponseReceived):
            assert result is not None
            result.headers = event.headers
        elif isinstance(event, h2.events.DataReceived):
            assert result is not None
            result.body += event.data
            result.data_frames += 1
            if self.auto_ack and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            assert result is not None
            result.trailers = event.headers
        elif isinstance(event, h2.events.StreamEnded):
            assert result is not None
            result.ended = True
        elif isinstance(event, h2.events.StreamReset):
            if result is not None:
                result.reset = int(event.error_code)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_received = True
        elif isinstance(event, h2.events.PingAckReceived):
            self.pings_acked += 1

    def wait(self, predicate: Callable[[], T], timeout: float = DEADLINE, what: str = "the condition") -> T:
        return wait(predicate, self.pump, timeout, what)

    def response(self, stream_id: int, timeout: float = DEADLINE) -> StreamResult:
        """Wait until the stream ended or was reset."""
        result = self.streams[stream_id]
        return self.wait(lambda: result if result.done else None, timeout, f"the response on stream {stream_id}")

    def get(self, path: str = "/", headers: Iterable[tuple[str | bytes, str | bytes]] = (), *, method: str = "GET", body: bytes | None = None, timeout: float = DEADLINE) -> StreamResult:
        return self.response(self.request(method, path, headers, body), timeout)

    def wait_goaway(self, timeout: float = DEADLINE) -> h2.events.ConnectionTerminated:
        return self.wait(lambda: self.goaway, timeout, "a GOAWAY")


# -- frames as the test writes them --------------------------------------------------------


class FrameClient:
    """A client that sends frames exactly as built, and reads the server's frames one by one.

    Header blocks the server sends are decoded into `frame.fields` (on the
    HEADERS frame, or the CONTINUATION that ends the block).  The server's
    SETTINGS are acknowledged unless `ack_settings=False`.
    """

    def __init__(self, sock: socket.socket, *, ack_settings: bool = True) -> None:
        self.sock = sock
        self.ack_settings = ack_settings
        self.encoder = Encoder()
        self.decoder = Decoder(max_header_list_size=1 << 24)
        self.frames: list[Frame] = []
        self.closed = False
        # The server reset the connection (a close with our data unread does that).
        self.reset_by_peer = False
        self._buffer = b""
        self._unsent = b""
        self._block = b""

    @classmethod
    def connect(
        cls,
        port: int,
        *,
        settings: dict[int, int] | None = None,
        window: int = MAX_WINDOW,
        preface: bool = True,
        timeout: float = DEADLINE,
        **options: Any,
    ) -> FrameClient:
        """Connect and, with `preface`, send the preface, SETTINGS, and a connection WINDOW_UPDATE up to `window`."""
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delay between a test's small writes
        client = cls(sock, **options)
        if preface:
            own = {SettingsFrame.INITIAL_WINDOW_SIZE: window, SettingsFrame.ENABLE_PUSH: 0}
            own.update(settings or {})
            frames: list[Frame] = [SettingsFrame(0, settings=own)]
            if window > 65535:
                frames.append(WindowUpdateFrame(0, window_increment=window - 65535))
            client.send(PREFACE, *frames)
        return client

    def __enter__(self) -> FrameClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    # -- building and sending ----------------------------------------------------------

    def block(self, fields: Headers) -> bytes:
        """A header block, encoded with this connection's HPACK context."""
        return self.encoder.encode(fields)

    def headers(self, stream_id: int, fields: Headers, *, end_stream: bool = True, end_headers: bool = True) -> HeadersFrame:
        flags = (["END_STREAM"] if end_stream else []) + (["END_HEADERS"] if end_headers else [])
        return HeadersFrame(stream_id, data=self.block(fields), flags=flags)

    def request(self, stream_id: int, path: str = "/", *, method: str = "GET", extra: Iterable[tuple[str | bytes, str | bytes]] = (), end_stream: bool = True) -> None:
        self.send(self.headers(stream_id, request_headers(method, path, extra=extra), end_stream=end_stream))

    def send(self, *items: Frame | bytes) -> None:
        data = b"".join(item if isinstance(item, bytes) else item.serialize() for item in items)
        self.sock.sendall(data)

    def flood(self, data: bytes, timeout: float) -> int:
        """Send what the socket takes of `data` within `timeout`; the rest goes first next time.

        For floods: the bytes sent (0 if the socket stayed full), and frames are
        never cut short as a timed-out `sendall` would cut them.
        """
        if not self._unsent:
            self._unsent = data
        if not select.select([], [self.sock], [], timeout)[1]:
            return 0
        sent = self.sock.send(self._unsent)
        self._unsent = self._unsent[sent:]
        return sent

    def try_send(self, *items: Frame | bytes) -> bool:
        """Send unless the server has closed the connection; whether it was sent (what it sent before may still be read)."""
        try:
            self.send(*items)
            return True
        except ConnectionResetError:
            self.reset_by_peer = True
            return False
        except OSError:
            return False

    # -- reading -------------------------------------------------------------------------

    def pump(self, timeout: float = DEADLINE) -> bool:
        """Read once and parse whole frames; False once the server closed the connection."""
        if self.closed:
            return False
        # select, not a socket timeout: that would also apply to the sends.
        if not select.select([self.sock], [], [], timeout)[0]:
            return True
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            self.reset_by_peer = True
            data = b""
        if not data:
            self.closed = True
            return False
        self._buffer += data
        while len(self._buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self._buffer[:9]))
            if len(self._buffer) < 9 + length:
                break
            frame.parse_body(memoryview(self._buffer[9 : 9 + length]))
            self._buffer = self._buffer[9 + length :]
            self._on_frame(frame)
        return True

    def _on_frame(self, frame: Frame) -> None:
        if isinstance(frame, (HeadersFrame, ContinuationFrame)):
            self._block += frame.data
            if "END_HEADERS" in frame.flags:
                frame.fields = list(self.decoder.decode(self._block, raw=True))  # type: ignore[attr-defined]
                self._block = b""
        elif isinstance(frame, SettingsFrame) and "ACK" not in frame.flags and self.ack_settings:
            self.try_send(SettingsFrame(0, flags=["ACK"]))
        self.frames.append(frame)

    def wait(self, predicate: Callable[[], T], timeout: float = DEADLINE, what: str = "the condition") -> T:
        return wait(predicate, self.pump, timeout, what)

    def wait_frame(self, kind: type[Frame], stream_id: int | None = None, timeout: float = DEADLINE, start: int = 0) -> Any:
        """The first frame of `kind` (on `stream_id`, if given) received, from index `start` on."""

        def found() -> Frame | None:
            for frame in self.frames[start:]:
                if isinstance(frame, kind) and (stream_id is None or frame.stream_id == stream_id):
                    return frame
            return None

        return self.wait(found, timeout, f"a {kind.__name__} on stream {stream_id}")

    def wait_goaway(self, timeout: float = DEADLINE) -> GoAwayFrame:
        return self.wait_frame(GoAwayFrame, 0, timeout)

    def goaway_or_reset(self, timeout: float = DEADLINE) -> int | None:
        """The error code of the server's GOAWAY, or None if it reset the connection before one arrived.

        A server that closes a connection whose client is still sending makes
        the kernel send a reset, which can destroy the GOAWAY in transit.
        """

        def seen() -> bool:
            return self.closed or any(isinstance(frame, GoAwayFrame) for frame in self.frames)

        self.wait(seen, timeout, "a GOAWAY or a reset")
        goaway = next((frame for frame in self.frames if isinstance(frame, GoAwayFrame)), None)
        if goaway is not None:
            return goaway.error_code
        assert self.reset_by_peer, "the server closed the connection without a GOAWAY"
        return None

    def wait_closed(self, timeout: float = DEADLINE) -> None:
        """Read until the server closes the connection."""
        self.wait(lambda: self.closed, timeout, "the server to close the connection")

    def stream_frames(self, stream_id: int) -> list[Frame]:
        return [frame for frame in self.frames if frame.stream_id == stream_id]

    def response(self, stream_id: int, timeout: float = DEADLINE) -> StreamResult:
        """Wait for the stream to end or be reset; what came on it, as a StreamResult."""

        def done() -> StreamResult | None:
            result = StreamResult(stream_id)
            for frame in self.stream_frames(stream_id):
                if isinstance(frame, (HeadersFrame, ContinuationFrame)) and hasattr(frame, "fields"):
                    fields = frame.fields
                    if result.headers:
                        result.trailers = fields
                    elif int(dict(fields)[b":status"]) < 200:
                        result.informational.append(fields)
                    else:
                        result.headers = fields
                elif isinstance(frame, DataFrame):
                    result.body += frame.data
                    result.data_frames += 1
                elif isinstance(frame, RstStreamFrame):
                    result.reset = frame.error_code
                if "END_STREAM" in frame.flags:
                    result.ended = True
            return result if result.done else None

        return self.wait(done, timeout, f"the end of stream {stream_id}")

    def rst_codes(self) -> dict[int, int]:
        return {frame.stream_id: frame.error_code for frame in self.frames if isinstance(frame, RstStreamFrame)}


def client_ssl(ca: Any, alpn: list[str] | None) -> ssl.SSLContext:
    """A client context trusting the trustme `ca` and offering `alpn` (None: no ALPN extension at all)."""
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    return ctx


def upgrade_settings_header(settings: dict[int, int]) -> str:
    """The HTTP2-Settings value for `settings` (RFC 7540 3.2.1: a SETTINGS payload, base64url)."""
    payload = SettingsFrame(0, settings=settings).serialize_body()
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


class RawFrames:
    """Frames read off a socket one by one, with deadlines."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buffer = b""

    def next(self, timeout: float = DEADLINE) -> Frame | None:
        """The next frame, or None once the server closed the connection."""
        self.sock.settimeout(timeout)
        while True:
            if len(self.buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
                if len(self.buffer) >= 9 + length:
                    frame.parse_body(memoryview(self.buffer[9 : 9 + length]))
                    self.buffer = self.buffer[9 + length :]
                    return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk

    def wait(self, predicate: Any) -> Any:
        while True:
            frame = self.next()
            assert frame is not None, "the connection closed first"
            if predicate(frame):
                return frame

    def wait_closed(self) -> None:
        while self.next() is not None:
            pass
