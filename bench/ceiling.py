"""The raw ceiling: a minimal uvloop asyncio.Protocol that answers bench/app.py's
routes with the same bytes, prebuilt, and echoes WebSocket messages.

No ASGI, no header parsing beyond finding the path and the Content-Length, no
validation, no logging: it only shows what a Python server on uvloop cannot
go below, so that the other servers' figures can be read against a floor.
Not a server to use for anything else.

    python bench/ceiling.py --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import signal

import app
import uvloop

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3


def _response(body: bytes, content_type: bytes, status: bytes = b"200 OK") -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: " + content_type
        + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


def _chunked(chunk: bytes, count: int) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
    return head + (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * count + b"0\r\n\r\n"


RESPONSES = {
    b"/": _response(app.HELLO, b"text/plain"),
    b"/json": _response(app.json_document("GET", "/json"), b"application/json"),
    b"/upload": _response(b"4096", b"text/plain"),  # the benchmark's upload size
    b"/stream": _chunked(app.STREAM_CHUNK, app.STREAM_CHUNKS),
    b"/1mib": _response(app.MIB, b"application/octet-stream"),
}
NOT_FOUND = _response(b"Not Found", b"text/plain", b"404 Not Found")


class Ceiling(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.websocket = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.websocket:
            self._frames()
            return
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[: end + 2])  # up to the last header's CRLF
            lowered = head.lower()
            length = int(_header(head, lowered, b"content-length") or 0)
            if len(self.buffer) < end + 4 + length:
                return  # the body is not all here yet
            del self.buffer[: end + 4 + length]
            key = _header(head, lowered, b"sec-websocket-key")
            if key is not None:
                self._upgrade(key)
                return
            path = head.split(b" ", 2)[1]
            self.transport.write(RESPONSES.get(path, NOT_FOUND))

    def _upgrade(self, key: bytes) -> None:
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
            b"connection: Upgrade\r\nsec-websocket-accept: " + accept + b"\r\n\r\n"
        )
        self.websocket = True
        self._frames()

    def _frames(self) -> None:
        """Echo every complete client frame (always masked, RFC 6455 5.3)."""
        buffer = self.buffer
        while len(buffer) >= 6:
            opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
            start = 2
            if length == 126:
                start, length = 4, int.from_bytes(buffer[2:4], "big")
            elif length == 127:
                start, length = 10, int.from_bytes(buffer[2:10], "big")
            if len(buffer) < start + 4 + length:
                return
            mask = bytes(buffer[start : start + 4]) * (length // 4 + 1)
            masked = buffer[start + 4 : start + 4 + length]
            payload = (
                int.from_bytes(masked, "big") ^ int.from_bytes(mask[:length], "big")
            ).to_bytes(length, "big")
            del buffer[: start + 4 + length]
            if opcode == 0x9:  # ping
                opcode = 0xA
            elif opcode == 0xA:  # pong
                continue
            header = bytes((0x80 | opcode,))
            if length < 126:
                header += bytes((length,))
            elif length < 1 << 16:
                header += bytes((126,)) + length.to_bytes(2, "big")
            else:
                header += bytes((127,)) + length.to_bytes(8, "big")
            self.transport.write(header + payload)
            if opcode == 0x8:  # close: echoed, then the connection ends
                self.transport.close()
                return


def _header(head: bytes, lowered: bytes, name: bytes) -> bytes | None:
    """The value of header `name` (lowercase) in a request head, or None."""
    at = lowered.find(b"\r\n" + name + b":")
    if at < 0:
        return None
    at += len(name) + 3
    return head[at : head.index(b"\r\n", at)].strip()


async def serve(protocol: type[asyncio.Protocol], host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: stop.done() or stop.set_result(None))
    server = await loop.create_server(protocol, host, port)
    async with server:
        await stop


def main(protocol: type[asyncio.Protocol] = Ceiling, doc: str = __doc__) -> None:
    """Serve `protocol` on uvloop until SIGINT or SIGTERM (asgi_floor.py uses this too)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvloop.run(serve(protocol, args.host, args.port))


if __name__ == "__main__":
    main()
