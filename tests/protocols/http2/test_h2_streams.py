"""One HTTP/2 connection, many streams: each served on its own, bodies both
ways within the flow-control windows, the response framed as HTTP/2 wants,
resets from the client, graceful shutdown, trailers and early hints.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import h2.settings
import pytest
from h2_apps import read_body, respond, wait_event
from h2_client import (
    CANCEL,
    INTERNAL_ERROR,
    NO_ERROR,
    REFUSED_STREAM,
    FrameClient,
    H2Client,
    client_ssl,
)
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame
from support import RunningServer, SquallProcess, wait_until

from squall.protocols.http2.connection import H2Connection


def h2_connection(server: RunningServer) -> H2Connection:
    """The server's one HTTP/2 connection, to look at what it holds."""
    connections = [c for c in server.server.server_state.connections if isinstance(c, H2Connection)]
    assert len(connections) == 1, connections
    return connections[0]


def absent_for(client: Any, condition: Any, seconds: float = 0.3) -> bool:
    """Read for `seconds` and whether `condition()` stayed false throughout (for what must not happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return False
        client.pump(max(0.0, min(0.05, deadline - time.monotonic())))
    return not condition()


# -- concurrency -------------------------------------------------------------------------


def test_a_slow_stream_never_delays_a_fast_one(h2_serve: Any) -> None:
    release = threading.Event()
    running: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        running.append(scope["path"])
        if scope["path"].startswith("/slow"):
            await wait_event(release)
        await respond(send, scope["path"].encode())

    with h2_serve(app) as server, H2Client.connect(server.port) as client:
        slow = [client.request("GET", f"/slow/{i}") for i in range(20)]
        fast = client.request("GET", "/fast")
        assert client.response(fast).body == b"/fast"
        # All twenty slow ones run at once, none has answered.
        assert len(running) == 21
        assert not any(client.streams[stream_id].headers for stream_id in slow)
        release.set()
        for i, stream_id in enumerate(slow):
            assert client.response(stream_id).body == f"/slow/{i}".encode()


# -- request bodies ------------------------------------------------------------------------


def test_request_body_is_held_at_the_window_until_the_app_reads(h2_serve: Any) -> None:
    release = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await wait_event(release)
        await respond(send, b"%d" % len(await read_body(receive)))

    body = b"x" * (3 * 1024 * 1024)
    with h2_serve(app) as server, H2Client.connect(server.port) as client:
        window = server.server.config.http2_initial_window_size
        stream_id = client.request("POST", "/", end_stream=False)
        sent = client.send_some(stream_id, body)
        assert sent == window
        # No WINDOW_UPDATE comes while the app does not read, and the server holds no more than the window.
        assert absent_for(client, lambda: client.conn.local_flow_control_window(stream_id) > 0)
        stream = h2_connection(server).streams[stream_id]
        assert stream.buffered == window
        release.set()
        client.send_body(stream_id, body[sent:])
        assert client.response(stream_id).body == b"%d" % len(body)


def test_window_reopens_as_the_app_reads(h2_serve: Any) -> None:
    reads: list[int] = []
    read_one = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        total = 0
        more = True
        while more:
            if len(reads) < 2:  # the test releases the first two reads; the rest (the end) is read at once
                await wait_event(read_one)
                read_one.clear()
            message = await receive()
            reads.append(len(message["body"]))
            total += len(message["body"])
            more = message["more_body"]
        await respond(send, b"%d" % total)

    with h2_serve(app, http2_initial_window_size=65536) as server, H2Client.connect(server.port) as client:
        stream_id = client.request("POST", "/", end_stream=False)
        assert client.send_some(stream_id, b"y" * 100_000) == 65536
        assert absent_for(client, lambda: client.conn.local_flow_control_window(stream_id) > 0)
        wait_until(lambda: h2_connection(server).streams[stream_id].buffered == 65536, what="the first 64 KiB")
        read_one.set()
        # The app took the 64 KiB: the window opens by as much, and no more.
        client.wait(lambda: client.conn.local_flow_control_window(stream_id) == 65536, what="a WINDOW_UPDATE")
        wait_until(lambda: reads == [65536], what="the first read, of the whole window")
        assert client.send_some(stream_id, b"y" * 100_000) == 65536
        client.conn.end_stream(stream_id)
        client.flush()
        # Released only once the server holds all of it, so that the second read takes the whole window.
        wait_until(lambda: h2_connection(server).streams[stream_id].buffered == 65536, what="the second 64 KiB")
        read_one.set()
        assert client.response(stream_id).body == b"131072"
        assert reads[:2] == [65536, 65536]


def test_request_body_idle_timeout_resets_the_stream(h2_serve: Any) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["method"] == "GET":
            await respond(send, b"still serving")
            return
        seen.append(await receive())
        seen.append(await receive())

    with h2_serve(app, timeout_request_body_idle=0.5) as server, H2Client.connect(server.port) as client:
        stream_id = client.request("POST", "/", body=b"part", end_stream=False)
        result = client.response(stream_id, timeout=5)
        assert result.reset == CANCEL
        wait_until(lambda: len(seen) == 2, what="the app's second receive")
        assert seen == [{"type": "http.request", "body": b"part", "more_body": True}, {"type": "http.disconnect"}]
        assert client.get("/").body == b"still serving"


# -- responses ------------------------------------------------------------------------------


def test_send_waits_for_the_client_window(h2_serve: Any) -> None:
    sent: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(8):
            await send({"type": "http.response.body", "body": b"z" * 16384, "more_body": i < 7})
            sent.append(i)

    codes = h2.settings.SettingCodes
    with h2_serve(app) as server, H2Client.connect(server.port, window=1000, auto_ack=False) as client:
        stream_id = client.request()
        client.wait(lambda: len(client.streams[stream_id].body) == 1000, what="the first 1000 bytes")
        # The app's first chunk is out as far as the window allows; its next send waits.
        assert absent_for(client, lambda: len(sent) > 1 or len(client.streams[stream_id].body) > 1000)
        assert sent == [0]
        rec = h2_connection(server).streams[stream_id].wire
        assert len(rec.pending) == 16384 - 1000
        # The client opens its windows: the rest flows.
        client.auto_ack = True
        client.conn.update_settings({codes.INITIAL_WINDOW_SIZE: 1 << 20})
        client.conn.increment_flow_control_window(1 << 20)
        client.ack(stream_id, 1000)
        result = client.response(stream_id)
    assert result.body == b"z" * 8 * 16384
    assert sent == list(range(8))


def test_connection_specific_response_headers_are_dropped(h2_serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [
            (b"Connection", b"keep-alive"),
            (b"keep-alive", b"timeout=5"),
            (b"transfer-encoding", b"chunked"),
            (b"upgrade", b"websocket"),
            (b"proxy-connection", b"close"),
            (b"X-Mixed-Case", b"kept"),
            (b"content-type", b"text/plain"),
        ]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": b"hi"})

    # The h2 client itself refuses connection-specific fields: reaching the asserts proves them absent.
    with h2_serve(app, server_header=False, date_header=False) as server, H2Client.connect(server.port) as client:
        result = client.get("/")
    assert result.headers == [(b":status", b"201"), (b"x-mixed-case", b"kept"), (b"content-type", b"text/plain")]
    assert result.body == b"hi"


def test_head_response_has_no_data(h2_serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await respond(send, b"hello")

    with h2_serve(app) as server, FrameClient.connect(server.port) as client:
        client.request(1, "/", method="HEAD")
        result = client.response(1)
        assert result.ended and result.status == 200
        assert result.header("content-length") == "5"
        assert not [frame for frame in client.stream_frames(1) if isinstance(frame, DataFrame)]
        headers = [frame for frame in client.stream_frames(1) if isinstance(frame, HeadersFrame)]
        assert len(headers) == 1 and "END_STREAM" in headers[0].flags


@pytest.mark.parametrize("sent", [b"short", b"far too long for it"], ids=["shorter", "longer"])
def test_content_length_mismatch_resets_the_stream(h2_serve: Any, sent: bytes) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/ok":
            await respond(send, b"fine")
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": sent})

    with h2_serve(app) as server, H2Client.connect(server.port) as client:
        broken = client.get("/broken")
        assert broken.reset == INTERNAL_ERROR
        assert not broken.ended
        assert client.get("/ok").body == b"fine"


def test_app_errors_become_500_or_a_reset(h2_serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/raise":
            raise ValueError("boom")
        if scope["path"] == "/return":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("boom after the head")

    with h2_serve(app) as server, H2Client.connect(server.port) as client:
        for path in ("/raise", "/return"):
            result = client.get(path)
            assert (result.status, result.body) == (500, b"Internal Server Error"), path
        result = client.get("/midway")
        assert result.status == 200 and result.body == b"partial" and result.reset == INTERNAL_ERROR


def test_large_response(h2_serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": bytes(range(256)) * 4000})

    with h2_serve(app) as server, H2Client.connect(server.port) as client:
        results = [client.request() for _ in range(3)]
        for stream_id in results:
            assert client.response(stream_id).body == bytes(range(256)) * 4000


def test_pathsend(h2_serve: Any, tmp_path: Path) -> None:
    content = bytes(range(256)) * 4000  # a million bytes: several chunks, more than a window
    path = tmp_path / "file.bin"
    path.write_bytes(content)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(content))]})
        await send({"type": "http.response.pathsend", "path": str(path)})

    with h2_serve(app) as server, H2Client.connect(server.port) as client:
        assert client.get("/").body == content


# -- resets from the client -----------------------------------------------------------------


def test_client_reset_disconnects_that_stream_only(h2_serve: Any) -> None:
    release = threading.Event()
    outcome: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/doomed":
            outcome["message"] = await receive()  # the request's (empty) body
            outcome["message"] = await receive()  # then: the disconnect
            try:
                await send({"type": "http.response.start", "status": 200, "headers": []})
            except OSError as exc:
                outcome["send"] = exc
            return
        await wait_event(release)
        await respond(send, b"survivor")

    with h2_serve(app) as server, H2Client.connect(server.port) as client:
        survivor = client.request("GET", "/survivor")
        doomed = client.request("GET", "/doomed")
        client.reset(doomed)
        wait_until(lambda: "send" in outcome, what="the reset stream's app to finish")
        assert outcome["message"] == {"type": "http.disconnect"}
        assert isinstance(outcome["send"], OSError)
        release.set()
        assert client.response(survivor).body == b"survivor"


def test_client_reset_while_the_app_waits_for_the_window(h2_serve: Any) -> None:
    outcome: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(100):
                await send({"type": "http.response.body", "body": b"w" * 16384, "more_body": True})
        except OSError as exc:
            outcome["send"] = exc

    with h2_serve(app) as server, H2Client.connect(server.port, window=1000, auto_ack=False) as client:
        stream_id = client.request()
        client.wait(lambda: len(client.streams[stream_id].body) == 1000, what="the first bytes")
        client.reset(stream_id)
        wait_until(lambda: "send" in outcome, what="send to raise")
        wait_until(lambda: not h2_connection(server).streams, what="the stream to be forgotten")
    assert isinstance(outcome["send"], OSError)


# -- graceful shutdown ------------------------------------------------------------------------


def test_graceful_shutdown_finishes_streams_in_flight(h2_serve: Any) -> None:
    release = threading.Event()
    started: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started.append(scope["path"])
        await wait_event(release)
        await respond(send, b"finished")

    with h2_serve(app) as server, FrameClient.connect(server.port) as client:
        client.request(1, "/1")
        client.request(3, "/3")
        wait_until(lambda: len(server.server.server_state.tasks) == 2, what="two running apps")
        server.server.should_exit = True
        goaway = client.wait_goaway()
        assert (goaway.error_code, goaway.last_stream_id) == (NO_ERROR, 3)
        # A stream opened after the GOAWAY is not served: refused, or ignored (RFC 9113 6.8: the
        # GOAWAY's last stream id tells the client it was not processed).  Those before it finish.
        client.request(5, "/late")
        release.set()
        assert client.response(1).body == b"finished"
        assert client.response(3).body == b"finished"
        client.wait_closed()
        server.thread.join(5)
        assert not server.thread.is_alive()
    assert sorted(started) == ["/1", "/3"]
    assert [(type(frame).__name__, frame.error_code) for frame in client.stream_frames(5)] in ([], [("RstStreamFrame", REFUSED_STREAM)])


def test_sigterm(tmp_path: Path) -> None:
    """The `squall` command: SIGTERM while a stream is in flight."""
    args = ["h2_apps:app", "--app-dir", str(Path(__file__).resolve().parent), "--port", "0"]
    with SquallProcess(*args) as process:
        port = process.wait_started()
        with FrameClient.connect(port) as client:
            client.request(1, "/sleep?0.5")
            wait_until(lambda: json.loads(_stats(port))["running"] == 1, what="the app to run")
            process.signal(signal.SIGTERM)
            goaway = client.wait_goaway()
            assert (goaway.error_code, goaway.last_stream_id) == (NO_ERROR, 1)
            assert client.response(1).body == b"slept"
            client.wait_closed()
        assert process.wait() == 0
    assert "Traceback" not in process.output


def _stats(port: int) -> bytes:
    with H2Client.connect(port) as client:
        return client.get("/stats").body


def test_graceful_shutdown_timeout(h2_serve: Any) -> None:
    cancelled = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with h2_serve(app, timeout_graceful_shutdown=0.5) as server, FrameClient.connect(server.port) as client:
        client.request(1)
        wait_until(lambda: server.server.server_state.tasks, what="the app to run")
        server.server.should_exit = True
        assert client.wait_goaway().error_code == NO_ERROR
        client.wait_closed(timeout=5)
        server.thread.join(5)
        assert cancelled.is_set()


def test_shutdown_does_not_wait_for_an_unused_tls_connection(h2_serve: Any, ca: Any, tls_files: dict[str, str]) -> None:
    """A browser's preconnected socket: TLS done with ALPN h2, then nothing sent and nothing read.

    Closing a TLS connection waits for the peer's close_notify, which such a
    peer never sends: the server must not wait for it for long.
    """

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await respond(send, b"ok")

    with h2_serve(app, ssl_certfile=tls_files["cert"], ssl_keyfile=tls_files["key"]) as server:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        with client_ssl(ca, ["h2"]).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            assert sock.selected_alpn_protocol() == "h2"
            wait_until(lambda: [c for c in server.server.server_state.connections if isinstance(c, H2Connection)], what="the connection")
            started = time.monotonic()
            server.server.should_exit = True
            server.thread.join(10)
            assert not server.thread.is_alive()
            assert time.monotonic() - started < 4


def test_idle_connection_closes_after_keep_alive_timeout(h2_serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await respond(send, b"ok")

    with h2_serve(app, timeout_keep_alive=0.5) as server, FrameClient.connect(server.port) as client:
        client.request(1)
        assert client.response(1).body == b"ok"
        goaway = client.wait_goaway(timeout=3)
        assert (goaway.error_code, goaway.last_stream_id) == (NO_ERROR, 1)
        client.wait_closed()


# -- ASGI extensions ---------------------------------------------------------------------------


async def trailers_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"trailer", b"x-checksum, x-count")], "trailers": True})
    if scope["path"] != "/no-body":
        await send({"type": "http.response.body", "body": b"body", "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")], "more_trailers": True})
    await send({"type": "http.response.trailers", "headers": [(b"x-count", b"1")], "more_trailers": False})


@pytest.mark.parametrize("path", ["/", "/no-body"])
def test_trailers(h2_serve: Any, path: str) -> None:
    with h2_serve(trailers_app) as server, FrameClient.connect(server.port) as client:
        client.request(1, path, extra=[("te", "trailers")])
        result = client.response(1)
    assert result.status == 200
    assert result.body == (b"" if path == "/no-body" else b"body")
    assert result.trailers == [(b"x-checksum", b"abc"), (b"x-count", b"1")]
    last = [frame for frame in client.stream_frames(1)][-1]
    assert isinstance(last, HeadersFrame) and "END_STREAM" in last.flags


def test_no_trailers_without_te_trailers(h2_serve: Any) -> None:
    with h2_serve(trailers_app) as server, FrameClient.connect(server.port) as client:
        client.request(1)
        result = client.response(1)
    assert result.ended and result.body == b"body" and result.trailers is None


def test_early_hints(h2_serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        links = [b"</style.css>; rel=preload; as=style", b"</app.js>; rel=preload; as=script"]
        await send({"type": "http.response.early_hint", "links": links})
        await respond(send, b"page")

    with h2_serve(app) as server, H2Client.connect(server.port) as client:
        result = client.get("/")
    assert result.informational == [
        [(b":status", b"103"), (b"link", b"</style.css>; rel=preload; as=style"), (b"link", b"</app.js>; rel=preload; as=script")]
    ]
    assert result.status == 200 and result.body == b"page"


def test_goaway_from_the_client_ends_the_connection_after_its_streams(h2_serve: Any) -> None:
    release = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await wait_event(release)
        await respond(send, b"done")

    with h2_serve(app) as server, FrameClient.connect(server.port) as client:
        client.request(1)
        wait_until(lambda: server.server.server_state.tasks, what="the app to run")
        client.send(GoAwayFrame(0, last_stream_id=0, error_code=NO_ERROR))
        release.set()
        assert client.response(1).body == b"done"
        client.wait_closed()
