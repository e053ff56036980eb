"""The benchmark application: one ASGI app, served unchanged by every server,
with one route per scenario (see scenarios.py). Each route does as little as
its scenario allows, so that what is measured is the server, not the app.

    GET  /        "Hello, world!" with a Content-Length
    GET  /json    a ~100-byte JSON document, serialised anew for each request
    POST /upload  reads the whole request body, answers with its length
    GET  /stream  16 chunks of 1 KiB, sent as 16 ASGI messages (no Content-Length)
    GET  /1mib    1 MiB in one message, with a Content-Length
    WS   /ws      echoes every message back

bench/ceiling.py answers the same routes with the same bytes, without ASGI.
"""

from __future__ import annotations

import json

HELLO = b"Hello, world!"
STREAM_CHUNK = b"x" * 1024
STREAM_CHUNKS = 16
MIB = b"x" * 2**20


def _start(content_type: bytes, length: int | None = None, status: int = 200) -> dict:
    headers = [(b"content-type", content_type)]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {"type": "http.response.start", "status": status, "headers": headers}


# Prebuilt where the scenario says "fixed", so the app spends nothing on them.
HELLO_START = _start(b"text/plain", len(HELLO))
HELLO_BODY = {"type": "http.response.body", "body": HELLO}
STREAM_START = _start(b"text/plain")
STREAM_PART = {"type": "http.response.body", "body": STREAM_CHUNK, "more_body": True}
STREAM_END = {"type": "http.response.body", "body": b""}
MIB_START = _start(b"application/octet-stream", len(MIB))
MIB_BODY = {"type": "http.response.body", "body": MIB}
NOT_FOUND = _start(b"text/plain", 9, status=404)
NOT_FOUND_BODY = {"type": "http.response.body", "body": b"Not Found"}


def json_document(method: str, path: str) -> bytes:
    """The /json body: built per request, as an API endpoint would (~100 bytes)."""
    return json.dumps(
        {
            "message": "Hello, world!",
            "method": method,
            "path": path,
            "items": [1, 2, 3, 4, 5],
            "ok": True,
            "status": "success",
        },
        separators=(",", ":"),
    ).encode()


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        await http(scope, receive, send)
    elif kind == "websocket":
        await echo(scope, receive, send)
    elif kind == "lifespan":
        await lifespan(receive, send)


async def http(scope, receive, send):
    path = scope["path"]
    if path == "/":
        await send(HELLO_START)
        await send(HELLO_BODY)
    elif path == "/json":
        body = json_document(scope["method"], path)
        await send(_start(b"application/json", len(body)))
        await send({"type": "http.response.body", "body": body})
    elif path == "/upload":
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = str(size).encode()
        await send(_start(b"text/plain", len(body)))
        await send({"type": "http.response.body", "body": body})
    elif path == "/stream":
        await send(STREAM_START)
        for _ in range(STREAM_CHUNKS):
            await send(STREAM_PART)
        await send(STREAM_END)
    elif path == "/1mib":
        await send(MIB_START)
        await send(MIB_BODY)
    else:
        await send(NOT_FOUND)
        await send(NOT_FOUND_BODY)


async def echo(scope, receive, send):
    await receive()  # websocket.connect
    if scope["path"] != "/ws":
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def lifespan(receive, send):
    # Answered properly so that no server logs a fallback warning.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return
