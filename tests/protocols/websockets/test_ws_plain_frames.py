"""`--ws websockets`: the frames read and written without the library, and the hand-over to it.

With the compiled hot path, reads made only of whole, unfragmented, masked
text, binary or pong frames skip websockets' parser, and messages are
written without it; the first read holding anything else goes to the library
for good.  Every test here runs with the plain frames on and off (the
library alone), and must see the same bytes from the server either way.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from squall.protocols.websockets.websockets_impl import WebSocketsProtocol
from ws_helpers import TIMEOUT, echo_app, handshake_request

MASK = b"\x1f\x2e\x3d\x4c"


def frame(first: int, payload: bytes, masked: bool = True) -> bytes:
    length = len(payload)
    second = 0x80 if masked else 0
    if length < 126:
        head = bytes((first, second | length))
    elif length < 65536:
        head = bytes((first, second | 126)) + struct.pack("!H", length)
    else:
        head = bytes((first, second | 127)) + struct.pack("!Q", length)
    if not masked:
        return head + payload
    return head + MASK + bytes(byte ^ MASK[i % 4] for i, byte in enumerate(payload))


def text(data: str) -> bytes:
    return frame(0x81, data.encode())


class RawWebSocket:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock.sendall(handshake_request())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError(f"closed; read so far {self.buffer[:100]!r}")
        self.buffer += data

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_frame(self) -> tuple[int, bytes]:
        """(first byte, payload) of the next server frame; server frames are never masked."""
        first, second = self._take(2)
        assert not second & 0x80, "a server frame was masked"
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._take(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._take(8))[0]
        return first, self._take(length)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=[True, False], ids=["plain", "library"])
def plain(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    monkeypatch.setattr(WebSocketsProtocol, "plain_frames", request.param)
    yield request.param


@pytest.fixture
def library_reads(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """What the library's parser was given, read by read."""
    from websockets.server import ServerProtocol

    given: list[bytes] = []
    original = ServerProtocol.receive_data

    def receive_data(self: Any, data: bytes) -> Any:
        given.append(bytes(data))
        return original(self, data)

    monkeypatch.setattr(ServerProtocol, "receive_data", receive_data)
    return given


@pytest.fixture
def client(serve: Any) -> Iterator[RawWebSocket]:
    with serve(echo_app(), ws="websockets") as server:
        ws = RawWebSocket(server.port)
        try:
            yield ws
        finally:
            ws.close()


def test_whole_frames_in_one_read_are_echoed_in_order(plain: bool, library_reads: list[bytes], client: RawWebSocket) -> None:
    client.send(text("one") + frame(0x82, b"\x00two") + text("thr\u00e9e") + text("x" * 300) + frame(0x8A, b"pong"))
    assert client.read_frame() == (0x81, b"one")
    assert client.read_frame() == (0x82, b"\x00two")
    assert client.read_frame() == (0x81, "thr\u00e9e".encode())
    assert client.read_frame() == (0x81, b"x" * 300)
    # The library saw nothing on the plain path, everything otherwise.
    assert (library_reads == []) is plain


def test_after_a_split_frame_the_library_reads_on(plain: bool, library_reads: list[bytes], client: RawWebSocket) -> None:
    client.send(text("before"))
    assert client.read_frame() == (0x81, b"before")
    whole = text("split across reads")
    client.send(whole[:5])
    with pytest.raises(socket.timeout):
        client.sock.settimeout(0.2)  # nothing comes back for half a frame
        client.read_frame()
    client.sock.settimeout(TIMEOUT)
    client.send(whole[5:] + text("after"))
    assert client.read_frame() == (0x81, b"split across reads")
    assert client.read_frame() == (0x81, b"after")
    assert library_reads[-2:] == [whole[:5], whole[5:] + text("after")]


def test_large_and_fragmented_messages(plain: bool, client: RawWebSocket) -> None:
    big = os.urandom(70000)
    client.send(frame(0x82, big))  # a 64-bit length: the library's
    assert client.read_frame() == (0x82, big)
    client.send(frame(0x01, b"frag") + frame(0x80, b"mented"))
    assert client.read_frame() == (0x81, b"fragmented")
    client.send(text("y" * 1000))  # a 16-bit length, after the hand-over
    assert client.read_frame() == (0x81, b"y" * 1000)


def test_invalid_utf8_after_a_valid_frame_fails_with_1007(plain: bool, client: RawWebSocket) -> None:
    client.send(text("fine") + frame(0x81, b"\xff\xfe"))
    # The connection fails as the bad frame is read; the app's echo of the
    # first message may or may not get out before it.
    first, payload = client.read_frame()
    if first == 0x81:
        assert payload == b"fine"
        first, payload = client.read_frame()
    assert first == 0x88 and payload[:2] == struct.pack("!H", 1007)


def test_an_unmasked_frame_fails_with_1002(plain: bool, client: RawWebSocket) -> None:
    client.send(frame(0x81, b"bare", masked=False))
    first, payload = client.read_frame()
    assert first == 0x88 and payload[:2] == struct.pack("!H", 1002)


def test_a_ping_is_answered_and_a_close_echoed(plain: bool, client: RawWebSocket) -> None:
    client.send(text("hi"))
    assert client.read_frame() == (0x81, b"hi")
    client.send(frame(0x89, b"ping!"))
    assert client.read_frame() == (0x8A, b"ping!")
    client.send(text("still open"))
    assert client.read_frame() == (0x81, b"still open")
    client.send(frame(0x88, struct.pack("!H", 1000)))
    assert client.read_frame() == (0x88, struct.pack("!H", 1000))


def test_a_message_over_max_size_fails_with_1009(plain: bool, serve: Any) -> None:
    with serve(echo_app(), ws="websockets", ws_max_size=100) as server:
        ws = RawWebSocket(server.port)
        try:
            ws.send(text("a" * 100))
            assert ws.read_frame() == (0x81, b"a" * 100)
            ws.send(text("b" * 101))
            first, payload = ws.read_frame()
            assert first == 0x88 and payload[:2] == struct.pack("!H", 1009)
        finally:
            ws.close()
