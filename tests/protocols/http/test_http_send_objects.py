"""What `send` accepts, whether the stream is compiled or not.

ASGI asks for bytes; Squall, like Uvicorn, takes any bytes-like body
(bytearray, memoryview) and sends it as it is.  And `send(message)` is a
coroutine: an app may hand it to `asyncio.create_task` or to an anyio task
group rather than await it in place.  The compiled stream (Cython) must
keep both: a compiled function typed from its annotations would refuse a
bytearray where `bytes` is written, and a compiled coroutine is not of
Python's coroutine type.  make test runs this module on both paths.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio

from h1_support import RawClient, get_request


def start(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http.response.start", "status": 200, "headers": headers}


def body(data: Any, more_body: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more_body}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/length":
        await send(start([(b"content-length", b"13")]))
        await send(body(bytearray(b"Hello, "), more_body=True))
        await send(body(memoryview(b"world!")))
    elif path == "/chunked":
        await send(start([]))
        await send(body(bytearray(b"Hello, "), more_body=True))
        await send(body(memoryview(b"xworld!")[1:], more_body=True))
        await send(body(b""))
    elif path == "/tasks":
        await asyncio.create_task(send(start([(b"content-length", b"5")])))
        async with anyio.create_task_group() as group:
            group.start_soon(send, body(b"tasks"))


def test_bytes_like_bodies_are_sent_as_they_are(serve: Any) -> None:
    with serve(app) as server, RawClient.connect(server.port) as client:
        length = client.request(get_request("/length"))
        chunked = client.request(get_request("/chunked"))
    assert length.status == 200 and length.raw_body == b"Hello, world!"
    assert chunked.get("transfer-encoding") == "chunked"
    assert chunked.raw_body == b"7\r\nHello, \r\n6\r\nworld!\r\n0\r\n\r\n"


def test_send_can_run_in_a_task_of_its_own(serve: Any) -> None:
    with serve(app) as server, RawClient.connect(server.port) as client:
        response = client.request(get_request("/tasks"))
    assert response.status == 200 and response.body == b"tasks"
