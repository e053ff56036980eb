"""Request bodies: framing, streaming to the app, back-pressure, `Expect: 100-continue`, disconnects."""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import Any

from h1_support import (
    RawClient,
    Recorder,
    chunked,
    echo_app,
    get_request,
    post_request,
    read_body,
    respond,
    wait_until,
    wait_threading_event,
)


def test_content_length_and_chunked_bodies(serve: Any) -> None:
    with serve(echo_app) as server, RawClient.connect(server.port) as client:
        assert client.request(post_request("/cl", b"hello world")).body == b"POST /cl hello world"
        assert client.request(post_request("/empty", b"")).body == b"POST /empty "

        head = b"POST /chunked HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        assert client.request(head + chunked(b"hello", b" ", b"world")).body == b"POST /chunked hello world"
        # Chunk extensions and a trailer section are allowed, and do not confuse the next request.
        body = b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\nX-Other: 1\r\n\r\n"
        assert client.request(head + body).body == b"POST /chunked hello world"
        assert client.request(get_request("/after")).body == b"GET /after "


def test_body_arrives_as_a_stream_of_events(serve: Any) -> None:
    events = Recorder()
    received = [0]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            events.add((message["type"], len(message.get("body", b"")), message.get("more_body", False)))
            received[0] += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await respond(send, body=b"%d" % received[0])

    piece = b"x" * 65536
    pieces = 16  # 1 MiB
    with serve(app) as server, RawClient.connect(server.port) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n" % (len(piece) * pieces))
        for n in range(1, pieces + 1):
            client.send(piece)
            if n < pieces:  # the app sees each piece before the next is sent
                wait_until(lambda: received[0] >= n * len(piece), what=f"piece {n}")
        response = client.read_response()
    assert response.body == b"%d" % (len(piece) * pieces)
    seen = events.snapshot()
    assert len(seen) > 1
    assert all(kind == "http.request" for kind, _, _ in seen)
    assert [more for _, _, more in seen] == [True] * (len(seen) - 1) + [False]
    assert sum(size for _, size, _ in seen) == len(piece) * pieces


def test_unread_body_pauses_reading_until_the_app_reads(serve: Any) -> None:
    """Back-pressure: the server stops reading a body the app does not consume."""
    total = 10 * 1024 * 1024
    start_reading = threading.Event()
    counted = [0]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await wait_threading_event(start_reading, timeout=10)
        while True:
            message = await receive()
            counted[0] += len(message["body"])
            if not message["more_body"]:
                break
        await respond(send, body=b"%d" % counted[0])

    with serve(app) as server, RawClient.connect(server.port) as client:
        sock = client.sock
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n" % total)
        sock.setblocking(False)
        chunk = b"b" * 65536
        sent = 0
        # Send until no progress is possible for a while: the server has stopped reading.
        stalled_since: float | None = None
        while sent < total:
            try:
                sent += sock.send(chunk[: total - sent])
                stalled_since = None
                continue
            except BlockingIOError:
                pass
            now = time.monotonic()
            if stalled_since is None:
                stalled_since = now
            elif now - stalled_since > 0.25:
                break
            select.select([], [sock], [], 0.05)
        assert sent < 3 * 1024 * 1024, f"the server kept reading an unconsumed body: {sent} bytes taken"
        assert counted[0] == 0

        start_reading.set()
        sock.setblocking(True)
        sock.settimeout(10)
        while sent < total:
            sent += sock.send(chunk[: total - sent])
        response = client.read_response(timeout=10)
    assert response.status == 200
    assert response.body == b"%d" % total


def test_100_continue_is_sent_when_the_app_first_receives(serve: Any) -> None:
    about_to_receive = threading.Event()
    go = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        about_to_receive.set()
        await wait_threading_event(go)
        body = await read_body(receive)
        await respond(send, body=body)

    head = b"POST / HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    with serve(app) as server, RawClient.connect(server.port) as client:
        client.send(head)
        about_to_receive.wait(5)
        readable, _, _ = select.select([client.sock], [], [], 0)
        assert not readable, "100 Continue was sent before the app asked for the body"
        go.set()
        interim = client.read_response()
        assert (interim.status, interim.reason) == (100, "Continue")
        assert interim.raw_head == b"HTTP/1.1 100 Continue\r\n\r\n"
        client.send(b"hello")
        response = client.read_response()
        assert response.status == 200 and response.body == b"hello"
        # The connection stays usable, and a request without Expect gets no 100.
        client.send(post_request("/", b"again"))
        assert client.read_response().body == b"again"


def test_100_continue_is_not_sent_when_the_app_answers_without_reading(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await respond(send, 413, b"too large")

    head = b"POST / HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 100000000\r\n\r\n"
    with serve(app) as server, RawClient.connect(server.port) as client:
        client.send(head)
        response = client.read_response()
        assert response.status == 413 and response.body == b"too large"
        assert response.get("connection") == "close"
        client.assert_closed()


def test_http_disconnect_when_the_client_goes_away(serve: Any) -> None:
    waiting = threading.Event()
    messages = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        messages.add(await read_body(receive))
        waiting.set()
        message = await receive()
        messages.add((message, time.monotonic()))

    with serve(app) as server:
        client = RawClient.connect(server.port)
        client.send(post_request("/", b"payload"))
        assert waiting.wait(5)
        closed_at = time.monotonic()
        client.close()
        wait_until(lambda: len(messages) == 2, what="the app to see the disconnect")
    body, (message, received_at) = messages.snapshot()
    assert body == b"payload"
    assert message == {"type": "http.disconnect"}
    assert received_at >= closed_at, "receive() returned before the client went away"


def test_an_upgrade_not_taken_is_plain_http_body_included(serve: Any) -> None:
    """`Upgrade: h2c` (curl --http2) and WebSocket with --ws none: served as HTTP/1.1."""
    upgrade = b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"
    websocket = b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: a2V5a2V5a2V5a2V5a2V5a2V5\r\n"
    head = b"POST /up HTTP/1.1\r\nHost: test\r\n"
    with serve(echo_app) as server, RawClient.connect(server.port) as client:
        assert client.request(head + upgrade + b"Content-Length: 5\r\n\r\nhello").body == b"POST /up hello"
        client.send(head + upgrade + b"Transfer-Encoding: chunked\r\n\r\n")  # the body comes later
        client.send(chunked(b"wor", b"ld"))
        assert client.read_response().body == b"POST /up world"
        client.send(get_request("/ws", headers=websocket.decode()) + get_request("/after"))
        assert client.read_response().body == b"GET /ws "
        assert client.read_response().body == b"GET /after "
