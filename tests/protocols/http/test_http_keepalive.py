"""Connection persistence: keep-alive, its timeout, HTTP/1.0, `Connection: close`, pipelining."""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
from typing import Any

import httpx

from h1_support import (
    RawClient,
    Recorder,
    chunked,
    echo_app,
    get_request,
    post_request,
    read_body,
    respond,
    socket_closed_by_peer,
    text_app,
    wait_threading_event,
)


def test_one_connection_serves_several_requests(serve: Any) -> None:
    clients = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        clients.add(scope["client"])
        await respond(send, body=scope["path"].encode())

    with serve(app) as server:
        with RawClient.connect(server.port) as client:
            for n in range(3):
                response = client.request(get_request(f"/raw{n}"))
                assert response.status == 200
                assert response.body == f"/raw{n}".encode()
                assert response.get("connection") is None  # HTTP/1.1: persistent by default
        with httpx.Client(base_url=server.url) as http:
            for n in range(3):
                assert http.get(f"/httpx{n}").text == f"/httpx{n}"

    seen = clients.snapshot()
    assert len(seen) == 6
    assert len(set(seen[:3])) == 1, "the raw requests were not served on one connection"
    assert len(set(seen[3:])) == 1, "httpx's requests were not served on one connection"


def test_idle_connections_are_closed_after_the_keep_alive_timeout(serve: Any) -> None:
    """Idle keep-alive connections and silent ones are closed after the keep-alive
    timeout, ones trickling an unfinished head (slowloris) after the request-header
    timeout; one busy with a slow response is not."""
    timeout = 1.0
    others_closed = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            await wait_threading_event(others_closed)
        await respond(send, body=scope["path"].encode())

    with serve(app, timeout_keep_alive=timeout, timeout_request_header=timeout) as server:
        busy = RawClient.connect(server.port)
        busy.send(get_request("/slow"))
        idle = RawClient.connect(server.port)
        assert idle.request(get_request()).status == 200
        idle_start = time.monotonic()

        silent = socket.create_connection(("127.0.0.1", server.port))  # connects, never sends
        trickler = socket.create_connection(("127.0.0.1", server.port))  # slowloris
        trickler.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n")
        trickle_start = time.monotonic()

        closed_after: dict[str, float] = {}
        socks = {"idle": idle.sock, "silent": silent, "trickler": trickler}
        deadline = time.monotonic() + timeout + 2.5
        next_trickle = 0.0
        while len(closed_after) < len(socks) and time.monotonic() < deadline:
            now = time.monotonic()
            if "trickler" not in closed_after and now >= next_trickle:
                next_trickle = now + 0.1
                try:
                    trickler.send(b"X")  # never completes a header line
                except (BrokenPipeError, ConnectionResetError):
                    closed_after["trickler"] = now - trickle_start
            open_socks = [s for name, s in socks.items() if name not in closed_after]
            select.select(open_socks, [], [], 0.05)
            for name, sock in socks.items():
                if name not in closed_after and socket_closed_by_peer(sock):
                    start = idle_start if name == "idle" else trickle_start
                    closed_after[name] = time.monotonic() - start
        others_closed.set()
        response = busy.read_response()
        assert response.status == 200 and response.body == b"/slow"
        busy.close()
        for sock in socks.values():
            sock.close()

    assert set(closed_after) == set(socks), f"still open after {timeout + 2.5}s: {set(socks) - set(closed_after)}"
    for name, elapsed in closed_after.items():
        assert timeout - 0.2 <= elapsed <= timeout + 1.0, f"{name} closed after {elapsed:.2f}s"


def test_http10_closes_unless_keep_alive_is_asked_for(serve: Any) -> None:
    with serve(text_app(b"hello")) as server:
        with RawClient.connect(server.port) as client:
            response = client.request(get_request(version="1.0"))
            assert response.status == 200 and response.body == b"hello"
            assert response.get("connection") == "close"
            client.assert_closed()

        with RawClient.connect(server.port) as client:
            for _ in range(2):
                response = client.request(get_request(headers="Connection: keep-alive\r\n", version="1.0"))
                assert response.status == 200 and response.body == b"hello"
                assert response.get("connection") == "keep-alive"
            # The same connection, now without keep-alive: answered, then closed.
            response = client.request(get_request(version="1.0"))
            assert response.body == b"hello" and response.get("connection") == "close"
            client.assert_closed()


def test_connection_close_from_an_http11_client(serve: Any) -> None:
    with serve(text_app(b"bye")) as server, RawClient.connect(server.port) as client:
        response = client.request(get_request(headers="Connection: close\r\n"))
        assert response.status == 200 and response.body == b"bye"
        assert response.get("connection") == "close"
        client.assert_closed()


def test_pipelined_requests_are_answered_in_order(serve: Any) -> None:
    events = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        events.add(("start", scope["path"]))
        body = await read_body(receive)
        if scope["path"] == "/first":
            for _ in range(20):  # finish last, if requests were run concurrently
                await asyncio.sleep(0)
        events.add(("end", scope["path"]))
        await respond(send, body=f"{scope['method']} {scope['path']} ".encode() + body)

    requests = (
        get_request("/first")
        + post_request("/second", b"hello")
        + b"POST /third HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked(b"wor", b"ld")
        + get_request("/fourth")
        + post_request("/fifth", b"last", headers="Connection: close\r\n")
    )
    expected = [b"GET /first ", b"POST /second hello", b"POST /third world", b"GET /fourth ", b"POST /fifth last"]
    with serve(app) as server, RawClient.connect(server.port) as client:
        client.send(requests)
        bodies = [client.read_response().body for _ in expected]
        client.assert_closed()
    assert bodies == expected
    paths = ["/first", "/second", "/third", "/fourth", "/fifth"]
    assert events.snapshot() == [(kind, path) for path in paths for kind in ("start", "end")]


def test_pipelined_requests_split_at_odd_places(serve: Any) -> None:
    """The same stream delivered in small pieces parses to the same requests."""
    stream = post_request("/a", b"x" * 300) + get_request("/b") + post_request("/c", b"yz")
    with serve(echo_app) as server, RawClient.connect(server.port) as client:
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start in range(0, len(stream), 7):
            client.send(stream[start : start + 7])
        bodies = [client.read_response().body for _ in range(3)]
    assert bodies == [b"POST /a " + b"x" * 300, b"GET /b ", b"POST /c yz"]
