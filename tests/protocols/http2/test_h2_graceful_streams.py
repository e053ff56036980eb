"""Over HTTP/2, a graceful shutdown ends an endless stream cleanly and promptly.

The client reads a few events of an endless response; on SIGTERM the server
sends GOAWAY, then after --timeout-graceful-streams (1 s by default) ends the
stream with END_STREAM (it has no content-length: a clean end, which an
EventSource takes as its cue to reconnect elsewhere), and exits within 2 s.
From the GOAWAY on, frames are read raw: the h2 library stops at a GOAWAY,
although RFC 9113 6.8 lets the streams in progress go on.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from h2_client import H2Client, RawFrames
from hyperframe.frame import DataFrame, GoAwayFrame
from support import SquallProcess

APP = '''
import asyncio
import itertools


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    print("stream started", flush=True)
    try:
        for n in itertools.count():
            await send({"type": "http.response.body", "body": b"data: %d\\n\\n" % n, "more_body": True})
            await asyncio.sleep(0.05)
    finally:
        print("stream stopped", flush=True)
'''


def test_an_endless_stream_ends_cleanly_on_shutdown(tmp_path: Path) -> None:
    (tmp_path / "endless.py").write_text(APP)
    with SquallProcess("endless:app", "--port", "0", "--lifespan", "off", cwd=tmp_path) as server:
        port = server.wait_started()
        assert port is not None
        with H2Client.connect(port) as client:
            stream_id = client.request("GET", "/events")
            client.wait(lambda: b"data: 1" in client.streams[stream_id].body, what="the first events")
            started = time.monotonic()
            server.signal(signal.SIGTERM)
            frames = RawFrames(client.sock)
            goaway = frames.wait(lambda frame: isinstance(frame, GoAwayFrame))
            assert goaway.error_code == 0
            last = frames.wait(lambda frame: isinstance(frame, DataFrame) and "END_STREAM" in frame.flags)
            assert last.stream_id == stream_id
            frames.wait_closed()
        assert server.wait(timeout=5) == 0
    assert time.monotonic() - started < 2.0
    assert "stream stopped" in server.output
    assert "ERROR" not in server.output and "Traceback" not in server.output, server.output
