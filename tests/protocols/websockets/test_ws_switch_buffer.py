"""A handshake that waits its turn does not make the server buffer without bound.

A WebSocket handshake pipelined behind a request still being answered
waits for that response; what the client sends meanwhile belongs to the
WebSocket and has to be kept.  The server must stop reading until then.
It used to resume reading as soon as the earlier request's app read its
body, and buffered everything the client sent, however much.

What the server has read is measured from the kernel, whatever the
server's internals: the bytes the client sent, less those still in the
client's send queue (TIOCOUTQ) and in the server socket's receive queue
(FIONREAD), were read by the server and are held in its memory.
"""

from __future__ import annotations

import asyncio
import fcntl
import select
import struct
import termios
import threading
import time
from typing import Any

from ws_helpers import client_frame, handshake_request, wait_until
from support import recv_until

FRAME_PAYLOAD = 64 * 1024
FRAMES = 100
# What the server may hold of the client's bytes while the handshake waits
# (a read or two of the transport), far below the 6.4 MB sent.
BOUND = 512 * 1024
# The client stops pushing once no byte left for this long (the server
# stopped reading and the kernel buffers are full).
STALL = 1.0
DEADLINE = 10.0


def queued(fd: int, request: int) -> int:
    return struct.unpack("i", fcntl.ioctl(fd, request, b"\0\0\0\0"))[0]


def test_bytes_behind_a_waiting_handshake_stay_bounded(ws_serve: Any) -> None:
    body_read = threading.Event()
    release = threading.Event()
    expected = FRAME_PAYLOAD * FRAMES

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            while (await receive()).get("more_body"):
                pass
            body_read.set()
            deadline = time.monotonic() + DEADLINE
            while not release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
            await send({"type": "http.response.body", "body": b"slow"})
            return
        await receive()
        await send({"type": "websocket.accept"})
        total = 0
        while total < expected:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            total += len(message.get("bytes") or b"")
        await send({"type": "websocket.send", "text": f"got {total}"})
        await receive()

    body = b"b" * 16 * 1024
    request = b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    frame = client_frame(b"f" * FRAME_PAYLOAD)
    stream = frame * FRAMES

    with ws_serve(app) as server:
        sock = server.connect(timeout=DEADLINE)
        try:
            sock.sendall(request + handshake_request("/ws"))
            assert body_read.wait(DEADLINE), "the app never read its body"
            connections = wait_until(lambda: list(server.server.server_state.connections), DEADLINE, "the connection")
            server_fd = connections[0].transport.get_extra_info("socket").fileno()

            def held_by_server(sent: int) -> int:
                return sent - queued(sock.fileno(), termios.TIOCOUTQ) - queued(server_fd, termios.FIONREAD)

            # Push the WebSocket's bytes while the handshake waits, as far as the server takes them.
            sock.setblocking(False)
            sent = most_held = 0
            last_progress = time.monotonic()
            while sent < len(stream) and time.monotonic() - last_progress < STALL:
                try:
                    n = sock.send(stream[sent : sent + 65536])
                except BlockingIOError:
                    select.select([], [sock], [], 0.05)
                else:
                    sent += n
                    last_progress = time.monotonic()
                most_held = max(most_held, held_by_server(sent))
            # Watch a little longer: a server that reads on does so now.
            watch_until = time.monotonic() + STALL / 2
            while time.monotonic() < watch_until:
                most_held = max(most_held, held_by_server(sent))
                time.sleep(0.01)
            assert most_held <= BOUND, f"the server read {most_held} bytes behind the waiting handshake"

            # Once the response is out, the switch happens and nothing was lost.
            release.set()
            sock.setblocking(True)
            sock.settimeout(DEADLINE)
            sock.sendall(stream[sent:])
            reply = recv_until(sock, b"got %d" % expected, timeout=DEADLINE)
        finally:
            release.set()
            sock.close()
    first = reply.index(b"HTTP/1.1 200 OK")
    switch = reply.index(b"HTTP/1.1 101 Switching Protocols")
    assert first < reply.index(b"slow") < switch < reply.index(b"got %d" % expected)
