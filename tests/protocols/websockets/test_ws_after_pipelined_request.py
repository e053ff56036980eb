"""A handshake pipelined behind a plain request waits for that request's response."""

from __future__ import annotations

import asyncio
from typing import Any

from support import RunningServer, recv_until
from ws_helpers import TIMEOUT, Recorder, client_frame, handshake_request


def test_handshake_behind_a_slow_request_is_answered_after_it(ws_serve: Any) -> None:
    recorder = Recorder()
    running: list[RunningServer] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            (connection,) = running[0].server.server_state.connections
            transport = connection.transport
            recorder.put(transport.is_reading())
            # Answer once the server has read the handshake behind this
            # request: it stops reading the socket to hold it until then.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + TIMEOUT
            while transport.is_reading():
                if loop.time() > deadline:
                    raise AssertionError("the server never read the pipelined handshake")
                await asyncio.sleep(0.005)
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
            await send({"type": "http.response.body", "body": b"slow"})
            return
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message["text"].upper()})
        await receive()

    with ws_serve(app) as server:
        running.append(server)
        with server.connect() as sock:
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            assert recorder.get() is True, "the server stopped reading before the handshake came"
            sock.sendall(handshake_request("/ws") + client_frame("hi"))
            data = recv_until(sock, b"HI")
    first = data.index(b"HTTP/1.1 200 OK")
    switch = data.index(b"HTTP/1.1 101 Switching Protocols")
    assert first < data.index(b"slow") < switch < data.index(b"HI")
