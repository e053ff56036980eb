"""An HTTP/2 connection: concurrent streams, each an ASGI request.

The wire layer (`H2Wire`) parses frames and reports requests, body data,
resets and window updates; this class serves each request as an
`ASGIStream` — the very class HTTP/1.1 uses — and writes the app's response
back through the wire, within the peer's flow-control windows.

Per stream (`H2StreamState`, the stream's `wire` slot): the response head
waits for the first body chunk (so that both leave together); body the
window cannot take yet waits in `pending` and the stream is `blocked`, so
the app's next `send` waits for the peer's WINDOW_UPDATE.  Request body is
acknowledged (WINDOW_UPDATE) only as the app consumes it, so what is
buffered for a stream never exceeds its window.

Limits against hostile clients:
- `max_concurrent_streams` streams may be open; one more is refused with
  RST_STREAM(REFUSED_STREAM) and the others go on;
- apps still running for streams already closed (the client reset them,
  or made us reset them) count too: no more than twice the stream limit
  run at once, whatever the client does (Rapid Reset, MadeYouReset);
- resets cost tokens from a budget that refills slowly: past it, GOAWAY
  with ENHANCE_YOUR_CALM;
- PING and SETTINGS floods are answered by the wire layer; when our writes
  back up, reading pauses (see `Connection.pause_writing`); what was read
  is parsed PARSE_SLICE bytes per loop iteration, so that a flood of small
  frames on one connection cannot starve the others;
- a stream whose window stays closed for --timeout-write is reset.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import IO, TYPE_CHECKING, Any

from squall.protocols.http.connection import Connection
from squall.protocols.http.flow_control import PAUSE_BACKLOG
from squall.protocols.http.h1_request import BadRequest, RequestHead, split_target
from squall.protocols.http.sendfile import send_mapped
from squall.protocols.http.stream import DONE, START, ASGIStream
from squall.protocols.http2.request import H2Request, response_headers
from squall.protocols.http2.websocket import StreamTransport
from squall.protocols.http2.wire import (
    CANCEL,
    ENHANCE_YOUR_CALM,
    INTERNAL_ERROR,
    NO_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    H2Events,
    H2Settings,
    WireError,
)

if TYPE_CHECKING:
    from squall.config import Config
    from squall.server import ServerState

logger = logging.getLogger("squall.error")

# The reset budget: tokens a connection starts with, and how many come
# back each second.  Each reset (the client's, or one its errors caused)
# takes one; at zero the connection is closed.
RESET_BUDGET = 200
RESET_REFILL_PER_SECOND = 20.0
# Apps that may still run for a connection, in multiples of the stream limit.
RUNNING_APPS_FACTOR = 2
# Bytes parsed per loop iteration.  A wire layer spends 10-90 us on each
# small frame (h2 the most): a 256 KiB read of tiny frames (a PING,
# SETTINGS or PRIORITY flood) would hold the loop, and every other client,
# for up to 1.5 s; 4 KiB of them take at most some 25 ms.
PARSE_SLICE = 4 * 1024
# Response body bytes that are written at once rather than at the end of
# the loop iteration (the transport's default high-water mark).
FLUSH_BYTES = 64 * 1024

_HOP_BY_HOP_REQUEST = frozenset((b"connection", b"upgrade", b"http2-settings", b"keep-alive", b"transfer-encoding"))


class H2StreamState:
    """What the connection keeps of one stream."""

    __slots__ = (
        "headers",
        "pending",
        "end",
        "trailers",
        "content_length",
        "client_done",
        "server_done",
        "app_done",
        "blocked_since",
        "last_data",
    )

    def __init__(self) -> None:
        # The response head, held until the first body chunk.
        self.headers: list[tuple[bytes, bytes]] | None = None
        # Body the window could not take yet, and whether it ends the stream.
        self.pending = b""
        self.end = False
        # Trailers to send once `pending` is out.
        self.trailers: list[tuple[bytes, bytes]] | None = None
        # The body length still owed, if the app gave a content-length.
        self.content_length: int | None = None
        self.client_done = False
        self.server_done = False
        self.app_done = False
        self.blocked_since = 0.0
        self.last_data = 0.0


class H2Connection(Connection, H2Events, asyncio.Protocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.settings: H2Settings = config.h2_settings
        self.wire = config.h2_wire_class(self, self.settings)
        self.streams: dict[int, ASGIStream] = {}
        # Streams opened by the input at hand, and their apps: started once it is parsed.
        self._starting: deque[tuple[ASGIStream, Any]] = deque()
        # WebSockets over HTTP/2 (RFC 8441), each a stream carrying a WebSocket protocol.
        self.tunnels: dict[int, StreamTransport] = {}
        # Set by the HTTP/1.1 connection for an `Upgrade: h2c` request.
        self.upgrade_request: RequestHead | None = None
        # Streams not yet closed on our side, and apps still running.
        self.open_count = 0
        self.running = 0
        self.last_stream_id = 0
        self.going_away = False
        self.idle_since = 0.0
        self._reset_tokens = float(RESET_BUDGET)
        self._reset_checked = 0.0
        self._flush_scheduled = False
        # Body bytes handed to the wire since the last write.
        self._unflushed = 0
        # Bytes read but not parsed yet (see PARSE_SLICE).
        self._backlog: memoryview | None = None

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        now = self.idle_since = self._reset_checked = self.loop.time()
        upgrade = self.upgrade_request
        if upgrade is None:
            self.wire.initiate()
        else:
            settings = next((value for name, value in upgrade.headers if name == b"http2-settings"), b"")
            try:
                self.wire.initiate(settings)
            except Exception as exc:  # a malformed HTTP2-Settings value
                logger.debug("Invalid HTTP2-Settings in an h2c upgrade: %s", exc)
                self.close_transport()
                return
            self._serve_upgraded(upgrade, now)
        self.flush()

    def data_received(self, data: bytes) -> None:
        if self._backlog is not None:
            # Delivered although reading is paused (a TLS transport may pass on what it had decrypted).
            self._backlog = memoryview(bytes(self._backlog) + data)
            return
        if len(data) > PARSE_SLICE:
            # The rest waits for the next loop iterations, reading paused meanwhile.
            self._backlog = memoryview(data)[PARSE_SLICE:]
            data = data[:PARSE_SLICE]
            self.read_gate.pause(PAUSE_BACKLOG)
            self.loop.call_soon(self._parse_backlog, context=self.context)
        self._parse(data)

    def _parse_backlog(self) -> None:
        backlog = self._backlog
        if self.closing or backlog is None:
            self._backlog = None
            return
        data = bytes(backlog[:PARSE_SLICE])
        if len(backlog) > PARSE_SLICE:
            self._backlog = backlog[PARSE_SLICE:]
            self.loop.call_soon(self._parse_backlog, context=self.context)
        else:
            self._backlog = None
            self.read_gate.resume(PAUSE_BACKLOG)
        self._parse(data)

    def _parse(self, data: bytes) -> None:
        try:
            self.wire.receive(data)
        except WireError as exc:
            logger.debug("HTTP/2 connection error from %s: %s", self.client, exc)
            self.server_state.count("h2_protocol_error")
            self._end_all()
            self.flush()
            self.close_transport()
            self._start_waiting()  # their apps see http.disconnect
            return
        self._start_waiting()
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        for stream in self.streams.values():
            rec: H2StreamState = stream.wire
            rec.pending = b""
        for tunnel in list(self.tunnels.values()):
            tunnel.lose(exc)

    def open_streams(self) -> list[ASGIStream]:
        return list(self.streams.values())

    def may_write(self, stream: ASGIStream) -> bool:
        return not stream.wire.pending

    # -- writing -----------------------------------------------------------------------

    def flush(self) -> None:
        self._unflushed = 0
        data = self.wire.data_to_send()
        if data:
            self.write(data)

    def _schedule_flush(self) -> None:
        # What apps send in one loop iteration leaves in one write.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._scheduled_flush, context=self.context)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    # -- called by the server ------------------------------------------------------------

    def check_timeouts(self, now: float) -> None:
        config = self.config
        if self.close_stalls(now):
            return
        if not self.streams and not self.tunnels and not self.going_away:
            if now - self.idle_since >= config.timeout_keep_alive:
                self.wire.goaway(NO_ERROR, self.last_stream_id)
                self.flush()
                self.close_transport()
                return
        write_timeout = config.timeout_write
        body_timeout = config.timeout_request_body_idle
        for stream in list(self.streams.values()):
            rec: H2StreamState = stream.wire
            if rec.pending and write_timeout and now - rec.blocked_since >= write_timeout:
                logger.debug("Resetting an HTTP/2 stream whose window stayed closed for %ss.", write_timeout)
                self.server_state.count("timeout_write")
                self._reset(stream, CANCEL)
            elif stream.waiting and body_timeout and now - rec.last_data >= body_timeout:
                logger.debug("Resetting an HTTP/2 stream whose request body stalled for %ss.", body_timeout)
                self.server_state.count("timeout_request_body")
                self._reset(stream, CANCEL)
            elif not rec.server_done and self.wire.is_closed(stream.stream_id):
                # Reset by the wire layer for the client's error: the app hears of it now.
                stream.disconnect()
                self._server_done(stream)
        for tunnel in list(self.tunnels.values()):
            if tunnel.pending and write_timeout and now - tunnel.blocked_since >= write_timeout:
                self.server_state.count("timeout_write")
                tunnel.abort()
            elif self.wire.is_closed(tunnel.stream_id):
                tunnel.lose(ConnectionResetError("The stream was reset."))
        self.flush()
        super().check_timeouts(now)

    def shutdown(self) -> None:
        """Graceful shutdown: GOAWAY, finish the streams in progress, refuse new ones."""
        if self.going_away:
            return
        self.going_away = True
        self.wire.goaway(NO_ERROR, self.last_stream_id)
        self.flush()
        if not self.streams and not self.tunnels:
            self.close_transport()

    def end_streams(self) -> None:
        """Shutdown, the grace for streaming responses over: end those still in progress.

        Their apps' `send` raises and `receive` says `http.disconnect`.  A
        response without a content-length gets a clean END_STREAM (an
        EventSource then reconnects, to another server); others are reset.
        """
        for stream in list(self.streams.values()):
            rec: H2StreamState = stream.wire
            if stream.state is START or stream.state is DONE or rec.server_done:
                continue
            stream.disconnect()
            if rec.content_length is None and not rec.pending:
                if rec.headers is not None:
                    self.wire.send_headers(stream.stream_id, rec.headers, False)
                    rec.headers = None
                self.wire.send_data(stream.stream_id, b"", True)
                if self.access_log:
                    self.log_access(stream)
                self._server_done(stream)
            else:
                self._reset(stream, CANCEL)
        self.flush()

    # -- wire events -----------------------------------------------------------------------

    def on_request(self, stream_id: int, request: H2Request) -> None:
        if self.closing:
            return  # read with the frames that ended the connection (a reset flood): nothing more starts
        if self.going_away:
            self.wire.reset_stream(stream_id, REFUSED_STREAM)
            return
        self.last_stream_id = stream_id
        limit = self.settings.max_concurrent_streams
        if self.open_count >= limit or self.running >= RUNNING_APPS_FACTOR * limit:
            self.wire.reset_stream(stream_id, REFUSED_STREAM)
            self._spend_reset_token()
            return
        if request.method == b"CONNECT":
            self._connect(stream_id, request)
            return
        try:
            path, raw_path, query = split_target(request.path, self.root_path)
        except BadRequest as exc:
            logger.debug("Malformed HTTP/2 request on stream %d: %s", stream_id, exc)
            self.wire.reset_stream(stream_id, PROTOCOL_ERROR)
            self._spend_reset_token()
            return
        method = request.method.decode("ascii", "replace")
        scope = self.base_scope(method, "2", path, raw_path, query, list(request.headers))
        stream = ASGIStream(scope, self, more_body=True, stream_id=stream_id)
        stream.trailers_allowed = request.te_trailers
        self._start(stream, self.loop.time())

    def _connect(self, stream_id: int, request: H2Request) -> None:
        """CONNECT: a WebSocket with `:protocol websocket` (RFC 8441); other tunnels are not served."""
        protocol_class = self.config.ws_protocol_class
        if request.protocol != b"websocket" or protocol_class is None or not self.settings.enable_connect_protocol:
            self.wire.send_headers(stream_id, [(b":status", b"501"), (b"content-length", b"0")], True)
            self.wire.reset_stream(stream_id, NO_ERROR)
            return
        logger.debug("WebSocket over HTTP/2 on stream %d from %s", stream_id, self.client)
        tunnel = StreamTransport(self, stream_id)
        websocket = protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.app_state, _loop=self.loop
        )
        websocket.client = self.client
        tunnel.set_protocol(websocket)
        self.tunnels[stream_id] = tunnel
        self.open_count += 1
        websocket.connection_made(tunnel)
        websocket.start_over_http2(request)

    # -- WebSocket streams (see websocket.py) ------------------------------------------------

    def tunnel_head(self, tunnel: StreamTransport, status: int, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        state = self.server_state
        fields, _ = response_headers(status, headers, state.default_header_list, state.default_header_names)
        if not tunnel.lost:
            self.wire.send_headers(tunnel.stream_id, fields, end_stream)
            self._schedule_flush()

    def tunnel_push(self, tunnel: StreamTransport) -> None:
        """Send what the windows allow of a WebSocket stream's pending bytes, then its end."""
        if tunnel.lost:
            return
        wire = self.wire
        data = tunnel.pending
        if data:
            size = min(wire.send_window(tunnel.stream_id), len(data))
            if size:
                rest = data[size:]
                tunnel.pending = rest
                end = not rest and tunnel.is_closing()
                wire.send_data(tunnel.stream_id, data[:size] if rest else data, end)
                tunnel.ended = tunnel.ended or end
            if tunnel.pending:
                if size or not tunnel.blocked_since:
                    tunnel.blocked_since = self.loop.time()
                tunnel.on_blocked()
            else:
                tunnel.blocked_since = 0.0
                tunnel.on_sent()
        elif tunnel.is_closing() and not tunnel.ended:
            wire.send_data(tunnel.stream_id, b"", True)
            tunnel.ended = True
        self._schedule_flush()
        if tunnel.ended:
            # Our END_STREAM is the WebSocket's TCP close; what the client
            # might still send is moot (RFC 8441 4, RFC 9113 8.1): a client
            # that has not ended its side is told so with RST_STREAM(NO_ERROR).
            tunnel.lose(None)

    def tunnel_ack(self, tunnel: StreamTransport, size: int) -> None:
        if size:
            self.wire.ack_data(tunnel.stream_id, size)
            self._schedule_flush()

    def tunnel_reset(self, tunnel: StreamTransport) -> None:
        self.wire.reset_stream(tunnel.stream_id, CANCEL)
        self._schedule_flush()
        tunnel.lose(None)

    def tunnel_forget(self, tunnel: StreamTransport) -> None:
        if self.tunnels.pop(tunnel.stream_id, None) is not None:
            self.open_count -= 1
            if not tunnel.ended or not tunnel.peer_ended:
                self.wire.reset_stream(tunnel.stream_id, NO_ERROR if tunnel.ended else CANCEL)
                self._schedule_flush()
            self._maybe_idle()

    def _start(self, stream: ASGIStream, now: float) -> None:
        rec = H2StreamState()
        rec.last_data = now
        stream.wire = rec
        self.streams[stream.stream_id] = stream
        self.open_count += 1
        self.running += 1
        self.server_state.total_requests += 1
        # Its app starts once the input at hand is parsed (`_start_waiting`).
        self._starting.append((stream, self.choose_app()))

    def _start_waiting(self) -> None:
        starting = self._starting
        while starting:
            self.start_stream(*starting.popleft())

    def _serve_upgraded(self, head: RequestHead, now: float) -> None:
        """Stream 1: the HTTP/1.1 request that asked for h2c, already complete."""
        self.last_stream_id = 1
        try:
            path, raw_path, query = split_target(head.target, self.root_path)
        except BadRequest:
            self.wire.reset_stream(1, PROTOCOL_ERROR)
            return
        headers = [(name, value) for name, value in head.headers if name not in _HOP_BY_HOP_REQUEST]
        scope = self.base_scope(head.method.decode("ascii"), "2", path, raw_path, query, headers)
        stream = ASGIStream(scope, self, more_body=False, stream_id=1)
        self._start(stream, now)
        stream.wire.client_done = True
        # Called from inside the HTTP/1.1 parser that read the upgrade: its app starts outside it.
        self.call_soon_in_context(self._start_waiting)

    def on_data(self, stream_id: int, data: bytes, flow_controlled_length: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None and stream_id in self.tunnels:
            self.tunnels[stream_id].feed(data, flow_controlled_length)
            return
        if stream is None or stream.disconnected or stream.state is DONE or stream.wire.app_done:
            self.wire.ack_data(stream_id, flow_controlled_length)  # nobody will read it
            return
        padding = flow_controlled_length - len(data)
        if padding:
            self.wire.ack_data(stream_id, padding)
        stream.wire.last_data = self.loop.time()
        if data:
            if self.metrics is not None:
                self.metrics.received_h2 += len(data)
            stream.feed_body(data)

    def on_trailers(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        """Request trailers: kept for the body's last message (the wire reports the stream's end next)."""
        stream = self.streams.get(stream_id)
        if stream is not None and headers:
            stream.request_trailers = list(headers)

    def on_stream_end(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.wire.client_done = True
            stream.end_body()
        elif stream_id in self.tunnels:
            self.tunnels[stream_id].on_peer_end()

    def on_reset(self, stream_id: int, error_code: int, by_peer: bool) -> None:
        self._spend_reset_token()
        stream = self.streams.get(stream_id)
        if stream is not None:
            rec: H2StreamState = stream.wire
            rec.client_done = True
            rec.pending = b""
            stream.disconnect()
            self._server_done(stream)
        elif stream_id in self.tunnels:
            self.tunnels[stream_id].lose(ConnectionResetError("The client reset the stream."))

    def on_window_open(self, stream_id: int) -> None:
        if stream_id:
            stream = self.streams.get(stream_id)
            if stream is not None:
                if stream.wire.pending:
                    self._push(stream)
            elif stream_id in self.tunnels:
                self.tunnel_push(self.tunnels[stream_id])
            return
        for stream in list(self.streams.values()):
            if stream.wire.pending:
                self._push(stream)
        for tunnel in list(self.tunnels.values()):
            if tunnel.pending:
                self.tunnel_push(tunnel)

    def on_goaway(self, error_code: int, last_stream_id: int) -> None:
        self.going_away = True
        if not self.streams and not self.tunnels:
            self.close_transport()

    # -- StreamHost: the response on the wire ----------------------------------------------

    def stream_informational(self, stream: ASGIStream, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        rec: H2StreamState = stream.wire
        if rec.server_done or stream.state is not START:
            return
        fields, _ = response_headers(status, headers, [])
        self.wire.send_headers(stream.stream_id, fields, False)
        self._schedule_flush()

    def stream_start_response(self, stream: ASGIStream, message: dict[str, Any]) -> None:
        state = self.server_state
        try:
            fields, content_length = response_headers(
                message["status"], message.get("headers", ()), state.default_header_list, state.default_header_names
            )
        except (TypeError, ValueError) as exc:
            raise RuntimeError(f"Invalid 'http.response.start' message: {exc}") from None
        rec: H2StreamState = stream.wire
        rec.headers = fields
        rec.content_length = None if stream.is_head else content_length

    def stream_send_body(self, stream: ASGIStream, body: bytes, more_body: bool) -> None:
        rec: H2StreamState = stream.wire
        if rec.server_done:
            return
        if stream.is_head:
            body = b""
        remaining = rec.content_length
        if remaining is not None:
            remaining -= len(body)
            if remaining < 0:
                raise RuntimeError("Response content longer than Content-Length.")
            if not more_body and remaining:
                raise RuntimeError("Response content shorter than Content-Length.")
            rec.content_length = remaining
        end = not more_body and not stream.trailers
        headers = rec.headers
        if headers is not None:
            rec.headers = None
            if end and not body:
                self.wire.send_headers(stream.stream_id, headers, True)
                self._server_done(stream)
                self._schedule_flush()
                return
            self.wire.send_headers(stream.stream_id, headers, False)
        if body or end:
            rec.pending = body
            rec.end = end
            self._push(stream)
        self._schedule_flush()

    def _push(self, stream: ASGIStream) -> None:
        """Send what the windows allow of the stream's pending body."""
        rec: H2StreamState = stream.wire
        data = rec.pending
        wire = self.wire
        window = wire.send_window(stream.stream_id)
        if window >= len(data):
            rec.pending = b""
            wire.send_data(stream.stream_id, data, rec.end)
            if rec.end:
                self._server_done(stream)
            elif rec.trailers is not None:
                self._send_trailers(stream)
            if stream.blocked and not self.write_paused:
                stream.unblock()
            sent = len(data)
        else:
            sent = max(window, 0)
            if window > 0:
                wire.send_data(stream.stream_id, data[:window], False)
                rec.pending = data[window:]
            if not stream.blocked:
                rec.blocked_since = self.loop.time()
                stream.block()
        self._unflushed += sent
        if self._unflushed >= FLUSH_BYTES:
            # Written now, so that a full transport pauses the streams (pause_writing) before
            # their apps send more: an app's send does not yield while its stream may write.
            self.flush()
        else:
            self._schedule_flush()

    async def stream_send_file(
        self, stream: ASGIStream, file: IO[bytes] | int, offset: int, count: int, more_body: bool
    ) -> None:
        await send_mapped(self, stream, file, offset, count, more_body)

    def stream_send_trailers(self, stream: ASGIStream, headers: list[tuple[bytes, bytes]], more: bool) -> None:
        rec: H2StreamState = stream.wire
        fields, _ = response_headers(200, headers, [])
        rec.trailers = (rec.trailers or []) + fields[1:]
        if more or rec.server_done:
            return
        if not stream.trailers_allowed:
            rec.trailers = []
        if rec.headers is not None:  # no body was sent at all
            self.stream_send_body(stream, b"", True)
        if not rec.pending:
            self._send_trailers(stream)

    def _send_trailers(self, stream: ASGIStream) -> None:
        rec: H2StreamState = stream.wire
        trailers, rec.trailers = rec.trailers or [], None
        if trailers:
            self.wire.send_headers(stream.stream_id, trailers, True)
        else:
            self.wire.send_data(stream.stream_id, b"", True)
        self._server_done(stream)
        self._schedule_flush()

    def stream_complete(self, stream: ASGIStream) -> None:
        if self.access_log:
            self.log_access(stream)

    def stream_abort(self, stream: ASGIStream) -> None:
        if self.access_log:
            self.log_access(stream)
        self._reset(stream, INTERNAL_ERROR)

    def stream_error_response(self, stream: ASGIStream, status: int) -> None:
        rec: H2StreamState = stream.wire
        if rec.server_done:
            return
        body = b"Internal Server Error"
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
        fields, _ = response_headers(status, headers, self.server_state.default_header_list)
        rec.content_length = None
        rec.headers = fields
        self.stream_send_body(stream, b"" if stream.is_head else body, False)
        self.stream_complete(stream)

    def stream_body_consumed(self, stream: ASGIStream, size: int) -> None:
        if not stream.wire.server_done:
            self.wire.ack_data(stream.stream_id, size)
            self._schedule_flush()

    def stream_finished(self, stream: ASGIStream) -> None:
        super().stream_finished(stream)
        rec: H2StreamState = stream.wire
        rec.app_done = True
        self.running -= 1
        if stream.buffered:
            # Body the app never read: hand the window back.
            self.wire.ack_data(stream.stream_id, stream.buffered)
            self._schedule_flush()
        if rec.server_done:
            self._forget(stream)

    # -- stream ends -----------------------------------------------------------------------

    def _server_done(self, stream: ASGIStream) -> None:
        """Our half of the stream is closed (END_STREAM sent, or reset)."""
        rec: H2StreamState = stream.wire
        if rec.server_done:
            return
        rec.server_done = True
        self.open_count -= 1
        if not rec.client_done:
            # RFC 9113 8.1: the response is complete; the client may stop sending.
            self.wire.reset_stream(stream.stream_id, NO_ERROR)
            rec.client_done = True
        if rec.app_done:
            self._forget(stream)

    def _forget(self, stream: ASGIStream) -> None:
        self.streams.pop(stream.stream_id, None)
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        if not self.streams and not self.tunnels:
            self.idle_since = self.loop.time()
            if self.going_away:
                self.flush()
                self.close_transport()

    def _reset(self, stream: ASGIStream, error_code: int) -> None:
        rec: H2StreamState = stream.wire
        if rec.server_done:
            return
        rec.pending = b""
        rec.client_done = True
        self.wire.reset_stream(stream.stream_id, error_code)
        stream.disconnect()
        self._server_done(stream)
        self._schedule_flush()

    def _end_all(self) -> None:
        for stream in list(self.streams.values()):
            stream.disconnect()

    def _spend_reset_token(self) -> None:
        """A stream was reset (by the client, or refused by us): count it, and close a flood."""
        self.server_state.count("h2_reset")
        now = self.loop.time()
        self._reset_tokens = min(
            float(RESET_BUDGET), self._reset_tokens + (now - self._reset_checked) * RESET_REFILL_PER_SECOND
        )
        self._reset_checked = now
        self._reset_tokens -= 1
        if self._reset_tokens < 0 and not self.closing:
            logger.warning("Closing an HTTP/2 connection from %s: too many streams reset.", self.client)
            self.server_state.count("h2_reset_flood")
            self.wire.goaway(ENHANCE_YOUR_CALM, self.last_stream_id)
            self._end_all()
            self.flush()
            self.close_transport()
