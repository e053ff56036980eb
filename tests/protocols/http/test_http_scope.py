"""The ASGI `http` scope built from a request."""

from __future__ import annotations

from typing import Any

import pytest
from h1_support import RawClient, Recorder, get_request, respond, wait_until


def scope_recorder() -> tuple[Recorder, Any]:
    scopes = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scopes.add(dict(scope))
            await respond(send, body=b"ok")

    return scopes, app


def test_the_full_http_scope(serve: Any) -> None:
    scopes, app = scope_recorder()
    request = (
        b"GET /caf%C3%A9/a%2Fb%20c?x=1&y=%20&z=caf%C3%A9 HTTP/1.1\r\n"
        b"Host: example.test\r\n"
        b"X-Dup: one\r\n"
        b"X-Mixed-Case: Value Keeps Case\r\n"
        b"x-dup: two\r\n"
        b"X-Padded:   spaced value  \r\n"
        b"\r\n"
    )
    with serve(app) as server, RawClient.connect(server.port) as client:
        assert client.request(request).status == 200
        client_addr = client.sock.getsockname()
        server_port = server.port
        assert client.request(get_request("/plain", version="1.0")).status == 200

    first, second = scopes.snapshot()
    assert first["type"] == "http"
    assert first["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert first["http_version"] == "1.1"
    assert first["server"] == ("127.0.0.1", server_port)
    assert first["client"] == (client_addr[0], client_addr[1])
    assert first["scheme"] == "http"
    assert first["method"] == "GET"
    assert first["root_path"] == ""
    assert first["path"] == "/café/a/b c"
    assert first["raw_path"] == b"/caf%C3%A9/a%2Fb%20c"
    assert first["query_string"] == b"x=1&y=%20&z=caf%C3%A9"
    assert first["headers"] == [
        (b"host", b"example.test"),
        (b"x-dup", b"one"),
        (b"x-mixed-case", b"Value Keeps Case"),
        (b"x-dup", b"two"),
        (b"x-padded", b"spaced value"),
    ]
    assert all(isinstance(n, bytes) and isinstance(v, bytes) for n, v in first["headers"])
    assert first["state"] == {}
    assert isinstance(first["extensions"], dict)

    assert second["http_version"] == "1.0"
    assert [name for name, _ in second["headers"]] == [b"host"]
    assert second["path"] == "/plain" and second["raw_path"] == b"/plain"
    assert second["query_string"] == b""


def test_send_after_the_client_left_raises_oserror_as_spec_version_2_4_says(serve: Any) -> None:
    outcome = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive())["type"] != "http.disconnect":
            pass
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"too late"})
        except OSError as exc:
            outcome.add(exc)
        else:
            outcome.add("sent without an error")

    with serve(app) as server:
        with server.connect() as sock:
            sock.sendall(get_request("/"))
            wait_until(lambda: server.server.server_state.tasks, what="the app to start")
        (result,) = wait_until(outcome.snapshot, what="the app to send after the disconnect")
    assert isinstance(result, OSError), result


def test_absolute_form_target(serve: Any) -> None:
    scopes, app = scope_recorder()
    with serve(app) as server, RawClient.connect(server.port) as client:
        client.request(b"GET http://example.test/some/path?q=1 HTTP/1.1\r\nHost: example.test\r\n\r\n")
        client.request(b"OPTIONS * HTTP/1.1\r\nHost: example.test\r\n\r\n")
    absolute, asterisk = scopes.snapshot()
    assert (absolute["path"], absolute["raw_path"], absolute["query_string"]) == ("/some/path", b"/some/path", b"q=1")
    assert (asterisk["method"], asterisk["path"]) == ("OPTIONS", "*")


def test_state_is_a_per_request_copy_of_the_lifespan_state(serve: Any) -> None:
    seen = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope["state"]["db"] = "connected"
                    scope["state"]["counter"] = 0
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        seen.add(dict(scope["state"]))
        scope["state"]["counter"] += 1
        scope["state"]["leak"] = scope["path"]
        await respond(send, body=b"ok")

    with serve(app, lifespan="on") as server, RawClient.connect(server.port) as client:
        for path in ("/one", "/two"):
            assert client.request(get_request(path)).status == 200
        with RawClient.connect(server.port) as other:
            assert other.request(get_request("/three")).status == 200
    assert seen.snapshot() == [{"db": "connected", "counter": 0}] * 3


def test_lenient_but_valid_heads_read_alike(serve: Any) -> None:
    """Inputs one parser might normalise differently give the same scope with both."""
    scopes, app = scope_recorder()
    with serve(app) as server, RawClient.connect(server.port) as client:
        client.request(
            b"POST /x HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: Chunked\r\nX-Tabs:\t\tv\t \r\n"
            b"X-Empty:\r\nX-Obs-Text: caf\xc3\xa9\r\nContent-Type: a/b\r\n\r\n0\r\n\r\n"
        )
        client.request(b"GET /host-in-1.0 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    chunked_request, no_host = scopes.snapshot()
    assert chunked_request["headers"] == [
        (b"host", b"test"),
        (b"transfer-encoding", b"chunked"),
        (b"x-tabs", b"v"),
        (b"x-empty", b""),
        (b"x-obs-text", b"caf\xc3\xa9"),
        (b"content-type", b"a/b"),
    ]
    assert no_host["headers"] == [(b"connection", b"keep-alive")]
