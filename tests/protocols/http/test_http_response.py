"""Responses on the wire: HEAD, framing, bodiless statuses, default headers, root_path."""

from __future__ import annotations

import logging
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from h1_support import RawClient, get_request, respond, text_app, wait_until

# Every response here is written by the compiled hot path and by its pure-Python reference.
pytestmark = pytest.mark.usefixtures("hot_path")


async def streaming_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """`hello world` in three pieces and an empty last one, without a Content-Length."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for piece in (b"hello", b" ", b"world"):
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def framing_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """`/length`: with a Content-Length; `/204`, `/304`: bodiless statuses; else streamed."""
    path = scope["path"]
    if path == "/length":
        await respond(send, body=b"hello world", headers=[(b"x-method", scope["method"].encode())])
    elif path in ("/204", "/304"):
        await send({"type": "http.response.start", "status": int(path[1:]), "headers": []})
        await send({"type": "http.response.body", "body": b"must not be sent"})
    else:
        await streaming_app(scope, receive, send)


def test_head_sends_the_apps_headers_and_no_body(serve: Any) -> None:
    with serve(framing_app) as server, RawClient.connect(server.port) as client:
        response = client.request(b"HEAD /length HTTP/1.1\r\nHost: test\r\n\r\n", method="HEAD")
        assert response.status == 200
        assert response.get("content-length") == "11"
        assert response.get("x-method") == "HEAD"
        # No body followed the head: the next response starts right after it.
        response = client.request(get_request("/length"))
        assert response.body == b"hello world" and response.get("x-method") == "GET"

        response = client.request(b"HEAD /streamed HTTP/1.1\r\nHost: test\r\n\r\n", method="HEAD")
        assert response.status == 200 and response.get("content-length") is None
        assert client.request(get_request("/length")).body == b"hello world"

        # HTTP/1.0 keep-alive: no body follows a HEAD response, so no close is needed to end one.
        head = b"HEAD /streamed HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        response = client.request(head, method="HEAD")
        assert response.status == 200 and response.get("connection") == "keep-alive"
        assert client.request(get_request("/length", headers="Connection: keep-alive\r\n", version="1.0")).status == 200


def test_response_framing(serve: Any) -> None:
    with serve(framing_app) as server, RawClient.connect(server.port) as client:
        # The app's Content-Length frames the body.
        response = client.request(get_request("/length"))
        assert response.get("content-length") == "11"
        assert response.get("transfer-encoding") is None
        assert response.raw_head.endswith(b"\r\ncontent-length: 11\r\n\r\n")
        assert response.raw_body == b"hello world"

        # Without one, HTTP/1.1 gets chunks: exactly one per non-empty body message.
        response = client.request(get_request("/streamed"))
        assert response.get("transfer-encoding") == "chunked"
        assert response.get("content-length") is None
        assert response.get("connection") is None
        assert response.raw_body == b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"

        # Bodiless statuses: no framing headers, no body; the next response follows the head.
        for status in (204, 304):
            response = client.request(get_request(f"/{status}"))
            assert response.status == status
            assert response.get("transfer-encoding") is None
            assert response.get("content-length") is None
        assert client.request(get_request("/length")).body == b"hello world"

        # HTTP/1.0 cannot take chunks: the body ends with the connection.
        client.send(get_request("/streamed", headers="Connection: keep-alive\r\n", version="1.0"))
        response = client.read_response()  # no framing headers: reads to the end of the connection
        assert response.get("transfer-encoding") is None
        assert response.get("content-length") is None
        assert response.get("connection") == "close"
        assert response.body == b"hello world"
        assert client.eof


def test_content_not_matching_content_length_is_an_error(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"6")]})
        await send({"type": "http.response.body", "body": b"too long!" if scope["path"] == "/long" else b"shrt"})

    caplog.set_level(logging.ERROR, logger="squall.error")
    with serve(app) as server:
        for path in ("/long", "/short"):
            with RawClient.connect(server.port) as client:
                client.send(get_request(path))
                received = client.read_until_closed()  # fails if the connection is left open
            # The error is found with the first body bytes, before the head
            # (which waits for them) left: the client gets a 500 instead.
            assert received.startswith(b"HTTP/1.1 500 "), (path, received[:100])
        for word in ("longer", "shorter"):
            wait_until(lambda: any(word in r.getMessage() + str(r.exc_info) for r in caplog.records), what=word)


def test_default_server_and_date_headers(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        # The app's own Server header replaces the default one.
        await respond(send, body=b"ok", headers=[(b"Server", b"my-app/1.0")] if scope["path"] == "/own" else [])

    with serve(app) as server, httpx.Client(base_url=server.url) as http:
        response = http.get("/")
        own = http.get("/own")
    assert response.headers.get_list("server") == ["squall"]
    [date] = response.headers.get_list("date")
    assert parsedate_to_datetime(date).tzname() == "UTC"
    assert own.headers.get_list("server") == ["my-app/1.0"]
    assert len(own.headers.get_list("date")) == 1


def test_default_headers_can_be_turned_off_and_added(serve: Any) -> None:
    options = {"server_header": False, "date_header": False, "headers": ["X-Foo:bar", "X-Other: two words"]}
    with serve(text_app(), **options) as server, RawClient.connect(server.port) as client:
        response = client.request(get_request())
    assert response.get("server") is None
    assert response.get("date") is None
    assert response.get("x-foo") == "bar"
    assert response.get("x-other") == "two words"


def test_root_path(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        text = f"{scope['root_path']}|{scope['path']}|{scope['raw_path'].decode()}"
        await respond(send, body=text.encode())

    with serve(app, root_path="/api") as server, RawClient.connect(server.port) as client:
        assert client.request(get_request("/x?q=1")).body == b"/api|/api/x|/api/x"
        assert client.request(get_request("/a%20b")).body == b"/api|/api/a b|/api/a%20b"

