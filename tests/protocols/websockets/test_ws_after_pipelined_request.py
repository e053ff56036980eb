"""A handshake pipelined behind a plain request waits for that request's response."""

from __future__ import annotations

import asyncio
from typing import Any

from support import recv_until
from ws_helpers import client_frame, handshake_request


def test_handshake_behind_a_slow_request_is_answered_after_it(ws_serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(0.2)  # the handshake is already read by now
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
            await send({"type": "http.response.body", "body": b"slow"})
            return
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message["text"].upper()})
        await receive()

    with ws_serve(app) as server:
        sock = server.connect()
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" + handshake_request("/ws") + client_frame("hi"))
        data = recv_until(sock, b"HI")
        sock.close()
    first = data.index(b"HTTP/1.1 200 OK")
    switch = data.index(b"HTTP/1.1 101 Switching Protocols")
    assert first < data.index(b"slow") < switch < data.index(b"HI")
