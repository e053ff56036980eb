"""--ws-max-size, --ws-max-queue, --ws-ping-interval/--ws-ping-timeout, --ws-per-message-deflate."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.sync.client import connect
from ws_helpers import Recorder, WsprotoClient, echo_app, wait_until, ws_connections
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from squall.protocols.http.flow_control import PAUSE_QUEUE

LOOP_IMPLS = ["asyncio", "uvloop"]


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(b"x" * 1025, id="bytes"),
        pytest.param("é" * 513, id="text-over-in-utf8-bytes"),
    ],
)
def test_message_over_max_size_closes_with_1009(ws_serve: Any, message: str | bytes) -> None:
    recorder = Recorder()
    with ws_serve(echo_app(recorder), ws_max_size=1024) as server, WsprotoClient(server.port) as client:
        at_limit = b"y" * 1024 if isinstance(message, bytes) else "y" * 1024
        client.send(BytesMessage(data=at_limit) if isinstance(at_limit, bytes) else TextMessage(data=at_limit))
        assert client.receive_message() == at_limit
        client.send(BytesMessage(data=message) if isinstance(message, bytes) else TextMessage(data=message))
        close = client.events_until(CloseConnection)[-1]
        assert close.code == 1009
        client.wait_closed()
        disconnect = recorder.get()
    assert disconnect["type"] == "websocket.disconnect"
    assert disconnect["code"] == 1009


def test_fragmented_message_over_max_size_closes_with_1009(ws_serve: Any) -> None:
    recorder = Recorder()
    with ws_serve(echo_app(recorder), ws_max_size=1024) as server, WsprotoClient(server.port) as client:
        for _ in range(4):
            client.send(BytesMessage(data=b"z" * 300, message_finished=False))
        client.send(BytesMessage(data=b"", message_finished=True))
        assert client.events_until(CloseConnection)[-1].code == 1009
        assert recorder.get()["code"] == 1009


def test_compressed_message_over_max_size_closes_with_1009(ws_serve: Any) -> None:
    """The limit is on the message, not on its compressed size on the wire."""
    with ws_serve(echo_app(), ws_max_size=100_000) as server, WsprotoClient(server.port, deflate=True) as client:
        assert client.deflate is not None
        client.send_bytes(b"\x00" * 1_000_000)  # a few KiB once compressed
        assert client.events_until(CloseConnection)[-1].code == 1009


def test_reading_pauses_at_max_queue(ws_serve: Any) -> None:
    """A slow app: once --ws-max-queue messages are buffered the socket is no longer read."""
    recorder = Recorder()
    release: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        event = asyncio.Event()
        release.append((asyncio.get_running_loop(), event))
        await event.wait()  # not reading yet
        count = 0
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                recorder.put(count)
                return
            count += 1
            if message.get("text") == "last":
                await send({"type": "websocket.send", "text": str(count)})

    padding = "p" * 4096  # 200 of these cannot arrive in one read from the socket
    with ws_serve(app, ws_max_queue=4) as server, WsprotoClient(server.port) as client:
        for i in range(200):
            client.send_text(f"{i} {padding}")
        client.send_text("last")
        (connection,) = wait_until(lambda: ws_connections(server))
        wait_until(lambda: connection._reading.reasons == PAUSE_QUEUE, what="reading to pause for the queue")
        # At least the queue's worth, plus at most what the last read held.
        assert 4 <= len(connection._queue) < 150
        loop, event = wait_until(lambda: release)[0]
        loop.call_soon_threadsafe(event.set)
        assert client.receive_message() == "201"
        assert connection._reading.reasons == 0
        client.close()
    assert recorder.get() == 201


@pytest.mark.parametrize("loop_impl", LOOP_IMPLS)
def test_unanswered_pings_close_the_connection(ws_serve: Any) -> None:
    recorder = Recorder()
    with ws_serve(echo_app(recorder), ws_ping_interval=0.1, ws_ping_timeout=0.2) as server:
        with WsprotoClient(server.port) as client:
            events = client.events_until(CloseConnection)  # pings are left unanswered
            assert isinstance(events[0], Ping)
            assert len(events[0].payload) == 4
            close = events[-1]
            assert close.code == 1011
            client.wait_closed()
        assert recorder.get() == {"type": "websocket.disconnect", "code": 1011, "reason": "keepalive ping timeout"}


def test_answered_pings_keep_the_connection_open(ws_serve: Any) -> None:
    with ws_serve(echo_app(), ws_ping_interval=0.05, ws_ping_timeout=2.0) as server, WsprotoClient(server.port) as client:
        for _ in range(5):
            event = client.next_event()
            assert isinstance(event, Ping)
            client.send(event.response())
        client.send_text("still here")
        assert client.receive_message() == "still here"


def test_no_pings_when_disabled(ws_serve: Any) -> None:
    with ws_serve(echo_app(), ws_ping_interval=None) as server, WsprotoClient(server.port) as client:
        (connection,) = wait_until(lambda: ws_connections(server))
        assert connection._keepalive is None
        client.send_text("x")
        assert client.receive_message() == "x"


@pytest.mark.parametrize("enabled", [True, False])
def test_per_message_deflate_negotiation(ws_serve: Any, enabled: bool) -> None:
    text = "compressible " * 10_000
    with ws_serve(echo_app(), ws_per_message_deflate=enabled) as server:
        with connect(f"ws://127.0.0.1:{server.port}/", max_size=None) as client:
            header = client.response.headers.get("sec-websocket-extensions")
            client.send(text)
            assert client.recv() == text
        with WsprotoClient(server.port, deflate=True) as wsproto_client:
            wsproto_deflate = wsproto_client.deflate
            wsproto_client.send_text(text)
            assert wsproto_client.receive_message() == text
        with connect(f"ws://127.0.0.1:{server.port}/", compression=None) as plain:
            assert plain.response.headers.get("sec-websocket-extensions") is None
            plain.send("plain")
            assert plain.recv() == "plain"
    if enabled:
        assert header is not None and header.startswith("permessage-deflate")
        assert wsproto_deflate is not None
    else:
        assert header is None and wsproto_deflate is None


def test_messages_are_compressed_on_the_wire(ws_serve: Any) -> None:
    """A compressible message crosses the wire as a small frame with RSV1 set."""
    import socket as socket_module

    from ws_helpers import TIMEOUT, handshake_request

    with ws_serve(echo_app()) as server:
        request = handshake_request(extra=["Sec-WebSocket-Extensions: permessage-deflate"])
        with socket_module.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
            sock.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            head, _, rest = head.partition(b"\r\n\r\n")
            assert b"permessage-deflate" in head
            # An uncompressed masked text frame of 10 000 'a': the server may
            # compress its reply even though this message was not compressed.
            payload = b"a" * 10_000
            mask = b"\x01\x02\x03\x04"
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            sock.sendall(b"\x81\xfe" + len(payload).to_bytes(2, "big") + mask + masked)
            reply = rest
            while len(reply) < 2:
                reply += sock.recv(4096)
    assert reply[0] == 0xC1  # FIN, RSV1 (compressed), text
    assert reply[1] & 0x7F < 126  # under 126 bytes on the wire
