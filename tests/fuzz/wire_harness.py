"""Squall's protocol objects fed bytes over an in-memory transport, for fuzzing and differential tests.

A `Driver` holds one event loop and one loaded `Config`; `run(pieces)` makes
a fresh connection (HTTP/1.1 with either parser, or HTTP/2 with either
wire), feeds it the pieces one by one — as separate reads, respecting
paused reading — lets the loop run until nothing is left to do, and
returns an `Outcome`: the bytes written back, what the app received, what
happened to the transport.  `check_invariants` holds an outcome to what
must be true whatever the input.

Nothing here touches the network: thousands of inputs run in seconds.
The tests that speak to a real server over sockets are elsewhere; this is
the fast, in-process complement used by the differential test, the
corpus regression test and the atheris harnesses.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from squall import Config
from squall.server import ServerState

HTTP_IMPLS = ("h11", "httptools")
H2_WIRES = ("squall", "h2")
WS_IMPLS = ("websockets", "websockets-sansio", "wsproto")
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Loop iterations allowed for one input to settle: far more than any
# request needs; reaching it means something spins.
MAX_SETTLE_ITERATIONS = 10_000
_STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) ")


class HarnessFailure(AssertionError):
    """An invariant broke, or an exception escaped the server's code."""


class MemoryTransport(asyncio.Transport):
    """A transport that keeps what is written and tells the protocol when it is closed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self.protocol: Any = None
        self.output = bytearray()
        # "eof" (write_eof), "close", "abort", in order.
        self.events: list[str] = []
        self.closing = False
        self.reading = True
        self._extra = {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closing:
            self.events.append("write-after-close")
            return
        if "eof" in self.events:
            raise HarnessFailure("a write after write_eof")
        self.output += data

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def write_eof(self) -> None:
        self.events.append("eof")

    def can_write_eof(self) -> bool:
        return True

    def _lose(self, event: str) -> None:
        if not self.closing:
            self.closing = True
            self.events.append(event)
            self._loop.call_soon(self.protocol.connection_lost, None)

    def close(self) -> None:
        self._lose("close")

    def abort(self) -> None:
        self._lose("abort")

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


@dataclass(frozen=True)
class Request:
    """What the app was given for one request."""

    method: str
    raw_path: bytes
    query: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    # The app read the whole body (else it saw http.disconnect first).
    complete: bool


@dataclass(frozen=True)
class Outcome:
    output: bytes
    requests: tuple[Request, ...]
    events: tuple[str, ...]

    @property
    def statuses(self) -> list[int]:
        """The status of each HTTP/1.1 response head written (a rough scan: bodies could fake one)."""
        return [int(match.group(1)) for match in _STATUS_LINE.finditer(self.output)]

    def summary(self) -> str:
        return f"statuses={self.statuses} requests={len(self.requests)} events={list(self.events)} output={self.output[:300]!r}"


class Driver:
    """One loop and one loaded Config, for many connections of one implementation."""

    def __init__(self, protocol: str = "h1", impl: str = "h11", ws: str = "none", **options: Any) -> None:
        self.protocol = protocol
        self.impl = impl
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self._on_loop_exception)
        self.requests: list[Request] = []
        self.errors: list[str] = []
        options.setdefault("lifespan", "off")
        options.setdefault("log_config", None)
        options.setdefault("ws_ping_interval", None)
        options.setdefault("interface", "asgi3")
        options.setdefault("proxy_headers", False)
        if protocol == "h2":
            options.update(http="h11", http2=True, http2_impl=impl)
        else:
            options.setdefault("http2", False)
            options["http"] = impl
        self.config = Config(self._app, ws=ws, **options)
        self.config.load()
        self.server_state = ServerState()
        self.server_state.default_headers = b"server: squall\r\n"
        self.server_state.default_header_names = frozenset((b"server",))
        self.server_state.default_header_list = [(b"server", b"squall")]
        self._log_handler = _ErrorLogHandler(self.errors)

    def close(self) -> None:
        self.loop.close()

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the app -----------------------------------------------------------------

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await self._websocket_app(scope, receive, send)
            return
        body = b""
        complete = False
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                complete = True
                break
        self.requests.append(
            Request(scope["method"], scope["raw_path"], scope["query_string"], tuple(scope["headers"]), body, complete)
        )
        if not complete:
            return
        payload = b"%d" % len(body)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(payload))]})
        await send({"type": "http.response.body", "body": payload})

    async def _websocket_app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})

    # -- running one connection ---------------------------------------------------

    def _on_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        self.errors.append(f"{context.get('message')}: {exc!r}")

    def _settle(self) -> None:
        loop = self.loop

        async def until_idle() -> None:
            for _ in range(MAX_SETTLE_ITERATIONS):
                await asyncio.sleep(0)
                if not loop._ready:  # type: ignore[attr-defined]  # nothing else is scheduled
                    return
            raise HarnessFailure("the loop never settled")

        loop.run_until_complete(until_idle())

    def new_protocol(self) -> Any:
        if self.protocol == "h2":
            cls = self.config.h2_protocol_class
        else:
            cls = self.config.http_protocol_class
        assert cls is not None
        return cls(config=self.config, server_state=self.server_state, app_state={}, _loop=self.loop)

    def run(self, pieces: Sequence[bytes], client_eof: bool = False) -> Outcome:
        """Feed `pieces` to a fresh connection as separate reads; settle; close it; return what happened."""
        self.requests = []
        self.errors.clear()
        logger = logging.getLogger("squall")
        logger.addHandler(self._log_handler)
        previous_level = logger.level
        logger.setLevel(logging.ERROR)  # the warning per malformed input is expected
        transport = MemoryTransport(self.loop)
        try:
            protocol = self.new_protocol()
            transport.protocol = protocol
            try:
                protocol.connection_made(transport)
                for piece in pieces:
                    self._settle()
                    if transport.closing or not transport.reading:
                        break  # a real transport would not read it (yet)
                    transport.protocol.data_received(piece)
                self._settle()
                if client_eof and not transport.closing:
                    if not transport.protocol.eof_received():
                        transport.close()
                    self._settle()
            except HarnessFailure:
                raise
            except Exception as exc:
                raise HarnessFailure(f"an exception escaped the protocol: {exc!r}") from exc
            outcome = Outcome(bytes(transport.output), tuple(self.requests), tuple(transport.events))
            # Tear down: the client goes away; every task must end.
            transport._lose("end")
            self._settle()
            if self.server_state.tasks:
                raise HarnessFailure(f"{len(self.server_state.tasks)} app task(s) still running after the connection was lost")
        finally:
            logger.removeHandler(self._log_handler)
            logger.setLevel(previous_level)
        if self.errors:
            raise HarnessFailure("errors were logged: " + "; ".join(self.errors[:3]))
        return outcome


class _ErrorLogHandler(logging.Handler):
    def __init__(self, errors: list[str]) -> None:
        super().__init__(logging.ERROR)
        self._errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        self._errors.append(record.getMessage())


@dataclass
class H1Check:
    """The HTTP/1.1 invariants, whatever the input."""

    failures: list[str] = field(default_factory=list)

    def check(self, outcome: Outcome) -> None:
        statuses = [status for status in outcome.statuses if status >= 200]
        answered = sum(1 for status in statuses if status == 200)
        complete = sum(1 for request in outcome.requests if request.complete)
        # Nothing answered that was not fully parsed: the app answers only
        # after its whole body, and every request it finished got its answer.
        if answered > complete:
            self.failures.append(f"{answered} responses for {complete} complete requests")
        errors = [status for status in statuses if status != 200]
        if errors:
            # An error response is the last thing written, and the connection
            # ends after it (half-closed, then closed).
            if statuses[-1] == 200 or len(errors) > 1:
                self.failures.append(f"responses after an error response: {statuses}")
            if not outcome.events or outcome.events[0] not in ("eof", "close", "abort"):
                self.failures.append("the connection stayed open after an error response")
        if "write-after-close" in outcome.events:
            self.failures.append("a write after the transport was closed")


def check_h1(outcome: Outcome) -> None:
    checker = H1Check()
    checker.check(outcome)
    if checker.failures:
        raise HarnessFailure("; ".join(checker.failures) + "\n" + outcome.summary())


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """`data` cut at the given offsets (as reads of that size would deliver it)."""
    pieces = []
    start = 0
    for cut in sorted(set(cuts)):
        if 0 < cut < len(data):
            pieces.append(data[start:cut])
            start = cut
    pieces.append(data[start:])
    return pieces
