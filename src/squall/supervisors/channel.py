"""The line between the supervisor and one worker: single bytes over a socketpair.

Every message is one byte, so there is no framing to get wrong: however the
kernel splits a read, it holds whole messages.
"""

from __future__ import annotations

import socket

# supervisor -> worker: "is your event loop alive?"
PING = b"p"
# supervisor -> worker: your replacement is serving; drain, then exit.
RETIRE = b"t"
# worker -> supervisor: the answer, sent from the worker's event loop.
PONG = b"P"
# worker -> supervisor: listening, and in the server's main loop.
READY = b"R"
# worker -> supervisor: reached --limit-max-requests; start my replacement,
# then tell me to stop.
DRAINING = b"D"


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """(supervisor end, worker end); the supervisor's end never blocks."""
    supervisor_end, worker_end = socket.socketpair()
    supervisor_end.setblocking(False)
    return supervisor_end, worker_end


def send(sock: socket.socket, message: bytes) -> bool:
    """Send one message; False if the other end is gone (its exit is noticed elsewhere)."""
    try:
        return sock.send(message) == len(message)
    except OSError:
        return False


def receive(sock: socket.socket) -> bytes | None:
    """Every message waiting on a non-blocking socket; None once the other end has closed."""
    chunks: list[bytes] = []
    while True:
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            break
        except OSError:
            return None
        if not data:
            return None if not chunks else b"".join(chunks)
        chunks.append(data)
    return b"".join(chunks)
