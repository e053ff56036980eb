"""Clients and apps shared by the WebSocket tests.

- `raw_request` sends a hand-written handshake on a plain socket and parses
  the HTTP response, for the handshakes no client library would send;
- `WsprotoClient` is a wsproto client over a plain socket, which lets a test
  see every event (pings included) and leave pings unanswered;
- `Recorder` carries what an app saw, from the server's thread to the test's;
- `echo_app` is the app most tests talk to;
- `LibraryFramesProtocol` (`--ws ws_helpers:LibraryFramesProtocol`, or
  `LIBRARY_FRAMES`) is `--ws websockets` with every frame left to the
  library, the fallback its plain-frame reader must match.
"""

from __future__ import annotations

import base64
import os
import queue
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from support import recv_all, wait_until  # noqa: F401  (re-exported for the WebSocket tests)
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import FrameProtocol

from squall.protocols.websockets.websockets_impl import WebSocketsProtocol

TIMEOUT = 5.0


class LibraryFramesProtocol(WebSocketsProtocol):
    plain_frames = False


LIBRARY_FRAMES = "ws_helpers:LibraryFramesProtocol"


def client_frame(data: str | bytes) -> bytes:
    """One masked data frame, as a client sends it, outside any connection's state."""
    return bytes(FrameProtocol(client=True, extensions=[]).send_data(data))


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


class HTTPResponse:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.status = int(lines[0].split(" ", 2)[1]) if lines[0] else 0
        self.headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.append((name.strip().lower(), value.strip()))

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key == name]
        return values[0] if values else None


def handshake_request(
    path: str = "/",
    key: str | None = "default",
    version: str | None = "13",
    extra: list[str] | None = None,
    method: str = "GET",
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: example.com", "Upgrade: websocket", "Connection: Upgrade"]
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {new_key() if key == 'default' else key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    lines.extend(extra or [])
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")



def raw_request(port: int, request: bytes) -> HTTPResponse:
    """Send `request`, read the response until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        return HTTPResponse(recv_all(sock))


class WsprotoClient:
    """A WebSocket client on wsproto: every event is visible, nothing is automatic."""

    def __init__(
        self,
        port: int,
        path: str = "/",
        subprotocols: list[str] | None = None,
        deflate: bool = False,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.pending: list[Event] = []
        self.closed_by_server = False
        self.sock.sendall(
            self.ws.send(
                Request(
                    host="127.0.0.1",
                    target=path,
                    subprotocols=subprotocols or [],
                    extensions=[PerMessageDeflate()] if deflate else [],
                    extra_headers=extra_headers or [],
                )
            )
        )
        self.handshake = self.next_event()

    def __enter__(self) -> WsprotoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def _read(self, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError as exc:
            # The server closes TCP after the close handshake (RFC 6455 7.1.1); a reset is no close.
            raise AssertionError("the server reset the connection instead of closing it") from exc
        if not data:
            self.closed_by_server = True
            self.ws.receive_data(None)
        else:
            self.ws.receive_data(data)
        self.pending.extend(self.ws.events())
        return bool(data)

    def next_event(self, timeout: float = TIMEOUT) -> Event:
        deadline = time.monotonic() + timeout
        while not self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no WebSocket event from the server")
            if not self._read(remaining) and not self.pending:
                raise ConnectionError("the server closed the connection")
        return self.pending.pop(0)

    def events_until(self, kind: type[Event], timeout: float = TIMEOUT) -> list[Event]:
        """Events up to and including the first of `kind`."""
        seen = []
        while True:
            event = self.next_event(timeout)
            seen.append(event)
            if isinstance(event, kind):
                return seen

    def send(self, event: Event) -> None:
        self.sock.sendall(self.ws.send(event))

    def send_text(self, text: str) -> None:
        self.send(TextMessage(data=text))

    def send_bytes(self, data: bytes) -> None:
        self.send(BytesMessage(data=data))

    def receive_message(self, timeout: float = TIMEOUT) -> str | bytes:
        """The next whole message, answering pings on the way."""
        parts: list[Any] = []
        while True:
            event = self.next_event(timeout)
            if isinstance(event, Ping):
                self.send(event.response())
            elif isinstance(event, (TextMessage, BytesMessage)):
                parts.append(event.data)
                if event.message_finished:
                    return "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)
            else:
                raise AssertionError(f"expected a message, got {event!r}")

    def close(self, code: int = 1000, reason: str = "") -> CloseConnection:
        """Start the close handshake; return the server's close frame."""
        self.send(CloseConnection(code=code, reason=reason))
        for event in self.events_until(CloseConnection):
            if isinstance(event, CloseConnection):
                return event
        raise AssertionError("unreachable")

    def wait_closed(self, timeout: float = TIMEOUT) -> None:
        """Read until the server closes TCP."""
        deadline = time.monotonic() + timeout
        while not self.closed_by_server:
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not close the connection")
            self._read(max(0.01, deadline - time.monotonic()))

    def rejection(self) -> tuple[int, dict[bytes, bytes], bytes]:
        """Status, headers and body of a refused handshake."""
        assert isinstance(self.handshake, RejectConnection), self.handshake
        body = b""
        if self.handshake.has_body:
            while True:
                event = self.next_event()
                assert isinstance(event, RejectData), event
                body += event.data
                if event.body_finished:
                    break
        return self.handshake.status_code, dict(self.handshake.headers), body

    @property
    def accepted(self) -> bool:
        return isinstance(self.handshake, AcceptConnection)

    @property
    def deflate(self) -> PerMessageDeflate | None:
        """The permessage-deflate extension the server agreed to, if any."""
        assert isinstance(self.handshake, AcceptConnection), self.handshake
        found = [e for e in self.handshake.extensions if isinstance(e, PerMessageDeflate)]
        return found[0] if found else None


class Recorder:
    """What the app saw, handed from the server's thread to the test."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()

    def put(self, item: Any) -> None:
        self._queue.put(item)

    def get(self, timeout: float = TIMEOUT) -> Any:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the app recorded nothing in time") from None

    def get_matching(self, predicate: Callable[[Any], bool], timeout: float = TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            item = self.get(max(0.0, deadline - time.monotonic()))
            if predicate(item):
                return item

    def drain(self) -> Iterator[Any]:
        while True:
            try:
                yield self._queue.get_nowait()
            except queue.Empty:
                return


def echo_app(recorder: Recorder | None = None) -> Callable[..., Any]:
    """Accepts (with the first offered subprotocol), echoes every message, records the disconnect."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        message = await receive()
        assert message == {"type": "websocket.connect"}
        subprotocol = scope["subprotocols"][0] if scope["subprotocols"] else None
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                if recorder is not None:
                    recorder.put(message)
                return
            reply = {"type": "websocket.send"}
            if message.get("text") is not None:
                reply["text"] = message["text"]
            else:
                reply["bytes"] = message["bytes"]
            await send(reply)

    return app


def ws_connections(server: Any) -> list[Any]:
    """The server's open WebSocket protocol objects (white-box checks of flow control)."""
    from squall.protocols.websockets.asgi import WebSocketProtocol

    return [c for c in list(server.server.server_state.connections) if isinstance(c, WebSocketProtocol)]


# For servers started as a subprocess (`squall ws_helpers:echo --app-dir ...`).
echo = echo_app()
