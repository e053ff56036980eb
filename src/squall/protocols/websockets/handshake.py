"""The WebSocket opening handshake (RFC 6455 section 4), the same for every
implementation.

The HTTP layer hands a WebSocket protocol the request head it parsed and
checked as HTTP (`RequestHead`: lower-case field names, values without
surrounding whitespace); `validate_request` checks it against RFC 6455
4.2.1, so that a bad handshake gets the same answer (400, or 426 for a
version we don't speak) whichever library frames the messages afterwards.
The libraries then only negotiate extensions.  (The head is not parsed a
second time: that took a second HTTP parser, h11, into every process that
served a WebSocket.)

The responses are built here too, through the HTTP layer's response code, so
that the 101, the 403 and the app's own denial response carry the server's
default headers and get the same header validation as any HTTP response.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from squall.protocols.http.response import FRAMING_CHUNKED, FRAMING_NONE, build_response_head

if TYPE_CHECKING:
    from squall.protocols.http.h1_request import RequestHead
    from squall.protocols.http2.request import H2Request

# RFC 6455 1.3: appended to Sec-WebSocket-Key before hashing.
_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_SUPPORTED_VERSION = b"13"
_FRAMING_HEADERS = frozenset((b"content-length", b"transfer-encoding"))


class HandshakeError(Exception):
    """The request is not a WebSocket handshake we can accept: answer `status`."""

    def __init__(self, message: str, status: int = 400, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.headers = list(headers)


class HandshakeRequest:
    """A valid handshake request, with what the rest of the connection needs from it."""

    __slots__ = ("target", "http_version", "headers", "key", "subprotocols", "extension_offers")

    def __init__(
        self,
        target: bytes,
        http_version: str,
        headers: list[tuple[bytes, bytes]],
        key: bytes,
        subprotocols: list[str],
        extension_offers: list[bytes],
    ) -> None:
        self.target = target
        self.http_version = http_version
        self.headers = headers
        self.key = key
        self.subprotocols = subprotocols
        # The raw Sec-WebSocket-Extensions values; each library negotiates its own.
        self.extension_offers = extension_offers


def _tokens(values: list[bytes]) -> list[bytes]:
    """The comma-separated elements of header values (RFC 9110 5.6.1), stripped."""
    return [token.strip() for value in values for token in value.split(b",") if token.strip()]


def validate_request(request: RequestHead) -> HandshakeRequest:
    """Check a request head against RFC 6455 4.2.1, raising HandshakeError as 4.2.2 and 4.4 say."""
    if request.method != b"GET":
        raise HandshakeError("The WebSocket handshake must be a GET request.")
    if request.http_version != "1.1":
        raise HandshakeError("The WebSocket handshake needs HTTP/1.1.")

    headers = request.headers
    by_name: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        by_name.setdefault(name, []).append(value)

    if b"transfer-encoding" in by_name or any(v.strip(b"0") for v in by_name.get(b"content-length", ())):
        raise HandshakeError("The WebSocket handshake must not have a body.")
    if b"upgrade" not in (t.lower() for t in _tokens(by_name.get(b"connection", []))):
        raise HandshakeError("The WebSocket handshake needs 'Connection: Upgrade'.")
    if b"websocket" not in (t.lower() for t in _tokens(by_name.get(b"upgrade", []))):
        raise HandshakeError("The WebSocket handshake needs 'Upgrade: websocket'.")

    _check_version(by_name)
    keys = by_name.get(b"sec-websocket-key", [])
    if len(keys) != 1:
        raise HandshakeError("Missing or repeated Sec-WebSocket-Key header.")
    key = keys[0].strip()
    try:
        nonce = base64.b64decode(key, validate=True)
    except binascii.Error:
        nonce = b""
    if len(nonce) != 16:
        raise HandshakeError("Malformed Sec-WebSocket-Key header: it must be 16 bytes in base64.")

    return HandshakeRequest(
        target=request.target,
        http_version="1.1",
        headers=headers,
        key=key,
        subprotocols=_subprotocols(by_name),
        extension_offers=by_name.get(b"sec-websocket-extensions", []),
    )


def validate_h2_request(request: H2Request) -> HandshakeRequest:
    """Check an extended CONNECT (RFC 8441 4, 5): the same as RFC 6455 asks, less what HTTP/2 does itself.

    The wire layer checked the pseudo-header fields; there is no Upgrade,
    Connection or Sec-WebSocket-Key, and so no Sec-WebSocket-Accept.
    """
    by_name: dict[bytes, list[bytes]] = {}
    for name, value in request.headers:
        by_name.setdefault(name, []).append(value)
    if request.content_length:
        raise HandshakeError("The WebSocket handshake must not have a body.")
    _check_version(by_name)
    return HandshakeRequest(
        target=request.path,
        http_version="2",
        headers=list(request.headers),
        key=b"",
        subprotocols=_subprotocols(by_name),
        extension_offers=by_name.get(b"sec-websocket-extensions", []),
    )


def _check_version(by_name: dict[bytes, list[bytes]]) -> None:
    # The version first: a client speaking another version learns ours from
    # the 426 even if the rest of its request differs too (RFC 6455 4.4).
    versions = by_name.get(b"sec-websocket-version", [])
    version_header = [(b"sec-websocket-version", _SUPPORTED_VERSION)]
    if not versions:
        raise HandshakeError("Missing Sec-WebSocket-Version header.", 400, version_header)
    if len(versions) != 1 or versions[0].strip() != _SUPPORTED_VERSION:
        raise HandshakeError("Unsupported Sec-WebSocket-Version.", 426, version_header)


def _subprotocols(by_name: dict[bytes, list[bytes]]) -> list[str]:
    try:
        return [token.decode("ascii") for token in _tokens(by_name.get(b"sec-websocket-protocol", []))]
    except UnicodeDecodeError:
        raise HandshakeError("Malformed Sec-WebSocket-Protocol header.") from None


def accept_key(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2, item 5.4)."""
    return base64.b64encode(hashlib.sha1(key + _ACCEPT_GUID).digest())


def accept_headers(
    subprotocol: str | None, extensions: bytes | None, app_headers: Iterable[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The headers of an accepting response besides the ones the HTTP version adds."""
    headers = []
    if subprotocol is not None:
        headers.append((b"sec-websocket-protocol", subprotocol.encode("ascii")))
    if extensions is not None:
        headers.append((b"sec-websocket-extensions", extensions))
    headers.extend(app_headers)
    return headers


def accept_response(
    request: HandshakeRequest,
    subprotocol: str | None,
    extensions: bytes | None,
    app_headers: Iterable[tuple[bytes, bytes]],
    default_headers: bytes,
    default_header_names: frozenset[bytes],
) -> bytes:
    """The 101 response head.  Raises RuntimeError for headers the app got wrong."""
    headers = [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", accept_key(request.key)),
        *accept_headers(subprotocol, extensions, app_headers),
    ]
    return build_response_head(101, headers, default_headers, default_header_names, True, True, False)[0]


def http_response(
    status: int,
    headers: Iterable[tuple[bytes, bytes]],
    body: bytes,
    default_headers: bytes,
    default_header_names: frozenset[bytes],
) -> bytes:
    """A complete HTTP response instead of the 101; the connection closes after it.

    The body is complete: a Content-Length is added unless the app framed it
    itself.  Raises RuntimeError for an invalid status or header, or for a
    Content-Length that the body contradicts.
    """
    headers = list(headers)
    if not isinstance(status, int) or not 200 <= status <= 599:
        raise RuntimeError(f"Invalid HTTP status code {status!r} for a WebSocket denial response.")
    framed = any(isinstance(name, bytes) and name.lower() in _FRAMING_HEADERS for name, _ in headers)
    if not framed and status != 204 and status != 304:
        headers.append((b"content-length", b"%d" % len(body)))
    data, framing, content_length, _ = build_response_head(
        status, headers, default_headers, default_header_names, True, False, False
    )
    if framing == FRAMING_NONE:  # 204, 304
        return data
    if framing == FRAMING_CHUNKED:  # the app asked for it
        return data + (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n")
    if content_length != len(body):
        raise RuntimeError(
            f"The WebSocket denial response has Content-Length {content_length}, but a {len(body)} byte body."
        )
    return data + body
