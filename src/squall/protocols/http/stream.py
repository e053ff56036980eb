"""One HTTP request and its response, as the ASGI app sees it, whatever the HTTP version.

An `ASGIStream` is everything HTTP/1.1 and HTTP/2 share about a request: its
scope, the `receive` and `send` callables, the request body buffered for
the app, the state of the response the app is sending, and the end of the
exchange (the response complete, or the client gone).  It never touches
bytes: it tells its connection, a `StreamHost`, what the app sent, and the
connection turns that into HTTP/1.1 or HTTP/2 on the wire.

Response state
--------------
What the app may send depends on what it has sent; anything else raises
RuntimeError.  Once the client is gone, `send` raises `ClientDisconnected`
(an OSError, as ASGI 2.4 asks) whatever the message.

    state     message                                          next state
    -------   ----------------------------------------------   ----------
    START     http.response.early_hint                          START
    START     http.response.start                               BODY
    BODY      http.response.body, more_body                     BODY
    BODY      http.response.body, last (trailers announced)     TRAILERS
    BODY      http.response.body, last                          DONE
    BODY      http.response.pathsend                            TRAILERS or DONE, as above
    BODY      http.response.zerocopysend, more_body             BODY
    BODY      http.response.zerocopysend, last                  TRAILERS or DONE, as above
    TRAILERS  http.response.trailers, more_trailers             TRAILERS
    TRAILERS  http.response.trailers, last                      DONE
    DONE      (anything)                                        RuntimeError

Request side
------------
The connection feeds body chunks (`feed_body`) and the end of the body
(`end_body`); `receive` hands out what is buffered, and tells the host how
many bytes the app took (`stream_body_consumed`): HTTP/1.1 resumes reading
the socket, HTTP/2 opens the flow-control window by that much.  Once the
body was all delivered, `receive` waits until the response is complete or
the client is gone, then returns `http.disconnect` — for ever after, also
once the app has returned.

Writing
-------
`blocked` is set by the host while this stream may not write (HTTP/1.1: the
transport's buffer is full; HTTP/2: the flow-control windows are closed or
the transport is full); `send` waits for `unblock` before it writes.  So an
app can never have more than one message in flight beyond what the peer
accepts.
"""

from __future__ import annotations

import asyncio
import logging
from typing import IO, Any, Protocol

from squall.protocols.http.sendfile import file_span

logger = logging.getLogger("squall.error")

# Response states (module constants, compared with `is`).
START = 0
BODY = 1
TRAILERS = 2
DONE = 3

_DISCONNECT = {"type": "http.disconnect"}
_BYTES_LIKE = (bytes, bytearray, memoryview)


class ClientDisconnected(OSError):
    """Raised by `send` once the client is gone (ASGI 2.4: a server-specific OSError)."""


def _raised_on_disconnect(exc: BaseException) -> bool:
    """Whether `exc` was raised while handling a ClientDisconnected (its cause or context)."""
    seen: set[int] = set()
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ClientDisconnected):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


class StreamHost(Protocol):
    """What a stream needs of its connection; HTTP/1.1 and HTTP/2 each implement it.

    Every method is called from the app's task (inside `send` or `receive`)
    except `stream_finished`; none may start parsing or another request
    there: a host that must do so schedules it on the loop.
    """

    def stream_informational(self, stream: ASGIStream, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """Write a 1xx response (100 Continue, 103 Early Hints) if the protocol allows it here."""
        raise NotImplementedError

    def stream_start_response(self, stream: ASGIStream, message: dict[str, Any]) -> None:
        """Check and prepare the response head; RuntimeError if the app's message is invalid.

        The head need not be written before the first body chunk (ASGI says
        it must not be sent before it), so that both leave together.
        """
        raise NotImplementedError

    def stream_send_body(self, stream: ASGIStream, body: bytes, more_body: bool) -> None:
        """Write a body chunk; RuntimeError if it breaks the response's framing."""
        raise NotImplementedError

    async def stream_send_file(
        self, stream: ASGIStream, file: IO[bytes] | int, offset: int, count: int, more_body: bool
    ) -> None:
        """Write `count` bytes of an open file from `offset` as body (pathsend, zerocopysend)."""
        raise NotImplementedError

    def stream_send_trailers(self, stream: ASGIStream, headers: list[tuple[bytes, bytes]], more: bool) -> None:
        """Write trailer fields (collected until `more` is False)."""
        raise NotImplementedError

    def stream_complete(self, stream: ASGIStream) -> None:
        """The response is complete."""
        raise NotImplementedError

    def stream_abort(self, stream: ASGIStream) -> None:
        """The response was started and cannot be completed: end it as broken for the client."""
        raise NotImplementedError

    def stream_error_response(self, stream: ASGIStream, status: int) -> None:
        """Answer with a plain `status` response of the server's own (nothing was sent yet)."""
        raise NotImplementedError

    def stream_body_consumed(self, stream: ASGIStream, size: int) -> None:
        """The app took `size` bytes of request body from the buffer."""
        raise NotImplementedError

    def stream_finished(self, stream: ASGIStream) -> None:
        """The app's call returned (or raised): the stream is done with."""
        raise NotImplementedError

    @property
    def draining(self) -> bool:
        """The server is shutting down (or handing over to another process)."""
        raise NotImplementedError


class ASGIStream:
    __slots__ = (
        "scope",
        "host",
        "stream_id",
        "state",
        "status",
        "bytes_sent",
        "response_headers",
        "started",
        "is_head",
        "trailers",
        "trailers_allowed",
        "expect_100",
        "disconnected",
        "blocked",
        "wire",
        "task",
        "request_trailers",
        # request body
        "_body",
        "buffered",
        "more_body",
        "_delivered",
        "waiting",
        "_waiter",
        "_unblocked",
    )

    def __init__(
        self, scope: dict[str, Any], host: StreamHost, more_body: bool, expect_100: bool = False, stream_id: int = 0
    ) -> None:
        self.scope = scope
        self.host = host
        # The HTTP/2 stream identifier (0 over HTTP/1.1).
        self.stream_id = stream_id
        self.state = START
        self.status = 0
        self.bytes_sent = 0
        # For the access log: the app's response headers, and when the app
        # was started (perf_counter; set by the host only while the access log is on).
        self.response_headers: list[tuple[bytes, bytes]] | None = None
        self.started = 0.0
        self.is_head = scope["method"] == "HEAD"
        # The app announced trailers in http.response.start.
        self.trailers = False
        # The client accepts trailers (TE: trailers, or HTTP/2), set by the host.
        self.trailers_allowed = False
        # The client waits for 100 Continue before it sends the body.
        self.expect_100 = expect_100
        self.disconnected = False
        self.blocked = False
        # What the connection keeps of this stream for its protocol.
        self.wire: Any = None
        # The task running the app (set by the connection that starts it).
        self.task: asyncio.Task[None] | None = None
        # Trailer fields that ended the request body, handed to the app with its last part.
        self.request_trailers: list[tuple[bytes, bytes]] | None = None
        self._body: list[bytes] = []
        self.buffered = 0
        # More request body may come from the client.
        self.more_body = more_body
        # The whole request body was handed to the app.
        self._delivered = False
        # The app waits in receive() for more body (timed by the host).
        self.waiting = False
        self._waiter: asyncio.Future[None] | None = None
        self._unblocked: asyncio.Future[None] | None = None

    # -- fed by the host ----------------------------------------------------------

    def feed_body(self, data: bytes) -> None:
        self._body.append(data)
        self.buffered += len(data)
        self._wake()

    def end_body(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        if trailers:
            self.request_trailers = trailers
        self.more_body = False
        self._wake()

    def disconnect(self) -> None:
        """The client is gone (or reset the stream): receive says so, send raises."""
        if not self.disconnected:
            self.disconnected = True
            self._wake()
            self.unblock()

    def block(self) -> None:
        self.blocked = True

    def unblock(self) -> None:
        self.blocked = False
        waiter, self._unblocked = self._unblocked, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- the app's call ------------------------------------------------------------

    async def run(self, app: Any) -> None:
        host = self.host
        try:
            result = await app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            logger.debug("Client disconnected during %s %s", self.scope["method"], self.scope["path"])
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                logger.debug("Request cancelled: %s %s", self.scope["method"], self.scope["path"])
            elif self.disconnected and _raised_on_disconnect(exc):
                # The app turned send's ClientDisconnected into an error of its own
                # (Starlette raises ClientDisconnect): the client left, the app did not fail.
                logger.debug("Client disconnected during %s %s", self.scope["method"], self.scope["path"])
            else:
                logger.error("Exception in ASGI application\n", exc_info=exc)
            self._end_failed()
            if not isinstance(exc, Exception):
                raise
        else:
            if result is not None:
                logger.error("ASGI callable returned a value instead of None: %r", result)
            if self.state is BODY and not self.disconnected and host.draining:
                # Shutting down, an app that stops streaming (sse-starlette
                # notices the signal by itself) ends its response: cleanly.
                self._end_streaming()
            elif self.state is not DONE and not self.disconnected:
                if self.state is START:
                    logger.error("ASGI callable returned without starting a response.")
                else:
                    logger.error("ASGI callable returned without completing the response.")
                self._end_failed()
        finally:
            self._delivered = True
            self.more_body = False
            host.stream_finished(self)

    def _end_streaming(self) -> None:
        try:
            self.host.stream_send_body(self, b"", False)
        except RuntimeError:  # the body is shorter than its content-length: cut it
            self._end_failed()
            return
        self.state = DONE
        self._complete()

    def _end_failed(self) -> None:
        """The app failed: a 500 if nothing was sent yet, else a broken response."""
        if self.disconnected or self.state is DONE:
            return
        if self.state is START:
            self.state = DONE
            self.status = 500
            self.host.stream_error_response(self, 500)
        else:
            self.state = DONE
            self.host.stream_abort(self)
        self._wake()

    async def receive(self) -> dict[str, Any]:
        if self.expect_100:
            self.expect_100 = False
            if self.state is START and not self.disconnected:
                self.host.stream_informational(self, 100, [])
        while not (self._body or (not self.more_body and not self._delivered)):
            if self.disconnected or self.state is DONE:
                return _DISCONNECT
            waiter = self._waiter
            if waiter is None:
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            self.waiting = self.more_body
            try:
                await waiter
            finally:
                self.waiting = False
        if self.disconnected or self.state is DONE:
            return _DISCONNECT
        chunks = self._body
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        size = self.buffered
        chunks.clear()
        self.buffered = 0
        more_body = self.more_body
        if not more_body:
            self._delivered = True
        if size:
            self.host.stream_body_consumed(self, size)
        if not more_body and self.request_trailers is not None:
            # Squall's own key: ASGI has no message for request trailers.
            return {"type": "http.request", "body": body, "more_body": False, "trailers": self.request_trailers}
        return {"type": "http.request", "body": body, "more_body": more_body}

    async def send(self, message: dict[str, Any]) -> None:
        if self.blocked:
            await self.wait_writable()
        if self.disconnected:
            raise ClientDisconnected("The client disconnected.")
        kind = message["type"]
        if self.state is BODY and kind == "http.response.body":
            body = message.get("body", b"")
            more_body = message.get("more_body", False)
            if not isinstance(body, _BYTES_LIKE):
                raise RuntimeError(f"'http.response.body' body must be bytes, not {type(body).__name__}.")
            self.host.stream_send_body(self, body, more_body)  # raises if it breaks the framing
            self.bytes_sent += len(body)
            if not more_body:
                self._body_sent()
        elif self.state is START and kind == "http.response.start":
            self.host.stream_start_response(self, message)  # raises for an invalid message
            self.status = message["status"]
            self.response_headers = message.get("headers")
            self.trailers = bool(message.get("trailers", False))
            self.state = BODY
            # Answered before the app asked for the body: no 100 Continue any more.
            self.expect_100 = False
        elif self.state is START:
            self._send_early_hint(kind, message)
        elif self.state is BODY:
            if kind == "http.response.pathsend" or kind == "http.response.zerocopysend":
                await self._send_file(kind, message)
            else:
                raise RuntimeError(f"Expected ASGI message 'http.response.body', but got {kind!r}.")
        elif self.state is TRAILERS:
            if kind != "http.response.trailers":
                raise RuntimeError(f"Expected ASGI message 'http.response.trailers', but got {kind!r}.")
            more = bool(message.get("more_trailers", False))
            if not more:
                self.state = DONE
            self.host.stream_send_trailers(self, list(message.get("headers", ())), more)
            if not more:
                self._complete()
        else:
            raise RuntimeError(f"Unexpected ASGI message {kind!r} sent after the response already completed.")

    def _send_early_hint(self, kind: str, message: dict[str, Any]) -> None:
        if kind == "http.response.early_hint":
            links = message.get("links", ())
            if not all(isinstance(link, bytes) for link in links):
                raise RuntimeError("'http.response.early_hint' links must be byte strings.")
            if links:
                self.host.stream_informational(self, 103, [(b"link", link) for link in links])
        else:
            raise RuntimeError(f"Expected ASGI message 'http.response.start', but got {kind!r}.")

    async def _send_file(self, kind: str, message: dict[str, Any]) -> None:
        if kind == "http.response.pathsend":
            path = message.get("path")
            if not isinstance(path, str):
                raise RuntimeError("'http.response.pathsend' needs a 'path' string.")
            try:
                file: IO[bytes] | int = open(path, "rb")  # noqa: SIM115  (closed below)
            except OSError as exc:
                raise RuntimeError(f"'http.response.pathsend' cannot open {path!r}: {exc}") from None
            more_body = False
        else:
            file = message.get("file")  # type: ignore[assignment]
            if not isinstance(file, int) and not hasattr(file, "fileno"):
                raise RuntimeError("'http.response.zerocopysend' needs a 'file' with a file descriptor.")
            more_body = bool(message.get("more_body", False))
        try:
            offset, count = file_span(file, message.get("offset"), message.get("count"))
            await self.host.stream_send_file(self, file, offset, count, more_body)
            self.bytes_sent += count
        finally:
            if kind == "http.response.pathsend":
                file.close()  # type: ignore[union-attr]
            elif message.get("offset") is None and not isinstance(file, int):
                # Sent from the current position: leave the file after what was sent, as a read would.
                file.seek(offset + count)
        if not more_body:
            self._body_sent()

    def _body_sent(self) -> None:
        """The last body bytes went out: trailers next, if announced, else done."""
        if self.trailers:
            self.state = TRAILERS
        else:
            self.state = DONE
            self._complete()

    def _complete(self) -> None:
        if self._waiter is not None:
            self._wake()  # a task waiting in receive() now gets http.disconnect
        self.host.stream_complete(self)

    async def wait_writable(self) -> None:
        while self.blocked and not self.disconnected:
            waiter = self._unblocked
            if waiter is None:
                waiter = self._unblocked = asyncio.get_running_loop().create_future()
            await waiter
