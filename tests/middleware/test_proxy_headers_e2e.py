"""Forwarded headers end to end: a real server, real sockets, and what the app sees.

The unit tests of the parsing live in test_proxy_headers_parsing.py; these
check the wiring: `--proxy-headers`, `--forwarded-allow-ips` (addresses,
networks, `*`, Unix socket paths) and that each request is judged alone.
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

FORGED = {"X-Forwarded-For": "203.0.113.50", "X-Forwarded-Proto": "https"}


async def scope_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    described = {"client": scope["client"], "scheme": scope["scheme"]}
    if scope["path"] == "/host":
        described["host"] = dict(scope["headers"]).get(b"host", b"").decode()
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


def get(server: Any, headers: dict[str, str], path: str = "/") -> dict[str, Any]:
    response = httpx.get(server.url + path, headers=headers, timeout=5)
    assert response.status_code == 200
    return response.json()


def test_trusted_peer_sets_client_and_scheme(serve: Any) -> None:
    with serve(scope_app) as server:  # trusts 127.0.0.1 by default
        assert get(server, FORGED) == {"client": ["203.0.113.50", 0], "scheme": "https"}
        # The chain is read from the right, past trusted proxies.
        chain = get(server, {"X-Forwarded-For": "198.51.100.1, 203.0.113.50, 127.0.0.1"})
        assert chain["client"] == ["203.0.113.50", 0]
        assert get(server, {"X-Forwarded-For": "[2001:db8::5]:9999"})["client"] == ["2001:db8::5", 0]
        assert get(server, {"X-Forwarded-Proto": "ftp"})["scheme"] == "http"  # not a scheme: ignored


def test_untrusted_peer_changes_nothing(serve: Any) -> None:
    with serve(scope_app, forwarded_allow_ips="10.9.8.7") as server:
        scope = get(server, {**FORGED, "Forwarded": 'for="[2001:db8::1]";proto=https'})
    assert scope["client"][0] == "127.0.0.1" and scope["client"][1] != 0
    assert scope["scheme"] == "http"


def test_proxy_headers_can_be_turned_off(serve: Any) -> None:
    with serve(scope_app, proxy_headers=False) as server:
        scope = get(server, FORGED)
    assert scope["client"][0] == "127.0.0.1" and scope["scheme"] == "http"


def test_star_trusts_every_hop(serve: Any) -> None:
    with serve(scope_app, forwarded_allow_ips="*") as server:
        # With every hop trusted, the leftmost address is the client.
        scope = get(server, {"X-Forwarded-For": "198.51.100.1, 203.0.113.50", "X-Forwarded-Proto": "https"})
    assert scope == {"client": ["198.51.100.1", 0], "scheme": "https"}


def test_networks(serve: Any) -> None:
    with serve(scope_app, forwarded_allow_ips="127.0.0.0/8, 10.0.0.0/8") as server:
        scope = get(server, {"X-Forwarded-For": "198.51.100.1, 203.0.113.50, 10.20.30.40"})
        assert scope["client"] == ["203.0.113.50", 0]
    with serve(scope_app, forwarded_allow_ips="10.0.0.0/8") as server:  # 127.0.0.1 is outside
        assert get(server, FORGED)["scheme"] == "http"


def test_rfc7239_forwarded(serve: Any) -> None:
    with serve(scope_app) as server:
        ipv6 = get(server, {"Forwarded": 'for="[2001:db8::1]:4711";proto=https;host="example.org:8443"'}, "/host")
        assert ipv6 == {"client": ["2001:db8::1", 4711], "scheme": "https", "host": "example.org:8443"}
        # Several proxies, several header lines: the rightmost untrusted hop.
        hops = get(server, {"Forwarded": "for=198.51.100.1;proto=http, for=203.0.113.50;proto=https, for=127.0.0.1"})
        assert hops == {"client": ["203.0.113.50", 0], "scheme": "https"}
        # Forwarded wins over X-Forwarded-*.
        both = get(server, {"Forwarded": "for=192.0.2.60", **FORGED})
        assert both == {"client": ["192.0.2.60", 0], "scheme": "http"}


def test_each_request_is_judged_alone(serve: Any) -> None:
    """A keep-alive connection: forwarded headers of one request do not stick to the next."""
    with serve(scope_app) as server:
        with server.connect() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.50\r\n\r\n")
            first = read_json(sock)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            second = read_json(sock)
            port = sock.getsockname()[1]
    assert first["client"] == ["203.0.113.50", 0]
    assert second["client"] == ["127.0.0.1", port]


def test_websocket_scheme_is_wss(serve: Any) -> None:
    from websockets.sync.client import connect

    with serve(scope_app, ws="websockets") as server:
        url = f"ws://127.0.0.1:{server.port}/"
        with connect(url, additional_headers=FORGED, open_timeout=5) as websocket:
            forwarded = json.loads(websocket.recv(timeout=5))
        with connect(url, additional_headers={"X-Forwarded-Proto": "http"}, open_timeout=5) as websocket:
            plain = json.loads(websocket.recv(timeout=5))
    assert forwarded == {"client": ["203.0.113.50", 0], "scheme": "wss"}
    assert plain["scheme"] == "ws"


# --- Unix sockets -----------------------------------------------------------------------


@pytest.fixture
def socket_path() -> Iterator[str]:
    # Not tmp_path: Unix socket paths are limited to about 100 bytes.
    directory = tempfile.mkdtemp(prefix="squall-")
    yield str(Path(directory) / "squall.sock")
    shutil.rmtree(directory, ignore_errors=True)


def get_over_unix_socket(path: str, headers: dict[str, str]) -> dict[str, Any]:
    with httpx.Client(transport=httpx.HTTPTransport(uds=path), timeout=5) as client:
        response = client.get("http://squall/", headers=headers)
    assert response.status_code == 200
    return response.json()


def test_unix_socket_peer_trusted_by_path(serve: Any, socket_path: str) -> None:
    with serve(scope_app, uds=socket_path, forwarded_allow_ips=[socket_path]):
        assert get_over_unix_socket(socket_path, FORGED) == {"client": ["203.0.113.50", 0], "scheme": "https"}
        # Without forwarded headers a Unix socket client has no address.
        assert get_over_unix_socket(socket_path, {}) == {"client": None, "scheme": "http"}


def test_unix_socket_peer_not_trusted_by_addresses(serve: Any, socket_path: str) -> None:
    # The default 127.0.0.1,::1 says nothing about Unix socket peers.
    with serve(scope_app, uds=socket_path):
        assert get_over_unix_socket(socket_path, FORGED) == {"client": None, "scheme": "http"}


def read_json(sock: socket.socket) -> dict[str, Any]:
    """One JSON response with a Content-Length."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "closed before the response"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed in the middle of the response"
        body += chunk
    return json.loads(body)
