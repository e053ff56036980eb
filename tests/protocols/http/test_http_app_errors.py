"""Apps that fail or break the ASGI message protocol."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from h1_support import RawClient, Recorder, assert_no_error_text, get_request, respond, wait_until


def error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "squall.error" and r.levelno >= logging.ERROR]


def test_exception_before_the_response_is_a_500(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise ValueError("secret detail")

    caplog.set_level(logging.ERROR, logger="squall.error")
    with serve(app) as server, RawClient.connect(server.port) as client:
        response = client.request(get_request())
        assert response.status == 500
        assert response.get("content-type", ).startswith("text/plain")
        assert 0 < len(response.body) < 100
        assert b"secret detail" not in response.body
        assert_no_error_text(response.body)
        assert response.closes
        client.assert_closed()
    [record] = wait_until(lambda: error_records(caplog))
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
    assert "secret detail" in caplog.text and "Traceback" in caplog.text


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_exception_after_the_response_started_closes_the_connection(
    serve: Any, caplog: pytest.LogCaptureFixture, framing: str
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"100")] if framing == "content-length" else []
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("midway")

    caplog.set_level(logging.ERROR, logger="squall.error")
    with serve(app) as server, RawClient.connect(server.port) as client:
        client.send(get_request())
        received = client.read_until_closed()  # fails if the connection hangs open
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"partial" in received
    assert not received.endswith(b"0\r\n\r\n"), "a truncated chunked body was terminated as if complete"
    wait_until(lambda: error_records(caplog))


def test_returning_without_a_response_is_a_500(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        return None

    caplog.set_level(logging.ERROR, logger="squall.error")
    with serve(app) as server, RawClient.connect(server.port) as client:
        response = client.request(get_request())
        assert response.status == 500
        assert_no_error_text(response.body)
        client.assert_closed()
    wait_until(lambda: error_records(caplog))


async def body_before_start(send: Any) -> None:
    await send({"type": "http.response.body", "body": b"x"})


async def start_twice(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.start", "status": 200, "headers": []})


async def unknown_message(send: Any) -> None:
    await send({"type": "http.response.bogus"})


async def body_after_complete(send: Any) -> None:
    await respond(send, body=b"done")
    await send({"type": "http.response.body", "body": b"more"})


def test_protocol_misuse_raises_in_send_and_closes(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    misuses = {"/body-before-start": body_before_start, "/start-twice": start_twice, "/unknown": unknown_message}
    caught = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await misuses[scope["path"]](send)
        except RuntimeError as exc:
            caught.add((scope["path"], exc))

    caplog.set_level(logging.ERROR, logger="squall.error")
    with serve(app) as server:
        for path in misuses:
            with RawClient.connect(server.port) as client:
                client.send(get_request(path))
                received = client.read_until_closed()  # fails if the connection is left open
            wait_until(lambda: len(caught) and caught.snapshot()[-1][0] == path, what=f"{path}: a RuntimeError")
            # For /start-twice the first start was valid, but its head waits for the
            # first body bytes (ASGI), so nothing of it left: the client gets a 500 all the same.
            assert received.startswith(b"HTTP/1.1 500 "), (path, received[:100])
            assert_no_error_text(received.partition(b"\r\n\r\n")[2])
    assert [path for path, _ in caught.snapshot()] == list(misuses)


def test_sending_after_the_response_completed_raises(serve: Any) -> None:
    caught = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await body_after_complete(send)
        except RuntimeError as exc:
            caught.add(exc)

    with serve(app) as server, RawClient.connect(server.port) as client:
        assert client.request(get_request()).body == b"done"
        wait_until(lambda: len(caught) == 1)
        # The complete response was fine: the connection is still usable.
        assert client.request(get_request()).body == b"done"


def test_a_500_to_a_head_request_has_no_body(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise ValueError("boom")

    with serve(app) as server, RawClient.connect(server.port) as client:
        response = client.request(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n", method="HEAD")
        assert response.status == 500 and response.closes
        assert client.read_until_closed() == b""
