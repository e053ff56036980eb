"""What a hostile or careless peer can make the server hold, measured over real sockets.

- A client that floods pings and never reads: every ping is answered with a
  pong, so without back-pressure the pongs pile up in the server's write
  buffer.  Reading must pause while that buffer is over its high-water mark,
  on every `--ws`, `--http` and loop implementation.
- Pings between messages that the app takes: the app emptying its queue must
  not resume reading that the full write buffer paused.
- A WebSocket that starts behind a response the client has not read: its
  write buffer is full from the start.
- Frames sent right after the handshake, while the app decides: kept for the
  app, but not without bound.
- A fragmented message of empty frames: --ws-max-size never sees it grow, so
  the number of frames is bounded too (docs/websockets.md).

The in-process tests read the server's write buffer (or early-data buffer)
directly; `test_ping_flood_keeps_the_server_rss_bounded` watches a `squall`
subprocess's VmRSS.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import SquallProcess, recv_all, recv_until
from ws_helpers import TIMEOUT, Recorder, echo_app, handshake_request, wait_until, ws_connections

LOOP_IMPLS = ["asyncio", "uvloop"]
HERE = Path(__file__).resolve().parent

FLOOD = 16 * 1024 * 1024  # bytes of pings: their pongs would be about as many
# The most the server may hold for a peer that does not read: its 64 KiB
# high-water mark, plus the answers to the rest of the read that crossed it.
HELD_BOUND = 1024 * 1024
# Seconds without the socket becoming writable: the server has stopped reading.
STALL = 0.5
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING = 0x0, 0x1, 0x2, 0x8, 0x9


def frame(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """A client frame of up to 125 bytes, masked with a zero key (so the payload reads as is)."""
    assert len(payload) <= 125
    return bytes([opcode | (0x80 if fin else 0), 0x80 | len(payload)]) + b"\x00\x00\x00\x00" + payload


# A ping with the largest payload a control frame may carry.  Its pong echoes
# the payload, in which DONE_ECHO cannot appear.
PING = frame(OP_PING, b"p" * 125)
DONE = frame(OP_TEXT, b"done")
DONE_ECHO = b"\x81\x04done"  # the server's (unmasked) frame echoing DONE


@contextlib.contextmanager
def non_reading_client(port: int, request: bytes | None = None) -> Iterator[socket.socket]:
    """A client with a tiny receive buffer, so that the server's writes back up at once.

    It sends `request` (a WebSocket handshake by default); the test then reads nothing.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: it sets the window
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", port))
        sock.sendall(handshake_request() if request is None else request)
        yield sock
    finally:
        sock.close()


def flood(sock: socket.socket, unit: bytes, limit: int = FLOOD, deadline: float = 15.0) -> tuple[int, bytes]:
    """Send copies of `unit` until `limit` bytes are out or the server stops reading.

    Returns the bytes sent and the rest of the last copy, which the socket
    may have taken only in part: send it before anything else.
    """
    burst = unit * max(1, 65536 // len(unit))
    sent = 0
    sock.setblocking(False)
    give_up = time.monotonic() + deadline
    try:
        while sent < limit and time.monotonic() < give_up:
            try:
                sent += sock.send(burst[sent % len(burst) :])
            except BlockingIOError:
                _, writable, _ = select.select([], [sock], [], STALL)
                if not writable:
                    break  # the server has not read for STALL seconds
    finally:
        sock.settimeout(TIMEOUT)
    partial = sent % len(unit)
    return sent, unit[partial:] if partial else b""


def settled_write_buffer(transport: Any) -> int:
    """The server's write buffer once it has stopped reading for good, or as soon as it holds more than it may.

    For good: neither reading nor writing for STALL seconds.  Reading also
    pauses for a moment each time the app's queue fills up.
    """
    still: list[tuple[float, int]] = []  # (since when, buffer size) while reading is paused

    def settled() -> tuple[int] | None:
        size = transport.get_write_buffer_size()
        if size > HELD_BOUND:
            return (size,)
        if transport.is_reading() or (still and still[0][1] != size):
            still.clear()
            return None
        if not still:
            still.append((time.monotonic(), size))
        return (size,) if time.monotonic() - still[0][0] >= STALL else None

    return wait_until(settled, 4 * TIMEOUT, "the server to stop reading (or to buffer too much)")[0]


def read_until_while_sending(sock: socket.socket, marker: bytes, data: bytes) -> bytes:
    """Send `data` from a thread while reading everything until `marker` arrives.

    The server reads again only once the client has read, so sending first
    and reading after could wait for ever.
    """
    errors: list[BaseException] = []

    def send() -> None:
        try:
            sock.sendall(data)
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    received = bytearray()
    deadline = time.monotonic() + 4 * TIMEOUT
    while marker not in received[-65536 - len(marker) :]:
        assert time.monotonic() < deadline, "the server never answered once the client read"
        chunk = sock.recv(1 << 20)
        assert chunk, "the server closed the connection"
        received += chunk
    sender.join(TIMEOUT)
    assert not sender.is_alive() and not errors, errors
    return bytes(received)


@pytest.mark.parametrize("loop_impl", LOOP_IMPLS)
def test_ping_flood_from_a_client_that_never_reads_is_bounded(ws_serve: Any) -> None:
    with ws_serve(echo_app()) as server, non_reading_client(server.port) as sock:
        assert recv_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 101 ")
        (connection,) = wait_until(lambda: ws_connections(server))
        sent, rest = flood(sock, PING)
        buffered = settled_write_buffer(connection.transport)
        assert buffered <= HELD_BOUND, f"{buffered} bytes of pongs buffered after {sent} bytes of pings"
        # Once the client reads, so does the server: the text is echoed after the pongs.
        read_until_while_sending(sock, DONE_ECHO, rest + DONE)


def test_pings_between_messages_the_app_takes_are_bounded(ws_serve: Any) -> None:
    """The app emptying its queue resumes reading only if the write buffer has room too."""
    taken: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()  # takes every message, answers only "done"
            if message["type"] == "websocket.disconnect":
                return
            taken.append(message["text"])
            if message["text"] == "done":
                await send({"type": "websocket.send", "text": "done"})

    with ws_serve(app, ws_max_queue=4) as server, non_reading_client(server.port) as sock:
        assert recv_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 101 ")
        (connection,) = wait_until(lambda: ws_connections(server))
        sent, rest = flood(sock, (PING + frame(OP_TEXT, b"m")) * 8)
        buffered = settled_write_buffer(connection.transport)
        assert buffered <= HELD_BOUND, f"{buffered} bytes of pongs buffered after {sent} bytes of pings"
        assert taken, "the app took no message"
        read_until_while_sending(sock, DONE_ECHO, rest + DONE)


@pytest.mark.parametrize("loop_impl", LOOP_IMPLS)
def test_handshake_behind_an_unread_response_is_bounded(ws_serve: Any) -> None:
    """A WebSocket that starts with a full write buffer must not read until it drains."""
    body = b"b" * (4 * 1024 * 1024)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = [(b"content-length", b"%d" % len(body))]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await echo_app()(scope, receive, send)

    request = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" + handshake_request("/ws")
    with ws_serve(app) as server, non_reading_client(server.port, request) as sock:
        sent, rest = flood(sock, PING)
        # The HTTP connection or, once upgraded, the WebSocket: the same transport.
        (connection,) = wait_until(lambda: list(server.server.server_state.connections))
        buffered = settled_write_buffer(connection.transport)
        assert buffered <= len(body) + HELD_BOUND, f"{buffered} bytes buffered after {sent} bytes of pings"
        received = read_until_while_sending(sock, DONE_ECHO, rest + DONE)
        assert received.index(b"HTTP/1.1 200 OK") < received.index(b"HTTP/1.1 101 ")


def test_early_data_is_bounded_and_delivered_after_accept(ws_serve: Any) -> None:
    """Frames sent before the 101 are kept for the app up to a bound; then the socket is not read."""
    recorder = Recorder()
    release: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        event = asyncio.Event()
        release.append((asyncio.get_running_loop(), event))
        await event.wait()  # deciding, for as long as the test wants
        await send({"type": "websocket.accept"})
        count = 0
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            count += 1
            if message.get("text") == "done":
                recorder.put(count)
                await send({"type": "websocket.send", "text": "done"})

    message = frame(OP_TEXT, b"x" * 125)
    with ws_serve(app, ws_max_queue=4) as server, non_reading_client(server.port) as sock:
        loop, event = wait_until(lambda: release)[0]
        (connection,) = wait_until(lambda: ws_connections(server))
        sent, rest = flood(sock, message)
        assert sent < FLOOD, "the server read every early byte"
        held = len(connection._early_data)
        assert held <= HELD_BOUND, f"{held} bytes of early data held"
        loop.call_soon_threadsafe(event.set)
        read_until_while_sending(sock, DONE_ECHO, rest + DONE)
        assert recorder.get() == (sent + len(rest)) // len(message) + 1


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_a_message_in_too_many_frames_closes_with_1009(ws_serve: Any, opcode: int) -> None:
    """Empty frames add nothing to the size; the server still refuses to hold them without bound."""
    recorder = Recorder()
    max_size = 65536
    limit = max_size // 64  # docs/websockets.md: one frame per 64 bytes of --ws-max-size
    first = frame(opcode, fin=False)
    more = frame(OP_CONT, fin=False)
    last = frame(OP_CONT, fin=True)
    with ws_serve(echo_app(recorder), ws_max_size=max_size) as server, server.connect() as sock:
        sock.sendall(handshake_request())
        assert recv_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 101 ")
        # The most frames a message may have: delivered (and echoed, empty).
        sock.sendall(first + more * (limit - 2) + last)
        echo = bytes([0x80 | opcode, 0])
        assert recv_until(sock, echo).endswith(echo)
        # One more is refused, like a message over --ws-max-size.
        sock.sendall(first + more * limit)
        close = recv_all(sock)
        assert close[:1] == bytes([0x80 | OP_CLOSE]), close
        assert int.from_bytes(close[2:4], "big") == 1009, close
        assert recorder.get()["code"] == 1009


def vm_rss(pid: int) -> int:
    """A process's resident set size in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmRSS is read from /proc (Linux only)")
def test_ping_flood_keeps_the_server_rss_bounded(ws_impl: str) -> None:
    """The same as a whole process sees it (default --http and --loop: the in-process tests cover each)."""
    args = ["ws_helpers:echo", "--app-dir", str(HERE), "--port", "0", "--ws", ws_impl]
    with SquallProcess(*args, "--lifespan", "off", "--no-access-log") as process:
        port = process.wait_started()
        assert port is not None
        with non_reading_client(port) as sock:
            assert recv_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 101 ")
            before = vm_rss(process.proc.pid)
            sent, rest = flood(sock, PING)
            samples: list[int] = []

            def settled() -> tuple[int] | None:
                # Grown too much, or not grown for half a second: the server is done reading.
                samples.append(vm_rss(process.proc.pid))
                recent = samples[-5:]
                if samples[-1] - before > 4 * HELD_BOUND or (len(recent) == 5 and max(recent) - min(recent) < 65536):
                    return (samples[-1],)
                return None

            after = wait_until(settled, 4 * TIMEOUT, "the server's RSS to settle", interval=0.1)[0]
            grown = after - before
            assert grown <= 4 * HELD_BOUND, f"RSS {before >> 10} -> {after >> 10} KiB after {sent} bytes of pings"
            read_until_while_sending(sock, DONE_ECHO, rest + DONE)
