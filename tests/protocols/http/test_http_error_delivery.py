"""An error response reaches the client even when unread input follows the malformed request.

Closing a socket whose receive queue holds unread bytes makes the kernel
answer with a reset, and a reset can destroy the response still in flight
or in the client's buffers.  After an error response Squall half-closes and
reads on (dropping what comes, up to 1 MiB and 2 s) until the client
closes.  Here many clients each send a malformed request followed by junk
they never expect to be read, and only then read: every one must get the
whole error response and a clean end of stream, never a reset.
"""

from __future__ import annotations

import random
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from h1_support import RawClient, get_request, text_app

MALFORMED = [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
    (get_request("/first") + b"NOT HTTP\r\n\r\n", 400),  # after a request that is answered first
]
CLIENTS = 120
SEED = 7


def read_to_eof_strictly(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything until the end of stream; a reset fails the test (unlike RawClient, which takes it as the end)."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        data = sock.recv(65536)  # ConnectionResetError propagates
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def one_client(port: int, request: bytes, status: int, junk: bytes) -> str | None:
    """None if the client read the whole error response and a clean EOF, else what went wrong."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(request + junk)
            received = read_to_eof_strictly(sock)
        except ConnectionResetError:
            return "reset"
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"
    # Parse what arrived with the usual client, from a buffer.
    client = RawClient(socket.socket())
    client.buffer, client.eof = received, True
    try:
        if request.startswith(b"GET /first"):
            first = client.read_response()
            assert first.status == 200, first.status
        response = client.read_response()
    except Exception as exc:
        return f"incomplete response ({exc}): {received[:120]!r}"
    finally:
        client.close()
    if response.status != status or not response.closes or client.buffer:
        return f"unexpected response {response.status}, {response.headers}, extra {client.buffer[:60]!r}"
    return None


def test_error_responses_survive_unread_input(serve: Any) -> None:
    rng = random.Random(SEED)
    cases = []
    for _ in range(CLIENTS):
        request, status = rng.choice(MALFORMED)
        junk = rng.randbytes(rng.choice([100, 5_000, 60_000, 300_000, 700_000]))
        cases.append((request, status, junk))
    with serve(text_app(b"first")) as server:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(lambda case: one_client(server.port, *case), cases))
        elapsed = time.monotonic() - started
    failures = [f"{case[0][:30]!r} + {len(case[2])} junk bytes: {result}" for case, result in zip(cases, results) if result]
    assert not failures, f"{len(failures)} of {CLIENTS} clients:\n" + "\n".join(failures[:10])
    # The server closed each connection as soon as its client did, not after the linger time.
    assert elapsed < 20, elapsed
