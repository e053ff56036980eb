"""Graceful shutdown as a client sees it, under every HTTP implementation and loop."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from support import recv_all, recv_until, wait_until


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


def test_connection_accepted_before_shutdown_still_gets_its_answer(serve: Any) -> None:
    """A connection with its first request still on the way is not cut off."""
    with serve(hello) as server:
        sock = server.connect()
        wait_until(lambda: server.server.server_state.connections, what="the server to accept the connection")
        server.server.should_exit = True
        wait_until(lambda: not server.server.servers[0].is_serving(), what="the server to stop listening")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = recv_all(sock)
        sock.close()
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close\r\n" in response.lower()
    assert response.endswith(b"hello")


def test_silent_connection_does_not_hold_shutdown(serve: Any) -> None:
    with serve(hello, timeout_keep_alive=30) as server:
        sock = server.connect()
        wait_until(lambda: server.server.server_state.connections, what="the server to accept the connection")
        started = time.monotonic()
        server.server.should_exit = True
        server.thread.join(5)
        assert not server.thread.is_alive()
        assert time.monotonic() - started < 2.5
        sock.close()


def test_busy_connection_finishes_with_connection_close(serve: Any) -> None:
    started = threading.Event()
    shutting_down = threading.Event()

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started.set()
        deadline = time.monotonic() + 5
        while not shutting_down.is_set():  # answer only once shutdown has begun
            if time.monotonic() > deadline:
                raise TimeoutError("the test never started the shutdown")
            await asyncio.sleep(0.005)
        await hello(scope, receive, send)

    with serve(slow) as server:
        sock = server.connect()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert started.wait(5), "the app never ran"
        server.server.should_exit = True
        wait_until(lambda: not server.server.servers[0].is_serving(), what="the server to stop listening")
        shutting_down.set()
        response = recv_until(sock, b"hello")
        sock.close()
    assert b"connection: close\r\n" in response.lower()
    assert response.endswith(b"hello")
