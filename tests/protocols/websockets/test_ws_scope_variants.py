"""The scope over TLS, through a trusted proxy, and for ASGI2 apps."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.sync.client import connect
from ws_helpers import Recorder


def _scope_app(recorder: Recorder) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        recorder.put(scope)
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": scope["scheme"]})
        await receive()

    return app


def test_tls_scope_is_wss_with_the_tls_extension(ws_serve: Any, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    recorder = Recorder()
    with ws_serve(_scope_app(recorder), ssl_certfile=str(certfile), ssl_keyfile=str(keyfile)) as server:
        with connect(f"wss://127.0.0.1:{server.port}/secure", ssl=client_context) as client:
            assert client.recv() == "wss"
        scope = recorder.get()
    assert scope["scheme"] == "wss"
    assert scope["extensions"]["websocket.http.response"] == {}
    tls = scope["extensions"]["tls"]
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert tls["client_cert_chain"] == []


def test_trusted_proxy_headers_rewrite_scheme_and_client(ws_serve: Any) -> None:
    recorder = Recorder()
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    with ws_serve(_scope_app(recorder), forwarded_allow_ips="127.0.0.1") as server:
        with connect(f"ws://127.0.0.1:{server.port}/", additional_headers=headers) as client:
            assert client.recv() == "wss"
        scope = recorder.get()
    assert scope["client"][0] == "203.0.113.7"


@pytest.mark.parametrize("interface", ["asgi2", "asgi3"])
def test_asgi_version(ws_serve: Any, interface: str) -> None:
    recorder = Recorder()
    asgi3 = _scope_app(recorder)

    class ASGI2App:
        def __init__(self, scope: dict[str, Any]) -> None:
            self.scope = scope

        async def __call__(self, receive: Any, send: Any) -> None:
            await asgi3(self.scope, receive, send)

    app = ASGI2App if interface == "asgi2" else asgi3
    with ws_serve(app, interface=interface) as server:
        with connect(f"ws://127.0.0.1:{server.port}/") as client:
            assert client.recv() == "ws"
        scope = recorder.get()
    expected = "2.0" if interface == "asgi2" else "3.0"
    assert scope["asgi"] == {"version": expected, "spec_version": "2.4"}


def test_proxy_protocol_client_reaches_the_websocket_scope(ws_serve: Any) -> None:
    """The address from a PROXY header, known to the HTTP connection, survives the upgrade."""
    import socket

    from ws_helpers import TIMEOUT, handshake_request

    recorder = Recorder()
    with ws_serve(_scope_app(recorder), proxy_protocol=True) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n" + handshake_request())
            sock.settimeout(TIMEOUT)
            assert sock.recv(4096).startswith(b"HTTP/1.1 101 ")
        scope = recorder.get()
    assert scope["client"] == ("203.0.113.7", 56324)
