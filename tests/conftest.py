"""Shared fixtures: a real Squall server, in this process, on an ephemeral port.

`serve(app, **options)` starts `squall.Server` in a background thread (signals
are only handled in the main thread, so tests stop it with `should_exit`),
waits until it listens, and yields a `RunningServer` with its port and URL.
The `http_impl` and `loop_impl` fixtures parametrize a test over every
implementation; a test that takes `serve` runs once per combination.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from squall import Config, Server

HTTP_IMPLS = ["h11", "httptools"]
LOOP_IMPLS = ["asyncio", "uvloop"]
START_TIMEOUT = 10.0


@dataclass
class RunningServer:
    server: Server
    thread: threading.Thread

    @property
    def port(self) -> int:
        port = self.server.port
        assert port is not None
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self, timeout: float = 5.0) -> socket.socket:
        """A raw TCP connection to the server."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return sock


@contextlib.contextmanager
def running_server(app: Any, **options: Any) -> Iterator[RunningServer]:
    options.setdefault("host", "127.0.0.1")
    options.setdefault("port", 0)
    options.setdefault("lifespan", "off")
    options.setdefault("ws", "none")
    options.setdefault("log_config", None)
    config = Config(app, **options)
    server = Server(config)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.run()
        except BaseException as exc:  # surfaced in the test, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True, name="squall-test-server")
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if errors:
            raise errors[0]
        if not thread.is_alive():
            raise RuntimeError("The server stopped before it started listening.")
        if time.monotonic() > deadline:
            raise TimeoutError("The server did not start listening in time.")
        time.sleep(0.01)
    try:
        yield RunningServer(server, thread)
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT + (config.timeout_graceful_shutdown or 10))
        if errors:
            raise errors[0]


@pytest.fixture(params=HTTP_IMPLS)
def http_impl(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=LOOP_IMPLS)
def loop_impl(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def serve(http_impl: str, loop_impl: str) -> Callable[..., contextlib.AbstractContextManager[RunningServer]]:
    """`with serve(app, **options) as server:` under every HTTP and loop implementation."""

    def start(app: Any, **options: Any) -> contextlib.AbstractContextManager[RunningServer]:
        options.setdefault("http", http_impl)
        options.setdefault("loop", loop_impl)
        return running_server(app, **options)

    return start


@pytest.fixture(autouse=True)
def _squall_logs_reach_caplog() -> Iterator[None]:
    """A Config made with the default log config stops propagation; undo it per test."""
    yield
    for name in ("squall", "squall.error", "squall.access", "squall.asgi"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def recv_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read until the server closes the connection."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def recv_until(sock: socket.socket, marker: bytes, timeout: float = 5.0) -> bytes:
    """Read until `marker` has been seen (or the connection closes)."""
    sock.settimeout(timeout)
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data
