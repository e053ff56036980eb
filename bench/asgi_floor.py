"""The ASGI floor: about the least a Python server on uvloop can do and still
serve bench/app.py through ASGI.

Per request: the head split into method, target and fields (names lowered),
the body read whole by its Content-Length, a scope dict with the keys the
ASGI spec requires, the app's coroutine run in an asyncio task (as every
ASGI server runs it: the app may wait, and it needs a current task), a
`receive` that returns the body, and a `send` that joins the response head
and writes it with the first body part (chunked framing when the app gives
no Content-Length). Nothing is checked: not the request, not the app's
messages or headers; no limits, timeouts, logging or disconnect handling.
It shows what an ASGI server's unavoidable part costs beside the raw
ceiling (bench/ceiling.py), which answers without ASGI. Not a server to use
for anything else.

    python bench/asgi_floor.py --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import asyncio
import sys
from http import HTTPStatus
from typing import Any

from app import app
from ceiling import main

ASGI = {"version": "3.0", "spec_version": "2.4"}
STATUS_LINES = {status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode()) for status in HTTPStatus}
LAST_CHUNK = b"0\r\n\r\n"
# The app's first step run at once where asyncio can (3.12+), as Squall runs it.
EAGER_TASKS = sys.version_info >= (3, 12)


class Floor(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.busy = False  # a request's app is running: the next one waits in the buffer

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.client = transport.get_extra_info("peername")[:2]
        self.server = transport.get_extra_info("sockname")[:2]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        request_line, *lines = bytes(buffer[:end]).split(b"\r\n")
        method, target, _ = request_line.split(b" ", 2)
        headers = []
        length = 0
        for line in lines:
            name, _, value = line.partition(b":")
            name = name.lower()
            value = value.strip()
            if name == b"content-length":
                length = int(value)
            headers.append((name, value))
        if len(buffer) < end + 4 + length:
            return  # the body is not all here yet
        body = bytes(buffer[end + 4 : end + 4 + length])
        del buffer[: end + 4 + length]
        path, _, query = target.partition(b"?")
        scope = {
            "type": "http",
            "asgi": ASGI,
            "http_version": "1.1",
            "method": method.decode("ascii"),
            "scheme": "http",
            "path": path.decode("ascii"),
            "raw_path": path,
            "query_string": query,
            "root_path": "",
            "headers": headers,
            "client": self.client,
            "server": self.server,
            "state": {},
        }
        self.busy = True
        if EAGER_TASKS:
            asyncio.Task(self._run(scope, body), loop=self.loop, eager_start=True)
        else:
            self.loop.create_task(self._run(scope, body))

    async def _run(self, scope: dict[str, Any], body: bytes) -> None:
        write = self.transport.write
        head = b""
        chunked = False

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal head, chunked
            if message["type"] == "http.response.start":
                fields = message.get("headers", ())
                chunked = not any(name.lower() == b"content-length" for name, _ in fields)
                lines = [STATUS_LINES[message["status"]]]
                lines.extend(name + b": " + value + b"\r\n" for name, value in fields)
                if chunked:
                    lines.append(b"transfer-encoding: chunked\r\n")
                lines.append(b"\r\n")
                head = b"".join(lines)
                return
            part = message.get("body", b"")
            more = message.get("more_body", False)
            if chunked:
                part = (b"%x\r\n%s\r\n" % (len(part), part) if part else b"") + (b"" if more else LAST_CHUNK)
            if head:
                self.transport.writelines((head, part))
                head = b""
            elif part:
                write(part)

        await app(scope, receive, send)
        self.busy = False
        if self.buffer:
            self._next()


if __name__ == "__main__":
    main(Floor, __doc__)
