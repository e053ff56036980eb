"""WebSocket sessions over HTTP/2 (RFC 8441) in the access log: CONNECT, and
200 for an accepted session (a 101 does not exist in HTTP/2) or the denial's
status.  (HTTP/2 requests' atoms are checked in tests/test_access_log_format.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from h2_client import H2Client
from support import wait_until
from test_h2_websocket import WebSocketStream
from wsproto.events import CloseConnection

from squall.config import LOGGING_CONFIG


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "websocket"
    await receive()
    if scope["path"] == "/deny":
        await send({"type": "websocket.close"})
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 1000})


@pytest.mark.parametrize("ws", ["websockets", "wsproto"])
def test_websocket_sessions_over_http2(h2_serve: Any, ws: str, capsys: pytest.CaptureFixture[str]) -> None:
    out: list[str] = []

    def lines(count: int) -> list[str]:
        def enough() -> list[str]:
            out.append(capsys.readouterr().out)
            found = "".join(out).splitlines()
            return found if len(found) >= count else []

        return wait_until(enough, 5.0, f"{count} access lines")

    fmt = "%(m)s %(U)s %(H)s %(s)s %(b)s"
    with h2_serve(app, ws=ws, log_config=LOGGING_CONFIG, access_log_format=fmt) as server, H2Client.connect(server.port) as client:
        accepted = WebSocketStream(client, "/ws")
        assert accepted.response().status == 200
        close = accepted.events(1)[0]
        assert isinstance(close, CloseConnection)
        accepted.send(close.response())  # the session ends with the close handshake
        assert lines(1) == ["CONNECT /ws HTTP/2.0 200 -"]
        denied = WebSocketStream(client, "/deny")
        assert denied.response().status == 403
        assert lines(2)[1] == "CONNECT /deny HTTP/2.0 403 -"
