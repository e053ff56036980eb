"""What every HTTP connection does, whatever the HTTP version.

`Connection` owns the transport and what hangs off it: the addresses and
TLS details every scope repeats, reading paused by reason (`ReadGate`),
the write back-pressure passed on to the streams that write, the app tasks
it starts (each in a fresh copy of the connection's context, never from
inside another app's task), the concurrency limit, and the timeouts, which
the server checks twice a second through `check_timeouts` rather than
arming a timer per request.

`H1Connection` (HTTP/1.1) and `H2Connection` (HTTP/2) subclass it and do
the wire's part; the request as the app sees it is `stream.ASGIStream`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import time
from asyncio.selector_events import _SelectorSocketTransport
from typing import TYPE_CHECKING, Any

from squall.access_log import AccessEntry, log_access
from squall.protocols.http.flow_control import PAUSE_WRITE, ReadGate
from squall.protocols.utils import get_local_addr, get_remote_addr, is_ssl, tls_extension

if TYPE_CHECKING:
    from squall.config import Config
    # Annotations only: the compiled stream module imports this one (its `host`).
    from squall.protocols.http.stream import ASGIStream
    from squall.server import ServerState

logger = logging.getLogger("squall.error")
access_logger = logging.getLogger("squall.access")

# Seconds a transport we closed may take to be gone before it is aborted.
CLOSE_GRACE = 1.0

# Response parts `write_later` holds (body chunks an app sends one after
# another without yielding to the loop) go out together at the end of the
# loop turn: one system call rather than one per chunk.  Past this many
# bytes they go out at once, so what is held stays small.
COALESCE_LIMIT = 65536

# asyncio's own TCP transport reads with `sock.recv(max_size)`, 256 KiB by
# default: a block that size is above glibc's mmap threshold (128 KiB, until
# the process frees a bigger mapped block), so every read cost an mmap(2),
# an mremap(2) shrinking it to what arrived, a munmap(2) and a page fault:
# three more system calls per small WebSocket message, more than doubling
# the CPU an echo took.  Reads of 64 KiB come from the heap.
READ_SIZE = 65536

# asyncio.Task(..., eager_start=True): the task's first step runs at once,
# with the task current; one that ends there is never scheduled.
EAGER_TASKS = sys.version_info >= (3, 12)

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
ASGI2_VERSION = {"version": "2.0", "spec_version": "2.4"}

# Extensions every HTTP scope advertises (copied per request: apps may add to it).
HTTP_EXTENSIONS: dict[str, Any] = {
    "http.response.trailers": {},
    "http.response.early_hint": {},
    "http.response.pathsend": {},
    "http.response.zerocopysend": {},
}


async def service_unavailable(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The app that answers requests beyond `--limit-concurrency`."""
    body = b"Service Unavailable"
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Connection:
    """The part of an `asyncio.Protocol` every HTTP version shares, and the `StreamHost`'s.

    Neither is a base class here: the class may be compiled (Cython, with
    `connection.pxd`), and a compiled class cannot derive from a Python one.
    The concrete connections add `asyncio.Protocol` (an empty-slotted class).
    """

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
        self.access_log = access_logger.hasHandlers() and access_logger.isEnabledFor(logging.INFO)
        self.access_format = config.access_line_format
        self.asgi_version = ASGI2_VERSION if config.interface == "asgi2" else ASGI_VERSION
        self.reset_contextvars = bool(getattr(config, "reset_contextvars", False))
        self.proxy_rewriter = config.proxy_rewriter
        # Whether the peer is a trusted proxy whose headers rewrite each scope
        # (decided in connection_made, once the peer's address is known).
        self.proxy_trusted = False
        # squall.metrics.recorder.Recorder, when metrics are on.
        self.metrics = server_state.metrics

        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.read_gate: ReadGate = None  # type: ignore[assignment]
        # Set before connection_made by whoever knows better than the
        # transport (a PROXY protocol header, a protocol switch).
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int | None] | None = None
        self.scheme = "http"
        self.extensions: dict[str, Any] = HTTP_EXTENSIONS
        self.closing = False
        # When close_transport closed the transport (loop time; 0: it did not).
        self.closed_at = 0.0
        self.write_paused = False
        # When the transport's buffer filled, or last drained some while full
        # (loop time), and its size then: for the write timeout.
        self.write_paused_at = 0.0
        self.write_buffered = 0
        # The context request tasks are copies of, and reading resumes in.
        self.context: contextvars.Context = None  # type: ignore[assignment]
        # Start each app's task eagerly (asyncio's own eager tasks, Python
        # 3.12+), unless the loop has a task factory of its own to honour.
        self.eager_start = EAGER_TASKS and self.loop.get_task_factory() is None
        # What `write_later` holds for the end of the loop turn, and its size.
        self._unsent: list[bytes] = []
        self._unsent_size = 0
        # Made again once the addresses and the scheme are known (connection_made).
        self.scope_template = self._scope_template()

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if isinstance(transport, _SelectorSocketTransport):
            transport.max_size = READ_SIZE  # (the protocols it is handed to after us keep it)
        self.context = contextvars.copy_context()
        self.read_gate = ReadGate(self.transport, self.context)
        self.server = get_local_addr(transport)
        if self.client is None:
            self.client = get_remote_addr(transport)
        if self.proxy_rewriter is not None:
            self.proxy_trusted = self.proxy_rewriter.trusts_peer(self.client, self.server)
        if is_ssl(transport):
            self.scheme = "https"
            tls = tls_extension(transport)
            if tls is not None:
                self.extensions = {**HTTP_EXTENSIONS, "tls": tls}
        self.scope_template = self._scope_template()
        self.server_state.connections.add(self)

    def _scope_template(self) -> dict[str, Any]:
        """The keys of an HTTP scope that are the same for every request of this connection."""
        return {
            "type": "http",
            "asgi": self.asgi_version,
            "http_version": None,
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": None,
            "root_path": self.root_path,
            "path": None,
            "raw_path": None,
            "query_string": None,
            "headers": None,
            "state": None,
            "extensions": None,
        }

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        self.closing = True
        self._unsent.clear()
        self.write_paused = False
        for stream in self.open_streams():
            stream.disconnect()

    def eof_received(self) -> bool | None:
        return None  # a half-closed HTTP connection is a closed one

    def pause_writing(self) -> None:
        # A peer that does not read what we write must not make us buffer
        # answers without end (pipelined requests, PING floods): stop
        # reading until it catches up.
        self.write_paused = True
        self.write_paused_at = self.loop.time()
        self.read_gate.pause(PAUSE_WRITE)
        self.write_buffered = self.transport.get_write_buffer_size()
        for stream in self.open_streams():
            stream.block()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.read_gate.resume(PAUSE_WRITE)
        for stream in self.open_streams():
            if self.may_write(stream):
                stream.unblock()

    # -- what subclasses provide ---------------------------------------------------------

    @property
    def draining(self) -> bool:
        return self.server_state.draining

    def open_streams(self) -> list[ASGIStream]:
        """The streams whose apps may still receive or send."""
        raise NotImplementedError

    def may_write(self, stream: ASGIStream) -> bool:
        """Whether `stream` may write now, as far as the protocol is concerned (windows)."""
        return True

    def check_timeouts(self, now: float) -> None:
        """Called by the server twice a second: close what has waited too long."""
        timeout = self.config.timeout_write
        if not (self.write_paused and timeout) or self.transport is None:
            return
        buffered = self.transport.get_write_buffer_size()
        if buffered < self.write_buffered:
            # The client read some: slow, not gone (a large chunk can take
            # longer than the timeout to drain).
            self.write_paused_at = now
        self.write_buffered = buffered
        if now - self.write_paused_at >= timeout:
            logger.debug("Closing a connection whose client stopped reading for %ss.", timeout)
            self.server_state.count("timeout_write")
            self.abort()

    def shutdown(self) -> None:
        """Graceful shutdown: finish what is in progress, accept nothing new."""
        raise NotImplementedError

    # -- for subclasses ----------------------------------------------------------------

    def choose_app(self) -> Any:
        """The app, or the 503 app past `--limit-concurrency`."""
        limit = self.limit_concurrency
        if limit is not None:
            state = self.server_state
            if len(state.connections) > limit or len(state.tasks) >= limit:
                logger.warning("Exceeded concurrency limit.")
                state.count("rejected_503")
                return service_unavailable
        return self.app

    def start_stream(self, stream: ASGIStream, app: Any) -> None:
        """Run the app for `stream` in a task of its own.

        Called only from the transport's callbacks or from callbacks
        scheduled in `self.context`, never from an app's task: the task's
        context is then a fresh copy of the connection's (or, with
        `--reset-contextvars`, an empty one).  With `eager_start` the app
        runs at once, so it is called only once the input at hand is
        parsed: no parser is ever below an app on the stack.
        """
        if self.write_paused:
            stream.block()
        if self.access_log:
            stream.started = time.perf_counter()
        if self.eager_start:
            # The app runs now, until it first waits: a request it answers
            # without waiting never costs a loop turn (Python 3.12+).
            context = contextvars.Context() if self.reset_contextvars else None
            task = asyncio.Task(stream.run(app), loop=self.loop, context=context, eager_start=True)
        elif self.reset_contextvars:
            task = contextvars.Context().run(self.loop.create_task, stream.run(app))
        else:
            task = self.loop.create_task(stream.run(app))
        stream.task = task
        if not (self.eager_start and task.done()):
            # Taken out of the set by `stream_finished`, at the end of the
            # task's own run: a done callback would cost a loop turn per request.
            self.server_state.tasks.add(task)
        if self.metrics is not None:
            self.metrics.request_started(stream, task)

    # -- the StreamHost calls a stream makes for each response (stream.py) -------------
    # Declared here, not only in the subclasses, so that a compiled stream
    # calls them directly (connection.pxd); each subclass writes its protocol.

    def stream_start_response(self, stream: ASGIStream, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def stream_send_body(self, stream: ASGIStream, body: bytes, more_body: bool) -> None:
        raise NotImplementedError

    def stream_complete(self, stream: ASGIStream) -> None:
        raise NotImplementedError

    def stream_body_consumed(self, stream: ASGIStream, size: int) -> None:
        raise NotImplementedError

    def stream_finished(self, stream: ASGIStream) -> None:
        """The app's call for `stream` returned (or raised); subclasses add their protocol's part."""
        self.server_state.tasks.discard(stream.task)

    def call_soon_in_context(self, callback: Any, *args: Any) -> None:
        """Run `callback` on the next loop iteration, outside any app's task."""
        self.loop.call_soon(callback, *args, context=self.context)

    def base_scope(
        self, method: str, http_version: str, path: str, raw_path: bytes, query: bytes, headers: list[tuple[bytes, bytes]]
    ) -> dict[str, Any]:
        # A copy of the connection's own keys, then the request's: cheaper than
        # building the 14 keys anew (the order of the keys stays the same).
        scope: dict[str, Any] = self.scope_template.copy()
        scope["http_version"] = http_version
        scope["method"] = method
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = query
        scope["headers"] = headers
        scope["state"] = self.app_state.copy()
        scope["extensions"] = self.extensions.copy()
        if self.proxy_trusted:
            self.proxy_rewriter.apply(scope)  # type: ignore[union-attr]
        return scope

    def log_access(self, stream: ASGIStream) -> None:
        """The access record of a response that is complete (or given up on)."""
        started = stream.started
        log_access(
            AccessEntry(
                "http",
                stream.scope,
                stream.scope["method"],
                stream.status,
                stream.bytes_sent,
                time.perf_counter() - started if started else 0.0,
                stream.response_headers,
                self.access_format,
            )
        )

    def close_transport(self) -> None:
        self.flush()
        self.closing = True
        if not self.transport.is_closing():
            self.closed_at = self.loop.time()
            self.transport.close()

    def close_stalls(self, now: float) -> bool:
        """Whether we closed the transport (then nothing else is timed): abort it if it takes too long.

        Closing a TLS transport waits for the peer's close_notify, up to 30 s;
        a peer that does not read (a browser's idle or preconnected socket)
        never sends it.  Once what we wrote is out, or the write timeout (if
        any) has passed, there is nothing left to wait for.
        """
        if not self.closed_at:
            return False
        waited = now - self.closed_at
        if waited >= CLOSE_GRACE:
            timeout = self.config.timeout_write
            if not self.transport.get_write_buffer_size() or (timeout and waited >= timeout):
                self.transport.abort()  # (`abort` leaves a closing transport alone)
        return True

    def abort(self) -> None:
        """Drop the connection now; its apps hear of it at once, not when the loop next turns."""
        self.closing = True
        self._unsent.clear()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()
        for stream in self.open_streams():
            stream.disconnect()

    def write(self, data: bytes) -> None:
        """Write `data` now, after anything `write_later` holds."""
        if not self.closing:
            if self._unsent:
                self._unsent.append(data)
                data = self.take_unsent()
            self.transport.write(data)

    def write_later(self, data: bytes) -> None:
        """Write `data` at the end of this loop turn, with what else is written until then."""
        if self.closing:
            return
        unsent = self._unsent
        if not unsent:
            self.loop.call_soon(self.flush, context=self.context)
        unsent.append(data)
        self._unsent_size += len(data)
        if self._unsent_size >= COALESCE_LIMIT:
            self.flush()

    def flush(self) -> None:
        """Pass what `write_later` holds to the transport now (before any write that bypasses `write`)."""
        if self._unsent and not self.closing:
            self.transport.write(self.take_unsent())

    def take_unsent(self) -> bytes:
        """What `write_later` holds, joined, and no longer held; for a write that bypasses `write`."""
        data = b"".join(self._unsent)
        self._unsent.clear()
        self._unsent_size = 0
        return data
