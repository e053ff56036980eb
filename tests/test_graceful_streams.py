"""A graceful shutdown with endless streams open ends them, and exits promptly.

Clients hold endless responses — Starlette's `StreamingResponse` (which,
under ASGI 2.4, only stops when `send` raises), sse-starlette's
`EventSourceResponse` (which also listens for `http.disconnect`), a plain
ASGI app — and a WebSocket, over HTTP/1.1 (each parser) and HTTP/2.  On
SIGTERM the server must exit within 2 s with the default options, every
stream's generator must have stopped, each HTTP/1.1 client must see the
chunked body end cleanly, and a request that was merely slow (not
streaming) must still be answered in full.  With `--timeout-graceful-streams
none` the streams are left alone, as Uvicorn does.
"""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest
import websockets.sync.client
from support import SquallProcess, recv_until, wait_until

APP = '''
import asyncio
import itertools

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute


async def ticks(name):
    print(f"{name} started", flush=True)
    try:
        for n in itertools.count():
            yield f"data: {n}\\n\\n"
            await asyncio.sleep(0.05)
    finally:
        print(f"{name} stopped", flush=True)


async def starlette_stream(request):
    return StreamingResponse(ticks("starlette"), media_type="text/event-stream")


async def sse_starlette(request):
    async def events():
        async for tick in ticks("sse-starlette"):
            yield {"data": tick.strip()}
    return EventSourceResponse(events())


async def slow(request):
    print("slow started", flush=True)
    await asyncio.sleep(1.5)
    return PlainTextResponse("slow but whole")


async def echo(websocket):
    await websocket.accept()
    print("websocket open", flush=True)
    async for message in websocket.iter_text():
        await websocket.send_text(message)


routes = [
    Route("/starlette", starlette_stream),
    Route("/sse-starlette", sse_starlette),
    Route("/slow", slow),
    WebSocketRoute("/ws", echo),
]
starlette = Starlette(routes=routes)


async def plain(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "/plain":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        print("plain started", flush=True)
        try:
            for n in itertools.count():
                await send({"type": "http.response.body", "body": b"data: %d\\n\\n" % n, "more_body": True})
                await asyncio.sleep(0.05)
        finally:
            print("plain stopped", flush=True)
    else:
        await starlette(scope, receive, send)
'''

STREAMS = ["starlette", "sse-starlette", "plain"]


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "streams.py").write_text(APP)
    return tmp_path


def open_h1_stream(port: int, name: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(f"GET /{name} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    assert b"data: 1" in recv_until(sock, b"data: 1")
    return sock


def read_to_end(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_sigterm_ends_endless_streams_within_two_seconds(app_dir: Path, http: str) -> None:
    with SquallProcess("streams:plain", "--port", "0", "--http", http, "--lifespan", "off", cwd=app_dir) as server:
        port = server.wait_started()
        assert port is not None
        streams = {name: open_h1_stream(port, name) for name in STREAMS}
        with websockets.sync.client.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
            slow = socket.create_connection(("127.0.0.1", port), timeout=5)
            slow.sendall(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
            server.wait_for_log("slow started")

            started = time.monotonic()
            server.signal(signal.SIGTERM)
            assert server.wait(timeout=5) == 0
            took = time.monotonic() - started

            for name, sock in streams.items():
                rest = read_to_end(sock)
                # The chunked body ended properly: the last chunk, not a cut.
                assert rest.endswith(b"0\r\n\r\n"), (name, rest[-40:])
                sock.close()
            answer = read_to_end(slow)
            assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"slow but whole"), answer[-60:]
            slow.close()
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert took < 2.0, f"the server took {took:.2f}s to exit"
    for name in STREAMS:
        assert f"{name} stopped" in server.output, server.output
    assert "ERROR" not in server.output and "Traceback" not in server.output, server.output


def test_none_leaves_streams_alone(app_dir: Path) -> None:
    """Uvicorn's behaviour: the streams go on until --timeout-graceful-shutdown."""
    args = ["streams:plain", "--port", "0", "--lifespan", "off", "--timeout-graceful-streams", "none", "--timeout-graceful-shutdown", "3"]
    with SquallProcess(*args, cwd=app_dir) as server:
        port = server.wait_started()
        assert port is not None
        sock = open_h1_stream(port, "plain")
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        # Events keep coming for well past the default 1 s grace...
        data = b""
        sock.settimeout(5)
        while time.monotonic() - started < 2.0:
            data += sock.recv(65536)
        assert data.count(b"data: ") >= 10
        # ...until the graceful shutdown timeout cancels the app.
        assert server.wait(timeout=10) == 0
        sock.close()
    wait_until(lambda: "plain stopped" in server.output, 5, "the stream to stop")
    assert time.monotonic() - started >= 2.9
