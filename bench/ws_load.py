"""The WebSocket echo load generator, run by the benchmark as its own
process (pinned to the load generator's CPU):

    python bench/ws_load.py --port PORT --server-pids 123,124 --connections 64 \
        --messages 50000 --warmup 5000 --size 32 --deadline 300

It opens `--connections` WebSockets to /ws, warms the server up with an
untimed batch of messages, then sends a fixed total of `--messages` text
messages, one at a time per connection, each as soon as the previous echo
came back, and checks every echo byte for byte. It reads the server's
user+sys CPU time from /proc just before the first measured message and
just after the last echo (so handshakes, warm-up and closing handshakes are
not counted), and its RSS while the connections are still open. It prints
one JSON object, with the round trip of every measured message.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import socket
import sys
import time

from _harness import HOST, cpu_seconds, rss_bytes

# --- load generator ------------------------------------------------------------
#
# A raw asyncio Protocol rather than a WebSocket library: every message is
# the same pre-built, pre-masked frame, and the echo is recognised by
# comparing bytes, so the generator spends a few µs per message and the
# server, not the client, is what limits the rate.

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_OP_TEXT, _OP_CLOSE, _OP_PING, _OP_PONG = 0x1, 0x8, 0x9, 0xA


class LoadError(RuntimeError):
    pass


def _frame_header(opcode: int, length: int, masked: bool) -> bytes:
    first = 0x80 | opcode  # FIN: every message is a single frame
    mask_bit = 0x80 if masked else 0
    if length < 126:
        return bytes((first, mask_bit | length))
    if length < 1 << 16:
        return bytes((first, mask_bit | 126)) + length.to_bytes(2, "big")
    return bytes((first, mask_bit | 127)) + length.to_bytes(8, "big")


def client_frame(opcode: int, payload: bytes, mask: bytes) -> bytes:
    """A masked frame, as a client must send them (RFC 6455 5.3)."""
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return _frame_header(opcode, len(payload), True) + mask + masked


def server_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked frame, as a server sends them."""
    return _frame_header(opcode, len(payload), False) + payload


def parse_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Remove the complete server frames at the start of `buffer`; return
    their (opcode, payload). Only used off the fast path (see data_received)."""
    frames = []
    while len(buffer) >= 2:
        opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
        if buffer[1] & 0x80:
            raise LoadError("the server sent a masked frame")
        start = 2
        if length == 126:
            start, length = 4, int.from_bytes(buffer[2:4], "big")
        elif length == 127:
            start, length = 10, int.from_bytes(buffer[2:10], "big")
        if len(buffer) < start + length:
            break
        if not buffer[0] & 0x80:
            raise LoadError("the server fragmented an echo")
        frames.append((opcode, bytes(buffer[start : start + length])))
        del buffer[: start + length]
    return frames


class Run:
    """The shared state of all connections: how many messages are still to
    be sent in the current phase, and the round trips measured."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        frame: bytes,
        echo: bytes,
        pong_mask: bytes,
    ):
        self.loop = loop
        self.frame = frame  # what every connection sends
        self.echo = echo  # what it expects back, byte for byte
        self.pong_mask = pong_mask
        self.to_send = 0
        self.in_flight = 0
        self.done: asyncio.Future[None] | None = None
        self.round_trips: list[int] | None = None  # ns; None while warming up
        self.error: BaseException | None = None  # the first failure, even between phases

    def start_phase(
        self, messages: int, connections: list[EchoClient], record: bool
    ) -> asyncio.Future[None]:
        if self.error is not None:
            raise self.error
        self.to_send = messages
        self.done = self.loop.create_future()
        self.round_trips = [] if record else None
        if messages == 0:  # e.g. --warmup 0
            self.done.set_result(None)
        for connection in connections:
            if self.to_send == 0:
                break
            connection.send_next()
        return self.done

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        if self.done is not None and not self.done.done():
            self.done.set_exception(exc)


class EchoClient(asyncio.Protocol):
    def __init__(self, run: Run, host_header: str):
        self.run = run
        self.key = base64.b64encode(os.urandom(16))
        self.request = (
            b"GET /ws HTTP/1.1\r\n"
            b"Host: " + host_header.encode() + b"\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + self.key + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\n"
            b"\r\n"
        )  # no Sec-WebSocket-Extensions: permessage-deflate stays off
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = run.loop.create_future()
        self.closed = run.loop.create_future()
        self.closing = False
        self.sent_at = 0

    # Handshake and close.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        # Small frames in a ping-pong: Nagle's algorithm must not hold them
        # back (asyncio and uvloop set this already; make sure of it).
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.write(self.request)

    def _handshake_response(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).decode("latin-1")
        del self.buffer[: end + 4]
        status, *header_lines = head.split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1(self.key + _WS_GUID).digest()).decode()
        if not status.startswith("HTTP/1.1 101"):
            error = LoadError(f"handshake refused: {status}")
        elif headers.get("sec-websocket-accept") != accept:
            error = LoadError("wrong Sec-WebSocket-Accept in the handshake response")
        elif self.buffer:
            error = LoadError("the server sent data before any message")
        else:
            self.upgraded.set_result(None)
            return
        self.upgraded.set_exception(error)

    def close(self) -> asyncio.Future[None]:
        """Start the closing handshake (code 1000); the future resolves when
        the server's close frame has arrived (or the connection is lost)."""
        self.closing = True
        self.transport.write(client_frame(_OP_CLOSE, (1000).to_bytes(2, "big"), self.run.pong_mask))
        return self.closed

    def connection_lost(self, exc: Exception | None) -> None:
        error = LoadError(f"connection lost: {exc or 'closed by the server'}")
        if not self.upgraded.done():
            self.upgraded.set_exception(error)
        if not self.closed.done():
            self.closed.set_result(None)
        if not self.closing:
            self.run.fail(error)

    # Messages.

    def send_next(self) -> None:
        run = self.run
        run.to_send -= 1
        run.in_flight += 1
        self.sent_at = time.perf_counter_ns()
        self.transport.write(run.frame)

    def data_received(self, data: bytes) -> None:
        if not self.upgraded.done():
            self.buffer += data
            self._handshake_response()
            return
        run = self.run
        # Fast path: with one message in flight per connection, a read is
        # almost always exactly the echo.
        if not self.buffer and data == run.echo:
            self._echoed()
            return
        self.buffer += data
        try:
            frames = parse_frames(self.buffer)
            for opcode, payload in frames:
                if opcode == _OP_CLOSE:
                    if not self.closing:
                        raise LoadError(f"the server closed the connection: {payload!r}")
                    self.closed.set_result(None)
                    self.transport.close()
                elif opcode == _OP_PING:  # the server's keepalive
                    self.transport.write(client_frame(_OP_PONG, payload, run.pong_mask))
                elif opcode == _OP_PONG:
                    pass
                elif server_frame(opcode, payload) == run.echo:
                    self._echoed()
                else:
                    raise LoadError(f"unexpected frame: opcode {opcode}, {payload[:60]!r}")
        except LoadError as exc:
            run.fail(exc)
            self.transport.close()

    def _echoed(self) -> None:
        run = self.run
        if run.round_trips is not None:
            run.round_trips.append(time.perf_counter_ns() - self.sent_at)
        run.in_flight -= 1
        if run.to_send > 0:
            self.send_next()
        elif run.in_flight == 0 and not run.done.done():
            run.done.set_result(None)


async def load(options: argparse.Namespace) -> dict:
    loop = asyncio.get_running_loop()
    mask = os.urandom(4)
    # The message: ASCII text of the requested size.
    payload = (b"squall echo benchmark " * (options.size // 22 + 1))[: options.size]
    # One masking key for every frame would be wrong against a proxy (RFC
    # 6455 10.3 wants unpredictable keys), but there is none here, and the
    # server unmasks the same number of bytes whatever the key.
    run = Run(
        loop,
        client_frame(_OP_TEXT, payload, mask),
        server_frame(_OP_TEXT, payload),
        mask,
    )
    host_header = f"{HOST}:{options.port}"

    async def open_one() -> EchoClient:
        _, client = await loop.create_connection(
            lambda: EchoClient(run, host_header), HOST, options.port
        )
        await client.upgraded
        return client

    clients = await asyncio.wait_for(
        asyncio.gather(*(open_one() for _ in range(options.connections))), options.stall
    )
    try:
        await asyncio.wait_for(
            run.start_phase(options.warmup, clients, record=False), options.stall
        )

        cpu_before, load_cpu_before = (
            cpu_seconds(options.server_pids),
            time.process_time(),
        )
        started = time.perf_counter()
        await asyncio.wait_for(
            run.start_phase(options.messages, clients, record=True), options.deadline
        )
        seconds = time.perf_counter() - started
        cpu_used = cpu_seconds(options.server_pids) - cpu_before
        load_cpu = time.process_time() - load_cpu_before
        rss = rss_bytes(options.server_pids)
    finally:
        # A clean closing handshake, so that no server logs an abnormal
        # closure; bounded, since after a failure a server may not answer.
        closing = [client.close() for client in clients if not client.transport.is_closing()]
        if closing:
            await asyncio.wait(closing, timeout=5)
        for client in clients:
            client.transport.close()

    return {
        "messages": len(run.round_trips),
        "seconds": seconds,
        "server_cpu_seconds": cpu_used,
        "load_cpu_seconds": load_cpu,
        "round_trips_ms": [round(ns / 1e6, 4) for ns in run.round_trips],
        "rss_bytes": rss,
    }


def _pids(text: str) -> list[int]:
    return [int(pid) for pid in text.split(",")]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--server-pids", type=_pids, required=True, help="the server's processes, a,b,c"
    )
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--deadline", type=float, required=True, help="limit of the measured run")
    parser.add_argument(
        "--stall", type=float, default=30.0, help="limit of connecting and warming up"
    )
    options = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # the same code runs on asyncio's loop, only slower
        loop = asyncio.new_event_loop()
    else:
        loop = uvloop.new_event_loop()
    try:
        report = loop.run_until_complete(load(options))
    except (LoadError, OSError, asyncio.TimeoutError) as exc:
        print(f"load generator: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        loop.close()
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
