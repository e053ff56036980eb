"""Draining: a server being replaced closes each connection after its next response."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
from supervisors.supervised import wait_until

from squall import Config
from squall.supervisors.drain import DrainableServer


def test_draining_answers_with_connection_close_then_stops_accepting() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not loops:
            loops.append(asyncio.get_running_loop())
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    config = Config(app, port=0, lifespan="off", ws="none", log_config=None, timeout_keep_alive=30)
    server = DrainableServer(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="the server to start")
    url = f"http://127.0.0.1:{server.port}/"

    with httpx.Client(timeout=5.0) as client:
        before = client.get(url)
        assert before.headers.get("connection") != "close"

        # An idle keep-alive connection stays open through the drain...
        drained = asyncio.run_coroutine_threadsafe(server.drain(), loops[0])
        wait_until(lambda: not server.servers[0].is_serving(), what="the drain to begin")
        # ...and its next request is answered, with the connection closed after it.
        after = client.get(url)
        assert after.status_code == 200 and after.headers["connection"] == "close"
        drained.result(timeout=5.0)

    server.should_exit = True
    thread.join(5.0)
    assert not thread.is_alive()
