"""Malformed requests get a clean 400 (or 431) and a closed connection, with either parser."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import pytest

from h1_support import RawClient, Recorder, assert_no_error_text, get_request, respond

HEAD = b"GET / HTTP/1.1\r\nHost: test\r\n"
POST = b"POST / HTTP/1.1\r\nHost: test\r\n"

# Grouped, each group against one server: a case is a (request, status) pair.
MALFORMED = {
    "request-line": {
        "garbage": (b"GARBAGE\r\n\r\n", 400),
        "binary": (b"\x00\x01\x02\r\n\r\n", 400),
        "missing-version": (b"GET /\r\nHost: test\r\n\r\n", 400),
        "bad-version": (b"GET / HTTP/1.x\r\nHost: test\r\n\r\n", 400),
        "http-0.9": (b"GET / HTTP/0.9\r\nHost: test\r\n\r\n", 400),
        "http-1.2": (b"GET / HTTP/1.2\r\nHost: test\r\n\r\n", 400),
        "http-2.0": (b"GET / HTTP/2.0\r\nHost: test\r\n\r\n", 505),
        "lowercase-method": (b"get / HTTP/1.1\r\nHost: test\r\n\r\n", 400),
        "unknown-method": (b"FROBNICATE / HTTP/1.1\r\nHost: test\r\n\r\n", 400),
        "relative-target": (b"GET a/b HTTP/1.1\r\nHost: test\r\n\r\n", 400),
        "non-ascii-target": (b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: test\r\n\r\n", 400),
        "over-the-default-limit": (b"GET /" + b"a" * 17000 + b" HTTP/1.1\r\nHost: test\r\n\r\n", 414),
    },
    "headers": {
        "space-in-name": (HEAD + b"Bad Name: value\r\n\r\n", 400),
        "control-char-in-name": (HEAD + b"Bad\x01Name: value\r\n\r\n", 400),
        "empty-name": (HEAD + b": value\r\n\r\n", 400),
        "no-colon": (HEAD + b"JustAName\r\n\r\n", 400),
        "nul-in-value": (HEAD + b"X-Value: a\x00b\r\n\r\n", 400),
        "bare-cr-in-value": (HEAD + b"X-Value: a\rb\r\n\r\n", 400),
        "control-char-in-value": (HEAD + b"X-Value: a\x01b\r\n\r\n", 400),
        "del-in-value": (HEAD + b"X-Value: a\x7fb\r\n\r\n", 400),
        "obs-fold": (HEAD + b"X-Folded: one\r\n two\r\n\r\n", 400),
        "bare-lf-line-ends": (b"GET / HTTP/1.1\nHost: test\nX-Value: v\n\n", 400),
        "one-bare-lf": (HEAD + b"X-Value: v\n\r\n", 400),
        "space-before-colon": (HEAD + b"X-Value : v\r\n\r\n", 400),
        "no-host-in-http11": (b"GET / HTTP/1.1\r\nX-Value: v\r\n\r\n", 400),
        "two-hosts": (HEAD + b"Host: other\r\n\r\n", 400),
        "over-the-default-limit": (
            HEAD + b"".join(b"X-Header-%d: %s\r\n" % (n, b"v" * 1000) for n in range(20)) + b"\r\n",
            431,
        ),
    },
    "body-framing": {
        "content-length-and-transfer-encoding": (
            POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        "conflicting-content-lengths": (POST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
        "repeated-content-length": (POST + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
        "content-length-list": (POST + b"Content-Length: 5, 5\r\n\r\nhello", 400),
        "non-numeric-content-length": (POST + b"Content-Length: five\r\n\r\nhello", 400),
        "negative-content-length": (POST + b"Content-Length: -5\r\n\r\nhello", 400),
        "bad-chunk-size": (POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
        "transfer-encoding-not-chunked": (POST + b"Transfer-Encoding: gzip\r\n\r\nhello", 400),
        "chunked-not-last": (POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
        "coding-before-chunked": (POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400),
        "bad-chunk-terminator": (POST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400),
    },
}



def check_rejected(server: Any, request: bytes, status: int) -> None:
    with RawClient.connect(server.port) as client:
        client.send(request)
        response = client.read_response()
        assert (response.status, response.reason) == (status, HTTPStatus(status).phrase)
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


@pytest.mark.parametrize("group", list(MALFORMED))
def test_malformed_requests_are_rejected(serve: Any, group: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="squall.error")
    failures = []
    with serve(path_app) as server:
        for case, (request, status) in MALFORMED[group].items():
            try:
                check_rejected(server, request, status)
            except Exception as exc:  # report every failing case, not just the first
                failures.append(f"{case}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)
    warnings = [r for r in caplog.records if "Invalid HTTP request received" in r.getMessage()]
    assert len(warnings) == len(MALFORMED[group])
    assert "Traceback" not in caplog.text


def test_a_small_head_size_limit(serve: Any) -> None:
    """--h11-max-incomplete-event-size applies alike however the head arrives."""
    long_line = b"GET /" + b"a" * 1500 + b" HTTP/1.1\r\nHost: test\r\n\r\n"
    big_headers = HEAD + b"X-One: " + b"v" * 700 + b"\r\nX-Two: " + b"v" * 700 + b"\r\n\r\n"
    fits = HEAD + b"X-One: " + b"v" * 700 + b"\r\n\r\n"

    def send(client: RawClient, data: bytes, trickle: bool) -> None:
        if not trickle:
            client.send(data)
            return
        for start in range(0, len(data), 300):
            try:
                client.send(data[start : start + 300])
            except (BrokenPipeError, ConnectionResetError):
                return  # answered and closed before the rest was sent

    with serve(path_app, h11_max_incomplete_event_size=1024) as server:
        for trickle in (False, True):
            for request, status in ((long_line, 414), (big_headers, 431)):
                with RawClient.connect(server.port) as client:
                    send(client, request, trickle)
                    response = client.read_response()
                    assert (response.status, trickle) == (status, trickle)
                    assert response.closes
                    client.assert_closed()
            with RawClient.connect(server.port) as client:
                send(client, fits, trickle)
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


def test_garbage_after_several_pipelined_requests(serve: Any) -> None:
    """Every complete request before the garbage is answered, in order, then the 400."""
    with serve(path_app) as server, RawClient.connect(server.port) as client:
        client.send(get_request("/a") + get_request("/b") + get_request("/c") + b"NOT HTTP AT ALL\r\n\r\n")
        assert [client.read_response().body for _ in range(3)] == [b"a", b"b", b"c"]
        assert client.read_response().status == 400
        client.assert_closed()


def test_bad_chunk_in_a_pipelined_request(serve: Any) -> None:
    """The request before it is answered; the one with the broken body gets the 400."""
    with serve(path_app) as server, RawClient.connect(server.port) as client:
        client.send(get_request("/a") + POST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n\r\n")
        assert client.read_response().body == b"a"
        response = client.read_response()
        assert response.status == 400 and response.closes
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


def test_methods_beyond_the_common_ones(serve: Any) -> None:
    with serve(path_app) as server, RawClient.connect(server.port) as client:
        for method in (b"PATCH", b"PURGE", b"PROPFIND", b"M-SEARCH"):
            assert client.request(method + b" /x HTTP/1.1\r\nHost: test\r\n\r\n").body == b"x"
