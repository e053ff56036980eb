"""ASGI extensions over HTTP/1.1, byte for byte: trailers both ways, early hints,
pathsend and zerocopysend (sendfile(2) under asyncio, a memory map under uvloop
and TLS).  The same extensions over HTTP/2 are tested in tests/protocols/http2."""

from __future__ import annotations

import hashlib
import os
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from h1_support import Recorder, RawClient, get_request, post_request

EXTENSIONS = ("http.response.trailers", "http.response.early_hint", "http.response.pathsend", "http.response.zerocopysend")


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    """3 MiB and a bit, not a multiple of any page or slice size."""
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 12345))
    return path


def test_every_extension_is_advertised(serve: Any) -> None:
    seen = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.add(scope["extensions"])
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    with serve(app) as server, RawClient.connect(server.port) as client:
        assert client.request(get_request()).status == 204
    (extensions,) = seen.snapshot()
    for name in EXTENSIONS:
        assert extensions[name] == {}


async def trailer_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "trailers": True, "headers": [(b"trailer", b"x-checksum")]})
    await send({"type": "http.response.body", "body": b"hello", "more_body": True})
    await send({"type": "http.response.body", "body": b""})
    await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")], "more_trailers": True})
    await send({"type": "http.response.trailers", "headers": [(b"x-count", b"1")]})


@pytest.mark.parametrize("te", [True, False])
def test_response_trailers_only_to_a_client_that_accepts_them(serve: Any, te: bool) -> None:
    with serve(trailer_app) as server, RawClient.connect(server.port) as client:
        client.send(get_request(headers="TE: trailers\r\n" if te else ""))
        response = client.read_response()
        assert response.status == 200
        assert response.get("transfer-encoding") == "chunked"
        assert response.body == b"hello"
        if te:
            assert response.raw_body == b"5\r\nhello\r\n0\r\nx-checksum: abc\r\nx-count: 1\r\n\r\n"
            assert response.trailers == [("x-checksum", "abc"), ("x-count", "1")]
        else:
            assert response.raw_body == b"5\r\nhello\r\n0\r\n\r\n"
        # The connection goes on after the trailers.
        client.send(get_request())
        assert client.read_response().status == 200


def test_request_trailers_reach_the_app(serve: Any) -> None:
    seen = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message["body"]
            if not message["more_body"]:
                break
        seen.add((body, message.get("trailers")))
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    with serve(app) as server, RawClient.connect(server.port) as client:
        request = b"POST /up HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        client.send(request + b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Digest: sha-256=xyz\r\nX-Other:  two \r\n\r\n")
        assert client.read_response().status == 204
        client.send(post_request("/plain", b"abc"))
        assert client.read_response().status == 204
    assert seen.snapshot() == [
        (b"abcde", [(b"x-digest", b"sha-256=xyz"), (b"x-other", b"two")]),
        (b"abc", None),  # no trailers: no key
    ]


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_early_hints_before_the_response(serve: Any, version: str) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        links = [b"</style.css>; rel=preload; as=style", b"</app.js>; rel=preload; as=script"]
        await send({"type": "http.response.early_hint", "links": links})
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    with serve(app) as server, RawClient.connect(server.port) as client:
        client.send(get_request(version=version))
        if version == "1.1":
            hints = client.read_response()
            assert hints.raw_head == (
                b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style\r\n"
                b"link: </app.js>; rel=preload; as=script\r\n\r\n"
            )
        # RFC 9110 15.2: no 1xx for an HTTP/1.0 client; either way the response follows.
        response = client.read_response()
        assert (response.status, response.body) == (200, b"ok")


def file_app(data_file: Path) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        size = data_file.stat().st_size
        path = scope["path"]
        if path == "/pathsend":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % size)]})
            await send({"type": "http.response.pathsend", "path": str(data_file)})
        elif path == "/zerocopy-chunked":
            # Chunked framing, the file in three sends: from the position, then counted, then the rest.
            await send({"type": "http.response.start", "status": 200})
            with open(data_file, "rb") as file:
                file.seek(100)
                await send({"type": "http.response.body", "body": b"<", "more_body": True})
                await send({"type": "http.response.zerocopysend", "file": file, "count": 5000, "more_body": True})
                await send({"type": "http.response.zerocopysend", "file": file.fileno(), "offset": 5100, "more_body": True})
                await send({"type": "http.response.body", "body": b">"})
        elif path == "/head":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % size)]})
            await send({"type": "http.response.pathsend", "path": str(data_file)})
        elif path == "/wrong-length":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
            await send({"type": "http.response.pathsend", "path": str(data_file)})

    return app


def test_pathsend_and_zerocopysend(serve: Any, data_file: Path) -> None:
    data = data_file.read_bytes()
    with serve(file_app(data_file)) as server, RawClient.connect(server.port, timeout=10) as client:
        client.send(get_request("/pathsend"))
        response = client.read_response()
        assert response.get("content-length") == str(len(data))
        assert hashlib.sha256(response.body).digest() == hashlib.sha256(data).digest()

        client.send(get_request("/zerocopy-chunked"))
        response = client.read_response()
        assert response.get("transfer-encoding") == "chunked"
        assert response.body == b"<" + data[100:] + b">"

        client.send(get_request("/head").replace(b"GET", b"HEAD", 1))
        response = client.read_response(method="HEAD")
        assert response.get("content-length") == str(len(data)) and response.body == b""

        # The connection is still in step after all of it.
        client.send(get_request("/pathsend"))
        assert len(client.read_response().body) == len(data)


def test_a_file_longer_than_the_content_length_is_an_app_error(serve: Any, data_file: Path) -> None:
    """Found before the head went out (it waits for the first body bytes): a 500 instead."""
    with serve(file_app(data_file)) as server, RawClient.connect(server.port) as client:
        client.send(get_request("/wrong-length"))
        response = client.read_response()
        assert response.status == 500
        client.assert_closed()


def test_pathsend_over_tls(serve: Any, data_file: Path, tmp_path: Path) -> None:
    """TLS encrypts in user space: the file goes through the memory-mapped path."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with serve(file_app(data_file), ssl_certfile=str(cert_file), ssl_keyfile=str(key_file), http2=False) as server:
        response = httpx.get(f"https://127.0.0.1:{server.port}/pathsend", verify=context, timeout=10)
    assert response.content == data_file.read_bytes()
