"""ASGI behaviour of an accepted WebSocket: scope, messages, closing, and the app's mistakes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import websockets.exceptions
from websockets.sync.client import connect
from support import recv_until
from ws_helpers import Recorder, WsprotoClient, client_frame, echo_app, wait_until
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.frame_protocol import CloseReason

LOOP_IMPLS = ["asyncio", "uvloop"]


@pytest.mark.parametrize("loop_impl", LOOP_IMPLS)
def test_echo_text_and_bytes(ws_serve: Any) -> None:
    recorder = Recorder()
    with ws_serve(echo_app(recorder)) as server:
        with connect(f"ws://127.0.0.1:{server.port}/", max_size=None) as client:
            client.send("héllo")
            assert client.recv() == "héllo"
            client.send(b"\x00\xff")
            assert client.recv() == b"\x00\xff"
            client.send("")
            assert client.recv() == ""
            big = bytes(range(256)) * 4096  # 1 MiB, many TCP segments
            client.send(big)
            assert client.recv() == big
            client.close(code=4000, reason="done")
        assert recorder.get() == {"type": "websocket.disconnect", "code": 4000, "reason": "done"}


@pytest.mark.parametrize("loop_impl", LOOP_IMPLS)
def test_wsproto_client(ws_serve: Any) -> None:
    recorder = Recorder()
    with ws_serve(echo_app(recorder)) as server, WsprotoClient(server.port, "/w") as client:
        assert client.accepted
        client.send_text("one")
        assert client.receive_message() == "one"
        client.send_bytes(b"two")
        assert client.receive_message() == b"two"
        # A fragmented message, with a ping between its fragments.
        client.send(TextMessage(data="fra", message_finished=False))
        client.send(Ping(payload=b"mid"))
        client.send(TextMessage(data="gment", message_finished=True))
        assert client.next_event() == Pong(payload=b"mid")
        assert client.receive_message() == "fragment"
        client.send(BytesMessage(data=b"ab", message_finished=False))
        client.send(BytesMessage(data=b"cd", message_finished=True))
        assert client.receive_message() == b"abcd"
        reply = client.close(1001, "away")
        assert (reply.code, reply.reason) == (1001, "away")
        client.wait_closed()
        assert recorder.get() == {"type": "websocket.disconnect", "code": 1001, "reason": "away"}


def test_close_without_code_is_1005(ws_serve: Any) -> None:
    recorder = Recorder()
    with ws_serve(echo_app(recorder)) as server, WsprotoClient(server.port) as client:
        client.send(CloseConnection(code=CloseReason.NO_STATUS_RCVD))  # an empty close frame
        reply = client.events_until(CloseConnection)[-1]
        assert reply.code == 1005
        client.wait_closed()
        assert recorder.get() == {"type": "websocket.disconnect", "code": 1005, "reason": ""}


def test_dropped_connection_is_1006(ws_serve: Any) -> None:
    recorder = Recorder()
    with ws_serve(echo_app(recorder)) as server:
        client = WsprotoClient(server.port)
        client.send_text("x")
        assert client.receive_message() == "x"
        client.sock.close()
        assert recorder.get() == {"type": "websocket.disconnect", "code": 1006, "reason": ""}


def test_scope(ws_serve: Any) -> None:
    recorder = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        recorder.put(scope)
        await receive()
        await send({"type": "websocket.close"})

    with ws_serve(app, root_path="/root") as server:
        port = server.port
        with pytest.raises(websockets.exceptions.InvalidStatus):
            connect(
                f"ws://127.0.0.1:{server.port}/caf%C3%A9/x?q=1&r=%20",
                subprotocols=["chat", "superchat"],
                additional_headers={"X-Custom": "Value"},
            )
        scope = recorder.get()
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["server"] == ("127.0.0.1", port)
    assert scope["client"][0] == "127.0.0.1" and isinstance(scope["client"][1], int)
    assert scope["root_path"] == "/root"
    assert scope["path"] == "/root/café/x"
    assert scope["raw_path"] == b"/root/caf%C3%A9/x"
    assert scope["query_string"] == b"q=1&r=%20"
    assert scope["subprotocols"] == ["chat", "superchat"]
    assert scope["state"] == {}
    assert scope["extensions"] == {"websocket.http.response": {}}
    headers = dict(scope["headers"])
    assert headers[b"x-custom"] == b"Value"
    assert headers[b"upgrade"] == b"websocket"
    assert all(name == name.lower() for name, _ in scope["headers"])


def test_accept_with_subprotocol_and_headers(ws_serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": "superchat",
                "headers": [(b"x-extra", b"1"), (b"set-cookie", b"a=b")],
            }
        )
        await send({"type": "websocket.send", "text": "hi"})
        await receive()

    with ws_serve(app) as server, connect(f"ws://127.0.0.1:{server.port}/", subprotocols=["chat", "superchat"]) as client:
        assert client.subprotocol == "superchat"
        assert client.response.headers["x-extra"] == "1"
        assert client.response.headers["set-cookie"] == "a=b"
        assert client.response.headers["server"] == "squall"
        assert client.recv() == "hi"


def test_app_close_code_and_reason_reach_the_client(ws_serve: Any) -> None:
    recorder = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4321, "reason": "custom reason"})
        recorder.put(await receive())

    with ws_serve(app) as server, WsprotoClient(server.port) as client:
        close = client.events_until(CloseConnection)[-1]
        assert (close.code, close.reason) == (4321, "custom reason")
        client.send(close.response())
        client.wait_closed()
        assert recorder.get() == {"type": "websocket.disconnect", "code": 4321, "reason": "custom reason"}


@pytest.mark.parametrize(("failed", "code"), [(False, 1000), (True, 1011)])
def test_app_ending_an_open_websocket_closes_it(ws_serve: Any, failed: bool, code: int) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        if failed:
            raise RuntimeError("the app fails after accepting")

    with ws_serve(app) as server, WsprotoClient(server.port) as client:
        close = client.events_until(CloseConnection)[-1]
        assert close.code == code
        client.send(close.response())
        client.wait_closed()


def _mistake_app(recorder: Recorder, messages: list[dict[str, Any]]) -> Any:
    """Sends `messages` in turn; records what the last one raised."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        for message in messages[:-1]:
            await send(message)
        try:
            await send(messages[-1])
        except Exception as exc:
            recorder.put(exc)
            raise
        recorder.put(None)

    return app


ACCEPT = {"type": "websocket.accept"}
CLOSE = {"type": "websocket.close"}
SEND = {"type": "websocket.send", "text": "x"}


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        pytest.param([SEND], "Expected ASGI message 'websocket.accept'", id="send-before-accept"),
        pytest.param([ACCEPT, ACCEPT], "already accepted", id="accept-twice"),
        pytest.param([ACCEPT, CLOSE, SEND], "after the WebSocket was closed", id="send-after-close"),
        pytest.param([ACCEPT, CLOSE, CLOSE], "after the WebSocket was closed", id="close-after-close"),
        pytest.param([CLOSE, ACCEPT], "after the WebSocket was closed", id="accept-after-reject"),
        pytest.param([ACCEPT, {"type": "websocket.send"}], "one of 'bytes' or 'text'", id="send-nothing"),
        pytest.param([ACCEPT, {"type": "websocket.send", "text": "a", "bytes": b"b"}], "not both", id="send-both"),
        pytest.param([ACCEPT, {"type": "websocket.send", "bytes": "str"}], "must be bytes", id="send-str-as-bytes"),
        pytest.param([ACCEPT, {"type": "websocket.close", "code": 1006}], "Invalid WebSocket close code", id="code-1006"),
        pytest.param([ACCEPT, {"type": "websocket.close", "code": 999}], "Invalid WebSocket close code", id="code-999"),
        pytest.param([ACCEPT, {"type": "websocket.close", "reason": "é" * 70}], "longer than 123 bytes", id="long-reason"),
        pytest.param([{"type": "websocket.accept", "subprotocol": "nope"}], "did not offer", id="unoffered-subprotocol"),
        pytest.param([ACCEPT, {"type": "http.response.start"}], "Expected ASGI message 'websocket.send'", id="http-message"),
        pytest.param(
            [{"type": "websocket.http.response.start", "status": 200}, SEND],
            "Expected ASGI message 'websocket.http.response.body'",
            id="send-during-denial",
        ),
    ],
)
def test_messages_in_the_wrong_state_raise(ws_serve: Any, messages: list[dict[str, Any]], error: str) -> None:
    recorder = Recorder()
    with ws_serve(_mistake_app(recorder, messages)) as server, WsprotoClient(server.port):
        raised = recorder.get()
    assert isinstance(raised, RuntimeError), raised
    assert error in str(raised)


def test_send_after_the_client_left_raises_oserror(ws_serve: Any) -> None:
    recorder = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        recorder.put(await receive())
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except OSError as exc:
            recorder.put(exc)
        # Closing a connection that is already gone is harmless.
        await send({"type": "websocket.close"})
        recorder.put("closed")

    with ws_serve(app) as server:
        with WsprotoClient(server.port) as client:
            client.close()
        assert recorder.get()["type"] == "websocket.disconnect"
        assert isinstance(recorder.get(), OSError)
        assert recorder.get() == "closed"


def test_receive_after_disconnect_keeps_returning_disconnect(ws_serve: Any) -> None:
    recorder = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        first = await receive()
        second = await asyncio.wait_for(receive(), 5)
        recorder.put((first, second))

    with ws_serve(app) as server:
        with WsprotoClient(server.port) as client:
            client.close(1000)
        first, second = recorder.get()
    assert first == second == {"type": "websocket.disconnect", "code": 1000, "reason": ""}


def test_messages_before_the_peer_close_are_delivered_first(ws_serve: Any) -> None:
    recorder = Recorder()
    started = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        started.put(True)
        await asyncio.sleep(0)
        while True:
            message = await receive()
            recorder.put(message)
            if message["type"] == "websocket.disconnect":
                return

    with ws_serve(app) as server, WsprotoClient(server.port) as client:
        started.get()
        client.send_text("a")
        client.send_text("b")
        client.send(CloseConnection(code=1000))
        client.wait_closed()
        seen = [recorder.get() for _ in range(3)]
    assert [m.get("text") for m in seen[:2]] == ["a", "b"]
    assert seen[2]["type"] == "websocket.disconnect"


def test_connection_is_tracked_by_the_server(ws_serve: Any) -> None:
    """A WebSocket counts as a connection with a task, and the keep-alive timeout does not apply to it."""
    with ws_serve(echo_app(), timeout_keep_alive=0.5, ws_ping_interval=None) as server:
        state = server.server.server_state
        with connect(f"ws://127.0.0.1:{server.port}/") as client:
            client.send("x")
            assert client.recv() == "x"
            assert len(state.connections) == 1
            assert len(state.tasks) == 1
            # Two timeout sweeps (twice a second) past the keep-alive timeout.
            silent_until = time.monotonic() + 1.6
            while time.monotonic() < silent_until:
                with pytest.raises(TimeoutError):
                    client.recv(timeout=silent_until - time.monotonic())
            client.send("y")
            assert client.recv(timeout=5) == "y"
        wait_until(lambda: not state.connections and not state.tasks, what="the connection and its task to end")


@pytest.mark.parametrize("late", ["too-big", "bad-utf8", "plain", "ping"])
def test_data_after_our_close_frame_is_ignored_safely(ws_serve: Any, caplog: pytest.LogCaptureFixture, late: str) -> None:
    """What the peer sends between our close frame and its own is dropped (pings are still answered); bad data fails at once."""
    recorder = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})
        recorder.put(await receive())

    with ws_serve(app, ws_max_size=1024) as server, WsprotoClient(server.port) as client:
        assert client.events_until(CloseConnection)[-1].code == 1000
        if late == "too-big":
            client.sock.sendall(client_frame(b"x" * 2000))
        elif late == "bad-utf8":
            client.sock.sendall(b"\x81\x82\x00\x00\x00\x00\xc3\x28")  # a masked text frame of invalid UTF-8
        elif late == "ping":  # RFC 6455 5.5.2: answered until the peer's close frame, even after ours
            client.sock.sendall(b"\x89\x84\x00\x00\x00\x00ping")  # masked with a zero key
            # Read raw: a wsproto client ignores what arrives after the peer's close frame.
            assert b"\x8a\x04ping" in recv_until(client.sock, b"\x8a\x04ping")
            client.send(CloseConnection(code=1000))
        else:  # harmless: the server goes on waiting for the close frame
            client.sock.sendall(client_frame("late"))
            client.send(CloseConnection(code=1000))
        client.wait_closed()
        assert recorder.get() == {"type": "websocket.disconnect", "code": 1000, "reason": ""}
    assert not [r for r in caplog.records if r.levelno >= 40], [r.getMessage() for r in caplog.records]
