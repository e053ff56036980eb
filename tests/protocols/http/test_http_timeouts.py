"""The timeouts that bound what a slow or stalled client costs, and the error-response linger.

- `--timeout-request-header`: a request head must be complete within it
  (slowloris); an idle keep-alive connection is governed by
  `--timeout-keep-alive` instead.
- `--timeout-request-body-idle`: a request body that stalls while the app
  waits for it ends the request (the app sees `http.disconnect`, the client
  a 408 or a close).
- `--timeout-write`: a client that stops reading a response is dropped,
  and the app's `send` raises.
- After an error response the server reads on (and drops) what the client
  still sends, so that the response is not destroyed by a reset.

The server checks its timeouts twice a second, so each is met within about
half a second; the deadlines below allow a second more for a loaded machine.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import Any

import pytest

from h1_support import RawClient, Recorder, get_request, respond, socket_closed_by_peer, wait_until

TIMEOUT = 1.0
SLACK = 1.0


def closed_within(sock: socket.socket, deadline: float, keep_sending: bytes = b"") -> float | None:
    """Seconds until the peer closes `sock` (None if not by `deadline`), sending `keep_sending` every 0.1 s."""
    start = time.monotonic()
    next_send = start
    while time.monotonic() < deadline:
        if keep_sending and time.monotonic() >= next_send:
            next_send = time.monotonic() + 0.1
            try:
                sock.send(keep_sending)
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - start
        select.select([sock], [], [], 0.05)
        if socket_closed_by_peer(sock):
            return time.monotonic() - start
    return None


def test_unfinished_head_is_closed_after_the_request_header_timeout(serve: Any) -> None:
    """A head trickled byte by byte (slowloris) is cut off after --timeout-request-header,
    however long --timeout-keep-alive is."""
    with serve(respond_ok, timeout_request_header=TIMEOUT, timeout_keep_alive=30) as server:
        with server.connect() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n")
            elapsed = closed_within(sock, time.monotonic() + TIMEOUT + SLACK + 1, keep_sending=b"X")
    assert elapsed is not None, "a trickled head was never cut off"
    assert TIMEOUT - 0.3 <= elapsed <= TIMEOUT + SLACK, f"closed after {elapsed:.2f}s"


def test_head_timer_starts_with_the_heads_first_byte(serve: Any) -> None:
    """On a keep-alive connection the header timeout counts from the next head's first byte,
    not from the end of the previous response."""
    keep_alive = 2 * TIMEOUT + 1
    with serve(respond_ok, timeout_request_header=TIMEOUT, timeout_keep_alive=keep_alive) as server:
        with RawClient.connect(server.port) as client:
            assert client.request(get_request("/first")).status == 200
            idle = closed_within(client.sock, time.monotonic() + TIMEOUT + SLACK)
            assert idle is None, f"an idle keep-alive connection was closed after {idle:.2f}s, by the header timeout"
            client.send(b"GET /second HTTP/1.1\r\n")
            elapsed = closed_within(client.sock, time.monotonic() + TIMEOUT + SLACK + 1, keep_sending=b"X")
    assert elapsed is not None, "the unfinished second head was never cut off"
    assert TIMEOUT - 0.3 <= elapsed <= TIMEOUT + SLACK, f"closed {elapsed:.2f}s after the head began"


def test_idle_keep_alive_connection_is_governed_by_the_keep_alive_timeout(serve: Any) -> None:
    """Between requests the header timeout does not apply: a short one does not close
    an idle connection that --timeout-keep-alive keeps."""
    keep_alive = 2 * TIMEOUT + 0.5
    with serve(respond_ok, timeout_request_header=TIMEOUT, timeout_keep_alive=keep_alive) as server:
        with RawClient.connect(server.port) as client:
            assert client.request(get_request()).status == 200
            idle_start = time.monotonic()
            elapsed = closed_within(client.sock, idle_start + keep_alive + SLACK + 1)
    assert elapsed is not None, "the idle connection was never closed"
    assert keep_alive - 0.3 <= elapsed <= keep_alive + SLACK, f"idle connection closed after {elapsed:.2f}s"


async def respond_ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await respond(send, body=b"ok")


def test_stalled_request_body_ends_the_request(serve: Any) -> None:
    """Headers and part of a body, then nothing: after --timeout-request-body-idle the app's
    receive() says http.disconnect, and the client gets a 408 or a close."""
    seen = Recorder()
    app_done = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            while True:
                message = await receive()
                seen.add((time.monotonic(), message["type"], len(message.get("body", b""))))
                if message["type"] != "http.request" or not message.get("more_body"):
                    break
            if message["type"] == "http.request":
                await respond(send, body=b"the whole body came")
        finally:
            app_done.set()

    with serve(app, timeout_request_body_idle=TIMEOUT, timeout_keep_alive=30) as server:
        with RawClient.connect(server.port) as client:
            client.send(b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n" + b"p" * 1000)
            wait_until(lambda: sum(size for _, _, size in seen.snapshot()) == 1000, 5.0, "the first part of the body")
            stalled_at = time.monotonic()
            reply = client.read_until_closed(timeout=TIMEOUT + SLACK + 1)
            closed_after = time.monotonic() - stalled_at
        assert app_done.wait(5.0)
    assert reply == b"" or reply.startswith(b"HTTP/1.1 408 "), reply[:200]
    assert closed_after <= TIMEOUT + SLACK, f"closed {closed_after:.2f}s after the body stalled"
    last_time, last_type, _ = seen.snapshot()[-1]
    assert last_type == "http.disconnect"
    assert last_time - stalled_at <= TIMEOUT + SLACK, f"the app saw the disconnect after {last_time - stalled_at:.2f}s"


def test_client_that_stops_reading_is_dropped_after_the_write_timeout(serve: Any) -> None:
    """A large streaming response to a client that reads nothing: after --timeout-write the
    connection is dropped and the app's send raises."""
    chunk = b"w" * 65536
    sends = Recorder()  # (time, outcome) of each send
    app_done = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(100_000):  # gigabytes: far more than any buffer
                try:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                except OSError as exc:
                    sends.add((time.monotonic(), type(exc).__name__))
                    return
                sends.add((time.monotonic(), "ok"))
        finally:
            app_done.set()

    with serve(app, timeout_write=TIMEOUT, timeout_keep_alive=30) as server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
        sock.settimeout(5.0)
        try:
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(get_request("/stream"))
            assert app_done.wait(TIMEOUT + 10), "the app's send never raised"
        finally:
            sock.close()
    events = sends.snapshot()
    assert events[-1][1] != "ok", "the app's send never raised"
    successes = [at for at, outcome in events if outcome == "ok"]
    assert successes, "not one chunk was sent"
    raised_after = events[-1][0] - successes[-1]
    assert TIMEOUT - 0.3 <= raised_after <= TIMEOUT + 1.5, f"send raised {raised_after:.2f}s after writing stalled"


def small_receive_buffer_socket(port: int) -> socket.socket:
    """A client socket whose receive window is small (set before connecting), so that the
    server's writes back up as soon as the client stops reading."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5.0)
    sock.connect(("127.0.0.1", port))
    return sock


def test_client_that_never_reads_a_complete_response_is_dropped(serve: Any) -> None:
    """The app sent the whole (large) response at once and returned: the bytes wait in the
    server's buffer for a client that never reads them.  The write timeout applies all the
    same, even though the connection is between requests (keep-alive)."""
    big = b"b" * (8 << 20)
    done = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await respond(send, body=big)
        done.add(time.monotonic())

    with serve(app, timeout_write=TIMEOUT, timeout_keep_alive=30) as server:
        state = server.server.server_state
        with small_receive_buffer_socket(server.port) as sock:
            sock.sendall(get_request("/big"))
            (finished,) = wait_until(done.snapshot, 5.0, "the app to return")
            wait_until(lambda: not state.connections, TIMEOUT + 5, "the connection to be dropped")
            dropped_after = time.monotonic() - finished
    assert dropped_after <= TIMEOUT + 1.5, f"dropped {dropped_after:.2f}s after the response was written"


def test_slow_reader_of_a_large_chunk_is_not_dropped(serve: Any) -> None:
    """The write timeout is for a client that stopped reading: one that reads slowly, but
    takes longer than the timeout to drain a large chunk, gets the whole response."""
    chunk = b"c" * (512 << 10)
    rate = 256 << 10  # bytes per second: two seconds for the chunk, twice the timeout

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"%d" % (len(chunk) + 3))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"end"})

    with serve(app, timeout_write=TIMEOUT, timeout_keep_alive=30) as server:
        state = server.server.server_state
        with small_receive_buffer_socket(server.port) as sock:
            (conn,) = wait_until(lambda: list(state.connections), 5.0, "the connection")
            # Small kernel buffers on the server's side too: the transport's buffer holds the chunk.
            conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
            sock.sendall(get_request("/slow-reader"))
            data = b""
            start = time.monotonic()
            while not data.endswith(b"end"):
                # Read at `rate`: never more than it allows by now.
                allowed = int((time.monotonic() - start) * rate) + 8192 - len(data)
                if allowed <= 0:
                    time.sleep(0.01)  # pacing the reader, not waiting for the server
                    continue
                piece = sock.recv(min(allowed, 8192))  # a reset here: the server dropped a reading client
                assert piece, f"the server closed the connection after {len(data)} bytes"
                data += piece
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.endswith(chunk + b"end")


@pytest.mark.parametrize(
    "bad",
    [b"G\x01T / HTTP/1.1\r\nHost: test\r\n\r\n", b"GET / HTTP/1.1\r\nHost: test\r\nno colon here\r\n\r\n"],
    ids=["bad-request-line", "bad-header-line"],
)
def test_error_response_survives_unread_junk(serve: Any, bad: bytes) -> None:
    """A malformed request and 1 MiB of junk in one go: the 400 still reaches the client,
    followed by an orderly close, not a reset."""
    junk = b"j" * (1 << 20)
    with serve(respond_ok) as server:
        with server.connect(timeout=5.0) as sock:
            sock.sendall(bad + junk)
            data = b""
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(65536)  # a ConnectionResetError here fails the test
                if not chunk:
                    break
                data += chunk
            else:
                raise AssertionError("the server did not close the connection after the error response")
    assert data.startswith(b"HTTP/1.1 400 "), data[:200]
    assert b"connection: close" in data.lower()
