"""WebSockets over HTTP/2 (RFC 8441): an extended CONNECT opens a WebSocket on one stream.

The client is the h2 library (the stream) with wsproto's frame layer inside
its DATA frames; the server runs each `--ws` implementation, under each
(loop, wire layer) pair of `h2_serve`.
"""

from __future__ import annotations

from typing import Any

import h2.settings
import pytest
from hyperframe.frame import DataFrame, Frame, GoAwayFrame
from h2_client import CANCEL, DEADLINE, H2Client, RawFrames, StreamResult
from support import wait_until
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, TextMessage

WS_IMPLS = ["websockets", "wsproto"]


@pytest.fixture(params=WS_IMPLS)
def ws_impl(request: pytest.FixtureRequest) -> str:
    return request.param


class WebSocketStream:
    """A WebSocket on one stream of an `H2Client`."""

    def __init__(self, client: H2Client, path: str = "/ws", headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.client = client
        self.ws = Connection(ConnectionType.CLIENT)
        self.received: list[Event] = []
        self._partial: TextMessage | BytesMessage | None = None
        conn = client.conn
        self.stream_id = conn.get_next_available_stream_id()
        fields = [
            (b":method", b"CONNECT"),
            (b":protocol", b"websocket"),
            (b":scheme", b"http"),
            (b":path", path.encode()),
            (b":authority", b"127.0.0.1"),
        ]
        fields += headers if headers is not None else [(b"sec-websocket-version", b"13")]
        client.streams[self.stream_id] = StreamResult(self.stream_id)
        conn.send_headers(self.stream_id, fields)
        client.flush()

    @property
    def result(self) -> StreamResult:
        return self.client.streams[self.stream_id]

    def response(self) -> StreamResult:
        return self.client.wait(lambda: self.result if self.result.headers else None, what="the handshake's answer")

    def send(self, event: Event) -> None:
        self.client.send_body(self.stream_id, self.ws.send(event), end_stream=False)

    def _add(self, event: Event) -> None:
        """Keep whole messages: wsproto hands out a message's parts as they arrive."""
        if isinstance(event, (TextMessage, BytesMessage)):
            part = self._partial
            if part is not None:
                event = type(event)(data=part.data + event.data, frame_finished=event.frame_finished, message_finished=event.message_finished)
            if not event.message_finished:
                self._partial = event
                return
            self._partial = None
        self.received.append(event)

    def events(self, count: int) -> list[Event]:
        def arrived() -> bool:
            body, self.result.body = self.result.body, b""
            if body:
                self.ws.receive_data(body)
                for event in self.ws.events():
                    self._add(event)
            return len(self.received) >= count

        self.client.wait(arrived, what=f"{count} WebSocket events")
        events, self.received = self.received[:count], self.received[count:]
        return events


def echo_app(seen: list[Any]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        seen.append(scope)
        assert (await receive())["type"] == "websocket.connect"
        offered = scope["subprotocols"]
        await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
        while True:
            message = await receive()
            seen.append(message)
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") == "close please":
                await send({"type": "websocket.close", "code": 4001, "reason": "asked"})
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"].upper()})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"][::-1]})

    return app


def settings_value(client: H2Client, code: int) -> int:
    return int(client.conn.remote_settings.get(code, 0) or 0)


def test_echo_and_scope(h2_serve: Any, ws_impl: str) -> None:
    seen: list[Any] = []
    with h2_serve(echo_app(seen), ws=ws_impl) as server, H2Client.connect(server.port) as client:
        assert settings_value(client, h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL) == 1
        stream = WebSocketStream(client, "/ws?room=1", [(b"sec-websocket-version", b"13"), (b"sec-websocket-protocol", b"chat, superchat"), (b"cookie", b"a=1")])
        response = stream.response()
        assert response.status == 200
        assert response.header("sec-websocket-protocol") == "chat"
        assert response.header("sec-websocket-accept") is None
        assert response.header("server") == "squall"
        assert not response.done
        stream.send(TextMessage("hello"))
        stream.send(BytesMessage(b"abc"))
        events = stream.events(2)
        assert isinstance(events[0], TextMessage) and events[0].data == "HELLO"
        assert isinstance(events[1], BytesMessage) and bytes(events[1].data) == b"cba"
        # A plain request on the same connection is served beside the WebSocket.
        assert client.get("/plain").body == b"ok"
        stream.send(CloseConnection(1000, "bye"))
        (close,) = stream.events(1)
        assert isinstance(close, CloseConnection) and close.code == 1000
        client.wait(lambda: stream.result.done, what="the stream's end")
        assert stream.result.ended
        wait_until(lambda: any(m.get("type") == "websocket.disconnect" for m in seen[1:]), what="the app's disconnect")
    scope = seen[0]
    assert scope["type"] == "websocket"
    assert scope["http_version"] == "2"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/ws" and scope["query_string"] == b"room=1"
    assert scope["subprotocols"] == ["chat", "superchat"]
    assert scope["headers"][0] == (b"host", b"127.0.0.1")
    assert not any(name.startswith(b":") for name, _ in scope["headers"])
    disconnect = next(m for m in seen[1:] if m["type"] == "websocket.disconnect")
    assert disconnect["code"] == 1000


def test_the_app_closes(h2_serve: Any, ws_impl: str) -> None:
    with h2_serve(echo_app([]), ws=ws_impl) as server, H2Client.connect(server.port) as client:
        stream = WebSocketStream(client)
        assert stream.response().status == 200
        stream.send(TextMessage("close please"))
        (close,) = stream.events(1)
        assert isinstance(close, CloseConnection) and (close.code, close.reason) == (4001, "asked")
        stream.send(close.response())
        client.wait(lambda: stream.result.done, what="the stream's end")


@pytest.mark.parametrize("how", ["close", "denial"])
def test_refusals_are_whole_responses(h2_serve: Any, ws_impl: str, how: str) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        if how == "close":
            await send({"type": "websocket.close"})
        else:
            await send({"type": "websocket.http.response.start", "status": 401, "headers": [(b"x-why", b"token")]})
            await send({"type": "websocket.http.response.body", "body": b"no entry"})

    with h2_serve(app, ws=ws_impl) as server, H2Client.connect(server.port) as client:
        stream = WebSocketStream(client)
        response = client.response(stream.stream_id)
        assert response.ended
        if how == "close":
            assert response.status == 403
        else:
            assert response.status == 401
            assert response.header("x-why") == "token"
            assert response.body == b"no entry"


def test_an_unsupported_version_gets_426(h2_serve: Any, ws_impl: str) -> None:
    seen: list[Any] = []
    with h2_serve(echo_app(seen), ws=ws_impl) as server, H2Client.connect(server.port) as client:
        stream = WebSocketStream(client, headers=[(b"sec-websocket-version", b"8")])
        response = client.response(stream.stream_id)
        assert response.status == 426
        assert response.header("sec-websocket-version") == "13"
        assert client.get("/after").body == b"ok"  # the connection still serves
    assert seen == []  # the app never heard of it


def test_a_reset_stream_disconnects_the_app(h2_serve: Any, ws_impl: str) -> None:
    seen: list[Any] = []
    with h2_serve(echo_app(seen), ws=ws_impl) as server, H2Client.connect(server.port) as client:
        stream = WebSocketStream(client)
        assert stream.response().status == 200
        client.reset(stream.stream_id, CANCEL)
        wait_until(lambda: any(m.get("type") == "websocket.disconnect" for m in seen[1:]), what="the app's disconnect")
        assert client.get("/after").body == b"ok"
    disconnect = next(m for m in seen[1:] if m["type"] == "websocket.disconnect")
    assert disconnect["code"] == 1006


def test_shutdown_closes_with_1012(h2_serve: Any, ws_impl: str) -> None:
    """GOAWAY, the WebSocket's close frame with 1012, then the stream's end and the connection's.

    The h2 library stops at a GOAWAY (RFC 9113 6.8 lets streams in progress
    go on), so from the shutdown on the frames are read and written raw.
    """
    with h2_serve(echo_app([]), ws=ws_impl) as server, H2Client.connect(server.port) as client:
        stream = WebSocketStream(client)
        assert stream.response().status == 200
        server.server.should_exit = True
        frames = RawFrames(client.sock)
        ws_events: list[Event] = []
        goaways: list[GoAwayFrame] = []

        def both_arrived(frame: Frame) -> bool:
            # The GOAWAY and the close frame, in whichever order the connections shut down.
            if isinstance(frame, GoAwayFrame):
                goaways.append(frame)
            elif isinstance(frame, DataFrame) and frame.stream_id == stream.stream_id and frame.data:
                stream.ws.receive_data(frame.data)
                ws_events.extend(stream.ws.events())
            return bool(goaways) and any(isinstance(event, CloseConnection) for event in ws_events)

        frames.wait(both_arrived)
        assert goaways[0].error_code == 0 and goaways[0].last_stream_id == stream.stream_id
        (close,) = ws_events
        assert isinstance(close, CloseConnection) and close.code == 1012
        client.sock.sendall(DataFrame(stream.stream_id, data=stream.ws.send(close.response())).serialize())
        frames.wait(lambda f: isinstance(f, DataFrame) and f.stream_id == stream.stream_id and "END_STREAM" in f.flags)
        frames.wait_closed()


def test_flow_control_both_ways(h2_serve: Any, ws_impl: str) -> None:
    """A 1 MiB message each way through 64 KiB windows, in order and whole."""
    big = bytes(range(256)) * 4096
    with h2_serve(echo_app([]), ws=ws_impl) as server:
        with H2Client.connect(server.port, window=65535) as client:
            stream = WebSocketStream(client)
            assert stream.response().status == 200
            stream.send(BytesMessage(big))
            (echoed,) = stream.events(1)
            assert isinstance(echoed, BytesMessage) and bytes(echoed.data) == big[::-1]


def test_without_websockets_connect_is_not_announced_nor_served(h2_serve: Any) -> None:
    with h2_serve(echo_app([]), ws="none") as server, H2Client.connect(server.port) as client:
        assert settings_value(client, h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL) == 0
        stream = WebSocketStream(client)
        response = client.response(stream.stream_id, timeout=DEADLINE)
        assert response.status == 501
        assert client.get("/after").body == b"ok"
