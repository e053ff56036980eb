"""The HTTP/2 wire layer's interface: frames in, events out; calls in, frames out.

A wire layer holds no I/O: `receive(data)` parses bytes and reports what
they meant through an `H2Events` object (the connection), and the sending
calls queue frames that `data_to_send()` hands over.  Frame parsing,
HPACK, the stream state machine, SETTINGS, PING and flow-control windows
are its business; everything about ASGI is the connection's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from squall.protocols.http2.request import H2Request

# RFC 9113 section 7.
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB


class WireError(Exception):
    """The peer broke the protocol: the connection is over (a GOAWAY with `code` is queued)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class H2Settings:
    """What we tell the peer it may send us (the options of the same names)."""

    max_concurrent_streams: int = 100
    initial_window_size: int = 256 * 1024
    connection_window_size: int = 1024 * 1024
    max_frame_size: int = 16384
    max_header_list_size: int = 65536
    # RFC 8441 extended CONNECT (WebSockets over HTTP/2): announced only once it is served.  A
    # browser told it may use it does, and does not fall back to HTTP/1.1 when it is refused.
    enable_connect_protocol: bool = False


class H2Events:
    """What a wire layer reports; the connection implements it."""

    def on_request(self, stream_id: int, request: H2Request) -> None:
        """A valid request head; a malformed one was reset by the wire (and reported with `on_reset`)."""

    def on_data(self, stream_id: int, data: bytes, flow_controlled_length: int) -> None:
        """Request body bytes; the window reopens only as `ack_data` is called."""

    def on_trailers(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        """Request trailers (the request ends with them)."""

    def on_stream_end(self, stream_id: int) -> None:
        """The client's half of the stream is complete."""

    def on_reset(self, stream_id: int, error_code: int, by_peer: bool) -> None:
        """The stream was reset: by the peer (RST_STREAM), or by the wire layer for the peer's error."""

    def on_window_open(self, stream_id: int) -> None:
        """More may be sent on `stream_id` (0: every stream: the connection's window or settings changed)."""

    def on_goaway(self, error_code: int, last_stream_id: int) -> None:
        """The peer is going away."""

    def on_control_frame(self) -> None:
        """A PING or SETTINGS frame, which the wire answers by itself."""


class H2Wire:
    """A server-side HTTP/2 wire layer (see `h2_wire.H2LibWire`)."""

    def __init__(self, events: H2Events, settings: H2Settings) -> None:
        raise NotImplementedError

    def initiate(self, upgrade_settings: bytes | None = None) -> None:
        """Queue our preface; after an h2c upgrade, take the client's HTTP2-Settings and open stream 1."""
        raise NotImplementedError

    def receive(self, data: bytes) -> None:
        """Parse `data`, reporting events; raises WireError for a connection error."""
        raise NotImplementedError

    def data_to_send(self) -> bytes:
        raise NotImplementedError

    def send_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        raise NotImplementedError

    def send_window(self, stream_id: int) -> int:
        """How many body bytes may go out on `stream_id` now."""
        raise NotImplementedError

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Queue `data` (at most `send_window` bytes), split into frames as needed."""
        raise NotImplementedError

    def ack_data(self, stream_id: int, size: int) -> None:
        """`size` flow-controlled bytes of `stream_id` were consumed: reopen the windows."""
        raise NotImplementedError

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        raise NotImplementedError

    def goaway(self, error_code: int, last_stream_id: int) -> None:
        raise NotImplementedError

    def is_closed(self, stream_id: int) -> bool:
        """Whether the wire considers the stream closed (both halves, or reset)."""
        raise NotImplementedError
