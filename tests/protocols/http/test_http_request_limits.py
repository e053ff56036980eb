"""--limit-request-line, --limit-request-fields, --limit-request-field-size and --limit-request-body."""

from __future__ import annotations

from typing import Any

from h1_support import RawClient, Recorder, chunked, post_request, read_body, respond, wait_until

HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n"
CHUNKED = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


async def length_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = await read_body(receive)
    await respond(send, body=b"%d" % len(body))


def status_of(port: int, request: bytes) -> int:
    with RawClient.connect(port) as client:
        try:
            client.send(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = client.read_response()
        if response.status >= 400:
            assert response.closes
            client.assert_closed()
        return response.status


def test_the_request_line_limit(serve: Any) -> None:
    with serve(length_app, limit_request_line=100) as server:
        # 100 bytes without the CRLF, as Gunicorn counts: accepted; one more is not.
        fits = b"GET /" + b"a" * (100 - len(b"GET / HTTP/1.1")) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        assert status_of(server.port, fits) == 200
        assert status_of(server.port, fits.replace(b"GET /", b"GET /a")) == 414
        # Refused before its end arrives.
        assert status_of(server.port, b"GET /" + b"a" * 200) == 414
    with serve(length_app, limit_request_line=0) as server:
        assert status_of(server.port, b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n") == 200


def test_the_field_count_limit_applies_to_headers_and_trailers(serve: Any) -> None:
    with serve(length_app, limit_request_fields=5) as server:
        assert status_of(server.port, HEAD + b"X: y\r\n" * 4 + b"\r\n") == 200  # with Host: 5
        assert status_of(server.port, HEAD + b"X: y\r\n" * 5 + b"\r\n") == 431
        assert status_of(server.port, CHUNKED + b"0\r\n" + b"X: y\r\n" * 5 + b"\r\n") == 200
        assert status_of(server.port, CHUNKED + b"0\r\n" + b"X: y\r\n" * 6 + b"\r\n") == 431
    with serve(length_app, limit_request_fields=0) as server:
        assert status_of(server.port, HEAD + b"X: y\r\n" * 1000 + b"\r\n") == 200


def test_the_field_size_limit_applies_to_fields_trailers_and_chunk_lines(serve: Any) -> None:
    with serve(length_app, limit_request_field_size=100) as server:
        # 100 bytes with the CRLF, as Gunicorn counts.
        field = b"X: " + b"v" * 95 + b"\r\n"
        assert status_of(server.port, HEAD + field + b"\r\n") == 200
        assert status_of(server.port, HEAD + b"X: v" + field[3:] + b"\r\n") == 431
        assert status_of(server.port, CHUNKED + b"0\r\n" + field + b"\r\n") == 200
        assert status_of(server.port, CHUNKED + b"0\r\nX: v" + field[3:] + b"\r\n") == 431
        extension = b";e=" + b"x" * 200
        assert status_of(server.port, CHUNKED + b"1" + extension + b"\r\na\r\n0\r\n\r\n") == 400
    with serve(length_app, limit_request_field_size=0) as server:
        assert status_of(server.port, HEAD + b"X: " + b"v" * 12_000 + b"\r\n\r\n") == 200


def test_a_megabyte_chunk_extension_and_endless_trailers_are_refused(serve: Any) -> None:
    """What used to be accepted by one parser and refused by the other: now refused by both, early."""
    with serve(length_app) as server:
        assert status_of(server.port, CHUNKED + b"1;" + b"x" * 1_000_000) == 400
        assert status_of(server.port, CHUNKED + b"0\r\n" + b"X: y\r\n" * 200_000) == 431


def test_a_content_length_over_the_body_limit_is_refused_before_the_app_runs(serve: Any) -> None:
    calls = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        calls.add(scope["path"])
        await length_app(scope, receive, send)

    with serve(app, limit_request_body=10) as server:
        assert status_of(server.port, post_request("/fits", b"x" * 10)) == 200
        assert status_of(server.port, post_request("/over", b"x" * 11)) == 413
        # Expect: 100-continue: refused without asking for the body.
        with RawClient.connect(server.port) as client:
            client.send(b"POST /expect HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n")
            assert client.read_response().status == 413
    assert calls.snapshot() == ["/fits"]


def test_a_chunked_body_over_the_limit(serve: Any) -> None:
    """413 as soon as a chunk takes the body over the limit; the app, already reading, sees http.disconnect."""
    seen = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.add((scope["path"], message["type"]))
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        if message["type"] == "http.request":
            await respond(send, body=b"read")

    with serve(app, limit_request_body=10) as server:
        assert status_of(server.port, CHUNKED + chunked(b"x" * 6, b"y" * 4)) == 200
        with RawClient.connect(server.port) as client:
            client.send(CHUNKED.replace(b"POST /", b"POST /over") + b"6\r\nxxxxxx\r\n")
            wait_until(lambda: ("/over", "http.request") in seen.snapshot(), what="the app to read the first chunk")
            client.send(b"5\r\nyyyyy\r\n0\r\n\r\n")
            response = client.read_response()
            assert response.status == 413 and response.closes
            client.assert_closed()
    wait_until(lambda: ("/over", "http.disconnect") in seen.snapshot(), what="the app to see the disconnect")
