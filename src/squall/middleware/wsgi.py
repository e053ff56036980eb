"""Run a WSGI app behind the ASGI server, in a thread pool.

The WSGI app runs in a worker thread.  `wsgi.input` reads the request body
from `receive` as the app asks for it, and each item of the response
iterable is sent as it is produced, so neither side is buffered whole:
the thread waits on the event loop for every chunk, which also gives
back-pressure in both directions.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

WSGI_THREADS = 10


class _RequestBody(io.RawIOBase):
    """`wsgi.input`: reads `http.request` messages on demand, from the loop."""

    def __init__(self, receive: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._receive = receive
        self._loop = loop
        self._buffer = bytearray()
        self._more = True

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        if not self._more:
            return False
        message = asyncio.run_coroutine_threadsafe(self._receive(), self._loop).result()
        if message["type"] == "http.disconnect":
            self._more = False
            return False
        self._buffer += message.get("body", b"")
        self._more = message.get("more_body", False)
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._buffer and self._fill():
            pass
        size = min(len(buffer), len(self._buffer))
        buffer[:size] = self._buffer[:size]
        del self._buffer[:size]
        return size

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            while self._fill():
                pass
            data = bytes(self._buffer)
            self._buffer.clear()
            return data
        return super().read(size) or b""

    def readline(self, size: int = -1) -> bytes:  # type: ignore[override]
        while b"\n" not in self._buffer and (size < 0 or len(self._buffer) < size) and self._fill():
            pass
        end = self._buffer.find(b"\n") + 1 or len(self._buffer)
        if size >= 0:
            end = min(end, size)
        line = bytes(self._buffer[:end])
        del self._buffer[:end]
        return line


def build_environ(scope: dict[str, Any], body: io.IOBase) -> dict[str, Any]:
    server = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode("utf-8").decode("latin-1"),
        "PATH_INFO": scope["path"][len(scope.get("root_path", "")) :].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("ascii"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] or 0),
        "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BufferedReader(body),  # type: ignore[arg-type]
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])
    for name, value in scope["headers"]:
        key = name.decode("latin-1").upper().replace("-", "_")
        text = value.decode("latin-1")
        if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
            environ[key] = text
            continue
        key = "HTTP_" + key
        environ[key] = f"{environ[key]},{text}" if key in environ else text
    return environ


class WSGIMiddleware:
    def __init__(self, app: Any, workers: int = WSGI_THREADS) -> None:
        self.app = app
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="squall-wsgi")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            # WSGI has no lifespan: acknowledge it so that `--lifespan on` works.
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            raise RuntimeError(f"A WSGI app cannot serve {scope['type']!r} connections.")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.executor, self._run, scope, receive, send, loop)

    def _run(self, scope: dict[str, Any], receive: Any, send: Any, loop: asyncio.AbstractEventLoop) -> None:
        def send_from_thread(message: dict[str, Any]) -> None:
            asyncio.run_coroutine_threadsafe(send(message), loop).result()

        environ = build_environ(scope, _RequestBody(receive, loop))
        started: list[dict[str, Any]] = []
        head_sent = False

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if exc_info is not None and head_sent:
                raise exc_info[1].with_traceback(exc_info[2])
            code = int(status.split(" ", 1)[0])
            encoded = [(n.strip().lower().encode("latin-1"), v.strip().encode("latin-1")) for n, v in headers]
            started[:] = [{"type": "http.response.start", "status": code, "headers": encoded}]
            return lambda data: None

        result: Iterable[bytes] = self.app(environ, start_response)
        try:
            for chunk in result:
                if not chunk:
                    continue
                if not head_sent:
                    send_from_thread(started[0])
                    head_sent = True
                send_from_thread({"type": "http.response.body", "body": bytes(chunk), "more_body": True})
            if not head_sent:
                send_from_thread(started[0])
            send_from_thread({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
