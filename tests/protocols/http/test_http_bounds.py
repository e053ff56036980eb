"""What one connection can make the server hold is bounded.

One write of thousands of small pipelined requests must not become
thousands of queued requests (each a scope, a task-to-be and buffers): the
server parses a bounded number ahead of the one it answers and reads the
rest as responses go out.  llhttp parses everything it is fed, so the
httptools reader used to queue the whole write at once.  All requests are
still answered, in order.  (The bound on bytes held behind a waiting
WebSocket handshake is tested in tests/protocols/websockets/test_ws_switch_buffer.py.)

The buffer of request body the app has not read is bounded too: reading
pauses when it is full.  When the app answers without reading the body,
reading must resume (the rest is read and dropped) or the connection
would never serve another request.
"""

from __future__ import annotations

import fcntl
import struct
import termios
import threading
from typing import Any

import pytest

from h1_support import (
    RawClient,
    Recorder,
    chunked,
    get_request,
    post_request,
    respond,
    wait_threading_event,
    wait_until,
)

try:
    from squall.protocols.http.h1_connection import MAX_PIPELINE
except ImportError:  # the server before the cap: hold it to the cap's value
    MAX_PIPELINE = 16

WRITE_SIZE = 256 * 1024


def test_one_large_write_of_pipelined_requests_queues_a_bounded_number(serve: Any) -> None:
    # Requests parsed but not yet handed to the app, seen by each app call:
    # the server's count of requests read, less the app calls before it.
    queued = Recorder()
    calls = 0
    holder: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal calls
        queued.add(holder["state"].total_requests - calls)
        calls += 1
        await respond(send, body=scope["path"][1:].encode())

    requests = []
    size = 0
    while size < WRITE_SIZE:
        request = b"GET /%d HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n" % len(requests)
        requests.append(request)
        size += len(request)
    data = b"".join(requests)

    with serve(app) as server:
        holder["state"] = server.server.server_state
        with RawClient.connect(server.port, timeout=30) as client:
            # Sent from a thread: the responses must be read while the requests go out.
            writer = threading.Thread(target=client.send, args=(data,), daemon=True)
            writer.start()
            bodies = [client.read_response(timeout=30).body for _ in requests]
            writer.join(5)
    assert bodies == [b"%d" % n for n in range(len(requests))]
    depths = queued.snapshot()
    assert len(depths) == len(requests)
    assert max(depths) <= MAX_PIPELINE + 1, f"up to {max(depths)} requests were queued on one connection"


def unread_by_server(conn: Any) -> int:
    """Bytes waiting in the kernel for the server to read on this connection (FIONREAD)."""
    fd = conn.transport.get_extra_info("socket").fileno()
    if fd < 0:
        return 0  # closed: nothing more will be read
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def test_pipeline_cap_holds_when_a_read_ends_inside_a_head_end(serve: Any) -> None:
    """A read that ends inside a head's final CRLFCRLF, the next read completing that head
    and bringing more: the cap holds all the same."""
    release = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/hold":
            await wait_threading_event(release)
        await respond(send, body=scope["path"].encode())

    heads = [get_request(f"/{n}") for n in range(MAX_PIPELINE + 2)]
    # /hold is answered last of all; behind it, one head short of the cap, and the
    # head that fills it, all but its last byte.
    first = get_request("/hold") + b"".join(heads[: MAX_PIPELINE - 1]) + heads[MAX_PIPELINE - 1][:-1]
    second = heads[MAX_PIPELINE - 1][-1:] + b"".join(heads[MAX_PIPELINE:])
    with serve(app) as server:
        state = server.server.server_state
        with RawClient.connect(server.port) as client:
            try:
                client.send(first)
                (conn,) = wait_until(lambda: list(state.connections), 5.0, "the connection")
                wait_until(lambda: state.total_requests == MAX_PIPELINE and not unread_by_server(conn), 5.0,
                           "the first write to be read")
                client.send(second)
                wait_until(lambda: not unread_by_server(conn), 5.0, "the second write to be read")
                # Parsing happens in the callback that read the bytes: a request on another
                # connection, answered after that callback, tells when it is over.
                with RawClient.connect(server.port) as other:
                    assert other.request(get_request("/other")).status == 200
                queued = state.total_requests - 1  # less /other
                assert queued <= MAX_PIPELINE + 1, f"{queued} requests were read on one connection"
            finally:
                release.set()
            paths = [client.read_response().body for _ in range(len(heads) + 1)]
    assert paths == [b"/hold"] + [b"/%d" % n for n in range(len(heads))]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_body_the_app_does_not_read_does_not_stall_the_connection(serve: Any, framing: str) -> None:
    """1 MiB of body, far more than is buffered for the app, which answers without reading it;
    the next request on the connection (here in the same write) is still served."""
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await respond(send, body=scope["path"].encode())

    body = b"u" * (1 << 20)
    if framing == "chunked":
        pieces = [body[n : n + 65536] for n in range(0, len(body), 65536)]
        first = b"POST /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(*pieces)
    else:
        first = post_request("/upload", body)
    with serve(app) as server:
        with RawClient.connect(server.port, timeout=10) as client:
            writer = threading.Thread(target=client.send, args=(first + get_request("/next"),), daemon=True)
            writer.start()
            responses = [client.read_response(), client.read_response()]
            writer.join(5)
            assert not writer.is_alive(), "the server stopped reading the body"
            third = client.request(get_request("/third"))
    assert [(r.status, r.body) for r in responses] == [(200, b"/upload"), (200, b"/next")]
    assert (third.status, third.body) == (200, b"/third")
