"""How a connection becomes HTTP/2, on the port that serves HTTP/1.1.

Cleartext: the connection preface sent first (prior knowledge, RFC 9113
3.3), sniffed by the HTTP/1.1 connection, or `Upgrade: h2c` on an HTTP/1.1
request (RFC 7540 3.2), answered with 101 and the response on stream 1.
TLS: ALPN `h2`, with `http/1.1` for clients that offer only that or nothing.
`--no-http2` turns all of it off.  The HTTP/1.1 side takes part in each, so
every test runs under each `--http` implementation and each loop.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from typing import Any

import pytest
import trustme
from h2_apps import app
from h2_client import H2Client, client_ssl
from support import recv_all

HTTP11_GET = b"GET /scope HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n"


def http11_scope(sock: socket.socket) -> dict[str, Any]:
    sock.sendall(HTTP11_GET)
    head, _, body = recv_all(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    return json.loads(body)


def test_prior_knowledge_on_the_http11_port(serve: Any) -> None:
    with serve(app) as server:
        with H2Client.connect(server.port) as client:
            first = client.get("/scope")
            second = client.get("/scope?again")
        assert first.status == 200 and second.status == 200
        assert json.loads(first.body)["http_version"] == "2"
        assert json.loads(second.body)["query_string"] == "again"
        # The same port still speaks HTTP/1.1 to others.
        with server.connect() as sock:
            assert http11_scope(sock)["http_version"] == "1.1"


def test_preface_trickled_byte_by_byte(serve: Any) -> None:
    with serve(app) as server:
        with H2Client.connect(server.port, trickle=True) as client:
            response = client.get("/scope")
        assert json.loads(response.body)["http_version"] == "2"


def test_something_else_than_the_preface_is_http11(serve: Any) -> None:
    """A request that starts like the preface ("P...") is HTTP/1.1 all the same."""
    with serve(app) as server, server.connect() as sock:
        sock.sendall(b"POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
        head, _, body = recv_all(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and body == b"2"


def test_h2c_upgrade(serve: Any) -> None:
    with serve(app) as server:
        with H2Client.connect(server.port, upgrade_path="/scope?up=1") as client:
            assert b"upgrade: h2c" in client.upgrade_response.lower()
            first = client.response(1)
            second = client.get("/scope")
    scope = json.loads(first.body)
    assert first.status == 200
    assert scope["http_version"] == "2"
    assert (scope["method"], scope["path"], scope["query_string"]) == ("GET", "/scope", "up=1")
    names = [name for name, _ in scope["headers"]]
    # The HTTP/1.1 request's hop-by-hop fields are not part of the HTTP/2 request.
    assert not {"connection", "upgrade", "http2-settings"} & set(names), names
    assert scope["headers"][0] == ["host", "127.0.0.1"]
    assert json.loads(second.body)["http_version"] == "2"


def test_h2c_upgrade_with_a_body_is_served_as_http11(serve: Any) -> None:
    """RFC 7540 3.2 lets the server ignore the upgrade; it does for a request with a body."""
    request = (
        b"POST /scope HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nContent-Length: 2\r\n\r\nhi"
    )
    with serve(app) as server, server.connect() as sock:
        sock.sendall(request)
        head, _, body = recv_all(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert json.loads(body)["http_version"] == "1.1"


def test_no_http2(serve: Any) -> None:
    with serve(app, http2=False) as server:
        # Prior knowledge is just a malformed HTTP/1.1 request.
        with server.connect() as sock:
            sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            answer = recv_all(sock)
        assert answer.startswith(b"HTTP/1.1 4") or answer.startswith(b"HTTP/1.1 505"), answer
        # An upgrade request is answered over HTTP/1.1.
        with server.connect() as sock:
            sock.sendall(
                b"GET /scope HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\n"
                b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"
            )
            head, _, body = recv_all(sock).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert json.loads(body)["http_version"] == "1.1"


def tls_connect(port: int, ca: trustme.CA, alpn: list[str] | None) -> ssl.SSLSocket:
    return client_ssl(ca, alpn).wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="127.0.0.1")


@pytest.mark.parametrize(
    ("offered", "selected"),
    [(["h2", "http/1.1"], "h2"), (["h2"], "h2"), (["http/1.1"], "http/1.1"), (None, None)],
    ids=["h2+http1.1", "h2", "http1.1", "no-alpn"],
)
def test_alpn(serve: Any, ca: trustme.CA, tls_files: dict[str, str], offered: list[str] | None, selected: str | None) -> None:
    with serve(app, ssl_certfile=tls_files["cert"], ssl_keyfile=tls_files["key"]) as server:
        sock = tls_connect(server.port, ca, offered)
        assert sock.selected_alpn_protocol() == selected
        if selected == "h2":
            with H2Client(sock) as client:
                scope = json.loads(client.get("/scope").body)
            assert scope["http_version"] == "2"
            assert scope["scheme"] == "https"
            assert "tls" in scope["extensions"]
        else:
            with sock:
                scope = http11_scope(sock)
            assert (scope["http_version"], scope["scheme"]) == ("1.1", "https")


def test_alpn_without_http2(serve: Any, ca: trustme.CA, tls_files: dict[str, str]) -> None:
    with serve(app, http2=False, ssl_certfile=tls_files["cert"], ssl_keyfile=tls_files["key"]) as server:
        with tls_connect(server.port, ca, ["h2", "http/1.1"]) as sock:
            assert sock.selected_alpn_protocol() == "http/1.1"
            assert http11_scope(sock)["http_version"] == "1.1"


def test_shutdown_does_not_wait_for_an_idle_http11_tls_connection(serve: Any, ca: trustme.CA, tls_files: dict[str, str]) -> None:
    """ALPN http/1.1, one request answered, then a client that neither sends nor reads (a browser's pooled socket).

    Closing a TLS connection waits for the peer's close_notify, which such a
    client never sends: the server must not wait for it for long (test_h2_streams.py has the HTTP/2 case).
    """
    with serve(app, ssl_certfile=tls_files["cert"], ssl_keyfile=tls_files["key"]) as server:
        with tls_connect(server.port, ca, ["http/1.1"]) as sock:
            sock.sendall(b"GET /scope HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
            started = time.monotonic()
            server.server.should_exit = True
            server.thread.join(10)
            assert not server.thread.is_alive()
            assert time.monotonic() - started < 4
