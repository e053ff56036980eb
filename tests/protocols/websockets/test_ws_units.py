"""The handshake, scope and close-code helpers on their own (no server)."""

from __future__ import annotations

import pytest

from squall.protocols.http.h1_request import RequestHead
from squall.protocols.websockets.asgi import check_close
from squall.protocols.websockets.handshake import (
    HandshakeError,
    accept_key,
    http_response,
    validate_request,
)
from squall.protocols.websockets.scope import split_target

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def _request(*headers: tuple[bytes, bytes], method: bytes = b"GET", version: str = "1.1") -> RequestHead:
    """A head as the HTTP/1.1 layer hands it over: field names in lower case."""
    base = [(b"host", b"x"), (b"upgrade", b"websocket"), (b"connection", b"Upgrade")]
    base += [(b"sec-websocket-key", KEY), (b"sec-websocket-version", b"13")]
    lowered = [(name.lower(), value) for name, value in headers]
    names = {name for name, _ in lowered}
    merged = [h for h in base if h[0] not in names] + lowered
    return RequestHead(method, b"/", version, merged)


def test_accept_key_is_rfc_6455s_example() -> None:
    assert accept_key(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    "header",
    [
        (b"Connection", b"keep-alive, Upgrade"),
        (b"Upgrade", b"WebSocket"),
        (b"Content-Length", b"0"),
    ],
)
def test_lenient_but_valid_requests(header: tuple[bytes, bytes]) -> None:
    request = validate_request(_request(header))
    assert request.key == KEY


@pytest.mark.parametrize(
    ("headers", "kwargs", "status"),
    [
        ([(b"Content-Length", b"5")], {}, 400),
        ([(b"Transfer-Encoding", b"chunked")], {}, 400),
        ([(b"Connection", b"keep-alive")], {}, 400),
        ([(b"Upgrade", b"h2c")], {}, 400),
        ([(b"Sec-WebSocket-Version", b"13, 8")], {}, 426),
        ([(b"Sec-WebSocket-Key", b"AAAA")], {}, 400),
        ([], {"method": b"HEAD"}, 400),
        ([], {"version": "1.0"}, 400),
        ([(b"Sec-WebSocket-Protocol", "caf\u00e9".encode("latin-1"))], {}, 400),
    ],
)
def test_invalid_requests(headers: list[tuple[bytes, bytes]], kwargs: dict, status: int) -> None:
    with pytest.raises(HandshakeError) as info:
        validate_request(_request(*headers, **kwargs))
    assert info.value.status == status


def test_subprotocols_and_extension_offers() -> None:
    request = validate_request(
        _request(
            (b"Sec-WebSocket-Protocol", b"a, b"),
            (b"sec-websocket-protocol", b"c"),
            (b"Sec-WebSocket-Extensions", b"permessage-deflate; client_max_window_bits"),
        )
    )
    assert request.subprotocols == ["a", "b", "c"]
    assert request.extension_offers == [b"permessage-deflate; client_max_window_bits"]


def test_denial_response_framing() -> None:
    with_length = http_response(200, [], b"body", b"server: s\r\n", frozenset({b"server"}))
    assert with_length.startswith(b"HTTP/1.1 200 OK\r\nserver: s\r\n")
    assert b"content-length: 4\r\n" in with_length and b"connection: close\r\n" in with_length
    assert with_length.endswith(b"\r\n\r\nbody")
    chunked = http_response(200, [(b"transfer-encoding", b"chunked")], b"body", b"", frozenset())
    assert chunked.endswith(b"\r\n\r\n4\r\nbody\r\n0\r\n\r\n")
    no_content = http_response(204, [], b"", b"", frozenset())
    assert b"content-length" not in no_content
    with pytest.raises(RuntimeError):
        http_response(200, [(b"content-length", b"3")], b"body", b"", frozenset())
    with pytest.raises(RuntimeError):
        http_response(101, [], b"", b"", frozenset())


@pytest.mark.parametrize(
    ("code", "ok"),
    [(1000, True), (1003, True), (1004, False), (1005, False), (1006, False), (1007, True), (1014, True)]
    + [(1015, False), (2999, False), (3000, True), (4999, True), (5000, False), ("1000", False)],
)
def test_close_codes(code: object, ok: bool) -> None:
    if ok:
        check_close(code, "")
    else:
        with pytest.raises(RuntimeError):
            check_close(code, "")


def test_close_reason_length_is_counted_in_bytes() -> None:
    check_close(1000, "x" * 123)
    check_close(1000, "\u00e9" * 61)  # 122 bytes
    with pytest.raises(RuntimeError):
        check_close(1000, "\u00e9" * 62)  # 124 bytes
    with pytest.raises(RuntimeError):
        check_close(1000, None)


def test_split_target() -> None:
    assert split_target(b"/a%20b?x=1", "") == ("/a b", b"/a%20b", b"x=1")
    assert split_target(b"/a", "/root") == ("/root/a", b"/root/a", b"")
    assert split_target(b"http://example.com/ws?q", "") == ("/ws", b"/ws", b"q")


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("auto", "WebSocketsProtocol"),
        ("websockets", "WebSocketsProtocol"),
        ("websockets-sansio", "WebSocketsSansIOProtocol"),
        ("wsproto", "WSProtocol"),
        ("none", None),
    ],
)
def test_ws_setting_selects_the_implementation(setting: str, expected: str | None) -> None:
    from squall import Config

    async def app(scope: dict, receive: object, send: object) -> None:
        raise AssertionError("not called")

    config = Config(app, ws=setting, log_config=None)  # type: ignore[arg-type]
    config.load()
    assert (config.ws_protocol_class.__name__ if config.ws_protocol_class else None) == expected
