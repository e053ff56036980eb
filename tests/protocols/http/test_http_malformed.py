"""Malformed requests get a clean 400 (or 431) and a closed connection, with either parser."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from h1_support import RawClient, Recorder, assert_no_error_text, get_request, respond, text_app

HEAD = b"GET / HTTP/1.1\r\nHost: test\r\n"
POST = b"POST / HTTP/1.1\r\nHost: test\r\n"

BAD_REQUESTS = {
    "garbage-request-line": b"GARBAGE\r\n\r\n",
    "missing-version": b"GET /\r\nHost: test\r\n\r\n",
    "bad-version": b"GET / HTTP/1.x\r\nHost: test\r\n\r\n",
    "space-in-header-name": HEAD + b"Bad Name: value\r\n\r\n",
    "control-char-in-header-name": HEAD + b"Bad\x01Name: value\r\n\r\n",
    "empty-header-name": HEAD + b": value\r\n\r\n",
    "no-colon-header": HEAD + b"JustAName\r\n\r\n",
    "nul-in-header-value": HEAD + b"X-Value: a\x00b\r\n\r\n",
    "bare-cr-in-header-value": HEAD + b"X-Value: a\rb\r\n\r\n",
    "content-length-and-transfer-encoding": POST
    + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "conflicting-content-lengths": POST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "non-numeric-content-length": POST + b"Content-Length: five\r\n\r\nhello",
    "negative-content-length": POST + b"Content-Length: -5\r\n\r\nhello",
    "bad-chunk-size": POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "transfer-encoding-not-chunked": POST + b"Transfer-Encoding: gzip\r\n\r\nhello",
    "chunked-not-last": POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "non-ascii-target": b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: test\r\n\r\n",
    "request-line-over-default-limit": b"GET /" + b"a" * 17000 + b" HTTP/1.1\r\nHost: test\r\n\r\n",
}

TOO_LARGE_HEADERS = HEAD + b"".join(b"X-Header-%d: %s\r\n" % (n, b"v" * 1000) for n in range(20)) + b"\r\n"


def check_rejected(server: Any, request: bytes, status: int, reason: str) -> None:
    with RawClient.connect(server.port) as client:
        client.send(request)
        response = client.read_response()
        assert (response.status, response.reason) == (status, reason)
        assert response.get("connection") == "close"
        assert response.get("content-length") == str(len(response.body))
        assert_no_error_text(response.body)
        client.assert_closed()
    # The server is unharmed: a fresh connection is served normally.
    with RawClient.connect(server.port) as client:
        response = client.request(get_request("/fresh"))
        assert response.status == 200 and response.body == b"fresh"


async def path_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await respond(send, body=scope["path"].strip("/").encode())


@pytest.mark.parametrize("request_bytes", list(BAD_REQUESTS.values()), ids=list(BAD_REQUESTS))
def test_malformed_request_is_a_400(serve: Any, request_bytes: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="squall.error")
    with serve(path_app) as server:
        check_rejected(server, request_bytes, 400, "Bad Request")
    assert "Invalid HTTP request received" in caplog.text
    assert "Traceback" not in caplog.text


def test_header_section_over_the_default_limit_is_a_431(serve: Any) -> None:
    with serve(path_app) as server:
        check_rejected(server, TOO_LARGE_HEADERS, 431, "Request Header Fields Too Large")


@pytest.mark.parametrize("trickle", [False, True], ids=["one-send", "trickled"])
def test_a_small_head_size_limit(serve: Any, trickle: bool) -> None:
    """--h11-max-incomplete-event-size applies alike however the head arrives."""
    long_line = b"GET /" + b"a" * 1500 + b" HTTP/1.1\r\nHost: test\r\n\r\n"
    big_headers = HEAD + b"X-One: " + b"v" * 700 + b"\r\nX-Two: " + b"v" * 700 + b"\r\n\r\n"
    fits = HEAD + b"X-One: " + b"v" * 700 + b"\r\n\r\n"

    def send(client: RawClient, data: bytes) -> None:
        if trickle:
            for start in range(0, len(data), 300):
                client.send(data[start : start + 300])
        else:
            client.send(data)

    with serve(path_app, h11_max_incomplete_event_size=1024) as server:
        for request, status in ((long_line, 400), (big_headers, 431)):
            with RawClient.connect(server.port) as client:
                send(client, request)
                response = client.read_response()
                assert response.status == status
                assert response.closes
                client.assert_closed()
        with RawClient.connect(server.port) as client:
            send(client, fits)
            assert client.read_response().status == 200


def test_garbage_after_a_pipelined_request(serve: Any) -> None:
    with serve(path_app) as server:
        with RawClient.connect(server.port) as client:
            client.send(get_request("/first") + b"GARBAGE\r\n\r\n")
            first = client.read_response()
            assert first.status == 200 and first.body == b"first"
            assert not first.closes
            error = client.read_response()
            assert error.status == 400 and error.closes
            assert_no_error_text(error.body)
            client.assert_closed()
        check_rejected(server, b"\x00\x01\x02\r\n\r\n", 400, "Bad Request")


def test_garbage_after_several_pipelined_requests(serve: Any) -> None:
    """Every complete request before the garbage is answered, in order, then the 400."""
    with serve(path_app) as server, RawClient.connect(server.port) as client:
        client.send(get_request("/a") + get_request("/b") + get_request("/c") + b"NOT HTTP AT ALL\r\n\r\n")
        assert [client.read_response().body for _ in range(3)] == [b"a", b"b", b"c"]
        assert client.read_response().status == 400
        client.assert_closed()


def test_bad_chunk_while_the_app_reads_the_body(serve: Any) -> None:
    """A body that turns out malformed: the app sees a disconnect, the client a 400."""
    seen = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.add(message["type"])
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        if message["type"] == "http.request":
            await respond(send, body=b"unexpected")

    with serve(app) as server, RawClient.connect(server.port) as client:
        client.send(POST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        client.send(b"nonsense\r\n\r\n")
        response = client.read_response()
        assert response.status == 400 and response.closes
        client.assert_closed()
    assert seen.snapshot()[-1] == "http.disconnect"


def test_leading_empty_lines_before_a_request_are_ignored(serve: Any) -> None:
    """RFC 9112 2.2: a server should ignore empty lines before a request line."""
    with serve(path_app) as server, RawClient.connect(server.port) as client:
        assert client.request(b"\r\n" + get_request("/one")).body == b"one"
        client.send(b"\r\n")
        assert client.request(b"\r\n\r\n" + get_request("/two")).body == b"two"
        client.send(b"POST /three HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nhi\r\n")
        assert client.read_response().body == b"three"
        assert client.request(get_request("/four")).body == b"four"


def test_unsupported_http_version(serve: Any) -> None:
    with serve(text_app()) as server, RawClient.connect(server.port) as client:
        client.send(b"GET / HTTP/2.0\r\nHost: test\r\n\r\n")
        response = client.read_response()
        assert response.status in (400, 505)
        assert response.closes
        client.assert_closed()
