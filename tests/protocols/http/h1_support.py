"""Helpers for the HTTP/1.1 behaviour tests: a raw-socket client that parses
responses byte-exactly, polling with deadlines, and small ASGI apps.

This is a plain module rather than part of a conftest: test modules import
it by name (`from h1_support import ...`), which is unambiguous, whereas
`import conftest` is not when several directories have one.
"""

from __future__ import annotations

import asyncio
import re
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from support import wait_until  # noqa: F401  (re-exported for the HTTP tests)

T = TypeVar("T")

DEADLINE = 5.0
# What a leaked exception looks like: a traceback, a source line, `SomeError`/`SomeException`.
ERROR_TEXT_RE = re.compile(rb'Traceback|File "|\w(Error|Exception)\b|^\w+: ', re.MULTILINE)



async def wait_threading_event(event: threading.Event, timeout: float = DEADLINE) -> None:
    """For an app: wait, without blocking its loop, for the test thread to set `event`."""
    deadline = time.monotonic() + timeout
    while not event.is_set():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never released the app")
        await asyncio.sleep(0.002)


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes
    raw_body: bytes  # the body as framed on the wire (chunk sizes included)
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        assert len(values) <= 1, f"header {name!r} appears {len(values)} times: {values}"
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]

    @property
    def closes(self) -> bool:
        return "close" in (self.get("connection") or "").lower()


class RawClient:
    """A blocking socket with a read buffer, so that pipelined responses parse one at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.eof = False

    @classmethod
    def connect(cls, port: int, timeout: float = DEADLINE) -> RawClient:
        return cls(socket.create_connection(("127.0.0.1", port), timeout=timeout))

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        """Read once more into the buffer; False at end of stream."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from the server in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(262144)
        except ConnectionResetError as exc:
            # A reset is no end of stream: what the server sent may be lost with it.
            raise AssertionError(f"the server reset the connection; read so far: {self.buffer[:300]!r}") from exc
        except socket.timeout:
            raise TimeoutError("no data from the server in time") from None
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def read_until(self, marker: bytes, count: int = 1, timeout: float = DEADLINE) -> bytes:
        """Read until `marker` occurs `count` times in the buffer (left unconsumed); return the buffer."""
        deadline = time.monotonic() + timeout
        while self.buffer.count(marker) < count:
            if not self._fill(deadline):
                raise EOFError(f"connection closed before {count} x {marker!r}: {self.buffer[-300:]!r}")
        return self.buffer

    def _take(self, size: int, deadline: float) -> bytes:
        while len(self.buffer) < size:
            if not self._fill(deadline):
                raise EOFError(f"connection closed after {len(self.buffer)} of {size} bytes")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _take_line(self, deadline: float) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._fill(deadline):
                raise EOFError(f"connection closed inside a line: {self.buffer[:200]!r}")
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def read_head(self, timeout: float = DEADLINE) -> tuple[int, str, list[tuple[str, str]], bytes]:
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill(deadline):
                raise EOFError(f"connection closed before a complete response head: {self.buffer[:300]!r}")
        raw_head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = raw_head.decode("latin-1").split("\r\n")
        version, status, *reason = status_line.split(" ", 2)
        assert version == "HTTP/1.1", status_line
        headers = []
        for line in lines:
            name, sep, value = line.partition(":")
            assert sep and name == name.strip(), f"malformed response header line {line!r}"
            headers.append((name.lower(), value.strip()))
        return int(status), (reason[0] if reason else ""), headers, raw_head + b"\r\n\r\n"

    def read_response(self, method: str = "GET", timeout: float = DEADLINE) -> Response:
        """One complete response; informational (1xx) responses are returned too."""
        deadline = time.monotonic() + timeout
        status, reason, headers, raw_head = self.read_head(timeout)
        response = Response(status, reason, headers, b"", raw_head, b"")
        if status < 200 or status in (204, 304) or method == "HEAD":
            return response
        te = response.get("transfer-encoding")
        length = response.get("content-length")
        if te is not None:
            assert te.lower() == "chunked", te
            assert length is None, "both Content-Length and Transfer-Encoding in the response"
            raw, body = [], []
            while True:
                line = self._take_line(deadline)
                raw.append(line + b"\r\n")
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    # Trailer fields, if any, up to the empty line.
                    while trailer := self._take_line(deadline):
                        raw.append(trailer + b"\r\n")
                        name, _, value = trailer.decode("latin-1").partition(":")
                        response.trailers.append((name.lower(), value.strip()))
                    raw.append(b"\r\n")
                    break
                chunk = self._take(size + 2, deadline)
                assert chunk.endswith(b"\r\n"), chunk[-10:]
                raw.append(chunk)
                body.append(chunk[:-2])
            response.raw_body = b"".join(raw)
            response.body = b"".join(body)
        elif length is not None:
            response.body = response.raw_body = self._take(int(length), deadline)
        else:  # delimited by the end of the connection
            while self._fill(deadline):
                pass
            response.body = response.raw_body = self.buffer
            self.buffer = b""
        return response

    def read_until_closed(self, timeout: float = DEADLINE) -> bytes:
        """Whatever arrives until the server closes the connection (fails if it does not)."""
        deadline = time.monotonic() + timeout
        while self._fill(deadline):
            pass
        data, self.buffer = self.buffer, b""
        return data

    def assert_closed(self, timeout: float = DEADLINE) -> None:
        rest = self.read_until_closed(timeout)
        assert rest == b"", f"unexpected bytes before the connection closed: {rest[:300]!r}"

    def request(self, data: bytes, method: str = "GET", timeout: float = DEADLINE) -> Response:
        self.send(data)
        return self.read_response(method, timeout)


def get_request(path: str = "/", headers: str = "", version: str = "1.1") -> bytes:
    return f"GET {path} HTTP/{version}\r\nHost: test\r\n{headers}\r\n".encode("latin-1")


def post_request(path: str, body: bytes, headers: str = "") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode() + body


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"


def socket_closed_by_peer(sock: socket.socket) -> bool:
    """Non-blocking check: has the peer closed (EOF or reset)?  Data read is discarded."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(65536, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True


def assert_no_error_text(body: bytes) -> None:
    match = ERROR_TEXT_RE.search(body)
    assert match is None, f"the error response leaks exception text {match.group()!r}: {body[:300]!r}"


# -- apps ---------------------------------------------------------------------------


async def read_body(receive: Callable[[], Any]) -> bytes:
    body = b""
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


async def respond(send: Callable[[Any], Any], status: int = 200, body: bytes = b"", headers: list[Any] | None = None,
                  content_length: bool = True) -> None:
    headers = list(headers or [])
    if content_length:
        headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def text_app(body: bytes = b"ok", status: int = 200) -> Callable[..., Any]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        await respond(send, status, body)

    return app


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers `<method> <path> <body>`, with a Content-Length."""
    assert scope["type"] == "http"
    body = await read_body(receive)
    await respond(send, 200, f"{scope['method']} {scope['path']} ".encode() + body)


@dataclass
class Recorder:
    """What an app running in the server thread saw, for the test thread to inspect."""

    items: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, item: Any) -> None:
        with self.lock:
            self.items.append(item)

    def snapshot(self) -> list[Any]:
        with self.lock:
            return list(self.items)

    def __len__(self) -> int:
        with self.lock:
            return len(self.items)
