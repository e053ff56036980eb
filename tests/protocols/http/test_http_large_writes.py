"""Big response bodies: whole, in order, and written without extra copies where the loop would make them.

Under asyncio's own loop before Python 3.12, the plain TCP transport copies
a big write (joined, then the unsent rest into its buffer, then moved down
after every send); Squall writes what the socket takes directly, with
`os.writev`, while the transport holds nothing, and leaves only the rest to
the transport.  A client that reads slowly makes the socket take part of a
body at a time, so both halves of that path run here.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Any

import pytest

from h1_support import RawClient, get_request

PATTERN = bytes(range(256)) * 4096  # 1 MiB
BIG = PATTERN * 4
CHUNK = PATTERN * 3


async def big_bodies(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["path"] == "/length":
        headers = [(b"content-length", b"%d" % len(BIG))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": BIG})
    else:  # two big chunks, chunked
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": CHUNK})


def slow_reader(port: int) -> RawClient:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # the server's socket takes a part at a time
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    return RawClient(sock)


def test_big_bodies_arrive_whole_and_in_order(
    loop_impl: str, serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct: list[int] = []
    writev = os.writev

    def counting_writev(fd: int, buffers: Any) -> int:
        sent = writev(fd, buffers)
        direct.append(sent)
        return sent

    monkeypatch.setattr(os, "writev", counting_writev)
    with serve(big_bodies) as server:
        with slow_reader(server.port) as client:
            # Pipelined: the second response is written while the first may still be held.
            client.send(get_request("/length") + get_request("/chunked") + get_request("/length"))
            first = client.read_response(timeout=30)
            second = client.read_response(timeout=30)
            third = client.read_response(timeout=30)
    assert first.status == second.status == third.status == 200
    assert first.body == BIG and third.body == BIG
    assert second.body == CHUNK + CHUNK
    expected_direct = loop_impl == "asyncio" and sys.version_info < (3, 12)
    assert bool(direct) == expected_direct, direct
    if expected_direct:
        # The socket took only part of a body at once: the transport wrote the rest.
        assert min(direct) < len(BIG), direct


def test_a_client_gone_in_the_middle_of_a_big_body(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with serve(big_bodies) as server:
        for _ in range(5):
            with slow_reader(server.port) as client:
                client.send(get_request("/length"))
                client.read_until(b"\r\n\r\n")
                client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        with RawClient.connect(server.port) as client:
            assert client.request(get_request("/length"), timeout=30).body == BIG
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert not errors, errors
