"""One HTTP request and its response, as the ASGI app sees it.

A cycle owns the request's `scope`, buffers the request body for `receive`,
and turns the app's `send` messages into bytes through the connection.  It
holds no parser state: the connection feeds it body chunks, so the same
class serves every parser implementation, and a connection may hold several
cycles at once (pipelining today, concurrent streams later).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from squall.protocols.http.flow_control import HIGH_WATER_LIMIT
from squall.protocols.http.response import (
    FRAMING_CHUNKED,
    FRAMING_CLOSE,
    FRAMING_LENGTH,
    FRAMING_NONE,
    build_response_head,
    simple_response,
)

if TYPE_CHECKING:
    from squall.protocols.http.connection import HTTPConnection

logger = logging.getLogger("squall.error")
access_logger = logging.getLogger("squall.access")

CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"
_DISCONNECT = {"type": "http.disconnect"}


class RequestResponseCycle:
    __slots__ = (
        "scope",
        "conn",
        "keep_alive",
        "waiting_for_100_continue",
        "is_head",
        "http_11",
        # request body
        "_body",
        "_buffered",
        "more_body",
        "_body_delivered",
        "_waiter",
        "disconnected",
        # response
        "response_started",
        "response_complete",
        "_pending_head",
        "_framing",
        "_remaining",
        "status",
    )

    def __init__(
        self,
        scope: dict[str, Any],
        conn: HTTPConnection,
        keep_alive: bool,
        expect_100: bool,
        has_body: bool,
    ) -> None:
        self.scope = scope
        self.conn = conn
        self.keep_alive = keep_alive
        self.waiting_for_100_continue = expect_100
        self.is_head = scope["method"] == "HEAD"
        self.http_11 = scope["http_version"] == "1.1"
        self._body: list[bytes] = []
        self._buffered = 0
        self.more_body = has_body
        self._body_delivered = False
        self._waiter: asyncio.Future[None] | None = None
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self._pending_head: bytes | None = None
        self._framing = FRAMING_NONE
        self._remaining: int | None = None
        self.status = 0

    # -- fed by the connection ------------------------------------------------

    def feed_body(self, data: bytes) -> None:
        if self.response_complete:
            return  # the app answered without reading it all: discard the rest
        self._body.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER_LIMIT:
            self.conn.flow.pause_reading()
        self.wake()

    def end_body(self) -> None:
        self.more_body = False
        self.wake()

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- the app's side --------------------------------------------------------

    async def run_asgi(self, app: Any) -> None:
        try:
            result = await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                logger.debug("Request cancelled: %s %s", self.scope["method"], self.scope["path"])
            else:
                logger.error("Exception in ASGI application\n", exc_info=exc)
            if not self.response_started and not self.disconnected:
                self._send_internal_error()
            elif not self.response_complete:
                self.conn.close_transport()
            if not isinstance(exc, Exception):
                raise
        else:
            if result is not None:
                logger.error("ASGI callable returned a value instead of None: %r", result)
            if not self.response_started:
                if not self.disconnected:
                    logger.error("ASGI callable returned without starting a response.")
                    self._send_internal_error()
            elif not self.response_complete and not self.disconnected:
                logger.error("ASGI callable returned without completing the response.")
                self.conn.close_transport()
        finally:
            self.conn = None  # type: ignore[assignment]  # break the cycle <-> connection reference loop

    def _send_internal_error(self) -> None:
        self.keep_alive = False
        self.response_started = True
        self.status = 500
        self.conn.write(
            simple_response(
                500, "Internal Server Error", self.conn.server_state.default_headers, head_only=self.is_head
            )
        )
        self._complete()

    async def receive(self) -> dict[str, Any]:
        if self.waiting_for_100_continue:
            self.waiting_for_100_continue = False
            if not self.response_started and not self.disconnected:
                self.conn.write(CONTINUE_RESPONSE)

        if not self.disconnected and not self.response_complete:
            if (self.more_body and not self._body) or (self._body_delivered and not self.more_body):
                # Wait for more of the body, or (once it was all delivered)
                # for the client to go away or the response to finish.
                if self._waiter is None:
                    self._waiter = asyncio.get_running_loop().create_future()
                await asyncio.shield(self._waiter)

        if self.disconnected or self.response_complete:
            return _DISCONNECT

        body = b"".join(self._body)
        self._body.clear()
        self._buffered = 0
        if not self.more_body:
            self._body_delivered = True
        self.conn.body_consumed(self)
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def send(self, message: dict[str, Any]) -> None:
        conn = self.conn
        if conn is None or self.disconnected:
            return  # the client is gone: like Uvicorn, drop what the app sends
        if conn.flow.write_paused:
            await conn.flow.drain()
            if self.disconnected:
                return

        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start":
                self.keep_alive = False
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got {kind!r}.")
            self._start_response(message)
        elif not self.response_complete:
            if kind != "http.response.body":
                self.keep_alive = False
                raise RuntimeError(f"Expected ASGI message 'http.response.body', but got {kind!r}.")
            self._send_body(message.get("body", b""), message.get("more_body", False))
        else:
            raise RuntimeError(f"Unexpected ASGI message {kind!r} sent after the response already completed.")

    def _start_response(self, message: dict[str, Any]) -> None:
        self.response_started = True
        if self.waiting_for_100_continue:
            # Answered before asking for the body: the client was never told to
            # send it, and may or may not.  The connection cannot be reused safely.
            self.waiting_for_100_continue = False
            if self.more_body:
                self.keep_alive = False
        status = message["status"]
        conn = self.conn
        state = conn.server_state
        try:
            head = build_response_head(
                status,
                message.get("headers", ()),
                state.default_headers,
                state.default_header_names,
                self.http_11,
                # A draining server ends every connection after its response.
                self.keep_alive and not state.draining,
                self.is_head,
            )
        except (TypeError, ValueError) as exc:
            self.response_started = False
            self.keep_alive = False
            raise RuntimeError(f"Invalid 'http.response.start' message: {exc}") from None
        except RuntimeError:
            self.response_started = False
            self.keep_alive = False
            raise
        self.status = status
        self.keep_alive = head.keep_alive
        self._framing = head.framing
        self._remaining = head.content_length
        # Hold the head back so that it leaves in one write with the first
        # body chunk; if the app awaits something else first, flush it then.
        self._pending_head = head.data
        conn.loop.call_soon(self._flush_head)
        if conn.access_log:
            conn.log_access(self.scope, status)

    def _flush_head(self) -> None:
        head = self._pending_head
        if head is not None and self.conn is not None:
            self._pending_head = None
            self.conn.write(head)

    def _send_body(self, body: bytes, more_body: bool) -> None:
        if not isinstance(body, (bytes, bytearray, memoryview)):
            self.keep_alive = False
            raise RuntimeError(f"'http.response.body' body must be bytes, not {type(body).__name__}.")
        framing = self._framing
        if self.is_head or framing == FRAMING_NONE:
            data = b""
        elif framing == FRAMING_LENGTH:
            remaining = self._remaining - len(body)  # type: ignore[operator]
            if remaining < 0:
                self.keep_alive = False
                raise RuntimeError("Response content longer than Content-Length.")
            if not more_body and remaining:
                self.keep_alive = False
                raise RuntimeError("Response content shorter than Content-Length.")
            self._remaining = remaining
            data = body
        elif framing == FRAMING_CHUNKED:
            if body:
                data = b"%x\r\n%s\r\n" % (len(body), body)
                if not more_body:
                    data += b"0\r\n\r\n"
            else:
                data = b"" if more_body else b"0\r\n\r\n"
        else:  # FRAMING_CLOSE
            data = body

        head = self._pending_head
        if head is not None:
            self._pending_head = None
            data = head + data if data else head
        if data:
            self.conn.write(data)
        if not more_body:
            self._complete()

    def _complete(self) -> None:
        self.response_complete = True
        self.wake()  # a task waiting in receive() now gets http.disconnect
        if self._framing == FRAMING_CLOSE and not self.is_head:
            self.keep_alive = False  # the end of the connection ends the body
        self.conn.on_response_complete(self)
