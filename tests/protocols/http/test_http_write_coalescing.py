"""Body chunks sent back to back leave in one write; chunks apart leave at once.

An app that sends several chunks without yielding to the event loop (a
streaming response built from a list, a template rendered in pieces) used
to cost one system call per chunk.  The connection now holds the parts of a
response until the end of the loop turn, or until COALESCE_LIMIT bytes wait,
so such a response is one write.  A chunk followed by a wait must still
reach the client at once: holding it for the end of the loop turn must never
mean holding it until the app sends more.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from h1_support import RawClient, get_request, wait_threading_event
from squall.protocols.http.connection import COALESCE_LIMIT
from squall.protocols.http.h11_impl import H11Protocol
from squall.protocols.http.httptools_impl import HttpToolsProtocol

CHUNKS = [b"chunk %02d;" % i for i in range(16)]


class CountingTransport:
    """A transport that records what is passed to it, one entry per call."""

    def __init__(self, inner: asyncio.Transport, writes: list[bytes]) -> None:
        self._inner = inner
        self.writes = writes

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._inner.write(data)

    def writelines(self, parts: Any) -> None:
        parts = [bytes(part) for part in parts]
        self.writes.append(b"".join(parts))
        self._inner.writelines(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def counting(protocol_class: type[Any], writes: list[bytes]) -> type[Any]:
    class Counting(protocol_class):  # type: ignore[misc,valid-type]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(CountingTransport(transport, writes))

    return Counting


PROTOCOLS = {"h11": H11Protocol, "httptools": HttpToolsProtocol}


async def back_to_back(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["path"] == "/large":
        chunks = [b"x" * 1000] * (2 * COALESCE_LIMIT // 1000)
    else:
        chunks = CHUNKS
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def test_chunks_sent_back_to_back_leave_in_one_write(http_impl: str, loop_impl: str, serve: Any) -> None:
    writes: list[bytes] = []
    with serve(back_to_back, http=counting(PROTOCOLS[http_impl], writes), loop=loop_impl) as server:
        with RawClient.connect(server.port) as client:
            response = client.request(get_request("/"))
            assert response.status == 200
            assert response.body == b"".join(CHUNKS)
            assert len(writes) == 1, [len(w) for w in writes]
            assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"0\r\n\r\n")

            # What waits is bounded: a long burst goes out in pieces of about COALESCE_LIMIT.
            writes.clear()
            response = client.request(get_request("/large"))
            assert len(response.body) == 2 * COALESCE_LIMIT // 1000 * 1000
            assert 2 <= len(writes) <= 4, [len(w) for w in writes]
            assert max(len(w) for w in writes) < COALESCE_LIMIT + 1100


def test_a_chunk_followed_by_a_wait_reaches_the_client_at_once(serve: Any) -> None:
    release = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await wait_threading_event(release)  # until the client has read the first chunk
        await send({"type": "http.response.body", "body": b"second"})

    with serve(app) as server:
        with RawClient.connect(server.port) as client:
            client.send(get_request("/"))
            try:
                client.read_until(b"5\r\nfirst\r\n", timeout=5)
            finally:
                release.set()
            assert client.read_until(b"0\r\n\r\n").endswith(b"6\r\nsecond\r\n0\r\n\r\n")


@pytest.mark.parametrize("path", ["/", "/large"])
def test_a_burst_to_a_client_that_left_ends_quietly(path: str, serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    # The connection may be gone before the held parts are written: nothing
    # is written to a closed transport, nothing is logged as an error, and
    # the server serves the next client.
    caplog.set_level(logging.DEBUG)
    with serve(back_to_back) as server:
        for _ in range(20):
            with RawClient.connect(server.port) as client:
                client.send(get_request(path))
        with RawClient.connect(server.port) as client:
            assert client.request(get_request("/")).body == b"".join(CHUNKS)
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert not errors, errors
