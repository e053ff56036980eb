"""Graceful shutdown as a client sees it, under every HTTP implementation and loop."""

from __future__ import annotations

import time
from typing import Any

from support import recv_all, recv_until


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


def test_connection_accepted_before_shutdown_still_gets_its_answer(serve: Any) -> None:
    """A connection with its first request still on the way is not cut off."""
    with serve(hello) as server:
        sock = server.connect()
        deadline = time.monotonic() + 5
        while not server.server.server_state.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        server.server.should_exit = True
        deadline = time.monotonic() + 5
        while server.server.servers[0].is_serving() and time.monotonic() < deadline:
            time.sleep(0.01)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = recv_all(sock)
        sock.close()
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close\r\n" in response.lower()
    assert response.endswith(b"hello")


def test_silent_connection_does_not_hold_shutdown(serve: Any) -> None:
    with serve(hello, timeout_keep_alive=30) as server:
        sock = server.connect()
        deadline = time.monotonic() + 5
        while not server.server.server_state.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        server.server.should_exit = True
        server.thread.join(5)
        assert not server.thread.is_alive()
        assert time.monotonic() - started < 2.5
        sock.close()


def test_busy_connection_finishes_with_connection_close(serve: Any) -> None:
    import asyncio

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(0.5)
        await hello(scope, receive, send)

    with serve(slow) as server:
        sock = server.connect()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 5
        while not server.server.server_state.tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        server.server.should_exit = True
        response = recv_until(sock, b"hello")
        sock.close()
    assert b"connection: close\r\n" in response.lower()
    assert response.endswith(b"hello")
