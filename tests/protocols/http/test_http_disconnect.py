"""The client goes away, or the app has returned: what `send` and `receive` do then.

ASGI 2.4 (the HTTP scope says "spec_version": "2.4"): once the client is
gone, `send` raises an OSError subclass, so that a streaming app (an
endless Server-Sent Events generator) stops instead of producing into the
void, and `receive` returns `http.disconnect`, again and again.  A
`receive` called after the app returned (from a task it left behind) says
`http.disconnect` too.  The subprocess and Gunicorn variants, with real
Starlette/FastAPI SSE endpoints, are in tests/test_sse_shutdown.py.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from h1_support import RawClient, Recorder, get_request, wait_threading_event, wait_until

# How many times `receive` is asked once the client is gone: it must say
# `http.disconnect` every time, never block, never raise.
RECEIVES = 3


def outcome(exc: BaseException | None) -> str:
    """What a call did, as text for the test thread: 'returned', or the exception's classes."""
    if exc is None:
        return "returned"
    return "raised " + ", ".join(cls.__name__ for cls in type(exc).__mro__)


async def receive_types(receive: Any, times: int = RECEIVES, deadline: bool = True) -> list[str]:
    """The message types `times` calls of `receive` return (or what they raise), each within a deadline.

    Without `deadline` each call is awaited directly, in the caller's task
    and at once (`wait_for` would run it in a task of its own, a loop
    iteration later); the test's own deadline must then catch a call that blocks.
    """
    types = []
    for _ in range(times):
        try:
            message = await (asyncio.wait_for(receive(), 2.0) if deadline else receive())
        except BaseException as exc:  # recorded for the assertion
            types.append(outcome(exc))
        else:
            types.append(message["type"])
    return types


def assert_oserror(text: str) -> None:
    assert text.startswith("raised ") and "OSError" in text.split(", "), f"send after the disconnect {text}"


def test_streaming_app_gets_oserror_from_send_once_the_client_left(serve: Any) -> None:
    """An endless stream (SSE-like): the client reads two events and leaves; a send then raises OSError."""
    seen: dict[str, Any] = {}
    done = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["spec_version"] = scope["asgi"]["spec_version"]
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        try:
            for n in range(10_000):  # ~100 s at this pace: far beyond the test's deadline
                await send({"type": "http.response.body", "body": b"data: %d\n\n" % n, "more_body": True})
                await asyncio.sleep(0.01)
            seen["send"] = "never raised"
        except BaseException as exc:
            seen["send"] = outcome(exc)
            seen["receive"] = await receive_types(receive)
            raise
        finally:
            done.set()

    with serve(app, timeout_graceful_shutdown=1) as server:
        with RawClient.connect(server.port) as client:
            client.send(get_request("/events"))
            client.read_until(b"data: ", count=2)
        assert done.wait(5.0), "the stream went on after the client left"
    assert seen["spec_version"] == "2.4"
    assert_oserror(seen["send"])
    assert seen["receive"] == ["http.disconnect"] * RECEIVES


@pytest.mark.parametrize("started", [False, True], ids=["before-start", "mid-body"])
def test_send_after_disconnect_raises_and_receive_keeps_saying_disconnect(serve: Any, started: bool) -> None:
    """A long-poll app waits in receive() for the client to leave, then tries to answer."""
    seen: dict[str, Any] = {}
    done = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            if started:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"waiting\n", "more_body": True})
            seen["first"] = (await receive())["type"]  # the (empty) request body
            seen["second"] = await receive_types(receive, 1)  # blocks until the client leaves
            try:
                if started:
                    await send({"type": "http.response.body", "body": b"too late", "more_body": False})
                else:
                    await send({"type": "http.response.start", "status": 200, "headers": []})
            except BaseException as exc:
                seen["send"] = outcome(exc)
            else:
                seen["send"] = outcome(None)
            seen["after"] = await receive_types(receive)
        finally:
            done.set()

    with serve(app) as server:
        with RawClient.connect(server.port) as client:
            client.send(get_request("/poll"))
            if started:
                client.read_until(b"waiting\n")
            else:
                wait_until(lambda: server.server.server_state.tasks, 5.0, "the app to start")
        assert done.wait(5.0), "the app never learned that the client left"
    assert seen["first"] == "http.request"
    assert seen["second"] == ["http.disconnect"]
    assert_oserror(seen["send"])
    assert seen["after"] == ["http.disconnect"] * RECEIVES


@pytest.mark.parametrize("ending", ["complete", "incomplete", "no-response", "raises", "raises-mid-body"])
def test_receive_after_the_app_returned_says_disconnect(serve: Any, ending: str) -> None:
    """A task the app left behind calls receive() once the app has returned: http.disconnect, not an error.

    It asks at once (the connection may not even know yet how the
    response ended) and again once the client has seen the response.
    """
    results = Recorder()
    client_done = threading.Event()
    leftovers: set[asyncio.Task[None]] = set()

    async def leftover(receive: Any, app_returned: asyncio.Event) -> None:
        await app_returned.wait()
        results.add(("at once", await receive_types(receive, deadline=False)))
        await wait_threading_event(client_done)
        results.add(("later", await receive_types(receive)))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        returned = asyncio.Event()
        task = asyncio.get_running_loop().create_task(leftover(receive, returned))
        leftovers.add(task)
        task.add_done_callback(leftovers.discard)
        if ending == "complete":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
        elif ending in ("incomplete", "raises-mid-body"):
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
        # Set just before returning: the leftover task runs once the app has returned.
        returned.set()
        if ending.startswith("raises"):
            raise RuntimeError("the app failed")

    with serve(app, timeout_keep_alive=1) as server:
        with RawClient.connect(server.port) as client:
            client.send(get_request("/", headers="Connection: close\r\n"))
            reply = client.read_until_closed()
        client_done.set()
        wait_until(lambda: len(results) == 2, 5.0, "the leftover task's receive() calls")
    expected_status = b"500" if ending in ("no-response", "raises") else b"200"
    assert reply.startswith(b"HTTP/1.1 " + expected_status), reply[:100]
    assert dict(results.snapshot()) == {
        "at once": ["http.disconnect"] * RECEIVES,
        "later": ["http.disconnect"] * RECEIVES,
    }


class AppsOwnDisconnect(Exception):
    """What a framework raises when send raised an OSError (Starlette: ClientDisconnect)."""


@pytest.mark.parametrize("chained", [True, False], ids=["raised-from-send-error", "unrelated-error"])
def test_app_error_raised_on_a_disconnect_is_not_logged_as_an_error(
    serve: Any, caplog: pytest.LogCaptureFixture, chained: bool
) -> None:
    """A framework turns send's OSError into its own exception: the client left, the app did
    not fail, so no error is logged.  An error of the app's own after the client left still is."""
    done = threading.Event()
    seen: dict[str, str] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for n in range(10_000):
                try:
                    await send({"type": "http.response.body", "body": b"data: %d\n\n" % n, "more_body": True})
                except OSError as exc:
                    seen["send"] = outcome(exc)
                    if chained:
                        raise AppsOwnDisconnect()  # its context: the OSError
                    break
                await asyncio.sleep(0.01)
            if not chained:
                raise ValueError("a bug of the app's")
        finally:
            done.set()

    caplog.set_level(logging.DEBUG, logger="squall.error")
    with serve(app, timeout_graceful_shutdown=1) as server:
        with RawClient.connect(server.port) as client:
            client.send(get_request("/events"))
            client.read_until(b"data: ", count=2)
        assert done.wait(5.0), "the stream went on after the client left"
    assert_oserror(seen["send"])
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    if chained:
        assert errors == [], errors
    else:
        assert errors == ["Exception in ASGI application\n"], errors
