"""Each HTTP/2 stream is one ASGI `http` scope, with what the server's options add.

RFC 9113 8.3: the pseudo-header fields carry the method, scheme, authority
and path; they are not headers, `:authority` takes the place of Host
(first in the list), and cookie fields split by the client are one again
(8.2.3).  The options that shape HTTP/1.1 scopes and responses apply to
HTTP/2 alike: --root-path, --proxy-headers, --proxy-protocol,
--limit-concurrency, default headers and the access log.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from h2_apps import app
from h2_client import FrameClient, H2Client, request_headers
from support import wait_until


def scope_of(client: H2Client, path: str = "/scope", headers: Any = ()) -> dict[str, Any]:
    response = client.get(path, headers)
    assert response.status == 200, response
    return json.loads(response.body)


def test_scope(h2_serve: Any) -> None:
    with h2_serve(app) as server, H2Client.connect(server.port, authority="example.org:8443") as client:
        extra = [("user-agent", "h2-test"), ("cookie", "a=1"), ("x-one", "1"), ("cookie", "b=2"), ("x-two", "2"), ("cookie", "c=3")]
        scope = scope_of(client, "/scope/a%20b/%C3%A9?x=1&y=%20", extra)
        port, server_port = client.sock.getsockname()[1], server.port
    assert scope["type"] == "http"
    assert scope["http_version"] == "2"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope/a b/é"
    assert scope["raw_path"] == "/scope/a%20b/%C3%A9"
    assert scope["query_string"] == "x=1&y=%20"
    assert scope["root_path"] == ""
    assert scope["client"] == ["127.0.0.1", port]
    assert scope["server"] == ["127.0.0.1", server_port]
    assert {"http.response.trailers", "http.response.early_hint"} <= set(scope["extensions"])
    # :authority first, as host; no pseudo-header; cookies joined, once; the rest in order.
    assert scope["headers"] == [
        ["host", "example.org:8443"],
        ["user-agent", "h2-test"],
        ["x-one", "1"],
        ["x-two", "2"],
        ["cookie", "a=1; b=2; c=3"],
    ]


def test_host_header_without_authority(h2_serve: Any) -> None:
    """A request may carry Host instead of :authority (RFC 9113 8.3.1); it is the host header all the same."""
    with h2_serve(app) as server, FrameClient.connect(server.port) as client:
        fields = request_headers("GET", "/scope", authority=None, extra=[("x-before", "1"), ("host", "h.example"), ("x-after", "2")])
        client.send(client.headers(1, fields))
        scope = json.loads(client.response(1).body)
    assert scope["headers"] == [["host", "h.example"], ["x-before", "1"], ["x-after", "2"]]


def test_authority_and_host_give_one_host_header(h2_serve: Any) -> None:
    with h2_serve(app) as server, H2Client.connect(server.port, authority="a.example") as client:
        scope = scope_of(client, "/scope", [("host", "a.example")])
    assert [pair for pair in scope["headers"] if pair[0] == "host"] == [["host", "a.example"]]
    assert scope["headers"][0] == ["host", "a.example"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_methods(h2_serve: Any, method: str) -> None:
    with h2_serve(app) as server, H2Client.connect(server.port) as client:
        response = client.get("/scope", method=method, body=b"payload" if method in ("POST", "PUT") else None)
    assert json.loads(response.body)["method"] == method


def test_root_path(h2_serve: Any) -> None:
    with h2_serve(app, root_path="/api") as server, H2Client.connect(server.port) as client:
        response = client.get("/scope?q")
    scope = json.loads(response.body)
    assert (scope["root_path"], scope["path"], scope["raw_path"], scope["query_string"]) == ("/api", "/api/scope", "/api/scope", "q")


def test_proxy_headers(h2_serve: Any) -> None:
    forged = [("x-forwarded-for", "203.0.113.50"), ("x-forwarded-proto", "https")]
    with h2_serve(app) as server, H2Client.connect(server.port) as client:  # trusts 127.0.0.1 by default
        scope = scope_of(client, "/scope", forged)
        assert (scope["client"], scope["scheme"]) == (["203.0.113.50", 0], "https")
    with h2_serve(app, forwarded_allow_ips="10.9.8.7") as server, H2Client.connect(server.port) as client:
        scope = scope_of(client, "/scope", forged)
        assert scope["client"][0] == "127.0.0.1" and scope["scheme"] == "http"


def test_proxy_protocol(h2_serve: Any) -> None:
    with h2_serve(app, proxy_protocol=True) as server:
        sock = server.connect()
        sock.sendall(b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n")
        with H2Client(sock) as client:
            first = scope_of(client)
            second = scope_of(client)
    assert first["client"] == second["client"] == ["203.0.113.7", 56324]
    assert first["http_version"] == "2"


def test_limit_concurrency_counts_streams(h2_serve: Any) -> None:
    with h2_serve(app, limit_concurrency=2) as server, H2Client.connect(server.port) as client:
        holders = [client.request("GET", "/hold") for _ in range(2)]
        tasks = server.server.server_state.tasks
        wait_until(lambda: len(tasks) == 2, what="two running apps")
        refused = client.get("/")
        assert refused.status == 503
        assert refused.body == b"Service Unavailable"
        assert refused.header("connection") is None  # connection-specific: dropped over HTTP/2
        for stream_id in holders:
            client.reset(stream_id)
        wait_until(lambda: not tasks, what="the held apps to end")
        assert client.get("/").status == 200


def test_default_headers(h2_serve: Any) -> None:
    async def server_header_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"server", b"mine")]})
        await send({"type": "http.response.body", "body": b""})

    with h2_serve(app, headers=[("x-team", "squall")]) as server, H2Client.connect(server.port) as client:
        response = client.get("/")
    assert response.header("server") == "squall"
    assert response.header("date") is not None and response.header("date").endswith(" GMT")
    assert response.header("x-team") == "squall"
    with h2_serve(server_header_app) as server, H2Client.connect(server.port) as client:
        assert client.get("/").header_all("server") == ["mine"]
    with h2_serve(app, server_header=False, date_header=False) as server, H2Client.connect(server.port) as client:
        response = client.get("/")
    assert response.header("server") is None and response.header("date") is None


def test_access_log(h2_serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="squall.access")
    with h2_serve(app) as server, H2Client.connect(server.port) as client:
        client.get("/scope?x=1")
        client.get("/missing", method="POST", body=b"x")
        port = client.sock.getsockname()[1]
        wait_until(lambda: len([r for r in caplog.records if r.name == "squall.access"]) == 2, what="two access log lines")
    lines = [r.getMessage() for r in caplog.records if r.name == "squall.access"]
    assert lines == [
        f'127.0.0.1:{port} - "GET /scope?x=1 HTTP/2.0" 200',
        f'127.0.0.1:{port} - "POST /missing HTTP/2.0" 200',
    ]
