"""The WebSocket implementation and its library are imported with the first WebSocket connection.

A process that only serves HTTP never pays for them (about 3 MiB of memory
with `websockets`); the first upgrade imports them and is served as usual.
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from support import SquallProcess

APP = '''
import sys

async def app(scope, receive, send):
    if scope["type"] == "http":
        loaded = " ".join(name for name in ("websockets", "wsproto") if name in sys.modules) or "-"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": loaded.encode()})
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message["text"]})
'''


@pytest.mark.parametrize("ws, library", [("websockets", "websockets"), ("websockets-sansio", "websockets"), ("wsproto", "wsproto")])
def test_library_imported_with_the_first_websocket(tmp_path: Path, ws: str, library: str) -> None:
    (tmp_path / "modules.py").write_text(APP)
    with SquallProcess("modules:app", "--port", "0", "--lifespan", "off", "--ws", ws, cwd=tmp_path) as squall:
        port = squall.wait_started()
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "-"
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=10) as websocket:
            websocket.send("echo")
            assert websocket.recv(timeout=10) == "echo"
        assert library in httpx.get(f"http://127.0.0.1:{port}/").text.split()
        squall.signal(signal.SIGTERM)
        assert squall.wait(10) == 0
