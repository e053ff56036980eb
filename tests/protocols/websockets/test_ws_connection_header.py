"""A WebSocket handshake needs `upgrade` as a whole token of `Connection` (RFC 9110 7.6.1).

`Connection: x-upgrade` (or `upgraded`) with `Upgrade: websocket` is not a
handshake: it is a plain HTTP request, answered as one.  Reading the header
as a substring handed such requests to the WebSocket side, which refused
them or, with httptools, left them hanging for ever (one stuck connection
per request).  Real token lists, in any case, still switch.
"""

from __future__ import annotations

import selectors
import socket
import time
from typing import Any

import pytest
from ws_helpers import client_frame, new_key, recv_all
from support import recv_until

LOOP_IMPLS = ["asyncio", "uvloop"]
DEADLINE = 5.0
PLAIN = b"plain http"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        headers = [(b"content-length", b"%d" % len(PLAIN))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": PLAIN})
        return
    await receive()
    await send({"type": "websocket.accept"})
    message = await receive()
    await send({"type": "websocket.send", "text": message["text"].upper()})
    await receive()


def handshake(connection: tuple[str, ...], upgrade: str = "websocket") -> bytes:
    lines = ["GET /ws HTTP/1.1", "Host: example.com", f"Upgrade: {upgrade}"]
    lines += [f"Connection: {value}" for value in connection]
    lines += [f"Sec-WebSocket-Key: {new_key()}", "Sec-WebSocket-Version: 13"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


LOOKALIKES = [("x-upgrade",), ("upgraded",), ("keep-alive, x-upgrade",), ("no-upgrade", "keep-alive")]


@pytest.mark.parametrize("loop_impl", LOOP_IMPLS)
@pytest.mark.parametrize("connection", LOOKALIKES, ids=lambda v: "|".join(v))
def test_upgrade_lookalike_token_is_served_as_plain_http(ws_serve: Any, connection: tuple[str, ...]) -> None:
    with ws_serve(app) as server:
        with server.connect(timeout=DEADLINE) as sock:
            sock.sendall(handshake(connection))
            reply = recv_until(sock, PLAIN, timeout=DEADLINE)
            assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
            assert reply.endswith(b"\r\n\r\n" + PLAIN)
            # Served as HTTP: the connection goes on with HTTP.
            sock.sendall(b"GET /again HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
            again = recv_all(sock, timeout=DEADLINE)
    assert again.startswith(b"HTTP/1.1 200 ") and again.endswith(PLAIN), again[:200]


@pytest.mark.parametrize(
    "connection, upgrade",
    [
        (("Upgrade",), "websocket"),
        (("keep-alive, Upgrade",), "websocket"),
        (("UPGRADE",), "WebSocket"),
        (("upgrade ,keep-alive",), "WEBSOCKET"),
        (("keep-alive", "upgrade"), "websocket"),
    ],
    ids=lambda v: "|".join(v) if isinstance(v, tuple) else v,
)
def test_upgrade_token_in_any_case_and_place_switches(ws_serve: Any, connection: tuple[str, ...], upgrade: str) -> None:
    with ws_serve(app) as server:
        with server.connect(timeout=DEADLINE) as sock:
            sock.sendall(handshake(connection, upgrade) + client_frame("hello"))
            reply = recv_until(sock, b"HELLO", timeout=DEADLINE)
    assert reply.startswith(b"HTTP/1.1 101 "), reply[:200]
    assert b"HELLO" in reply


def test_many_connections_with_a_lookalike_token_are_all_answered(ws_serve: Any) -> None:
    """The hang, bounded: 200 such connections at once, each answered within the deadline."""
    count = 200
    request = handshake(("x-upgrade",))
    selector = selectors.DefaultSelector()
    received: dict[socket.socket, bytes] = {}
    with ws_serve(app) as server:
        try:
            for _ in range(count):
                sock = server.connect(timeout=DEADLINE)
                sock.sendall(request)
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
                received[sock] = b""
            deadline = time.monotonic() + 15.0
            pending = count
            while pending and time.monotonic() < deadline:
                for key, _ in selector.select(timeout=0.1):
                    sock = key.fileobj  # type: ignore[assignment]
                    try:
                        data = sock.recv(65536)
                    except (BlockingIOError, ConnectionResetError):
                        data = b""
                    received[sock] += data
                    if received[sock].endswith(PLAIN) or not data:
                        selector.unregister(sock)
                        pending -= 1
        finally:
            selector.close()
            for sock in received:
                sock.close()
    answered = [data for data in received.values() if data.startswith(b"HTTP/1.1 200 ") and data.endswith(PLAIN)]
    others = [data[:80] for data in received.values() if not (data.startswith(b"HTTP/1.1 200 ") and data.endswith(PLAIN))]
    assert len(answered) == count, f"{count - len(answered)} connections not answered with 200, e.g. {others[:3]}"
