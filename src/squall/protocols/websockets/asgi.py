"""One WebSocket connection as the ASGI app sees it, whatever library frames it.

`WebSocketProtocol` owns everything that does not depend on the framing
library: the handshake (see `handshake.py`), the scope, the app's task, the
`receive` queue and its back-pressure, the checks on what the app sends, the
close handshake's timers, keepalive pings, shutdown and logging.  An
implementation subclasses it and adapts one library:

- `_negotiate(request)` sets up the library's connection for a valid handshake
  and returns the Sec-WebSocket-Extensions response value (or None);
- `_receive_frames(data)` feeds it bytes and reports what they meant through
  `_deliver` (a complete message), `_on_pong`, `_on_peer_close` and
  `_on_protocol_error`, having written whatever the library answers itself
  (pongs, the echoed close frame);
- `_send_text`, `_send_bytes`, `_send_close` and `_send_ping` write a frame.

Two state variables, because the app and the peer can each end the
connection without the other knowing yet:

- `_phase`, the connection: HANDSHAKE (not started yet), CONNECTING
  (the app is deciding), OPEN, CLOSING (our close frame is out, the peer's is
  awaited), CLOSED (nothing more is read or written).
- `_app_state`, what the app has sent: nothing yet, a denial response in
  progress, accepted, or done (closed, or its response complete).  Messages
  that make no sense in this state raise RuntimeError in `send`; sensible
  messages on a connection that is gone raise `ClientDisconnected`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from squall.access_log import AccessEntry, log_access
from squall.logging import TRACE_LOG_LEVEL
from squall.protocols.http.connection import ASGI2_VERSION, ASGI_VERSION
from squall.protocols.http.flow_control import (
    HIGH_WATER_LIMIT,
    PAUSE_EARLY_DATA,
    PAUSE_QUEUE,
    PAUSE_WRITE,
    ReadGate,
    WriteFlow,
)
from squall.protocols.http.stream import ClientDisconnected
from squall.protocols.tracing import client_prefix
from squall.protocols.utils import get_local_addr, get_remote_addr, is_ssl, tls_extension
from squall.protocols.websockets.handshake import (
    HandshakeError,
    HandshakeRequest,
    accept_headers,
    accept_response,
    http_response,
    validate_h2_request,
    validate_request,
)
from squall.protocols.websockets.keepalive import Keepalive
from squall.protocols.websockets.scope import websocket_scope

if TYPE_CHECKING:
    from squall.config import Config
    from squall.protocols.http.h1_request import RequestHead
    from squall.protocols.http2.request import H2Request
    from squall.protocols.http2.websocket import StreamTransport
    from squall.server import ServerState

logger = logging.getLogger("squall.error")
access_logger = logging.getLogger("squall.access")  # only asked whether it is on: see log_access

# How long to wait for the peer's close frame once ours is sent, and then for
# the transport to flush and close, before giving up on the peer.
CLOSE_TIMEOUT = 10.0

# Connection phases (module constants: compared with `is` on the message path).
HANDSHAKE = 0
CONNECTING = 1
OPEN = 2
CLOSING = 3
CLOSED = 4

# What the app has sent.
APP_NEW = 0
APP_RESPONDING = 1
APP_OPEN = 2
APP_DONE = 3

# RFC 6455 7.4: the codes an endpoint may put in a close frame.  1004-1006
# and 1015 are reserved for reporting, never sent.
_SENDABLE_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))
# A close frame is a control frame: at most 125 bytes, 2 of them the code.
MAX_CLOSE_REASON = 123

CLOSE_NO_STATUS = 1005  # reported when the peer's close frame has no code
CLOSE_ABNORMAL = 1006  # reported when the connection ends without a close frame
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_SERVICE_RESTART = 1012

# A fragmented message is held as one piece per frame, each costing up to 64
# bytes besides its payload, and empty frames add nothing to the size that
# --ws-max-size counts: so a message may also have only one frame per
# BYTES_PER_FRAME bytes of that limit (and at least MIN_FRAME_LIMIT frames),
# which keeps what it holds under about twice the limit.  A message whose
# frames carry 64 bytes on average is never refused for its frames.
BYTES_PER_FRAME = 64
MIN_FRAME_LIMIT = 64

_CONNECT = {"type": "websocket.connect"}
_BYTES_LIKE = (bytes, bytearray, memoryview)


def max_frames_per_message(max_size: int | None) -> int | None:
    """The most frames an incoming message may have under --ws-max-size (None: no limit)."""
    return None if max_size is None else max(max_size // BYTES_PER_FRAME, MIN_FRAME_LIMIT)


def too_many_frames_reason(max_frames: int) -> str:
    """The close reason for a message refused (1009) for its number of frames."""
    return f"message in more than {max_frames} frames"


def check_close(code: Any, reason: Any) -> None:
    """Raise RuntimeError for a close code or reason that may not go in a close frame."""
    if not isinstance(code, int) or not (code in _SENDABLE_CLOSE_CODES or 3000 <= code <= 4999):
        raise RuntimeError(
            f"Invalid WebSocket close code {code!r}: use 1000-1003, 1007-1014 or 3000-4999 (RFC 6455 7.4)."
        )
    if not isinstance(reason, str):
        raise RuntimeError(f"The 'websocket.close' reason must be a str, not {type(reason).__name__}.")
    if len(reason) > MAX_CLOSE_REASON // 4 and len(reason.encode("utf-8")) > MAX_CLOSE_REASON:
        raise RuntimeError(f"The 'websocket.close' reason is longer than {MAX_CLOSE_REASON} bytes in UTF-8.")


class WebSocketProtocol(asyncio.Protocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.server_state = server_state
        self.app_state = app_state
        # Logged "connection open": "connection closed" is owed at the end.
        self._logged_open = False
        # The session's access record, written when the connection is lost:
        # the status that went out (0: none yet), the response body's size
        # and headers, and when the handshake was read (perf_counter).
        self.access_log = access_logger.hasHandlers() and access_logger.isEnabledFor(logging.INFO)
        self._status = 0
        self._bytes_sent = 0
        self._response_headers: list[tuple[bytes, bytes]] | None = None
        self._started = 0.0
        # None (from Python, not the CLI) means no limit.
        self.max_size: int | None = config.ws_max_size
        self.max_frames = max_frames_per_message(self.max_size)
        self.per_message_deflate = config.ws_per_message_deflate
        self._max_queue: int = config.ws_max_queue or sys.maxsize
        # Reading resumes once the app has caught up this far, not at the first
        # message it takes, so that a slow app doesn't pause and resume per message.
        self._resume_at = self._max_queue // 4

        # Set by the HTTP connection before connection_made when it knows better
        # than the transport (a PROXY protocol header).
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int | None] | None = None
        self.scheme = "ws"
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.scope: dict[str, Any] = None  # type: ignore[assignment]

        self._phase = HANDSHAKE
        self._app_state = APP_NEW
        # Over HTTP/2 (RFC 8441): the stream this protocol runs on, which answers the handshake.
        self._tunnel: StreamTransport | None = None
        self._request: HandshakeRequest | None = None
        self._extensions_header: bytes | None = None
        # Bytes that arrived after the head but before the app accepted.
        self._early_data = bytearray()
        self._flow = WriteFlow()
        self._reading: ReadGate = None  # type: ignore[assignment]
        self._queue: deque[dict[str, Any]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        # The websocket.disconnect message, once the connection has ended for the app.
        self._disconnect: dict[str, Any] | None = None
        self._keepalive: Keepalive | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        # A denial response in progress: status, headers, body chunks.
        self._denial: tuple[int, list[Any], list[bytes]] | None = None

    # -- the library adapter's part ----------------------------------------------

    def _negotiate(self, request: HandshakeRequest) -> bytes | None:
        raise NotImplementedError

    def _receive_frames(self, data: bytes) -> None:
        raise NotImplementedError

    def _send_text(self, text: str) -> None:
        raise NotImplementedError

    def _send_bytes(self, data: bytes | bytearray | memoryview) -> None:
        raise NotImplementedError

    def _send_close(self, code: int, reason: str) -> None:
        raise NotImplementedError

    def _send_ping(self, payload: bytes) -> None:
        raise NotImplementedError

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._reading = ReadGate(self.transport, contextvars.copy_context())
        if _write_buffer_full(self.transport):
            # Upgraded behind a response the peer has not read: the transport
            # paused writing before we were its protocol, and will only tell
            # us when it resumes.
            self.pause_writing()
        self.server = get_local_addr(transport)
        if self.client is None:
            self.client = get_remote_addr(transport)
        if is_ssl(transport):
            self.scheme = "wss"
        self.server_state.connections.add(self)
        if logger.isEnabledFor(TRACE_LOG_LEVEL):
            logger.log(TRACE_LOG_LEVEL, "%sWebSocket connection made", client_prefix(self, transport))

    def connection_lost(self, exc: Exception | None) -> None:
        if logger.isEnabledFor(TRACE_LOG_LEVEL):
            logger.log(TRACE_LOG_LEVEL, "%sWebSocket connection lost", client_prefix(self, None))
        if self._logged_open:
            logger.info("connection closed")
        if self._status and self.access_log and self.scope is not None:
            log_access(self._access_entry())
        self.server_state.connections.discard(self)
        self._phase = CLOSED
        self._stop_keepalive()
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._set_disconnect(CLOSE_ABNORMAL, "")
        self._flow.resume_writing()  # no sender may wait forever on a dead transport

    def data_received(self, data: bytes) -> None:
        phase = self._phase
        if phase is OPEN or phase is CLOSING:
            self._receive_frames(data)
        elif phase is CONNECTING:
            # A client must wait for the 101 before it sends frames; keep what
            # an eager one sent, but not without bound.
            self._early_data += data
            if len(self._early_data) > HIGH_WATER_LIMIT:
                self._reading.pause(PAUSE_EARLY_DATA)

    def eof_received(self) -> bool | None:
        return None  # a half-closed WebSocket is a closed one: let the transport close

    def pause_writing(self) -> None:
        # The app's send() waits, and so does reading: what the peer sends
        # may need answers (pongs) that would pile up unread.
        self._flow.pause_writing()
        self._reading.pause(PAUSE_WRITE)

    def resume_writing(self) -> None:
        self._flow.resume_writing()
        self._reading.resume(PAUSE_WRITE)

    # -- called by the server ------------------------------------------------------

    def shutdown(self) -> None:
        """Server shutdown: close an open WebSocket with 1012, refuse one not yet accepted."""
        phase = self._phase
        if phase is OPEN:
            self._send_close(CLOSE_SERVICE_RESTART, "")
            self._start_closing(CLOSE_SERVICE_RESTART, "")
        elif phase is CONNECTING:
            if self._app_state is APP_RESPONDING:
                return  # its denial response is on its way; the connection closes after it
            self._set_disconnect(CLOSE_SERVICE_RESTART, "")
            self._respond_plain(503, "Service Unavailable")
        elif phase is HANDSHAKE:
            self._close_transport()

    def check_timeouts(self, now: float) -> None:
        """Nothing to do: keep-alive pings and the close handshake have timers of their own."""

    def abort(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    # -- the handshake -------------------------------------------------------------

    def _default_headers(self) -> tuple[bytes, frozenset[bytes]]:
        state = self.server_state
        return state.default_headers, state.default_header_names

    def start_over_http1(self, head: RequestHead, trailing: bytes) -> None:
        """An upgrade request the HTTP/1.1 connection parsed; `trailing` is what the client sent after it."""
        if self._start_checked(validate_request, head) and trailing:
            self.data_received(trailing)

    def _start_checked(self, validate: Callable[[Any], HandshakeRequest], request: Any) -> bool:
        """Start on `validate(request)`; a bad handshake is answered here, and False returned."""
        try:
            self._start(validate(request))
        except HandshakeError as exc:
            logger.warning("Invalid WebSocket handshake received: %s", exc)
            self._respond_plain(exc.status, str(exc), exc.headers)
            return False
        return True

    def _start(self, request: HandshakeRequest) -> None:
        """A valid handshake: run the app to decide on it.  Raises HandshakeError."""
        transport = self.transport
        if self.access_log:
            self._started = time.perf_counter()
        self.scope = websocket_scope(
            request,
            asgi_version=ASGI2_VERSION if self.config.interface == "asgi2" else ASGI_VERSION,
            server=self.server,
            client=self.client,
            scheme=self.scheme,
            root_path=self.config.root_path,
            app_state=self.app_state,
            tls=tls_extension(transport) if self.scheme == "wss" else None,
        )
        rewriter = self.config.proxy_rewriter
        if rewriter is not None and rewriter.trusts_peer(self.client, self.server):
            rewriter.apply(self.scope)
        self._extensions_header = self._negotiate(request)
        self._request = request
        state = self.server_state
        state.total_requests += 1
        limit = self.config.limit_concurrency
        if limit is not None and (len(state.connections) > limit or len(state.tasks) >= limit):
            logger.warning("Exceeded concurrency limit.")
            state.count("rejected_503")
            self._respond_plain(503, "Service Unavailable")
            return

        self._phase = CONNECTING
        self._queue.append(_CONNECT)
        task = self.loop.create_task(self._run_asgi())
        tasks = state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def start_over_http2(self, request: H2Request) -> None:
        """An extended CONNECT on an HTTP/2 stream (RFC 8441), which is this protocol's transport."""
        self._tunnel = self.transport
        self._start_checked(validate_h2_request, request)

    def _respond_plain(self, status: int, text: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        """A short text/plain response of the server's own (errors, 403, 503) instead of the handshake."""
        self._send_response(status, [(b"content-type", b"text/plain; charset=utf-8"), *headers], text.encode())

    def _send_response(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """A whole HTTP response instead of the handshake's, then close.  RuntimeError for bad headers."""
        if self._tunnel is not None:
            self._tunnel.respond(status, headers, body)
        else:
            self.transport.write(http_response(status, headers, body, *self._default_headers()))
        self._status, self._bytes_sent, self._response_headers = status, len(body), headers
        self._phase = CLOSED
        self._close_transport()

    # -- the app ---------------------------------------------------------------------

    async def _run_asgi(self) -> None:
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            logger.debug("WebSocket client disconnected: %s", self.scope["path"])
            self._app_finished(failed=False)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                logger.debug("WebSocket task cancelled: %s", self.scope["path"])
            else:
                logger.error("Exception in ASGI application\n", exc_info=exc)
            self._app_finished(failed=True)
            if not isinstance(exc, Exception):
                raise
        else:
            if result is not None:
                logger.error("ASGI callable returned a value instead of None: %r", result)
            self._app_finished(failed=False)

    def _app_finished(self, failed: bool) -> None:
        phase = self._phase
        if phase is CONNECTING:
            # Nothing was written yet (a denial response is only written once
            # complete), so the client can still be told that the app failed.
            if not failed:
                if self._app_state is APP_RESPONDING:
                    logger.error("ASGI callable returned without completing the WebSocket denial response.")
                else:
                    logger.error("ASGI callable returned without accepting or closing the WebSocket.")
            self._set_disconnect(CLOSE_ABNORMAL, "")
            self._log_handshake("500")
            self._respond_plain(500, "Internal Server Error")
        elif phase is OPEN:
            # The app is done with an open WebSocket: close it properly for the
            # peer rather than dropping the connection (1011 if the app failed).
            code = CLOSE_INTERNAL_ERROR if failed else 1000
            self._send_close(code, "")
            self._start_closing(code, "")

    async def receive(self) -> dict[str, Any]:
        queue = self._queue
        while not queue:
            if self._disconnect is not None:
                return dict(self._disconnect)
            waiter = self._waiter
            if waiter is None or waiter.done():
                waiter = self._waiter = self.loop.create_future()
            await waiter
        message = queue.popleft()
        if self._reading.reasons & PAUSE_QUEUE and len(queue) <= self._resume_at:
            self._reading.resume(PAUSE_QUEUE)
        return message

    async def send(self, message: dict[str, Any]) -> None:
        if self._flow.write_paused:
            await self._flow.drain()
        if self._phase is OPEN and self._app_state is APP_OPEN and message["type"] == "websocket.send":
            data = message.get("bytes")
            text = message.get("text")
            if data is None and isinstance(text, str):
                self._send_text(text)
            elif text is None and isinstance(data, _BYTES_LIKE):
                self._send_bytes(data)
            else:
                _check_send(message)  # raises: every valid form was handled above
            return
        self._send_other(message)

    def _send_other(self, message: dict[str, Any]) -> None:
        """Everything but a well-formed `websocket.send` on an open connection."""
        kind = message["type"]
        state = self._app_state
        if state is APP_NEW:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._reject()
            elif kind == "websocket.http.response.start":
                self._start_denial(message)
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.accept', 'websocket.close' or"
                    f" 'websocket.http.response.start', but got {kind!r}."
                )
        elif state is APP_OPEN:
            if kind == "websocket.send":
                _check_send(message)
                raise ClientDisconnected("The WebSocket is closed.")
            elif kind == "websocket.close":
                self._close(message)
            elif kind == "websocket.accept":
                raise RuntimeError("Unexpected ASGI message 'websocket.accept': the WebSocket is already accepted.")
            else:
                raise RuntimeError(f"Expected ASGI message 'websocket.send' or 'websocket.close', but got {kind!r}.")
        elif state is APP_RESPONDING:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"Expected ASGI message 'websocket.http.response.body', but got {kind!r}.")
            self._denial_body(message)
        else:
            raise RuntimeError(
                f"Unexpected ASGI message {kind!r} sent after the WebSocket was closed or its response was sent."
            )

    def _accept(self, message: dict[str, Any]) -> None:
        request = self._request
        assert request is not None
        subprotocol = message.get("subprotocol") or None
        if subprotocol is not None and subprotocol not in request.subprotocols:
            raise RuntimeError(
                f"'websocket.accept' chose the subprotocol {subprotocol!r}, which the client did not offer"
                f" (it offered {request.subprotocols!r})."
            )
        if self._phase is not CONNECTING:
            raise ClientDisconnected("The client went away before the WebSocket was accepted.")
        try:
            if self._tunnel is not None:
                self._tunnel.accept(accept_headers(subprotocol, self._extensions_header, message.get("headers") or ()))
            else:
                self.transport.write(
                    accept_response(
                        request, subprotocol, self._extensions_header, message.get("headers") or (), *self._default_headers()
                    )
                )
        except (TypeError, ValueError) as exc:
            raise RuntimeError(f"Invalid 'websocket.accept' headers: {exc}") from None
        self._app_state = APP_OPEN
        self._phase = OPEN
        # RFC 8441: over HTTP/2 a WebSocket is accepted with 200.
        self._status = 200 if self._tunnel is not None else 101
        self._response_headers = message.get("headers")
        self._log_handshake("[accepted]")
        logger.info("connection open")
        self._logged_open = True
        interval = self.config.ws_ping_interval
        if interval:
            self._keepalive = Keepalive(
                self.loop, interval, self.config.ws_ping_timeout or None, self._send_ping, self._on_ping_timeout
            )
            self._keepalive.start()
        early, self._early_data = self._early_data, bytearray()
        self._reading.resume(PAUSE_EARLY_DATA)
        if early:
            self._receive_frames(bytes(early))

    def _reject(self) -> None:
        """`websocket.close` before `websocket.accept`: 403, as the ASGI spec says."""
        self._app_state = APP_DONE
        if self._phase is CONNECTING:
            self._set_disconnect(CLOSE_ABNORMAL, "")
            self._log_handshake("403")
            self._respond_plain(403, "")

    def _start_denial(self, message: dict[str, Any]) -> None:
        status = message["status"]
        if not isinstance(status, int) or not 200 <= status <= 599:
            raise RuntimeError(f"Invalid HTTP status code {status!r} in 'websocket.http.response.start'.")
        self._denial = (status, list(message.get("headers") or ()), [])
        self._app_state = APP_RESPONDING

    def _denial_body(self, message: dict[str, Any]) -> None:
        assert self._denial is not None
        status, headers, body = self._denial
        chunk = message.get("body", b"")
        if not isinstance(chunk, _BYTES_LIKE):
            raise RuntimeError(f"'websocket.http.response.body' body must be bytes, not {type(chunk).__name__}.")
        body.append(bytes(chunk))
        if message.get("more_body", False):
            return
        if self._phase is CONNECTING:
            try:
                self._send_response(status, headers, b"".join(body))
            except (TypeError, ValueError) as exc:
                raise RuntimeError(f"Invalid 'websocket.http.response.start' headers: {exc}") from None
            self._app_state = APP_DONE
            self._set_disconnect(CLOSE_ABNORMAL, "")
            self._log_handshake(str(status))
        else:
            self._app_state = APP_DONE  # the client is gone: like HTTP, drop the rest silently
        self._denial = None

    def _close(self, message: dict[str, Any]) -> None:
        code = message.get("code")
        if code is None:
            code = 1000
        reason = message.get("reason") or ""
        check_close(code, reason)
        self._app_state = APP_DONE
        if self._phase is OPEN:
            # Whatever the peer sent meanwhile is moot: the app is done reading.
            self._queue.clear()
            self._send_close(code, reason)
            self._start_closing(code, reason)

    # -- events reported by the library adapter -------------------------------------

    def _deliver(self, message: dict[str, Any]) -> None:
        """A complete message from the peer, for the app."""
        if self._phase is not OPEN:
            return  # our close frame is out: RFC 6455 1.4 lets us ignore what follows
        queue = self._queue
        queue.append(message)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if len(queue) >= self._max_queue:
            self._reading.pause(PAUSE_QUEUE)

    def _on_pong(self, payload: bytes) -> None:
        if self._keepalive is not None:
            self._keepalive.pong_received(payload)

    def _on_peer_close(self, code: int, reason: str) -> None:
        """The peer's close frame: the adapter has echoed it if it had to; we close TCP first."""
        self._set_disconnect(code, reason)
        self._close_transport()

    def _on_protocol_error(self, code: int, reason: str) -> None:
        """The adapter failed the connection (RFC 6455 7.1.7) and sent this close code."""
        self._set_disconnect(code, reason)
        self._close_transport()

    def _on_ping_timeout(self) -> None:
        self._keepalive = None
        if self._phase is OPEN:
            reason = "keepalive ping timeout"
            self._send_close(CLOSE_INTERNAL_ERROR, reason)
            self._set_disconnect(CLOSE_INTERNAL_ERROR, reason)
            self._close_transport()

    # -- closing -----------------------------------------------------------------------

    def _set_disconnect(self, code: int, reason: str) -> None:
        if self._disconnect is None:
            self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            waiter, self._waiter = self._waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def _start_closing(self, code: int, reason: str) -> None:
        """Our close frame is out: wait for the peer's, reading meanwhile."""
        self._set_disconnect(code, reason)
        self._phase = CLOSING
        self._stop_keepalive()
        self._reading.resume(PAUSE_QUEUE)  # the app reads no more: nothing is queued for it
        self._close_timer = self.loop.call_later(CLOSE_TIMEOUT, self._close_transport)

    def _close_transport(self) -> None:
        """Close TCP (the server's job, RFC 6455 7.1.1); abort if it cannot flush in time."""
        self._phase = CLOSED
        self._stop_keepalive()
        if self._close_timer is not None:
            self._close_timer.cancel()
        transport = self.transport
        if not transport.is_closing():
            transport.close()
            self._close_timer = self.loop.call_later(CLOSE_TIMEOUT, self.abort)
        else:
            self._close_timer = None

    def _stop_keepalive(self) -> None:
        if self._keepalive is not None:
            self._keepalive.stop()
            self._keepalive = None

    # -- logging -------------------------------------------------------------------------

    def _log_handshake(self, outcome: str) -> None:
        """'127.0.0.1:5000 - "WebSocket /chat" [accepted]' (or the status refusing it), as Uvicorn logs it."""
        scope = self.scope
        client = scope.get("client")
        client_text = f"{client[0]}:{client[1]}" if client else "-"
        path = scope["path"]
        if scope["query_string"]:
            path += "?" + scope["query_string"].decode("ascii", "replace")
        # Escaped by squall.logging.EscapeRequestData, as every argument of the server's messages.
        logger.info('%s - "WebSocket %s" %s', client_text, path, outcome)

    def _access_entry(self) -> AccessEntry:
        duration = time.perf_counter() - self._started if self._started else 0.0
        method = "GET" if self._tunnel is None else "CONNECT"
        return AccessEntry(
            "websocket",
            self.scope,
            method,
            self._status,
            self._bytes_sent,
            duration,
            self._response_headers,
            self.config.access_line_format,
        )


def _write_buffer_full(transport: asyncio.Transport) -> bool:
    """Whether the transport's write buffer is over its high-water mark (so it has paused writing)."""
    try:
        _, high = transport.get_write_buffer_limits()
    except (AttributeError, NotImplementedError):  # a transport without limits never pauses writing
        return False
    return transport.get_write_buffer_size() > high


def _check_send(message: dict[str, Any]) -> None:
    """Raise RuntimeError for a `websocket.send` without exactly one of bytes or text."""
    data = message.get("bytes")
    text = message.get("text")
    if data is not None and text is not None:
        raise RuntimeError("'websocket.send' must have exactly one of 'bytes' or 'text', not both.")
    if data is None and text is None:
        raise RuntimeError("'websocket.send' must have one of 'bytes' or 'text'.")
    if data is not None and not isinstance(data, _BYTES_LIKE):
        raise RuntimeError(f"'websocket.send' bytes must be bytes, not {type(data).__name__}.")
    if text is not None and not isinstance(text, str):
        raise RuntimeError(f"'websocket.send' text must be a str, not {type(text).__name__}.")
