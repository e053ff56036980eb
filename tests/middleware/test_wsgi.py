"""WSGI apps behind the adapter: request bodies and responses both stream."""

from __future__ import annotations

import threading
from typing import Any

import httpx
from support import recv_until


def echo_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-Path", environ["PATH_INFO"])])
    return [environ["REQUEST_METHOD"].encode(), b" ", environ["QUERY_STRING"].encode(), b" ", body]


def test_wsgi_request_and_response(serve: Any) -> None:
    with serve(echo_app, interface="wsgi") as server:
        response = httpx.post(f"{server.url}/p%20q?x=1", content=b"payload")
    assert response.status_code == 201
    assert response.text == "POST x=1 payload"
    assert response.headers["x-path"] == "/p q"


def test_wsgi_environ_headers_and_addresses(serve: Any) -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        start_response("200 OK", [])
        return []

    with serve(app, interface="wsgi", root_path="/mount") as server:
        httpx.get(f"{server.url}/a", headers={"X-Custom": "1", "Content-Type": "text/x"})
    assert seen["HTTP_X_CUSTOM"] == "1"
    assert seen["CONTENT_TYPE"] == "text/x"
    assert seen["SCRIPT_NAME"] == "/mount"
    assert seen["PATH_INFO"] == "/a"
    assert seen["REMOTE_ADDR"] == "127.0.0.1"
    assert seen["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert seen["wsgi.url_scheme"] == "http"


def test_wsgi_response_streams(serve: Any) -> None:
    """The first chunk reaches the client while the app is still producing."""
    release = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first;"
        release.wait(5)
        yield b"second"

    with serve(app, interface="wsgi") as server:
        sock = server.connect()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = recv_until(sock, b"first;")
        assert b"transfer-encoding: chunked" in head
        assert b"first;" in head and b"second" not in head
        release.set()
        rest = recv_until(sock, b"0\r\n\r\n")
        assert b"second" in rest
        sock.close()


def test_wsgi_request_body_streams(serve: Any) -> None:
    """The app reads the first part of the body before the client sent the rest."""
    got_first = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        first = environ["wsgi.input"].read(5)
        got_first.set()
        rest = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [first, b"|", rest]

    with serve(app, interface="wsgi") as server:
        sock = server.connect()
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        assert got_first.wait(5)
        sock.sendall(b"6\r\n world\r\n0\r\n\r\n")
        data = recv_until(sock, b"0\r\n\r\n")
        assert b"5\r\nhello\r\n1\r\n|\r\n6\r\n world\r\n0\r\n\r\n" in data
        sock.close()


def test_asgi2_app_is_detected(serve: Any) -> None:
    class App:
        def __init__(self, scope: dict[str, Any]) -> None:
            self.scope = scope

        async def __call__(self, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": self.scope["asgi"]["version"].encode()})

    with serve(App, lifespan="off") as server:
        assert httpx.get(server.url).text == "2.0"
