"""Responses on the wire: HEAD, framing, bodiless statuses, default headers, root_path."""

from __future__ import annotations

import logging
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from h1_support import RawClient, get_request, respond, text_app, wait_for


async def streaming_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """`hello world` in three pieces and an empty last one, without a Content-Length."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for piece in (b"hello", b" ", b"world"):
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def test_head_sends_the_apps_headers_and_no_body(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await respond(send, body=b"hello world", headers=[(b"x-method", scope["method"].encode())])

    with serve(app) as server, RawClient.connect(server.port) as client:
        response = client.request(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n", method="HEAD")
        assert response.status == 200
        assert response.get("content-length") == "11"
        assert response.get("x-method") == "HEAD"
        # No body followed the head: the next response starts right after it.
        response = client.request(get_request())
        assert response.body == b"hello world" and response.get("x-method") == "GET"


def test_head_of_a_streamed_response_has_no_body(serve: Any) -> None:
    with serve(streaming_app) as server, RawClient.connect(server.port) as client:
        response = client.request(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n", method="HEAD")
        assert response.status == 200 and response.get("content-length") is None
        assert client.request(get_request()).body == b"hello world"


def test_the_apps_content_length_frames_the_body(serve: Any) -> None:
    with serve(text_app(b"hello")) as server, RawClient.connect(server.port) as client:
        response = client.request(get_request())
        assert response.get("content-length") == "5"
        assert response.get("transfer-encoding") is None
        assert response.raw_head.endswith(b"\r\ncontent-length: 5\r\n\r\n")
        assert response.raw_body == b"hello"


def test_no_content_length_is_chunked_on_http11(serve: Any) -> None:
    with serve(streaming_app) as server, RawClient.connect(server.port) as client:
        response = client.request(get_request())
        assert response.get("transfer-encoding") == "chunked"
        assert response.get("content-length") is None
        assert response.raw_body == b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"
        assert response.get("connection") is None
        assert client.request(get_request()).body == b"hello world"  # still usable


def test_no_content_length_is_close_delimited_on_http10(serve: Any) -> None:
    with serve(streaming_app) as server, RawClient.connect(server.port) as client:
        client.send(get_request(headers="Connection: keep-alive\r\n", version="1.0"))
        response = client.read_response()  # no framing headers: reads to the end of the connection
        assert response.get("transfer-encoding") is None
        assert response.get("content-length") is None
        assert response.get("connection") == "close"
        assert response.body == b"hello world"
        assert client.eof


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses(serve: Any, status: int) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"must not be sent"})

    with serve(app) as server, RawClient.connect(server.port) as client:
        for _ in range(2):  # the second response starts right after the first head
            response = client.request(get_request())
            assert response.status == status
            assert response.get("transfer-encoding") is None
            assert response.get("content-length") is None
        client.sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            client.sock.recv(1)


@pytest.mark.parametrize("sent", [b"too long!", b"shrt"], ids=["longer", "shorter"])
def test_content_not_matching_content_length_is_an_error(
    serve: Any, sent: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"6")]})
        await send({"type": "http.response.body", "body": sent})

    caplog.set_level(logging.ERROR, logger="squall.error")
    with serve(app) as server, RawClient.connect(server.port) as client:
        client.send(get_request())
        received = client.read_until_closed()
        if received:  # the head may or may not have left before the error
            assert received.startswith(b"HTTP/1.1 200 OK\r\n")
            head, _, body = received.partition(b"\r\n\r\n")
            assert len(body) < 6, "a complete (wrong) body was sent"
        wait_for(lambda: any("Content-Length" in r.getMessage() + str(r.exc_info) for r in caplog.records))


def test_default_server_and_date_headers(serve: Any) -> None:
    with serve(text_app()) as server, httpx.Client(base_url=server.url) as http:
        response = http.get("/")
    assert response.headers.get_list("server") == ["squall"]
    [date] = response.headers.get_list("date")
    assert parsedate_to_datetime(date).tzname() == "UTC"


def test_default_headers_can_be_turned_off_and_added(serve: Any) -> None:
    options = {"server_header": False, "date_header": False, "headers": ["X-Foo:bar", "X-Other: two words"]}
    with serve(text_app(), **options) as server, RawClient.connect(server.port) as client:
        response = client.request(get_request())
    assert response.get("server") is None
    assert response.get("date") is None
    assert response.get("x-foo") == "bar"
    assert response.get("x-other") == "two words"


def test_the_apps_server_header_replaces_the_default(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await respond(send, body=b"ok", headers=[(b"Server", b"my-app/1.0")])

    with serve(app) as server, RawClient.connect(server.port) as client:
        response = client.request(get_request())
    assert response.get_all("server") == ["my-app/1.0"]
    assert response.get("date") is not None


def test_root_path(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        text = f"{scope['root_path']}|{scope['path']}|{scope['raw_path'].decode()}"
        await respond(send, body=text.encode())

    with serve(app, root_path="/api") as server, RawClient.connect(server.port) as client:
        assert client.request(get_request("/x?q=1")).body == b"/api|/api/x|/api/x"
        assert client.request(get_request("/a%20b")).body == b"/api|/api/a b|/api/a%20b"


def test_head_on_http10_keep_alive_without_content_length(serve: Any) -> None:
    """No body follows a HEAD response, so it needs no close to delimit one."""
    with serve(streaming_app) as server, RawClient.connect(server.port) as client:
        head = b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        response = client.request(head, method="HEAD")
        assert response.status == 200 and response.get("connection") == "keep-alive"
        assert client.request(get_request(headers="Connection: keep-alive\r\n", version="1.0")).status == 200
