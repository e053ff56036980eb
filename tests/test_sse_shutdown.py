"""Server-Sent Events clients that leave: the streams stop, and the server still shuts down promptly.

A Starlette/FastAPI `StreamingResponse` over an endless async generator,
under ASGI 2.4, relies on `send` raising an OSError once the client is
gone; with a `send` that silently dropped the data, every abandoned stream
ran for ever, and SIGTERM then waited on them for ever too.  Five clients
read a few events and leave; the generators must stop within a second
(each prints when it starts and when it stops), and SIGTERM must end the
server within three seconds: as one process, with `--workers 2`, and as
Gunicorn workers.  A client leaving is logged as no error.
"""

from __future__ import annotations

import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from gunicorn.config import Config as GunicornConfig
from support import LoggedProcess, SquallProcess, recv_until

SSE_APP = '''
import asyncio
import itertools

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route


async def events():
    print("sse generator started", flush=True)
    try:
        for n in itertools.count():
            yield f"data: {n}\\n\\n"
            await asyncio.sleep(0.02)
    finally:
        print("sse generator stopped", flush=True)


fastapi_app = FastAPI()


@fastapi_app.get("/events")
async def fastapi_events():
    return StreamingResponse(events(), media_type="text/event-stream")


async def starlette_events(request):
    return StreamingResponse(events(), media_type="text/event-stream")


starlette_app = Starlette(routes=[Route("/events", starlette_events)])
'''

CLIENTS = 5
EVENTS_READ = 3
STOP_DEADLINE = 1.0
EXIT_DEADLINE = 3.0
START_TIMEOUT = 20.0

GUNICORN_WORKERS = {"httptools": "squall.workers.SquallWorker", "h11": "squall.workers.SquallH11Worker"}


def start(mode: str, framework: str, http: str, cwd: Path) -> tuple[LoggedProcess, int]:
    """The server in a subprocess, once every worker serves; its port."""
    target = f"sse:{framework}_app"
    if mode == "gunicorn":
        extra = ["--no-control-socket"] if "control_socket_disable" in GunicornConfig().settings else []
        argv = [sys.executable, "-m", "gunicorn", *extra, "-k", GUNICORN_WORKERS[http], "--workers", "2"]
        process = LoggedProcess([*argv, "--bind", "127.0.0.1:0", target], cwd=cwd)
        process.timeout = START_TIMEOUT
        port = int(process.wait_for_log(r"Listening at: http://127\.0\.0\.1:(\d+)").group(1))
        process.wait_for_matches(r"Application startup complete", count=2)
        return process, port
    args = [target, "--port", "0", "--http", http, "--no-access-log"]
    if mode == "workers":
        args += ["--workers", "2"]
    squall = SquallProcess(*args, cwd=cwd)
    squall.timeout = START_TIMEOUT
    port = squall.wait_started()
    assert port is not None
    if mode == "workers":
        squall.wait_for_matches(r"Worker \d+ \[\d+\] is serving", count=2)
    return squall, port


def read_some_events(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5.0)
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: example.com\r\nAccept: text/event-stream\r\n\r\n")
    data = recv_until(sock, b"data: %d\n\n" % (EVENTS_READ - 1), timeout=5.0)
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    assert data.count(b"data: ") >= EVENTS_READ, f"the stream ended early: {data[-200:]!r}"
    return sock


@pytest.mark.parametrize(
    "mode, framework, http",
    [
        ("single", "fastapi", "httptools"),
        ("single", "fastapi", "h11"),
        ("single", "starlette", "httptools"),
        ("single", "starlette", "h11"),
        ("workers", "fastapi", "httptools"),
        ("workers", "starlette", "h11"),
        ("gunicorn", "fastapi", "httptools"),
        ("gunicorn", "starlette", "h11"),
    ],
)
def test_abandoned_event_streams_stop_and_sigterm_exits_promptly(
    tmp_path: Path, mode: str, framework: str, http: str
) -> None:
    (tmp_path / "sse.py").write_text(SSE_APP)
    process, port = start(mode, framework, http, tmp_path)
    with process:
        clients = [read_some_events(port) for _ in range(CLIENTS)]
        assert process.output.count("sse generator started") == CLIENTS
        for sock in clients:
            sock.close()
        # Every generator stops soon after its client left.
        process.wait_for_matches("sse generator stopped", count=CLIENTS, timeout=STOP_DEADLINE)

        process.signal(signal.SIGTERM)
        started = time.monotonic()
        code = process.wait(timeout=EXIT_DEADLINE + 5)
        elapsed = time.monotonic() - started
    assert elapsed < EXIT_DEADLINE, f"SIGTERM took {elapsed:.1f}s to stop the server:\n{process.output}"
    assert code == 0, process.output
    assert process.output.count("sse generator stopped") == CLIENTS
    # A client leaving is not an error of the app's (Starlette turns send's
    # OSError into its own ClientDisconnect): no error log, no traceback.
    assert "Exception in ASGI application" not in process.output and "Traceback" not in process.output, process.output
