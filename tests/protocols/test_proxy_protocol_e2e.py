"""`--proxy-protocol` end to end: a raw socket sends a PROXY header, then HTTP (or TLS).

The app answers with the scope's client and scheme, so each test checks
what an application would actually see.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import ssl
import struct
import time
from typing import Any

import pytest
import trustme

from squall.protocols import proxy_reader

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
REQUEST = b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n"
CLOSING_REQUEST = b"GET / HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n"


async def scope_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    described = {"client": scope["client"], "scheme": scope["scheme"], "tls": "tls" in scope["extensions"]}
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(described)})
        await send({"type": "websocket.close"})
        return
    body = json.dumps(described).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def v2_header(source: tuple[str, int] | None, *, tlvs: bytes = b"") -> bytes:
    """A PROXY v2 header: PROXY command over TCP to port 443, or LOCAL when *source* is None."""
    if source is None:
        return V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", len(tlvs)) + tlvs
    src = ipaddress.ip_address(source[0])
    dst = ipaddress.ip_address("192.0.2.1" if src.version == 4 else "2001:db8::1")
    family = 0x11 if src.version == 4 else 0x21
    addresses = src.packed + dst.packed + struct.pack("!HH", source[1], 443)
    return V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(addresses) + len(tlvs)) + addresses + tlvs


def v2_unix_header() -> bytes:
    addresses = b"/run/client.sock".ljust(108, b"\x00") + b"/run/haproxy.sock".ljust(108, b"\x00")
    return V2_SIGNATURE + bytes([0x21, 0x31]) + struct.pack("!H", len(addresses)) + addresses


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length body, or b"" if the server closes first."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def scope_of(response: bytes) -> dict[str, Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), response
    return json.loads(body)


def closed_without_response(sock: socket.socket, timeout: float = 5.0) -> bool:
    """Whether the server closes the connection having sent nothing."""
    sock.settimeout(timeout)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def exchange(server: Any, data: bytes) -> dict[str, Any]:
    with server.connect() as sock:
        sock.sendall(data)
        return scope_of(read_response(sock))


HEADERS = {
    "v1 TCP4": (b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n", ["203.0.113.7", 56324]),
    "v1 TCP6": (b"PROXY TCP6 2001:db8::7 2001:db8::1 4242 443\r\n", ["2001:db8::7", 4242]),
    "v2 TCP4": (v2_header(("198.51.100.9", 61000)), ["198.51.100.9", 61000]),
    "v2 TCP6 with TLVs": (
        # An ALPN TLV and a NOOP TLV, which the server must skip.
        v2_header(("2001:db8::9", 1234), tlvs=b"\x01\x00\x02h2" + b"\x04\x00\x03abc"),
        ["2001:db8::9", 1234],
    ),
}


def test_client_is_the_proxy_source(serve: Any) -> None:
    with serve(scope_app, proxy_protocol=True) as server:
        for name, (header, client) in HEADERS.items():
            with server.connect() as sock:
                # Header and request in one segment: the HTTP parser gets the rest.
                sock.sendall(header + REQUEST)
                first = scope_of(read_response(sock))
                # Later requests on the connection keep the address.
                sock.sendall(REQUEST)
                second = scope_of(read_response(sock))
            assert first["client"] == second["client"] == client, name
            assert first["scheme"] == "http", name


def test_headers_without_an_address_keep_the_real_peer(serve: Any) -> None:
    headers = {
        "v1 UNKNOWN": b"PROXY UNKNOWN\r\n",
        "v1 UNKNOWN with addresses": b"PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n",
        "v2 LOCAL": v2_header(None),
        "v2 Unix": v2_unix_header(),
    }
    with serve(scope_app, proxy_protocol=True) as server:
        for name, header in headers.items():
            with server.connect() as sock:
                sock.sendall(header + CLOSING_REQUEST)
                scope = scope_of(read_response(sock))
                assert scope["client"] == ["127.0.0.1", sock.getsockname()[1]], name


def test_header_trickled_byte_by_byte(serve: Any) -> None:
    data = b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n" + CLOSING_REQUEST
    with serve(scope_app, proxy_protocol=True) as server:
        with server.connect() as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(data)):
                sock.send(data[i : i + 1])
            assert scope_of(read_response(sock))["client"] == ["203.0.113.7", 56324]


async def body_length_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    length = 0
    more_body = True
    while more_body:
        message = await receive()
        length += len(message.get("body", b""))
        more_body = message.get("more_body", False)
    body = json.dumps({"client": scope["client"], "length": length}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


def test_request_body_sent_with_the_header(serve: Any) -> None:
    """Header, request head and a body larger than any read buffer, in one go."""
    body = b"x" * (3 * 1024 * 1024)
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    with serve(body_length_app, proxy_protocol=True) as server:
        scope = exchange(server, v2_header(("203.0.113.7", 4000)) + request + body)
    assert scope == {"client": ["203.0.113.7", 4000], "length": len(body)}


MALFORMED = {
    "no header": CLOSING_REQUEST,
    "v1 bad address": b"PROXY TCP4 203.0.113.999 192.0.2.1 1 2\r\n" + CLOSING_REQUEST,
    "v1 too long": b"PROXY TCP4 " + b"1" * 120,
    "v1 wrong family": b"PROXY TCP4 2001:db8::1 192.0.2.1 1 2\r\n" + CLOSING_REQUEST,
    "v2 bad version": V2_SIGNATURE + b"\x31\x11\x00\x0c" + bytes(12) + CLOSING_REQUEST,
    "v2 address block too short": V2_SIGNATURE + b"\x21\x11\x00\x04" + bytes(4) + CLOSING_REQUEST,
}


def test_malformed_header_closes_the_connection(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    with serve(scope_app, proxy_protocol=True) as server:
        for name, data in MALFORMED.items():
            with server.connect() as sock:
                sock.sendall(data)
                assert closed_without_response(sock), name
        # The server itself is fine.
        assert exchange(server, b"PROXY TCP4 203.0.113.7 192.0.2.1 1 2\r\n" + CLOSING_REQUEST)["client"] == ["203.0.113.7", 1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("Closing a connection from 127.0.0.1" in message for message in warnings) == len(MALFORMED)


def test_incomplete_header_times_out(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proxy_reader, "HEADER_TIMEOUT", 0.3)
    with serve(scope_app, proxy_protocol=True) as server:
        with server.connect() as silent, server.connect() as partial:
            partial.sendall(b"PROXY TCP4 203.0.113.7 ")
            started = time.monotonic()
            assert closed_without_response(silent) and closed_without_response(partial)
            assert time.monotonic() - started < 3


def test_eof_before_header_closes(serve: Any) -> None:
    with serve(scope_app, proxy_protocol=True) as server:
        with server.connect() as sock:
            sock.sendall(b"PROXY TCP4 ")
            sock.shutdown(socket.SHUT_WR)
            assert closed_without_response(sock)


def test_forwarded_headers_are_trusted_by_the_proxy_source(serve: Any) -> None:
    """The PROXY source is the peer whose forwarded headers are trusted or not."""
    request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.77\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"
    with serve(scope_app, proxy_protocol=True, forwarded_allow_ips="10.0.0.0/8") as server:
        trusted = exchange(server, b"PROXY TCP4 10.1.2.3 10.0.0.1 5000 80\r\n" + request)
        untrusted = exchange(server, b"PROXY TCP4 203.0.113.7 10.0.0.1 5000 80\r\n" + request)
    assert trusted == {"client": ["198.51.100.77", 0], "scheme": "https", "tls": False}
    assert untrusted == {"client": ["203.0.113.7", 5000], "scheme": "http", "tls": False}


def test_websocket_keeps_the_proxy_source(serve: Any) -> None:
    from websockets.sync.client import connect

    with serve(scope_app, proxy_protocol=True, ws="websockets") as server:
        sock = server.connect()
        sock.sendall(v2_header(("198.51.100.9", 61000)))
        with connect(f"ws://127.0.0.1:{server.port}/", sock=sock, open_timeout=5) as websocket:
            scope = json.loads(websocket.recv(timeout=5))
    assert scope == {"client": ["198.51.100.9", 61000], "scheme": "ws", "tls": False}


# --- with TLS -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ssl.SSLContext]:
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("proxy-tls") / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(path))
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return str(path), ctx


def tls_request(sock: socket.socket, ctx: ssl.SSLContext, prefix: bytes, request: bytes) -> bytes:
    """TLS over *sock* driven by hand, so that *prefix* and the ClientHello go out in one segment."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")

    def pump() -> None:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the server")
        incoming.write(data)

    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    sock.sendall(prefix + outgoing.read())
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            pump()
            sock.sendall(outgoing.read())
    # The request goes out with the client's Finished message.
    tls.write(request)
    sock.sendall(outgoing.read())
    response = b""
    while True:
        try:
            chunk = tls.read(65536)
        except ssl.SSLWantReadError:
            pump()
            continue
        except ssl.SSLZeroReturnError:
            break
        if not chunk:
            break
        response += chunk
    return response


@pytest.mark.parametrize("header", [b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n", v2_header(("203.0.113.7", 56324))], ids=["v1", "v2"])
def test_proxy_protocol_with_tls(serve: Any, tls: tuple[str, ssl.SSLContext], header: bytes) -> None:
    certfile, ctx = tls
    with serve(scope_app, proxy_protocol=True, ssl_certfile=certfile) as server:
        with server.connect() as sock:
            scope = scope_of(tls_request(sock, ctx, header, CLOSING_REQUEST))
    assert scope == {"client": ["203.0.113.7", 56324], "scheme": "https", "tls": True}


def test_proxy_protocol_with_tls_rejects_bad_header_and_bad_handshake(
    serve: Any, tls: tuple[str, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    certfile, ctx = tls
    with serve(scope_app, proxy_protocol=True, ssl_certfile=certfile) as server:
        with server.connect() as sock:  # a header, then a reset instead of a handshake
            sock.sendall(b"PROXY TCP4 203.0.113.7 192.0.2.1 1 2\r\n")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with server.connect() as sock:  # TLS without the header
            with pytest.raises((ConnectionError, ssl.SSLError)):
                tls_request(sock, ctx, b"", CLOSING_REQUEST)
        with server.connect() as sock:  # a header, then plain HTTP instead of TLS
            sock.sendall(b"PROXY TCP4 203.0.113.7 192.0.2.1 1 2\r\n" + CLOSING_REQUEST)
            assert not read_response(sock).startswith(b"HTTP/")
        with server.connect() as sock:
            scope = scope_of(tls_request(sock, ctx, b"PROXY TCP4 203.0.113.8 192.0.2.1 1 2\r\n", CLOSING_REQUEST))
    assert scope["client"] == ["203.0.113.8", 1]
    # Failed handshakes are the clients' business, not errors of the server.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_shutdown_closes_a_connection_still_waiting_for_its_header(serve: Any) -> None:
    with serve(scope_app, proxy_protocol=True) as server:
        sock = server.connect()
        sock.sendall(b"PROXY TCP4 ")  # and nothing more
        deadline = time.monotonic() + 5
        while not server.server.server_state.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.server.server_state.connections
        started = time.monotonic()
        server.server.should_exit = True
        assert closed_without_response(sock)
        server.thread.join(5)
        assert not server.thread.is_alive()
        # Well before the reader's own header deadline would have closed it.
        assert time.monotonic() - started < proxy_reader.HEADER_TIMEOUT / 2
        sock.close()
