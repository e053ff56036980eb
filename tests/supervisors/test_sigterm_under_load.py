"""SIGTERM in the middle of a load: no request the server took is lost.

Client threads send requests as fast as answers come — some on keep-alive
connections, some on a new connection each — while the app notes every
request it receives.  Then the server gets SIGTERM.  Every request the app
received must get its complete response; no connection the kernel accepted
may be dropped without an answer (once stopping, new connections are
refused instead); and the process exits 0 within the graceful timeout.

Refused connections are expected: the listener is closed first.  A request
sent on a kept-alive connection at the moment the server closes it idle is
the race every keep-alive client handles by retrying (RFC 9112 9.3.1); such
requests never reached the app, and are counted, not failed.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support import SquallProcess, wait_until

APP = '''
import asyncio
import os

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    os.write(1, b"accepted %s\\n" % scope["path"].encode())  # one write: workers share the pipe
    await asyncio.sleep(0.01)
    body = scope["path"].encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})
'''
GRACEFUL_SECONDS = 5
THREADS = 12


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    answered: set[str] = field(default_factory=set)
    refused: int = 0
    dropped_fresh: list[str] = field(default_factory=list)  # on a connection the kernel had just accepted
    dropped_reused: list[str] = field(default_factory=list)  # on a kept-alive connection closed as idle
    broken: list[str] = field(default_factory=list)  # a partial or wrong response


def read_response(sock: socket.socket) -> tuple[bytes, bool]:
    """(body, closes) of one response; b"" and True if the connection ended before any byte."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            if data:
                raise EOFError(f"a partial response head: {data[:100]!r}")
            return b"", True
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lower = head.lower()
    length = int(lower.split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("a partial response body")
        body += chunk
    return body, b"connection: close" in lower


def client(port: int, name: str, keep_alive: bool, stop: threading.Event, tally: Tally) -> None:
    sock: socket.socket | None = None
    fresh = True
    for n in range(100_000):
        if stop.is_set():
            break
        if sock is None:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            except ConnectionRefusedError:
                with tally.lock:
                    tally.refused += 1
                return  # the server stopped listening
            fresh = True
        path = f"/{name}-{n}"
        closing = b"" if keep_alive else b"Connection: close\r\n"
        try:
            sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path.encode(), closing))
            body, closes = read_response(sock)
        except (ConnectionResetError, BrokenPipeError):
            body, closes = b"", True
        except (EOFError, OSError) as exc:
            with tally.lock:
                tally.broken.append(f"{path}: {exc}")
            sock.close()
            sock = None
            continue
        with tally.lock:
            if body == path.encode():
                tally.answered.add(path)
            elif body:
                tally.broken.append(f"{path}: answered {body!r}")
            elif fresh:
                tally.dropped_fresh.append(path)
            else:
                tally.dropped_reused.append(path)
        fresh = False
        if closes:
            sock.close()
            sock = None
    if sock is not None:
        sock.close()


@pytest.mark.parametrize("workers", [1, 3])
def test_sigterm_under_load_loses_no_request(tmp_path: Path, workers: int) -> None:
    (tmp_path / "noting.py").write_text(APP)
    args = ["noting:app", "--port", "0", "--lifespan", "off", "--no-access-log", "--ws", "none",
            "--timeout-graceful-shutdown", str(GRACEFUL_SECONDS)]
    if workers > 1:
        args += ["--workers", str(workers)]
    tally = Tally()
    stop = threading.Event()
    with SquallProcess(*args, cwd=tmp_path) as squall:
        port = squall.wait_started()
        assert port is not None
        if workers > 1:
            squall.wait_for_matches(r"Worker \d+ \[\d+\] is serving", workers)
        threads = [
            threading.Thread(target=client, args=(port, f"c{n}", n % 2 == 0, stop, tally), daemon=True)
            for n in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(tally.answered) >= 300, 20, "the load to get going", interval=0.01)
        signalled = time.monotonic()
        squall.signal(signal.SIGTERM)
        assert squall.wait(GRACEFUL_SECONDS + 10) == 0
        exited = time.monotonic() - signalled
        stop.set()
        for thread in threads:
            thread.join(15)
        accepted = set(line.split()[1] for line in squall.output.splitlines() if line.startswith("accepted "))
    assert exited < GRACEFUL_SECONDS, exited
    assert not tally.broken, tally.broken[:5]
    lost = accepted - tally.answered
    assert not lost, f"{len(lost)} requests the app received got no complete response: {sorted(lost)[:5]}"
    assert not tally.dropped_fresh, (
        f"{len(tally.dropped_fresh)} new connections were accepted and then dropped unanswered: {tally.dropped_fresh[:5]}"
    )
    assert tally.refused, "no client saw the listener closed: the test stopped too early to tell"
