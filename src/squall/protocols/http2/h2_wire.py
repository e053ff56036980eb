"""The HTTP/2 wire layer over the h2 library (the reference implementation).

h2 does framing, HPACK, the stream states and flow control; this adapter
turns its events into `H2Events` calls and keeps two decisions for the
connection that h2 would otherwise take itself:

- the concurrent stream limit: h2 answers one stream too many with a
  connection error, where RFC 9113 5.1.2 allows a stream error; the
  connection refuses the stream with REFUSED_STREAM and serves the others;
- resets h2 sends on its own for a peer's stream-level error are reported
  (`by_peer=False`), so that they count against the reset budget too;
- a GOAWAY, sent or received, closes h2's connection state machine, after
  which not even the responses of the streams in progress could be sent:
  a graceful GOAWAY (NO_ERROR) is written beside h2, and one received is
  only reported, so that those streams finish (RFC 9113 6.8);
- h2 checks a frame's length against SETTINGS_MAX_FRAME_SIZE only once the
  whole frame has arrived, buffering up to 16 MiB for a client that
  announces a frame that long: `FrameHeaderGuard` reads the frame headers
  as they arrive and refuses such a frame from its header (RFC 9113 4.2),
  and a SETTINGS acknowledgement with a payload as FRAME_SIZE_ERROR (6.5);
- a field block that cannot be decoded is a COMPRESSION_ERROR (RFC 9113
  4.3), where h2 says PROTOCOL_ERROR.
"""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack
from hyperframe.frame import GoAwayFrame

from squall.protocols.http2.request import MalformedRequest, parse_request
from squall.protocols.http2.wire import FRAME_SIZE_ERROR, NO_ERROR, PROTOCOL_ERROR, H2Events, H2Settings, WireError

PREFACE_SIZE = 24  # b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", which every connection starts with
FRAME_HEADER_SIZE = 9
SETTINGS_TYPE = 0x4
ACK_FLAG = 0x1


class FrameHeaderGuard:
    """Follows the frame headers in the bytes a client sends, to refuse at once a frame its header shows wrong."""

    __slots__ = ("limit", "_skip", "_head")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # Bytes still to come of the frame being received (at first: the preface).
        self._skip = PREFACE_SIZE
        # The start of a frame header split between two reads.
        self._head = b""

    def error(self, data: bytes) -> WireError | None:
        """The connection error for a frame whose header is in `data`, if its header alone makes one."""
        size = len(data)
        pos = self._skip
        head = self._head
        while pos < size:
            if head or pos + FRAME_HEADER_SIZE > size:
                taken = FRAME_HEADER_SIZE - len(head)
                head += data[pos : pos + taken]
                if len(head) < FRAME_HEADER_SIZE:
                    self._skip = 0
                    self._head = head
                    return None
                pos += taken
                header, head = head, b""
            else:
                header = data[pos : pos + 5]
                pos += FRAME_HEADER_SIZE
            length = int.from_bytes(header[:3], "big")
            if length > self.limit:
                return WireError(f"A frame of {length} bytes, over SETTINGS_MAX_FRAME_SIZE.", FRAME_SIZE_ERROR)
            if length and header[3] == SETTINGS_TYPE and header[4] & ACK_FLAG:
                # RFC 9113 6.5 (h2 would say PROTOCOL_ERROR).
                return WireError("A SETTINGS acknowledgement with a payload.", FRAME_SIZE_ERROR)
            pos += length
        self._skip = pos - size
        self._head = b""
        return None


# What h2 wraps in a ProtocolError when a field block cannot be decoded.
_DECODING_ERRORS = (hpack.HPACKError, IndexError, TypeError, UnicodeDecodeError)


class _Connection(h2.connection.H2Connection):
    @property
    def open_inbound_streams(self) -> int:
        # The connection enforces the limit, as stream errors; this also
        # spares h2 counting its open streams on every HEADERS frame.
        return 0

    def _receive_headers_frame(self, frame: Any) -> Any:
        try:
            return super()._receive_headers_frame(frame)
        except h2.exceptions.ProtocolError as exc:
            # h2 reports a field block it cannot decode as PROTOCOL_ERROR;
            # RFC 9113 4.3 makes that a COMPRESSION_ERROR (a too large one stays ENHANCE_YOUR_CALM).
            if isinstance(exc.__cause__, _DECODING_ERRORS) and not isinstance(exc, h2.exceptions.DenialOfServiceError):
                exc.error_code = h2.errors.ErrorCodes.COMPRESSION_ERROR
            raise

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list, list]:  # type: ignore[override]
        # h2 would close its state machine and drop what it had queued.
        event = h2.events.ConnectionTerminated()
        event.error_code = frame.error_code  # type: ignore[assignment]
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]


class H2LibWire:
    def __init__(self, events: H2Events, settings: H2Settings) -> None:
        self.events = events
        self.settings = settings
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=True,
            normalize_inbound_headers=False,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self.h2 = _Connection(config=config)
        codes = h2.settings.SettingCodes
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                codes.MAX_CONCURRENT_STREAMS: settings.max_concurrent_streams,
                codes.INITIAL_WINDOW_SIZE: settings.initial_window_size,
                codes.MAX_FRAME_SIZE: settings.max_frame_size,
                codes.MAX_HEADER_LIST_SIZE: settings.max_header_list_size,
                codes.ENABLE_CONNECT_PROTOCOL: int(settings.enable_connect_protocol),
            },
        )
        # Made from the defaults before our settings replaced them.
        self.h2.max_inbound_frame_size = settings.max_frame_size
        self.h2.decoder.max_header_list_size = settings.max_header_list_size
        # Frames queued beside h2 (a graceful GOAWAY), with what h2 had queued before them.
        self._queued = b""
        self._frame_headers = FrameHeaderGuard(settings.max_frame_size)

    def initiate(self, upgrade_settings: bytes | None = None) -> None:
        if upgrade_settings is None:
            self.h2.initiate_connection()
        else:
            self.h2.initiate_upgrade_connection(upgrade_settings)
        extra = self.settings.connection_window_size - 65535
        if extra > 0:
            self.h2.increment_flow_control_window(extra)

    def receive(self, data: bytes) -> None:
        error = self._frame_headers.error(data)
        if error is not None:
            self.h2.close_connection(error.code)
            raise error
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            # h2 has queued the GOAWAY already.
            raise WireError(str(exc) or type(exc).__name__, int(getattr(exc, "error_code", 1))) from None
        handler = self.events
        for event in events:
            kind = type(event)
            if kind is h2.events.RequestReceived:
                try:
                    request = parse_request(event.headers)  # type: ignore[attr-defined]
                except MalformedRequest:
                    self.reset_stream(event.stream_id, PROTOCOL_ERROR)  # type: ignore[attr-defined]
                    handler.on_reset(event.stream_id, PROTOCOL_ERROR, False)  # type: ignore[attr-defined]
                    continue
                handler.on_request(event.stream_id, request)  # type: ignore[attr-defined]
            elif kind is h2.events.DataReceived:
                handler.on_data(event.stream_id, event.data, event.flow_controlled_length)  # type: ignore[attr-defined]
            elif kind is h2.events.StreamEnded:
                handler.on_stream_end(event.stream_id)  # type: ignore[attr-defined]
            elif kind is h2.events.TrailersReceived:
                handler.on_trailers(event.stream_id, event.headers)  # type: ignore[attr-defined]
            elif kind is h2.events.StreamReset:
                handler.on_reset(event.stream_id, int(event.error_code), event.remote_reset)  # type: ignore[attr-defined]
            elif kind is h2.events.WindowUpdated:
                handler.on_window_open(event.stream_id)  # type: ignore[attr-defined]
            elif kind is h2.events.RemoteSettingsChanged:
                handler.on_control_frame()
                handler.on_window_open(0)
            elif kind is h2.events.PingReceived or kind is h2.events.SettingsAcknowledged:
                handler.on_control_frame()
            elif kind is h2.events.ConnectionTerminated:
                handler.on_goaway(int(event.error_code), event.last_stream_id or 0)  # type: ignore[attr-defined]

    def data_to_send(self) -> bytes:
        if self._queued:
            data, self._queued = self._queued + self.h2.data_to_send(), b""
            return data
        return self.h2.data_to_send()

    def send_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        self.h2.send_headers(stream_id, headers, end_stream=end_stream)

    def send_window(self, stream_id: int) -> int:
        try:
            return self.h2.local_flow_control_window(stream_id)
        except h2.exceptions.StreamClosedError:
            return 0

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        conn = self.h2
        size = conn.max_outbound_frame_size
        view = memoryview(data)
        while len(view) > size:
            conn.send_data(stream_id, view[:size].tobytes())
            view = view[size:]
        conn.send_data(stream_id, view.tobytes() if len(view) != len(data) else data, end_stream=end_stream)

    def ack_data(self, stream_id: int, size: int) -> None:
        if size:
            self.h2.acknowledge_received_data(size, stream_id)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        try:
            self.h2.reset_stream(stream_id, error_code)
        except h2.exceptions.ProtocolError:
            pass  # the stream is closed already, or the connection (after our GOAWAY for an error)

    def goaway(self, error_code: int, last_stream_id: int) -> None:
        if error_code == NO_ERROR:
            frame = GoAwayFrame(0, last_stream_id=last_stream_id, error_code=NO_ERROR)
            self._queued += self.h2.data_to_send() + frame.serialize()
        else:
            self.h2.close_connection(error_code, last_stream_id=last_stream_id)

    def is_closed(self, stream_id: int) -> bool:
        stream = self.h2.streams.get(stream_id)
        return stream is None or stream.closed
