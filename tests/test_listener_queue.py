"""A listener stopping without resetting what the kernel has queued (`refuse_new_connections`)."""

from __future__ import annotations

import socket
import sys

import pytest

from squall.sockets import refuse_new_connections

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux socket filter")


@pytest.mark.parametrize("family, host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_queued_connection_survives_and_new_ones_are_refused(family: int, host: str) -> None:
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.bind((host, 0))
    except OSError as exc:
        listener.close()
        pytest.skip(f"{host} is not available here: {exc}")
    listener.listen(8)
    port = listener.getsockname()[1]
    queued = socket.create_connection((host, port), timeout=5)
    queued.sendall(b"request")

    assert refuse_new_connections(listener)

    # A new attempt is ignored, not queued: its connect() does not complete.
    late = socket.socket(family, socket.SOCK_STREAM)
    late.settimeout(0.3)
    with pytest.raises(TimeoutError):
        late.connect((host, port))
    late.close()

    # What was queued before is still there, and carries data both ways.
    accepted, _ = listener.accept()
    accepted.settimeout(5)
    assert accepted.recv(100) == b"request"
    accepted.sendall(b"x" * 200_000)
    received = 0
    while received < 200_000:
        received += len(queued.recv(65536))
    with pytest.raises(BlockingIOError):
        listener.setblocking(False)
        listener.accept()  # and nothing else was queued

    # Once the listener closes, a client retrying is refused.
    listener.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=5)
    accepted.close()
    queued.close()


def test_not_a_tcp_listener() -> None:
    left, right = socket.socketpair()
    with left, right:
        assert refuse_new_connections(left) is False
