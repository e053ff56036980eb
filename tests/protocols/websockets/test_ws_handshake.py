"""The opening handshake: bad requests, refusals, the denial response, and --ws none."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest
import support
import websockets.exceptions
from websockets.sync.client import connect
from ws_helpers import (
    TIMEOUT,
    Recorder,
    WsprotoClient,
    client_frame,
    echo_app,
    handshake_request,
    raw_request,
    recv_all,
    wait_until,
)

from squall.protocols.websockets.handshake import accept_key

LOOP_IMPLS = ["asyncio", "uvloop"]


def _no_error_logs(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


async def _unreachable_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise AssertionError("a bad handshake must not reach the app")


BAD_HANDSHAKES = [
    pytest.param(handshake_request(key=None), 400, None, id="missing-key"),
    pytest.param(handshake_request(key="not base64!"), 400, None, id="key-not-base64"),
    pytest.param(handshake_request(key="c2hvcnQ="), 400, None, id="key-not-16-bytes"),
    pytest.param(handshake_request(extra=["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="]), 400, None, id="two-keys"),
    pytest.param(handshake_request(version="8"), 426, "13", id="version-8"),
    pytest.param(handshake_request(version="14"), 426, "13", id="version-14"),
    pytest.param(handshake_request(version=None), 400, "13", id="missing-version"),
    pytest.param(handshake_request(method="POST"), 400, None, id="post"),
]


@pytest.mark.parametrize("loop_impl", LOOP_IMPLS)
@pytest.mark.parametrize(("request_bytes", "status", "version_header"), BAD_HANDSHAKES)
def test_bad_handshake_is_refused_without_error_logs(
    ws_serve: Any, caplog: pytest.LogCaptureFixture, request_bytes: bytes, status: int, version_header: str | None
) -> None:
    with ws_serve(_unreachable_app) as server:
        response = raw_request(server.port, request_bytes)
    assert response.status == status, response.status_line
    assert response.header("sec-websocket-version") == version_header
    assert response.header("connection") == "close"
    assert int(response.header("content-length") or -1) == len(response.body)
    _no_error_logs(caplog)


def test_handshake_split_across_packets(ws_serve: Any) -> None:
    """The head arrives in pieces: the HTTP layer waits for all of it, then hands it over."""
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    request = handshake_request(key=key)
    with ws_serve(echo_app()) as server, socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        for i in range(0, len(request), 7):
            sock.sendall(request[i : i + 7])
        sock.settimeout(TIMEOUT)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101 ")
    # RFC 6455 1.3's worked example.
    assert accept_key(key.encode()) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert b"\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head


@pytest.mark.parametrize("loop_impl", LOOP_IMPLS)
def test_close_before_accept_is_403(ws_serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close"})
        recorder.put(await receive())

    caplog.set_level(logging.INFO, logger="squall.error")
    with ws_serve(app) as server:
        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            connect(f"ws://127.0.0.1:{server.port}/denied")
        assert info.value.response.status_code == 403
        disconnect = recorder.get()
    assert disconnect["type"] == "websocket.disconnect"
    assert disconnect["code"] == 1006
    lines = [r.getMessage() for r in caplog.records if r.name == "squall.error"]
    assert any(line.endswith('"WebSocket /denied" 403') for line in lines), lines
    assert "connection open" not in lines
    _no_error_logs(caplog)


def test_accept_open_and_close_are_logged_as_uvicorn_does(ws_serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="squall.error")
    with ws_serve(echo_app()) as server:
        with connect(f"ws://127.0.0.1:{server.port}/chat?room=1") as client:
            client.send("hi")
            assert client.recv() == "hi"
        support.wait_until(
            lambda: "connection closed" in [r.getMessage() for r in caplog.records], what="the close to be logged"
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "squall.error" and r.levelno == logging.INFO]
    websocket_lines = [line for line in lines if "WebSocket" in line or line.startswith("connection ")]
    assert len(websocket_lines) == 3, lines
    assert websocket_lines[0].startswith("127.0.0.1:")
    assert websocket_lines[0].endswith('"WebSocket /chat?room=1" [accepted]')
    assert websocket_lines[1:] == ["connection open", "connection closed"]
    assert not [r for r in caplog.records if r.name == "squall.access"]


def test_denial_response_is_sent_as_given(ws_serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert "websocket.http.response" in scope["extensions"]
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 418,
                "headers": [(b"content-type", b"text/teapot"), (b"x-reason", b"short and stout")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"I'm a ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"teapot"})

    with ws_serve(app) as server:
        response = raw_request(server.port, handshake_request())
        with WsprotoClient(server.port) as client:
            status, headers, body = client.rejection()
    assert response.status == 418
    assert response.header("content-type") == "text/teapot"
    assert response.header("x-reason") == "short and stout"
    assert response.header("server") == "squall"
    assert response.body == b"I'm a teapot"
    assert (status, headers[b"x-reason"], body) == (418, b"short and stout", b"I'm a teapot")


def test_denial_response_without_body_framing_headers(ws_serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 204, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b""})

    with ws_serve(app) as server:
        response = raw_request(server.port, handshake_request())
    assert response.status == 204
    assert response.header("content-length") is None
    assert response.body == b""


@pytest.mark.parametrize(
    "start",
    [
        pytest.param({"status": 101}, id="status-101"),
        pytest.param({"status": 200, "headers": [(b"bad header", b"x")]}, id="bad-header-name"),
        pytest.param({"status": 200, "headers": [(b"content-length", b"99")]}, id="wrong-content-length"),
    ],
)
def test_invalid_denial_response_is_an_error_and_a_500(ws_serve: Any, caplog: pytest.LogCaptureFixture, start: dict) -> None:
    recorder = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        try:
            await send({"type": "websocket.http.response.start", **start})
            await send({"type": "websocket.http.response.body", "body": b"x"})
        except RuntimeError as exc:
            recorder.put(exc)
            raise

    with ws_serve(app) as server:
        response = raw_request(server.port, handshake_request())
        assert isinstance(recorder.get(), RuntimeError)
    assert response.status == 500
    assert any("Exception in ASGI application" in r.getMessage() for r in caplog.records)


def test_app_exception_before_accept_is_500(ws_serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise ValueError("boom")

    with ws_serve(app) as server:
        response = raw_request(server.port, handshake_request())
    assert response.status == 500
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and errors[0].exc_info and isinstance(errors[0].exc_info[1], ValueError)


def test_app_returning_without_a_decision_is_500(ws_serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()

    with ws_serve(app) as server:
        response = raw_request(server.port, handshake_request())
    assert response.status == 500
    assert any("without accepting or closing" in r.getMessage() for r in caplog.records)


def test_client_gone_before_accept(ws_serve: Any) -> None:
    """accept() after the client left raises the ASGI OSError; the app sees disconnect."""
    recorder = Recorder()
    gone = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        recorder.put("connected")
        message = await receive()  # the client hangs up: disconnect
        gone.put(message)
        try:
            await send({"type": "websocket.accept"})
        except OSError as exc:
            gone.put(exc)

    with ws_serve(app) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
            sock.sendall(handshake_request())
            assert recorder.get() == "connected"
        assert gone.get() == {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        assert isinstance(gone.get(), OSError)


def test_early_frames_are_kept_until_accept(ws_serve: Any) -> None:
    """A client that sends a frame right behind its handshake still gets it echoed."""
    frame = client_frame("early")
    with ws_serve(echo_app()) as server, socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(handshake_request() + frame)
        sock.settimeout(TIMEOUT)
        data = b""
        while b"early" not in data:
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert rest == b"\x81\x05early"


def test_ws_none_serves_the_upgrade_as_http(serve: Any, caplog: pytest.LogCaptureFixture, monkeypatch: Any) -> None:
    import squall.protocols.http.h1_connection as connection

    monkeypatch.setattr(connection, "_warned_no_websockets", False)
    seen = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.put(scope["type"])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    with serve(app, ws="none") as server:
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
                sock.sendall(handshake_request().replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
                assert recv_all(sock).startswith(b"HTTP/1.1 200 ")
    assert [seen.get(), seen.get()] == ["http", "http"]
    warnings = [r for r in caplog.records if "served as plain HTTP" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


def test_concurrency_limit_refuses_with_503(ws_serve: Any) -> None:
    with ws_serve(echo_app(), limit_concurrency=1) as server:
        with connect(f"ws://127.0.0.1:{server.port}/") as first:
            first.send("x")
            assert first.recv() == "x"
            response = raw_request(server.port, handshake_request())
            assert response.status == 503
        wait_until(lambda: not server.server.server_state.connections, what="the first connection to end")
        with connect(f"ws://127.0.0.1:{server.port}/") as again:
            again.send("y")
            assert again.recv() == "y"


MODULES_APP = """
import sys

async def app(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "with h11" if "h11" in sys.modules else "without h11"})
"""


def test_the_handshake_is_checked_from_the_parsed_head_without_a_second_parser(tmp_path: Any) -> None:
    # Under --http httptools nothing needs h11: the handshake used to be parsed
    # again with it, which cost every process that served a WebSocket ~0.35 MiB.
    (tmp_path / "modules_app.py").write_text(MODULES_APP)
    argv = ("modules_app:app", "--port", "0", "--http", "httptools", "--ws", "websockets", "--lifespan", "off")
    with support.SquallProcess(*argv, cwd=tmp_path) as squall:
        port = squall.wait_started()
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as ws:
            assert ws.recv(timeout=TIMEOUT) == "without h11"
