"""An HTTP/1.1 connection, whatever parser reads its bytes.

A parser implementation subclasses `HTTPConnection`, turns bytes into calls
to `on_request_head`, `on_body`, `on_request_end` and `on_parse_error`, and
implements `resume_parsing`.  Everything else — keep-alive, pipelining,
back-pressure, upgrades, limits, shutdown, error responses — lives here once.

Connection states, as the attributes show them:
- idle: no cycle running, nothing pipelined; `idle_since` is the loop time the
  idle period began, and the server closes it after `--timeout-keep-alive`.
  A new connection counts as idle until its first request head is complete,
  so a client that trickles its headers is timed out too.
- busy: `cycle` is the request whose response is being written; later
  requests already parsed wait in `pipeline`.
- closing: the transport is closing; nothing more is parsed or written.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from squall.protocols.http.cycle import RequestResponseCycle
from squall.protocols.http.flow_control import FlowControl
from squall.protocols.http.response import simple_response
from squall.protocols.utils import get_local_addr, get_remote_addr, is_ssl, tls_extension

if TYPE_CHECKING:
    from squall.config import Config
    from squall.server import ServerState

logger = logging.getLogger("squall.error")
access_logger = logging.getLogger("squall.access")

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
ASGI2_VERSION = {"version": "2.0", "spec_version": "2.4"}

# The request methods llhttp knows; it rejects any other, and h11 is held to
# the same list so that a request is served or refused whichever parser reads it.
KNOWN_METHODS = frozenset(
    b"GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH PURGE QUERY COPY LOCK MKCOL MOVE PROPFIND"
    b" PROPPATCH SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY"
    b" SUBSCRIBE UNSUBSCRIBE MKCALENDAR LINK UNLINK SOURCE".split()
)

# What a request line adds to its method and target: b" " + b" HTTP/1.1" + b"\r\n".
REQUEST_LINE_OVERHEAD = 12

_SPECIAL_REQUEST_HEADERS = frozenset(
    (b"host", b"connection", b"content-length", b"transfer-encoding", b"expect", b"upgrade")
)


# Seconds a connection that has sent nothing yet may still send its first
# request once the server is shutting down.
SHUTDOWN_GRACE = 1.0


class BadRequest(Exception):
    """The request cannot be served; answered with `status` and the connection closed."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class RequestHead:
    """What was read of a request before its body, in wire form, for upgrades."""

    __slots__ = ("method", "target", "http_version", "headers")

    def __init__(self, method: bytes, target: bytes, http_version: str, headers: list[tuple[bytes, bytes]]) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers

    def serialize(self) -> bytes:
        lines = [b"%s %s HTTP/%s\r\n" % (self.method, self.target, self.http_version.encode())]
        lines.extend(name + b": " + value + b"\r\n" for name, value in self.headers)
        lines.append(b"\r\n")
        return b"".join(lines)


async def _service_unavailable(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b"Service Unavailable"
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body)), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class HTTPConnection(asyncio.Protocol):
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
        self.root_path = config.root_path
        self.limit_concurrency = config.limit_concurrency
        self.ws_protocol_class = config.ws_protocol_class
        self.access_log = access_logger.hasHandlers() and access_logger.isEnabledFor(logging.INFO)
        self.asgi_version = ASGI2_VERSION if config.interface == "asgi2" else ASGI_VERSION

        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.flow: FlowControl = None  # type: ignore[assignment]
        self.server: tuple[str, int | None] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.extensions: dict[str, Any] = {}

        self.cycle: RequestResponseCycle | None = None
        self.pipeline: deque[tuple[RequestResponseCycle, Any]] = deque()
        # The cycle whose body the parser is reading (the newest one).
        self.parsing: RequestResponseCycle | None = None
        self.idle_since: float | None = None
        self.closing = False
        # A malformed request was read while earlier ones were still being
        # answered: (status, message) of the error response owed after them.
        self.pending_error: tuple[int, str] | None = None
        # A WebSocket handshake that arrived behind requests still being
        # answered: (its head, what was read after it), upgraded once they are.
        self.pending_upgrade: tuple[RequestHead, bytearray] | None = None
        self.max_head_size = config.h11_max_incomplete_event_size

    # -- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.flow = FlowControl(self.transport)
        self.server = get_local_addr(transport)
        if self.client is None:  # a PROXY protocol header may have set it already
            self.client = get_remote_addr(transport)
        if is_ssl(transport):
            self.scheme = "https"
            tls = tls_extension(transport)
            if tls is not None:
                self.extensions = {"tls": tls}
        self.server_state.connections.add(self)
        self.idle_since = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        self.closing = True
        for cycle in self._cycles():
            cycle.disconnected = True
            cycle.wake()
        self.pipeline.clear()
        self.parsing = None
        if self.flow is not None:
            self.flow.resume_writing()

    def eof_received(self) -> bool | None:
        return None

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    def _cycles(self) -> list[RequestResponseCycle]:
        cycles = [c for c, _ in self.pipeline]
        if self.cycle is not None:
            cycles.insert(0, self.cycle)
        if self.parsing is not None and self.parsing not in cycles:
            cycles.append(self.parsing)
        return cycles

    # -- called by the server --------------------------------------------------

    def shutdown(self) -> None:
        """Graceful shutdown: close when idle, else after the current response.

        A connection that has not sent a request yet was most likely accepted
        just before the listener closed, with its request on the way: it gets
        `SHUTDOWN_GRACE` seconds to send it (answered with `Connection: close`,
        the server is draining), then the idle sweep closes it.
        """
        if self.cycle is None:
            if self.parsing is None and not self.closing:
                self.idle_since = self.loop.time() - self.config.timeout_keep_alive + SHUTDOWN_GRACE
                return
            self.close_transport()
        else:
            self.cycle.keep_alive = False
            self.pipeline.clear()

    def close_idle(self) -> None:
        if self.cycle is None and not self.pipeline:
            self.close_transport()

    def abort(self) -> None:
        self.closing = True
        self.idle_since = None
        if not self.transport.is_closing():
            self.transport.abort()

    def close_transport(self) -> None:
        self.closing = True
        self.idle_since = None
        if not self.transport.is_closing():
            self.transport.close()

    def write(self, data: bytes) -> None:
        if not self.closing:
            self.transport.write(data)

    def log_access(self, scope: dict[str, Any], status: int) -> None:
        client = scope.get("client")
        client_text = f"{client[0]}:{client[1]}" if client else "-"
        path = scope["path"]
        if scope["query_string"]:
            path += "?" + scope["query_string"].decode("ascii", "replace")
        access_logger.info(
            '%s - "%s %s HTTP/%s" %d', client_text, scope["method"], path, scope["http_version"], status
        )

    # -- parser events ----------------------------------------------------------

    def on_request_head(
        self, method: bytes, target: bytes, http_version: str, headers: list[tuple[bytes, bytes]]
    ) -> bool:
        """A request head was parsed; start or queue its cycle.

        Returns True when the connection was handed to a WebSocket protocol:
        the parser must then stop and pass what it has not read to
        `upgrade`.  Raises `BadRequest` for a request that cannot be served.
        """
        self.idle_since = None
        if http_version != "1.1" and http_version != "1.0":
            # llhttp rejects other versions outright (and reads a request line
            # without one as 0.9); h11 takes any digit.digit.  Answer alike.
            raise BadRequest(f"Unsupported HTTP version {http_version}.", 505 if http_version == "2.0" else 400)
        if method not in KNOWN_METHODS:
            raise BadRequest(f"Unknown method {method[:20]!r}.")
        # The head size limit, counted alike whichever parser read it (and
        # however the bytes arrived): request line, then each header line.
        head_size = len(method) + len(target) + REQUEST_LINE_OVERHEAD
        if head_size > self.max_head_size:
            raise BadRequest("The request line is longer than --h11-max-incomplete-event-size.", 400)
        connection_tokens = b""
        content_length: bytes | None = None
        chunked = False
        expect_100 = False
        upgrade: bytes | None = None
        hosts = 0
        for name, value in headers:
            head_size += len(name) + len(value) + 4
            if name in _SPECIAL_REQUEST_HEADERS:
                if name == b"host":
                    hosts += 1
                elif name == b"content-length":
                    # Even a repeated equal value is refused (RFC 9110 8.6
                    # allows either), as llhttp does.
                    if content_length is not None:
                        raise BadRequest("More than one Content-Length header.")
                    if not value.isdigit():
                        raise BadRequest("Invalid Content-Length header.")
                    content_length = value
                elif name == b"transfer-encoding":
                    # Only chunked is decoded: a body in any other coding
                    # cannot be delimited or handed to the app as sent.
                    if value.strip().lower() != b"chunked":
                        raise BadRequest("Unsupported Transfer-Encoding.")
                    chunked = True
                elif name == b"connection":
                    connection_tokens += b"," + value.lower()
                elif name == b"expect":
                    expect_100 = value.lower() == b"100-continue"
                else:
                    upgrade = value.lower()
        if head_size + 2 > self.max_head_size:
            raise BadRequest("The request head is larger than --h11-max-incomplete-event-size.", 431)
        if hosts != 1 and (hosts or http_version == "1.1"):
            # RFC 9112 3.2: exactly one Host in HTTP/1.1, at most one in 1.0.
            raise BadRequest("A request must have exactly one Host header.")
        if content_length is not None and chunked:
            raise BadRequest("Both Content-Length and Transfer-Encoding were sent.")

        if http_version == "1.1":
            keep_alive = b"close" not in connection_tokens
        else:
            keep_alive = b"keep-alive" in connection_tokens
            expect_100 = False

        if upgrade is not None and b"upgrade" in connection_tokens and upgrade == b"websocket":
            if self.ws_protocol_class is not None:
                return True
            _warn_no_websockets()

        scope = self._build_scope(method, target, http_version, headers)
        has_body = chunked or (content_length is not None and content_length.strip(b"0") != b"")
        cycle = RequestResponseCycle(scope, self, keep_alive, expect_100 and has_body, has_body)
        self.server_state.total_requests += 1

        app = self.app
        limit = self.limit_concurrency
        if limit is not None and (
            len(self.server_state.connections) > limit or len(self.server_state.tasks) >= limit
        ):
            app = _service_unavailable
            logger.warning("Exceeded concurrency limit.")

        self.parsing = cycle
        if self.cycle is None:
            self._start(cycle, app)
        else:
            # Pipelined: answered in order, after the current response.  Stop
            # reading until then, so a client cannot queue without bound.
            self.pipeline.append((cycle, app))
            self.flow.pause_reading()
        return False

    def _build_scope(
        self, method: bytes, target: bytes, http_version: str, headers: list[tuple[bytes, bytes]]
    ) -> dict[str, Any]:
        path, raw_path, query = split_target(target, self.root_path)
        return {
            "type": "http",
            "asgi": self.asgi_version,
            "http_version": http_version,
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": method.decode("ascii"),
            "root_path": self.root_path,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": headers,
            "state": self.app_state.copy(),
            "extensions": self.extensions.copy(),  # per request: apps may add to it
        }

    def on_body(self, data: bytes) -> None:
        cycle = self.parsing
        if cycle is not None:
            cycle.feed_body(data)

    def on_request_end(self) -> None:
        cycle = self.parsing
        if cycle is not None:
            cycle.end_body()

    def head_overflow_status(self, method: bytes, target: bytes) -> int:
        """The status for an unfinished head over the size limit, given what was read of its request line.

        The same rule as for a complete head: 400 when the request line
        alone is too long, else 431 (the headers are).
        """
        if len(method) + len(target) + REQUEST_LINE_OVERHEAD > self.max_head_size:
            return 400
        return 431

    def on_parse_error(self, status: int, message: str) -> None:
        """Malformed input: answer with `status` after the requests before it, then close.

        Nothing more is read.  Requests parsed completely before the error
        are still answered, in order; one whose body the error cut short
        cannot be: if its app is running, it sees `http.disconnect`.
        """
        if self.closing or self.pending_error is not None:
            return
        logger.warning("Invalid HTTP request received: %s", message)
        self.flow.pause_reading()
        self.pending_error = (status, message)
        broken, self.parsing = self.parsing, None
        if broken is not None and broken.more_body and not broken.response_complete:
            broken.more_body = False
            if broken is self.cycle:
                broken.disconnected = True  # its app's receive() now says so; its sends are dropped
                broken.wake()
                if broken.response_started:
                    self.close_transport()  # a response is half-written: the error cannot follow it
                    return
                self._send_error_and_close(status, message)
                return
            self.pipeline = deque(entry for entry in self.pipeline if entry[0] is not broken)
        if self.cycle is None:
            self._send_error_and_close(status, message)

    def _send_error_and_close(self, status: int, message: str) -> None:
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
        self.write(simple_response(status, body, self.server_state.default_headers))
        self.close_transport()

    # -- the request cycle -------------------------------------------------------

    def _start(self, cycle: RequestResponseCycle, app: Any) -> None:
        self.cycle = cycle
        task = self.loop.create_task(cycle.run_asgi(app))
        tasks = self.server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def on_response_complete(self, cycle: RequestResponseCycle) -> None:
        if self.closing:
            return
        if not cycle.keep_alive:
            self.close_transport()
            return
        self.cycle = None
        if self.pipeline:
            next_cycle, app = self.pipeline.popleft()
            self._start(next_cycle, app)
            if not self.pipeline and self.pending_error is None:
                self.flow.resume_reading()
                self.resume_parsing()
            return
        if self.pending_error is not None:
            self._send_error_and_close(*self.pending_error)
            return
        if self.pending_upgrade is not None:
            head, trailing = self.pending_upgrade
            self.pending_upgrade = None
            self.upgrade(head, bytes(trailing))
            return
        if self.config.timeout_keep_alive <= 0:
            self.close_transport()
            return
        self.idle_since = self.loop.time()
        self.flow.resume_reading()
        self.resume_parsing()

    def body_consumed(self, cycle: RequestResponseCycle) -> None:
        """The app took all that was buffered of `cycle`'s body: read on, if that was what paused reading.

        Reading also pauses while pipelined requests wait their turn and
        after a parse error; the app reading its body must not undo those.
        """
        if cycle is self.parsing and not self.pipeline and self.pending_error is None and not self.closing:
            self.flow.resume_reading()

    def resume_parsing(self) -> None:
        """Parse input held back while a response was pending (h11 holds pipelined data)."""

    # -- upgrades ------------------------------------------------------------------

    def upgrade(self, head: RequestHead, trailing: bytes) -> None:
        """Hand the connection to the WebSocket protocol, replaying the request to it.

        A handshake pipelined behind requests that are still being answered
        waits for their responses: the 101 must not overtake them.
        """
        assert self.ws_protocol_class is not None
        if self.cycle is not None or self.pipeline:
            self.pending_upgrade = (head, bytearray(trailing))
            self.flow.pause_reading()
            return
        self.server_state.connections.discard(self)
        self.idle_since = None
        protocol = self.ws_protocol_class(  # type: ignore[call-arg]
            config=self.config,
            server_state=self.server_state,
            app_state=self.app_state,
            _loop=self.loop,
        )
        if self.client is not None and hasattr(protocol, "client"):
            protocol.client = self.client  # type: ignore[attr-defined]
        # The WebSocket side starts with reading on, and must see any
        # pause_writing caused by its own first write.
        self.flow.resume_reading()
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        protocol.data_received(head.serialize() + trailing)

    def buffer_for_upgrade(self, data: bytes) -> None:
        """Bytes that arrived after a deferred handshake belong to the WebSocket."""
        assert self.pending_upgrade is not None
        self.pending_upgrade[1].extend(data)


def split_target(target: bytes, root_path: str) -> tuple[str, bytes, bytes]:
    """(path, raw_path, query_string) of a request target, as ASGI scopes have them.

    Raises BadRequest for a target that is not a path (or absolute URL) in ASCII.
    """
    raw_path, _, query = target.partition(b"?")
    if not raw_path.startswith(b"/"):
        raw_path = _origin_path(raw_path)
    try:
        path = raw_path.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest("Invalid characters in the request target.") from None
    if "%" in path:
        path = unquote(path)
    if root_path:
        path = root_path + path
        raw_path = root_path.encode("ascii") + raw_path
    return path, raw_path, query


def _origin_path(target: bytes) -> bytes:
    """The path of an absolute-form target (RFC 9112 3.2.2), or the target itself."""
    if target == b"*":
        return target
    scheme_end = target.find(b"://")
    if scheme_end == -1:
        raise BadRequest("Invalid request target.")
    slash = target.find(b"/", scheme_end + 3)
    return target[slash:] if slash != -1 else b"/"


_warned_no_websockets = False


def _warn_no_websockets() -> None:
    global _warned_no_websockets
    if not _warned_no_websockets:
        _warned_no_websockets = True
        logger.warning(
            "A WebSocket upgrade request was served as plain HTTP: no WebSocket implementation is enabled"
            " (install 'websockets' or 'wsproto', or drop --ws none)."
        )
