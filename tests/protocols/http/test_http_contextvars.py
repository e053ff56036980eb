"""Context variables set by one request's app never reach another request.

Each request's app runs in a fresh copy of the connection's context.  The
ways an app's context used to leak into the next request on the same
connection: the next pipelined request started from inside the previous
app's `send`; and asyncio's selector loop re-creating the socket's reader
callback in the context current when reading resumes (CPython issue
140947), which was the app's context when its `receive` resumed reading
after a large body had paused it.  Parsing the next request (and any error
in it) must likewise never happen inside the previous app.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from h1_support import RawClient, Recorder, get_request, post_request, read_body, respond

# What an app sets, and the next request's app must not see.
request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var")

# Large enough that reading pauses (the buffer limit is 64 KiB) and resumes
# from the app's receive() several times.
LARGE = 1 << 20

NOT_SET = "<not set>"


async def tagging_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with what `request_var` held when it was called, then sets it to its own path."""
    seen = request_var.get(NOT_SET)
    request_var.set(scope["path"])
    body = await read_body(receive)
    await respond(send, body=f"{seen} {len(body)}".encode())


@pytest.fixture(params=[0, LARGE], ids=["no-body", "1MiB-body"])
def first_body(request: pytest.FixtureRequest) -> bytes:
    """The body of the first request, the one that sets the variable."""
    return b"x" * request.param


def first_request(body: bytes) -> bytes:
    return post_request("/a", body) if body else get_request("/a")


def test_keep_alive_request_does_not_see_the_previous_ones_context(serve: Any, first_body: bytes) -> None:
    with serve(tagging_app) as server:
        with RawClient.connect(server.port) as client:
            first = client.request(first_request(first_body))
            assert first.body == f"{NOT_SET} {len(first_body)}".encode()
            for path in ("/b", "/c"):
                response = client.request(get_request(path))
                assert response.body == f"{NOT_SET} 0".encode(), f"{path} saw the context of an earlier request"


def test_pipelined_request_does_not_see_the_previous_ones_context(serve: Any, first_body: bytes) -> None:
    with serve(tagging_app) as server:
        with RawClient.connect(server.port) as client:
            client.send(first_request(first_body) + get_request("/b") + get_request("/c"))
            bodies = [client.read_response().body for _ in range(3)]
    assert bodies == [f"{NOT_SET} {len(first_body)}".encode(), f"{NOT_SET} 0".encode(), f"{NOT_SET} 0".encode()]


class ContextRecorder(logging.Handler):
    """Records, for each log record, the value of `request_var` and whether a task was running it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records = Recorder()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        self.records.add((record.getMessage(), request_var.get(NOT_SET), task is not None))


@pytest.fixture
def squall_error_log() -> Iterator[ContextRecorder]:
    handler = ContextRecorder()
    logger = logging.getLogger("squall.error")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def test_malformed_pipelined_request_is_not_parsed_inside_the_previous_app(
    serve: Any, first_body: bytes, squall_error_log: ContextRecorder
) -> None:
    """/a (and its body), /b, then bytes that are no request, in one write.

    /a and /b are answered, then a 400; the apps' sends never see the
    error, and the error is found (and logged) outside any app's task and
    context, not by /a's or /b's send parsing what follows.
    """
    sends = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        request_var.set(scope["path"])
        body = await read_body(receive)
        try:
            await respond(send, body=b"%s %d" % (scope["path"].encode(), len(body)))
        except BaseException as exc:
            sends.add((scope["path"], repr(exc)))
            raise
        sends.add((scope["path"], "ok"))

    junk = b"\x01\x02 this is not HTTP\r\n\r\n"
    with serve(app) as server:
        with RawClient.connect(server.port) as client:
            client.send(first_request(first_body) + get_request("/b") + junk)
            first = client.read_response()
            second = client.read_response()
            error = client.read_response()
            client.assert_closed()
    assert (first.status, first.body) == (200, b"/a %d" % len(first_body))
    assert (second.status, second.body) == (200, b"/b 0")
    assert error.status == 400
    assert sorted(sends.snapshot()) == [("/a", "ok"), ("/b", "ok")]
    invalid = [entry for entry in squall_error_log.records.snapshot() if entry[0].startswith("Invalid HTTP request")]
    assert len(invalid) == 1, squall_error_log.records.snapshot()
    _, var_value, in_task = invalid[0]
    assert var_value == NOT_SET, f"the parse error was found inside the app of {var_value}"
    assert not in_task, "the parse error was found inside a task (an app's send), not by the connection"
