"""ASGI apps for the HTTP/2 tests, in a module of their own so that a `squall`
subprocess can serve them too (`--app-dir tests/protocols/http2`, `h2_apps:app`).

`app` routes on the path (after the root path):

    /scope[/...]  the scope as JSON (headers as [name, value] latin-1 pairs)
    /echo         reads the whole request body; answers with it
    /size         reads the whole request body; answers with its length
    /sleep?S      answers "slept" after S seconds
    /big?N        reads the request body, then answers N bytes in 16 KiB messages
    /hold         never answers: waits for http.disconnect (counted in `running`)
    /stubborn?S   ignores a disconnect: runs S seconds whatever happens, then answers
    /stats        the app's counters as JSON: calls (of other paths), running now and
                  most running at once (both not counting /stats), and this
                  process's VmRSS in KiB
    /stats/reset  restarts the peak from what runs now, then as /stats
    anything else "ok"
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

DEADLINE = 5.0

# The servers the HTTP/2 tests run, as (loop, HTTP/2 wire layer) pairs:
# Squall's own wire (the default) under each loop, and the h2 library's (the
# reference) once: a wire layer holds no I/O, so the loop changes nothing in it.
H2_VARIANTS = [("asyncio", "squall"), ("uvloop", "squall"), ("asyncio", "h2")]


class Counters:
    def __init__(self) -> None:
        self.calls = 0
        self.running = 0
        self.peak = 0

    def as_dict(self) -> dict[str, int]:
        return {"calls": self.calls, "running": self.running, "peak": self.peak, "rss_kib": rss_kib()}


counters = Counters()


async def wait_event(event: threading.Event, timeout: float = DEADLINE) -> None:
    """For an in-process app: wait, without blocking the loop, until the test thread sets `event`."""
    deadline = time.monotonic() + timeout
    while not event.is_set():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never set the event")
        await asyncio.sleep(0.002)


def rss_kib() -> int:
    """This process's resident memory, from /proc (0 where there is none)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def describe(scope: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": scope["type"],
        "http_version": scope["http_version"],
        "method": scope["method"],
        "scheme": scope["scheme"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "root_path": scope["root_path"],
        "client": list(scope["client"]) if scope.get("client") else None,
        "server": list(scope["server"]) if scope.get("server") else None,
        "headers": [[name.decode("latin-1"), value.decode("latin-1")] for name, value in scope["headers"]],
        "extensions": sorted(scope.get("extensions", {})),
    }


async def read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError("the client went away")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(send: Any, body: bytes, status: int = 200, content_type: bytes = b"text/plain") -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"].startswith("/stats"):
        if scope["path"] == "/stats/reset":
            counters.peak = counters.running
        await respond(send, json.dumps(counters.as_dict()).encode(), content_type=b"application/json")
        return
    counters.calls += 1
    counters.running += 1
    counters.peak = max(counters.peak, counters.running)
    try:
        await _route(scope, receive, send)
    except ConnectionAbortedError:
        pass  # the client went away while the body was read: nothing to answer
    finally:
        counters.running -= 1


async def _route(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope["path"][len(scope["root_path"]) :]
    query = scope["query_string"].decode()
    if path == "/scope" or path.startswith("/scope/"):
        await respond(send, json.dumps(describe(scope)).encode(), content_type=b"application/json")
    elif path == "/echo":
        await respond(send, await read_body(receive))
    elif path == "/size":
        await respond(send, b"%d" % len(await read_body(receive)))
    elif path == "/sleep":
        await asyncio.sleep(float(query or 0))
        await respond(send, b"slept")
    elif path == "/big":
        await read_body(receive)  # answered once the request is complete
        size = int(query)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % size)]})
        chunk = b"x" * 16384
        while size > 0:
            part = chunk[: min(size, len(chunk))]
            size -= len(part)
            await send({"type": "http.response.body", "body": part, "more_body": size > 0})
    elif path == "/hold":
        while (await receive())["type"] != "http.disconnect":
            pass
    elif path == "/stubborn":
        await asyncio.sleep(float(query or 0))
        await respond(send, b"stubborn")
    else:
        await respond(send, b"ok")
