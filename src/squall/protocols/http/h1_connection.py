"""An HTTP/1.1 connection: requests one after another on a byte stream.

The wire layer (`H1Reader`, with h11 or llhttp splitting the heads: see
`h1_reader.py`) turns bytes into calls to `on_head`, `on_body`,
`on_message_end` and `on_error`.  This class does the rest, once for both
parsers: keep-alive, pipelining, the response framing, error responses,
protocol switches (WebSocket, h2c) and timeouts.  Each request is an
`ASGIStream`, the same class HTTP/2 uses.

States
------
    IDLE     no request in progress, nothing of the next one read yet;
             closed after --timeout-keep-alive
    HEAD     bytes of a request head are arriving; closed if the head is
             not complete within --timeout-request-header
    ACTIVE   a request is being answered (`active`); requests read after it
             wait in `pipeline`, at most MAX_PIPELINE of them
    LINGER   an error response was written and our side half-closed: what
             the client still sends is read and dropped (bounded in bytes
             and time) so that the kernel does not reset the connection
             before the response arrives
    CLOSED   the transport is closing; nothing more is read or written

    state    event                                          next state
    ------   --------------------------------------------   ----------
    IDLE     bytes arrive                                   HEAD
    HEAD     a complete request head                        ACTIVE
    ACTIVE   response complete, keep-alive, none queued     IDLE
    ACTIVE   response complete, keep-alive, one queued      ACTIVE (next)
    ACTIVE   response complete, not keep-alive              CLOSED
    any      malformed input                                LINGER (after the responses owed)
    IDLE     keep-alive timeout                             CLOSED
    HEAD     request-header timeout                         CLOSED
    LINGER   the client closes, or time or bytes run out    CLOSED

The next request is never started, and parsing never resumes, inside an
app's `send`: that happens in a callback scheduled on the loop in the
connection's own context (see `Connection.start_stream`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from asyncio.selector_events import _SelectorSocketTransport
from collections import deque
from http import HTTPStatus
from typing import IO, TYPE_CHECKING, Any

from squall.protocols.http.connection import Connection
from squall.protocols.http.flow_control import (
    HIGH_WATER_LIMIT,
    PAUSE_BODY,
    PAUSE_ERROR,
    PAUSE_PIPELINE,
    PAUSE_SWITCH,
)
from squall.protocols.http.h1_reader import H1Reader
from squall.protocols.http.h1_request import (
    SWITCH_H2C,
    SWITCH_NONE,
    SWITCH_WEBSOCKET,
    BadRequest,
    RequestHead,
    RequestInfo,
    RequestLimits,
    check_request_head,
    plain_request,
    split_target,
)

__all__ = ["BadRequest", "H1Connection", "H1Reader", "RequestHead", "split_target"]
from squall.protocols.http.response import (
    FRAMING_CHUNKED,
    FRAMING_CLOSE,
    FRAMING_LENGTH,
    FRAMING_NONE,
    build_response_head,
    check_header,
    simple_response,
)
from squall.protocols.http.sendfile import send_mapped
from squall.protocols.http.stream import DONE, START, ASGIStream, ClientDisconnected

if TYPE_CHECKING:
    from squall.config import Config
    from squall.server import ServerState

logger = logging.getLogger("squall.error")

# Connection states (module constants, compared with `is`).
IDLE = 0
HEAD = 1
ACTIVE = 2
LINGER = 3
CLOSED = 4

# Requests read ahead of the one being answered.  Each holds a scope and up
# to HIGH_WATER_LIMIT bytes of body: this bounds what one connection costs.
MAX_PIPELINE = 16

# Seconds a connection that has sent nothing yet may still send its first
# request once the server is shutting down.
SHUTDOWN_GRACE = 1.0
# After an error response: how long, and how many bytes, to go on reading
# (and dropping) before closing anyway.
LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20

# Body chunks from this size on are written beside the head, not copied behind it.
LARGE_BODY = 16384
# asyncio's plain TCP transport copies what `writelines` is given before
# Python 3.12 (see H1Connection._write_direct); from 3.12 on it no longer
# copies, but its `writelines` never tells the protocol to pause writing
# (3.12.1, 3.13.0): parts go through `write`, which does.
_COPYING_WRITELINES = sys.version_info < (3, 12)

CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SWITCH_TO_H2C = b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n"


class H1Connection(Connection):
    # The parser's framing class (type[H1Reader]), set by each `--http` implementation.
    reader_class = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = RequestLimits.from_config(config)
        self.ws_protocol_class = config.ws_protocol_class
        self.h2_protocol_class = getattr(config, "h2_protocol_class", None)
        self.reader = self.reader_class(self)
        self.state = IDLE
        # Loop time the current IDLE, HEAD or LINGER state began.
        self.since = 0.0
        # Loop time bytes last arrived, for the request body idle timeout.
        self.last_read = 0.0
        self.requests_served = 0
        # The request being answered, and those read after it.
        self.active: ASGIStream | None = None
        self.pipeline: deque[tuple[ASGIStream, Any]] = deque()
        # The active request and its app, while the input that brought it is parsed.
        self._starting: tuple[ASGIStream, Any] | None = None
        # The request whose body the parser is reading.
        self.parsing: ASGIStream | None = None
        # Malformed input read while earlier requests were still being
        # answered: (status, message, head_only) of the error response owed.
        self.pending_error: tuple[int, str, bool] | None = None
        # A protocol switch that waits for the responses before it:
        # (kind, its head, what was read after it).
        self.pending_switch: tuple[int, RequestHead, bytearray] | None = None
        # The first bytes of a connection, while they may be the HTTP/2 preface.
        self._preface: bytes | None = b"" if self.h2_protocol_class is not None else None
        self._linger_budget = 0
        # The framing of the active response.
        self._pending_head: bytes | None = None
        self._framing = FRAMING_NONE
        self._remaining = 0
        self._keep_alive = True
        self._trailers: list[tuple[bytes, bytes]] = []
        self._native_sendfile = False
        # The socket's descriptor, for big writes made directly (see _write_large).
        self._direct_fd: int | None = None
        # Whether the transport's `writelines` pauses writing as `write` does.
        self._writelines = True
        # The switch `on_head` asked for, until the parser calls `on_switch`.
        self._switch_kind = SWITCH_NONE
        self._switch_head: RequestHead | None = None

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # sendfile(2) for files: plain TCP, under asyncio's own loop (uvloop has no loop.sendfile).
        self._native_sendfile = (
            self.scheme == "http" and hasattr(os, "sendfile") and isinstance(self.loop, asyncio.BaseEventLoop)
        )
        if isinstance(transport, _SelectorSocketTransport):
            if not _COPYING_WRITELINES:
                self._writelines = False
            elif hasattr(os, "writev"):
                self._direct_fd = transport.get_extra_info("socket").fileno()
        if self.h2_protocol_class is not None and self.scheme == "https":
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                self._switch_to_h2(b"", None)
                return
        self.since = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.state = CLOSED
        self.pipeline.clear()
        self.parsing = None

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state is IDLE and self.parsing is None:
            if self._preface is not None:
                data = self._sniff_preface(data)
                if not data:
                    return
            self.state = HEAD
            self.since = self.last_read = self.loop.time()
        elif state is LINGER:
            self._linger_budget -= len(data)
            if self._linger_budget < 0:
                self.abort()
            return
        elif state is CLOSED:
            return
        elif self.parsing is not None:
            self.last_read = self.loop.time()
        if self.pending_switch is not None:
            self.pending_switch[2].extend(data)
            return
        self.reader.feed(data)
        starting = self._starting
        if starting is not None:
            self._starting = None
            stream, app = starting
            self.start_stream(stream, app)

    def eof_received(self) -> bool | None:
        if self.state is LINGER:
            self.close_transport()
        return None

    def _sniff_preface(self, data: bytes) -> bytes:
        """The HTTP/2 connection preface on a cleartext connection: hand over to HTTP/2."""
        data = self._preface + data
        if len(data) < len(HTTP2_PREFACE) and HTTP2_PREFACE.startswith(data):
            self._preface = data
            return b""
        self._preface = None
        if data.startswith(HTTP2_PREFACE):
            self._switch_to_h2(data, None)
            return b""
        return data

    def open_streams(self) -> list[ASGIStream]:
        streams = [stream for stream, _ in self.pipeline]
        if self.active is not None:
            streams.insert(0, self.active)
        if self.parsing is not None and self.parsing not in streams:
            streams.append(self.parsing)
        return streams

    # -- called by the server ------------------------------------------------------------

    def check_timeouts(self, now: float) -> None:
        if self.close_stalls(now):
            return
        # The write timeout, in every state: a complete response may still
        # wait in the transport's buffer for a client that stopped reading.
        super().check_timeouts(now)
        if self.transport.is_closing():
            return
        state = self.state
        config = self.config
        if state is IDLE:
            if self.parsing is not None:
                # Dropping the rest of the body of a request already answered.
                timeout = config.timeout_request_body_idle
                if timeout and now - self.last_read >= timeout:
                    self.close_transport()
            elif now - self.since >= config.timeout_keep_alive:
                self.close_transport()
            return
        elif state is HEAD:
            timeout = config.timeout_request_header
            if timeout and now - self.since >= timeout:
                logger.debug("Closing a connection that sent no complete request head within %ss.", timeout)
                self.server_state.count("timeout_request_header")
                self.close_transport()
                return
        elif state is LINGER:
            if now - self.since >= LINGER_SECONDS:
                self.close_transport()
            return
        stream = self.parsing
        timeout = config.timeout_request_body_idle
        if stream is not None and stream.waiting and timeout and now - self.last_read >= timeout:
            logger.debug("Closing a connection whose request body stalled for %ss.", timeout)
            self.server_state.count("timeout_request_body")
            self._fail_request(stream, 408, "The request body stalled.")

    def shutdown(self) -> None:
        """Graceful shutdown: close when idle, else after the responses owed.

        A connection that has not sent a request yet was most likely accepted
        just before the listener closed, with its request on the way: it gets
        `SHUTDOWN_GRACE` seconds to send it (answered with `Connection: close`,
        the server is draining), then the idle timeout closes it.
        """
        if self.state is IDLE:
            if self.requests_served == 0 and not self.closing:
                self.since = self.loop.time() - self.config.timeout_keep_alive + SHUTDOWN_GRACE
                return
            self.close_transport()
        elif self.state is ACTIVE and self.active is not None and not self.pipeline:
            if self.active.state is not START:
                self._keep_alive = False  # its head is built: close once it is complete

    def end_streams(self) -> None:
        """Shutdown, the grace for streaming responses over: end the one in progress, and close.

        Its app's `send` raises and its `receive` says `http.disconnect`.  A
        chunked response gets its last chunk, so that the client sees a
        clean end (an EventSource then reconnects, to another server).
        """
        stream = self.active
        if stream is None or stream.state is START or stream.state is DONE or self.closing:
            return
        stream.disconnect()
        if self._framing == FRAMING_CHUNKED and not stream.is_head:
            head, self._pending_head = self._pending_head, None
            self.write((head or b"") + b"0\r\n\r\n")
        self._keep_alive = False
        self.pipeline.clear()
        if self.access_log:
            self.log_access(stream)
        self.close_transport()

    # -- parser events -------------------------------------------------------------------

    def may_parse(self) -> bool:
        """Whether the parser may go on now: with the body it is reading, or to another request.

        Never after an error or a switching request, and not while
        MAX_PIPELINE requests wait their turn: the rest stays unparsed (and
        reading paused) until a response makes room.
        """
        if self.closing or self.pending_error is not None or self.pending_switch is not None:
            return False
        return self.parsing is not None or len(self.pipeline) < MAX_PIPELINE

    def on_head(
        self, method: bytes, target: bytes, http_version: str, headers: list[tuple[bytes, bytes]], plain: int = -1
    ) -> RequestInfo:
        """A request head was parsed: start or queue its stream.

        Returns what the head says about its body and the connection.  When
        its `switch` is set, the connection switches protocols: the reader
        must then stop and pass what follows the head to `on_switch`.
        Raises BadRequest for a request that cannot be served.  `plain` (not
        -1): the reader found the head to be HTTP/1.1 with one Host and no
        field that `check_request_head` acts on but a valid Content-Length of
        `plain` bytes (0 without one), so it would only return `plain_request`.
        """
        limit = self.limits.body
        if plain < 0 or (limit is not None and plain > limit):
            info = check_request_head(method, target, http_version, headers, limit)
        else:
            info = plain_request(plain)
        if info.switch is not SWITCH_NONE:
            if info.switch == SWITCH_WEBSOCKET:
                if self.ws_protocol_class is not None:
                    self._switch_kind = SWITCH_WEBSOCKET
                    self._switch_head = RequestHead(method, target, http_version, headers)
                    return info
                _warn_no_websockets()
            elif self.h2_protocol_class is not None and not info.has_body:
                self._switch_kind = SWITCH_H2C
                self._switch_head = RequestHead(method, target, http_version, headers)
                return info
            info.switch = SWITCH_NONE  # served as plain HTTP

        path, raw_path, query = split_target(target, self.root_path)
        scope = self.base_scope(method.decode("ascii"), http_version, path, raw_path, query, headers)
        stream = ASGIStream(scope, self, info.has_body, info.expect_100)
        stream.wire = info.keep_alive
        stream.trailers_allowed = info.te_trailers
        self.server_state.total_requests += 1
        self.requests_served += 1
        self.parsing = stream if info.has_body else None
        app = self.app if self.limit_concurrency is None else self.choose_app()
        if self.active is None:
            self._activate(stream)
            if self.eager_start:
                # Its app would run at once: it starts once the input at hand is parsed (data_received).
                self._starting = (stream, app)
            else:
                self.start_stream(stream, app)
        else:
            # Pipelined: answered in order, after the current response.
            self.pipeline.append((stream, app))
            if len(self.pipeline) >= MAX_PIPELINE:
                self.read_gate.pause(PAUSE_PIPELINE)
        return info

    def on_body(self, data: bytes) -> None:
        stream = self.parsing
        if stream is None or stream.state is DONE or stream.disconnected:
            return  # answered without reading it all: drop the rest
        if self.metrics is not None:
            self.metrics.received_h1 += len(data)
        stream.feed_body(data)
        if stream.buffered > HIGH_WATER_LIMIT:
            self.read_gate.pause(PAUSE_BODY)

    def on_message_end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        stream = self.parsing
        if stream is not None:
            self.parsing = None
            stream.end_body(trailers)
            self.read_gate.resume(PAUSE_BODY)

    def on_switch(self, trailing: bytes) -> None:
        """The bytes after a switching request's head: switch now, or once earlier responses are out."""
        kind, head = self._switch_kind, self._switch_head
        assert head is not None
        self._switch_head = None
        if self.active is not None or self.pipeline:
            self.pending_switch = (kind, head, bytearray(trailing))
            self.read_gate.pause(PAUSE_SWITCH)
            return
        self._switch(kind, head, trailing)

    def on_error(self, status: int, message: str, head_only: bool = False) -> None:
        """Malformed input: answer with `status` after the requests before it, then close.

        Nothing more is parsed.  Requests read completely before the error
        are still answered, in order; one whose body the error cut short
        cannot be: if its app is running, it sees `http.disconnect`.
        """
        if self.closing or self.pending_error is not None:
            return
        logger.warning("Invalid HTTP request received: %s", message)
        self.server_state.count(f"rejected_{status}")
        self.read_gate.pause(PAUSE_ERROR)
        self.pending_error = (status, message, head_only)
        broken, self.parsing = self.parsing, None
        if broken is not None and broken.more_body:
            broken.more_body = False
            if broken is self.active:
                if broken.state is not START:
                    broken.disconnect()
                    self.close_transport()  # a response is half-written: the error cannot follow it
                    return
                broken.disconnect()
                self.active = None
            else:
                broken.disconnect()
                self.pipeline = deque(entry for entry in self.pipeline if entry[0] is not broken)
        if self.active is None and not self.pipeline:
            self._send_error_and_linger(status, message, head_only)

    # -- the requests in turn ------------------------------------------------------------

    def _activate(self, stream: ASGIStream) -> None:
        self.active = stream
        self.state = ACTIVE
        self._pending_head = None
        self._trailers = []

    def _next(self) -> None:
        """After a response, in the connection's context: the next request, or idle."""
        if self.closing:
            return
        self.active = None
        if self.pipeline:
            stream, app = self.pipeline.popleft()
            self._activate(stream)
            # What was held back is parsed first (requests queue behind this
            # one), then its app starts.
            self.read_gate.resume(PAUSE_PIPELINE)
            self.reader.resume()
            self.start_stream(stream, app)
            return
        if self.pending_error is not None:
            self._send_error_and_linger(*self.pending_error)
            return
        if self.pending_switch is not None:
            kind, head, trailing = self.pending_switch
            self.pending_switch = None
            self.read_gate.resume(PAUSE_SWITCH)
            self._switch(kind, head, bytes(trailing))
            return
        self._become_idle()

    def _become_idle(self) -> None:
        if self.config.timeout_keep_alive <= 0:
            self.close_transport()
            return
        self.state = IDLE
        self.since = self.loop.time()

    def _fail_request(self, stream: ASGIStream, status: int, message: str) -> None:
        """The request cannot go on (its body stalled): answer `status` if nothing was sent, and close."""
        stream.disconnect()
        if stream is self.active and stream.state is START:
            stream.state = DONE
            self.write(simple_response(status, message, self.server_state.default_headers, head_only=stream.is_head))
        self.close_transport()

    def _send_error_and_linger(self, status: int, message: str, head_only: bool) -> None:
        # The parser's message goes to the log only: the client gets a fixed text.
        if status == 400:
            body = "Invalid HTTP request received."
        elif status == 431:
            body = "Request header fields too large."
        else:
            try:
                body = HTTPStatus(status).phrase + "."
            except ValueError:
                body = "Invalid HTTP request."
        self.write(simple_response(status, body, self.server_state.default_headers, head_only=head_only))
        self._linger()

    def _linger(self) -> None:
        """Half-close after an error response, reading on so that it is not lost to a reset."""
        transport = self.transport
        self.state = LINGER
        self.closing = True
        self.since = self.loop.time()
        self._linger_budget = LINGER_BYTES
        if transport.is_closing():
            return
        if transport.can_write_eof():
            transport.write_eof()
        self.read_gate.reasons = 0
        self.context.copy().run(transport.resume_reading)

    # -- protocol switches ------------------------------------------------------------------

    def _switch(self, kind: int, head: RequestHead, trailing: bytes) -> None:
        if kind == SWITCH_WEBSOCKET:
            self._switch_to_websocket(head, trailing)
        else:
            self.write(SWITCH_TO_H2C)
            self._switch_to_h2(trailing, head)

    def _hand_over(self, protocol: Any) -> None:
        self.flush()
        self.server_state.connections.discard(self)
        self.state = CLOSED
        self.closing = True  # the transport is the new protocol's now
        if self.client is not None and hasattr(protocol, "client"):
            protocol.client = self.client
        # The new protocol starts with reading on, and must see any
        # pause_writing caused by its own first write.
        self.read_gate.reasons = 0
        self.context.copy().run(self.transport.resume_reading)
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)

    def _switch_to_websocket(self, head: RequestHead, trailing: bytes) -> None:
        assert self.ws_protocol_class is not None
        protocol = self.ws_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.app_state, _loop=self.loop
        )
        self._hand_over(protocol)
        protocol.start_over_http1(head, trailing)

    def _switch_to_h2(self, data: bytes, upgrade: RequestHead | None) -> None:
        assert self.h2_protocol_class is not None
        protocol = self.h2_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.app_state, _loop=self.loop
        )
        if upgrade is not None:
            protocol.upgrade_request = upgrade
        self._hand_over(protocol)
        if data:
            protocol.data_received(data)

    # -- StreamHost: the response on the wire ---------------------------------------------------

    def stream_informational(self, stream: ASGIStream, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        if stream is not self.active or stream.scope["http_version"] != "1.1":
            return  # RFC 9110 15.2: no 1xx to an HTTP/1.0 client
        if status == 100:
            self.write(CONTINUE_RESPONSE)
            return
        lines = [b"HTTP/1.1 103 Early Hints\r\n"]
        for name, value in headers:
            check_header(name, value)
            lines.append(name + b": " + value + b"\r\n")
        lines.append(b"\r\n")
        self.write(b"".join(lines))

    def stream_start_response(self, stream: ASGIStream, message: dict[str, Any]) -> None:
        state = self.server_state
        keep_alive: bool = stream.wire
        if stream.expect_100 and stream.more_body:
            # Answered before asking for the body: the client was never told to
            # send it, and may or may not.  The connection cannot be reused safely.
            keep_alive = False
        if state.draining and not self.pipeline:
            keep_alive = False  # a draining server ends each connection after the responses owed
        try:
            head, framing, content_length, keep_alive = build_response_head(
                message["status"],
                message.get("headers", ()),
                state.default_headers,
                state.default_header_names,
                stream.scope["http_version"] == "1.1",
                keep_alive,
                stream.is_head,
            )
        except (TypeError, ValueError) as exc:
            self._keep_alive = False
            raise RuntimeError(f"Invalid 'http.response.start' message: {exc}") from None
        except RuntimeError:
            self._keep_alive = False
            raise
        self._keep_alive = keep_alive
        self._framing = framing
        self._remaining = content_length or 0
        self._pending_head = head

    def stream_send_body(self, stream: ASGIStream, body: bytes, more_body: bool) -> None:
        framing = self._framing
        if stream.is_head or framing == FRAMING_NONE:
            data = b""
        elif framing == FRAMING_LENGTH:
            remaining = self._remaining - len(body)
            if remaining < 0:
                self._keep_alive = False
                raise RuntimeError("Response content longer than Content-Length.")
            if not more_body and remaining:
                self._keep_alive = False
                raise RuntimeError("Response content shorter than Content-Length.")
            self._remaining = remaining
            data = body
        elif framing == FRAMING_CHUNKED:
            end = b"" if more_body or stream.trailers else b"0\r\n\r\n"
            if len(body) >= LARGE_BODY:
                self._write_large(b"%x\r\n" % len(body), body, b"\r\n" + end)
                return
            data = b"%x\r\n%s\r\n%s" % (len(body), body, end) if body else end
        else:  # FRAMING_CLOSE
            data = body
        if len(data) >= LARGE_BODY:
            self._write_large(data)
            return
        head = self._pending_head
        if head is not None:
            self._pending_head = None
            data = head + data if data else head
        if data:
            if more_body:
                self.write_later(data)  # more follows, most likely in this loop turn
            else:
                self.write(data)

    def _write_large(self, *parts: bytes) -> None:
        """A big body chunk: one vectored write with the head, rather than copying it behind the head."""
        head = self._pending_head
        self._pending_head = None
        if not self.closing:
            if head is not None:
                parts = (head, *parts)
            if self._unsent:
                parts = (self.take_unsent(), *parts)
            if self._direct_fd is not None and not self.transport.get_write_buffer_size():
                parts = self._write_direct(self._direct_fd, parts)
            if not self._writelines:
                for part in parts:
                    self.transport.write(part)
            elif parts:
                self.transport.writelines(parts)

    @staticmethod
    def _write_direct(fd: int, parts: tuple[bytes, ...]) -> tuple[memoryview | bytes, ...]:
        """Write what the socket takes now, without a copy; return the rest, for the transport.

        asyncio's own transport (before Python 3.12) joins the parts into one
        copy, then copies what the socket did not take into its buffer, and
        moves the rest of that buffer down after every send: a 1 MiB body is
        copied several times over.  Called only while the transport holds
        nothing, so the order of the bytes is kept; an error is left for the
        transport to meet and report as it would.
        """
        try:
            sent = os.writev(fd, parts)
        except OSError:
            return parts
        for index, part in enumerate(parts):
            if sent < len(part):
                return (memoryview(part)[sent:], *parts[index + 1 :])
            sent -= len(part)
        return ()

    async def stream_send_file(
        self, stream: ASGIStream, file: IO[bytes] | int, offset: int, count: int, more_body: bool
    ) -> None:
        framing = self._framing
        if not self._native_sendfile or not count or stream.is_head or framing == FRAMING_NONE:
            await send_mapped(self, stream, file, offset, count, more_body)
            return
        # The kernel copies the file to the socket (sendfile(2)); the framing around it is ours.
        if framing == FRAMING_LENGTH:
            if count > self._remaining or not more_body and count != self._remaining:
                self._keep_alive = False
                raise RuntimeError("The file's length does not match the response's Content-Length.")
            self._remaining -= count
            prefix, suffix = b"", b""
        elif framing == FRAMING_CHUNKED:
            prefix = b"%x\r\n" % count
            suffix = b"\r\n" if more_body or stream.trailers else b"\r\n0\r\n\r\n"
        else:  # FRAMING_CLOSE
            prefix, suffix = b"", b""
        head, self._pending_head = self._pending_head, None
        if head or prefix:
            self.write((head or b"") + prefix)
        self.flush()
        if self.closing:
            raise ClientDisconnected("The client disconnected.")
        fileobj = open(file, "rb", closefd=False) if isinstance(file, int) else file  # noqa: SIM115
        try:
            await self.loop.sendfile(self.transport, fileobj, offset, count)
        except (ConnectionError, RuntimeError) as exc:
            # RuntimeError: the transport closed meanwhile.
            self._keep_alive = False
            raise ClientDisconnected(f"The client disconnected: {exc}") from None
        finally:
            if fileobj is not file:
                fileobj.close()
        if suffix:
            self.write(suffix)

    def stream_send_trailers(self, stream: ASGIStream, headers: list[tuple[bytes, bytes]], more: bool) -> None:
        for name, value in headers:
            check_header(name, value)
        self._trailers.extend(headers)
        if more or self._framing != FRAMING_CHUNKED or stream.is_head:
            return
        lines = [b"0\r\n"]
        if stream.trailers_allowed:
            lines.extend(name + b": " + value + b"\r\n" for name, value in self._trailers)
        lines.append(b"\r\n")
        self.write(b"".join(lines))

    def stream_complete(self, stream: ASGIStream) -> None:
        if self._framing == FRAMING_CLOSE and not stream.is_head:
            self._keep_alive = False  # the end of the connection ends the body
        if self.access_log:
            self.log_access(stream)
        if not self._keep_alive:
            self.close_transport()
            return
        if stream is self.parsing:
            # Answered before its body was all read: read on (dropping the
            # rest), or a full buffer would keep reading paused for good.
            self.read_gate.resume(PAUSE_BODY)
        if self.pipeline or self.pending_error is not None or self.pending_switch is not None:
            # Start the next one outside this app's task (and its context).
            self.call_soon_in_context(self._next)
            return
        self.active = None
        self._become_idle()

    def stream_abort(self, stream: ASGIStream) -> None:
        self._keep_alive = False
        if self._pending_head is not None and stream is self.active:
            # Nothing of the response is on the wire yet: the client can still be told.
            self._pending_head = None
            stream.status = 500
            self.write(simple_response(500, "Internal Server Error", self.server_state.default_headers, head_only=stream.is_head))
        if self.access_log:
            self.log_access(stream)
        self.close_transport()

    def stream_error_response(self, stream: ASGIStream, status: int) -> None:
        self._keep_alive = False
        if stream is self.active:
            self.write(
                simple_response(status, HTTPStatus(status).phrase, self.server_state.default_headers, head_only=stream.is_head)
            )
        self.stream_complete(stream)

    def stream_body_consumed(self, stream: ASGIStream, size: int) -> None:
        if stream is self.parsing and self.read_gate.reasons & PAUSE_BODY:
            self.read_gate.resume(PAUSE_BODY)


_warned_no_websockets = False


def _warn_no_websockets() -> None:
    global _warned_no_websockets
    if not _warned_no_websockets:
        _warned_no_websockets = True
        logger.warning(
            "A WebSocket upgrade request was served as plain HTTP: no WebSocket implementation is enabled"
            " (install 'websockets' or 'wsproto', or drop --ws none)."
        )
