"""Server-wide limits and graceful shutdown, as a client sees them."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import httpx

from h1_support import RawClient, Recorder, get_request, respond, wait_until, wait_threading_event


def gated_app(release: threading.Event, started: Recorder) -> Any:
    """`/slow` waits until `release` is set; any other path answers at once."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/slow":
            started.add(scope["path"])
            await wait_threading_event(release, timeout=10)
        await respond(send, body=scope["path"].encode())

    return app


def connection_refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_limit_concurrency_answers_503_beyond_the_limit(serve: Any) -> None:
    release, started = threading.Event(), Recorder()
    with serve(gated_app(release, started), limit_concurrency=2) as server:
        busy = RawClient.connect(server.port)
        busy.send(get_request("/slow"))
        wait_until(lambda: len(started) == 1)
        idle = RawClient.connect(server.port)
        with RawClient.connect(server.port) as third:  # a third connection: over the limit
            response = third.request(get_request("/fast"))
            assert response.status == 503
            assert response.closes
            third.assert_closed()
        with RawClient.connect(server.port) as other:
            assert other.request(get_request("/fast")).status == 503
        release.set()
        assert busy.read_response().body == b"/slow"
        busy.close()
        # Back within the limit: served.
        wait_until(lambda: len(server.server.server_state.connections) <= 1)
        assert idle.request(get_request("/fast")).body == b"/fast"
        idle.close()


def test_limit_concurrency_counts_running_tasks(serve: Any) -> None:
    """A request whose client left still counts while its app runs."""
    release, started = threading.Event(), Recorder()
    with serve(gated_app(release, started), limit_concurrency=1) as server:
        with RawClient.connect(server.port) as gone:
            gone.send(get_request("/slow"))
            wait_until(lambda: len(started) == 1)
        wait_until(lambda: not server.server.server_state.connections, what="the connection to be gone")
        with RawClient.connect(server.port) as client:
            assert client.request(get_request("/fast")).status == 503
        release.set()
        wait_until(lambda: not server.server.server_state.tasks, what="the task to finish")
        with RawClient.connect(server.port) as client:
            assert client.request(get_request("/fast")).status == 200


def test_limit_max_requests_stops_the_server(serve: Any) -> None:
    with serve(gated_app(threading.Event(), Recorder()), limit_max_requests=3) as server:
        with httpx.Client(base_url=server.url) as http:
            assert [http.get(f"/{n}").status_code for n in range(3)] == [200, 200, 200]
        server.thread.join(5)
        assert not server.thread.is_alive(), "the server did not exit after --limit-max-requests"


def test_graceful_shutdown(serve: Any) -> None:
    release, started = threading.Event(), Recorder()
    with serve(gated_app(release, started)) as server:
        port = server.port
        idle = RawClient.connect(port)
        assert idle.request(get_request("/fast")).status == 200
        busy = RawClient.connect(port)
        busy.send(get_request("/slow"))
        wait_until(lambda: len(started) == 1)

        server.server.should_exit = True
        idle.assert_closed()  # idle keep-alive connections close at once
        wait_until(lambda: connection_refused(port), what="the listening socket to close")
        assert server.thread.is_alive(), "the server exited with a request in flight"

        release.set()
        response = busy.read_response()
        assert response.status == 200 and response.body == b"/slow"
        assert response.closes
        busy.assert_closed()
        server.thread.join(5)
        assert not server.thread.is_alive()
        idle.close()
        busy.close()


def test_graceful_shutdown_timeout_cancels_requests(serve: Any) -> None:
    outcome = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        outcome.add("started")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            outcome.add("cancelled")
            raise

    with serve(app, timeout_graceful_shutdown=1) as server:
        client = RawClient.connect(server.port)
        client.send(get_request())
        wait_until(lambda: len(outcome) == 1)
        asked_at = time.monotonic()
        server.server.should_exit = True
        server.thread.join(5)
        stopped_after = time.monotonic() - asked_at
        assert not server.thread.is_alive()
        assert stopped_after < 2.0, f"stopped {stopped_after:.2f}s after being asked"
        assert outcome.snapshot() == ["started", "cancelled"]
        assert client.read_until_closed() == b""  # closed without a response
        client.close()


def test_large_response_to_a_client_that_does_not_read(serve: Any) -> None:
    """Write flow control: `send` waits while the client is not reading."""
    chunk = b"z" * (1024 * 1024)
    total_chunks = 100
    progress = [0]
    finished = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % (len(chunk) * total_chunks))]})
        for n in range(total_chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": n < total_chunks - 1})
            progress[0] += len(chunk)
        finished.set()

    with serve(app) as server, RawClient.connect(server.port, timeout=10) as client:
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        client.send(get_request())
        # Wait until the app makes no more progress: it is held in `send`.
        last, still_since = -1, time.monotonic()
        while time.monotonic() - still_since < 0.25:
            if progress[0] != last:
                last, still_since = progress[0], time.monotonic()
            assert not finished.is_set(), "the whole response was buffered: send() never waited"
            time.sleep(0.01)
        assert progress[0] < 20 * len(chunk), f"the app sent {progress[0]} bytes to a client that reads nothing"

        status, _, headers, _ = client.read_head()
        assert status == 200
        received = len(client.buffer)
        client.buffer = b""
        sock = client.sock
        while received < len(chunk) * total_chunks:
            data = sock.recv(1024 * 1024)
            assert data, "the connection closed before the response was complete"
            received += len(data)
        assert received == len(chunk) * total_chunks
        assert finished.wait(5)
