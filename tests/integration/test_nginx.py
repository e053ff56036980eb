"""A real nginx in front of Squall, over TCP and over a Unix socket.

nginx comes from Debian (`make test-tools` installs it); without it these
tests skip.  It runs in the foreground on an ephemeral 127.0.0.1 port with
the config in nginx.conf.template, and is stopped after each test.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import string
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import recv_all

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
START_TIMEOUT = 10.0
FORGED = {"X-Forwarded-For": "203.0.113.50", "X-Forwarded-Proto": "https"}


def find_nginx() -> str | None:
    # Debian puts it in /usr/sbin, which is not on every user's PATH.
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    binary = find_nginx()
    if binary is None:
        pytest.skip("nginx is not installed (make test-tools installs Debian's)")
    return binary


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Short, for the Unix socket path (about 100 bytes at most).
    directory = Path(tempfile.mkdtemp(prefix="squall-nginx-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def running_nginx(binary: str, workdir: Path, tcp_port: int, unix_socket: str) -> Iterator[int]:
    """nginx proxying to Squall; yields the port it listens on."""
    port = free_port()
    prefix = workdir / "nginx"
    prefix.mkdir()
    config = string.Template(TEMPLATE.read_text()).safe_substitute(
        prefix=prefix, listen_port=port, tcp_port=tcp_port, unix_socket=unix_socket
    )
    assert "${" not in config, "a placeholder in nginx.conf.template was not filled in"
    (prefix / "nginx.conf").write_text(config)
    error_log = prefix / "error.log"
    process = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(error_log)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"nginx exited with {process.returncode}: {stderr}{read_log(error_log)}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    pytest.fail(f"nginx did not listen on port {port} in time: {read_log(error_log)}")
                time.sleep(0.02)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


def read_log(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def scope_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with what it was told of the client; echoes WebSocket messages."""
    described = {"client": scope["client"], "scheme": scope["scheme"], "path": scope["path"]}
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(described)})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": "echo: " + message["text"]})
    body = json.dumps(described).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def get(port: int, path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_client_and_scheme_come_from_nginx(serve: Any, nginx_binary: str, workdir: Path) -> None:
    unix_socket = str(workdir / "squall.sock")
    with (
        serve(scope_app) as tcp_server,  # trusts 127.0.0.1, where nginx connects from
        serve(scope_app, uds=unix_socket, forwarded_allow_ips=[unix_socket]),
        running_nginx(nginx_binary, workdir, tcp_server.port, unix_socket) as port,
    ):
        # X-Forwarded-For holds an address only: port 0 shows the header was used.
        assert get(port, "/tcp/a") == {"client": ["127.0.0.1", 0], "scheme": "http", "path": "/tcp/a"}
        assert get(port, "/tcp/https/b")["scheme"] == "https"
        # Over the Unix socket, without the headers there would be no client at all.
        assert get(port, "/unix/c") == {"client": ["127.0.0.1", 0], "scheme": "http", "path": "/unix/c"}
        assert get(port, "/unix/https/d")["scheme"] == "https"

        # RFC 7239 carries the client's port: it must be ours, not nginx's.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /tcp/rfc7239/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            scope = json.loads(read_body(sock))
            assert scope["client"] == ["127.0.0.1", sock.getsockname()[1]]
            assert scope["scheme"] == "https"


def test_forged_headers_are_not_believed(serve: Any, nginx_binary: str, workdir: Path) -> None:
    """Squall trusting only its Unix socket, as when nginx is its only way in."""
    unix_socket = str(workdir / "squall.sock")
    with (
        serve(scope_app, forwarded_allow_ips=[unix_socket]) as tcp_server,
        serve(scope_app, uds=unix_socket, forwarded_allow_ips=[unix_socket]),
        running_nginx(nginx_binary, workdir, tcp_server.port, unix_socket) as port,
    ):
        # Straight to Squall over TCP: the peer is 127.0.0.1, which is not trusted.
        with socket.create_connection(("127.0.0.1", tcp_server.port), timeout=10) as sock:
            sock.sendall(
                b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 203.0.113.50\r\n"
                b"X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"
            )
            direct = json.loads(read_body(sock))
            assert direct["client"] == ["127.0.0.1", sock.getsockname()[1]]
            assert direct["scheme"] == "http"
        # Through nginx the forged address is still not believed: nginx appends the
        # address it saw, 127.0.0.1, and that hop is not a trusted proxy.
        through = get(port, "/unix/", headers={"X-Forwarded-For": "203.0.113.50"})
        assert through["client"] == ["127.0.0.1", 0]


def test_websocket_through_nginx(serve: Any, nginx_binary: str, workdir: Path) -> None:
    from websockets.sync.client import connect

    unix_socket = str(workdir / "squall.sock")
    with (
        serve(scope_app, ws="websockets") as tcp_server,
        serve(scope_app, ws="websockets", uds=unix_socket, forwarded_allow_ips=[unix_socket]),
        running_nginx(nginx_binary, workdir, tcp_server.port, unix_socket) as port,
    ):
        for path, scheme in [("/tcp/ws", "ws"), ("/unix/https/ws", "wss")]:
            with connect(f"ws://127.0.0.1:{port}{path}", open_timeout=10) as websocket:
                scope = json.loads(websocket.recv(timeout=10))
                assert scope == {"client": ["127.0.0.1", 0], "scheme": scheme, "path": path}
                for text in ["hello", "x" * 100_000]:
                    websocket.send(text)
                    assert websocket.recv(timeout=10) == "echo: " + text


class UploadCounter:
    """Counts request body bytes as they arrive, keeping none of them."""

    def __init__(self) -> None:
        self.first_bytes = threading.Event()
        self.total = 0
        self.chunks = 0
        self.largest = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        more_body = True
        while more_body:
            message = await receive()
            size = len(message.get("body", b""))
            if size:
                self.chunks += 1
                self.total += size
                self.largest = max(self.largest, size)
                self.first_bytes.set()
            more_body = message.get("more_body", False)
        body = json.dumps({"received": self.total}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})


def test_large_upload_streams_through(serve: Any, nginx_binary: str, workdir: Path) -> None:
    block = b"\x5a" * (1024 * 1024)
    blocks = 50
    app = UploadCounter()
    streamed: list[bool] = []

    def body() -> Iterator[bytes]:
        for i in range(blocks):
            if i == blocks // 2:
                # Half sent: if nginx or Squall held the body back until it was
                # complete, the app could not have seen any of it yet.
                streamed.append(app.first_bytes.wait(timeout=10))
            yield block

    unix_socket = str(workdir / "squall.sock")
    with (
        serve(app, uds=unix_socket, forwarded_allow_ips=[unix_socket]),
        running_nginx(nginx_binary, workdir, free_port(), unix_socket) as port,
    ):
        response = httpx.post(
            f"http://127.0.0.1:{port}/unix/upload",
            content=body(),
            headers={"content-length": str(blocks * len(block))},
            timeout=30,
        )
    assert response.status_code == 200
    assert response.json() == {"received": blocks * len(block)}
    assert streamed == [True]
    assert app.chunks > blocks and app.largest <= len(block)


def read_body(sock: socket.socket) -> bytes:
    """The body of the one response on a `Connection: close` connection."""
    data = recv_all(sock, timeout=10)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), data
    return body
