"""Back-pressure from a slow client, and server shutdown with WebSockets open."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ws_helpers import TIMEOUT, Recorder, WsprotoClient, echo_app, handshake_request, raw_request, wait_until, ws_connections
from wsproto.events import CloseConnection

LOOP_IMPLS = ["asyncio", "uvloop"]
CHUNK = 64 * 1024
CHUNKS = 256  # 16 MiB: more than the kernel's socket buffers can absorb


@pytest.mark.parametrize("loop_impl", LOOP_IMPLS)
def test_send_waits_for_a_slow_client(ws_serve: Any) -> None:
    recorder = Recorder()
    progress: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        payload = b"\xa5" * CHUNK
        for i in range(CHUNKS):
            progress.append(i)
            await send({"type": "websocket.send", "bytes": payload})
        recorder.put("all sent")
        await receive()

    with ws_serve(app) as server, WsprotoClient(server.port) as client:
        (connection,) = wait_until(lambda: ws_connections(server))
        # The client reads nothing: the app ends up waiting in send().
        wait_until(lambda: connection._flow._drain_waiter is not None, what="send() to wait for the client")
        assert connection._flow.write_paused
        assert len(progress) < CHUNKS
        buffered = connection.transport.get_write_buffer_size()
        assert buffered < 4 * CHUNK, buffered  # about the high-water mark, not the app's 16 MiB
        received = 0
        while received < CHUNKS * CHUNK:
            message = client.receive_message(timeout=TIMEOUT)
            assert isinstance(message, bytes)
            received += len(message)
        assert recorder.get() == "all sent"
        client.close()


@pytest.mark.parametrize("loop_impl", LOOP_IMPLS)
def test_shutdown_closes_open_websockets_with_1012(ws_serve: Any) -> None:
    recorder = Recorder()
    with ws_serve(echo_app(recorder)) as server, WsprotoClient(server.port) as client:
        client.send_text("x")
        assert client.receive_message() == "x"
        server.server.should_exit = True
        close = client.events_until(CloseConnection)[-1]
        assert close.code == 1012
        client.send(close.response())
        client.wait_closed()
        assert recorder.get() == {"type": "websocket.disconnect", "code": 1012, "reason": ""}
        server.thread.join(TIMEOUT)
        assert not server.thread.is_alive()


def test_shutdown_before_accept_answers_503(ws_serve: Any) -> None:
    recorder = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        recorder.put("deciding")
        recorder.put(await receive())
        try:
            await send({"type": "websocket.accept"})
        except OSError as exc:
            recorder.put(exc)

    with ws_serve(app) as server:
        import socket

        from ws_helpers import HTTPResponse, recv_all

        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
            sock.sendall(handshake_request())
            assert recorder.get() == "deciding"
            server.server.should_exit = True
            response = HTTPResponse(recv_all(sock))
        assert response.status == 503
        assert recorder.get() == {"type": "websocket.disconnect", "code": 1012, "reason": ""}
        assert isinstance(recorder.get(), OSError)
        server.thread.join(TIMEOUT)
        assert not server.thread.is_alive()


def test_graceful_shutdown_timeout_cancels_an_app_that_ignores_disconnect(ws_serve: Any) -> None:
    recorder = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            recorder.put("cancelled")
            raise

    with ws_serve(app, timeout_graceful_shutdown=0.3) as server, WsprotoClient(server.port) as client:
        (connection,) = wait_until(lambda: ws_connections(server))
        server.server.should_exit = True
        close = client.events_until(CloseConnection)[-1]
        assert close.code == 1012
        # The client never answers the close frame either.
        assert recorder.get() == "cancelled"
        server.thread.join(TIMEOUT)
        assert not server.thread.is_alive()


def test_server_still_answers_http_after_websockets(ws_serve: Any) -> None:
    """A WebSocket connection does not disturb plain HTTP requests on other connections."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
        else:
            await echo_app()(scope, receive, send)

    with ws_serve(app) as server, WsprotoClient(server.port) as client:
        client.send_text("ws")
        assert client.receive_message() == "ws"
        response = raw_request(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (response.status, response.body) == (200, b"ok")
