"""An HTTP/2 request head as ASGI wants it, and the response head as HTTP/2 wants it.

Requests: the pseudo-header fields become the scope's method, scheme and
path; `:authority` becomes the `host` header, first in the list (RFC 9113
8.3.1: it takes the place of Host); cookie fields, which HTTP/2 lets a client
split, are joined into one (8.2.3); what remains is passed in order.

Responses: field names must be lowercase (8.2.1) and connection-specific
fields (8.2.2) have no meaning in HTTP/2: they are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from squall._compiled import speedups
from squall.protocols.http.response import check_header

# RFC 9113 8.2.2.
CONNECTION_SPECIFIC = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"))
_PSEUDO = frozenset((b":method", b":scheme", b":authority", b":path", b":protocol"))
# A lowercase field name (RFC 9113 8.2.1, RFC 9110 5.1).
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
# A field value: no NUL, CR or LF anywhere, no whitespace at either end (RFC 9113 8.2.1).
_BAD_VALUE = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z")


class MalformedRequest(Exception):
    """A request RFC 9113 8.1.1 calls malformed: a stream error of type PROTOCOL_ERROR."""


class H2Request:
    """A validated request head.  `headers` is the scope's list: copy it per request."""

    __slots__ = ("method", "scheme", "authority", "path", "protocol", "headers", "content_length", "te_trailers")

    def __init__(self) -> None:
        self.method = b""
        self.scheme = b""
        self.authority: bytes | None = None
        self.path = b""
        self.protocol: bytes | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_length: int | None = None
        self.te_trailers = False


def parse_request(fields: list[tuple[bytes, bytes]]) -> H2Request:
    """Validate a request's field list (RFC 9113 8.2, 8.3) and split it; MalformedRequest if it is not one."""
    request = H2Request()
    headers: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    pseudo: set[bytes] = set()
    regular = False
    for name, value in fields:
        if _BAD_VALUE.search(value) is not None:
            raise MalformedRequest(f"Invalid value in field {name[:40]!r}.")
        if name[:1] == b":":
            if regular:
                raise MalformedRequest("A pseudo-header field after a regular one.")
            if name not in _PSEUDO or name in pseudo:
                raise MalformedRequest(f"Unknown or repeated pseudo-header field {name[:40]!r}.")
            pseudo.add(name)
            if name == b":method":
                request.method = value
            elif name == b":path":
                request.path = value
            elif name == b":scheme":
                request.scheme = value
            elif name == b":authority":
                request.authority = value
            else:
                request.protocol = value
            continue
        regular = True
        if _NAME.fullmatch(name) is None:
            raise MalformedRequest(f"Invalid field name {name[:40]!r}.")
        if name in CONNECTION_SPECIFIC:
            raise MalformedRequest(f"Connection-specific field {name!r}.")
        if name == b"cookie":
            cookies.append(value)
            continue
        if name == b"host":
            if request.authority is None:
                request.authority = value
            continue
        if name == b"content-length":
            if not value.isdigit() or request.content_length is not None:
                raise MalformedRequest("Invalid or repeated content-length.")
            request.content_length = int(value)
        elif name == b"te":
            if value != b"trailers":
                raise MalformedRequest("TE other than 'trailers'.")
            request.te_trailers = True
        headers.append((name, value))
    if request.method == b"CONNECT":
        if request.protocol is None:
            if request.scheme or request.path or request.authority is None:
                raise MalformedRequest("A CONNECT request needs :authority and no :scheme or :path.")
        elif not request.scheme or not request.path or request.authority is None:
            raise MalformedRequest("An extended CONNECT request needs :scheme, :path and :authority.")
    elif request.protocol is not None:
        raise MalformedRequest(":protocol in a request other than CONNECT.")
    elif not request.method or not request.scheme or not request.path:
        raise MalformedRequest("A request without :method, :scheme or :path.")
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))
    if request.authority is not None:
        headers.insert(0, (b"host", request.authority))
    request.headers = headers
    return request


def response_headers(
    status: int,
    headers: Iterable[tuple[bytes, bytes]],
    default_headers: list[tuple[bytes, bytes]],
    default_names: frozenset[bytes] = frozenset(),
) -> tuple[list[tuple[bytes, bytes]], int | None]:
    """The HEADERS field list of a response, and its content-length if the app gave one.

    A default header (Server, Date, --header) the app sets itself is the
    app's.  Raises RuntimeError for what must not reach the wire.
    """
    if not isinstance(status, int) or not 100 <= status <= 999:
        raise RuntimeError(f"Invalid HTTP status code {status!r} in the response.")
    fields = [(b":status", b"%d" % status)]
    content_length: int | None = None
    given: set[bytes] | None = None
    for name, value in headers:
        check_header(name, value)
        name = name.lower()
        if name in CONNECTION_SPECIFIC:
            continue
        if name == b"content-length":
            if content_length is not None or not value.strip().isdigit():
                raise RuntimeError(f"Invalid or repeated Content-Length {value!r} in the response.")
            content_length = int(value)
        elif name in default_names:
            given = (given or set()) | {name}
        fields.append((name, value))
    for name, value in default_headers:
        if given is None or name not in given:
            fields.append((name, value))
    return fields, content_length


pure_response_headers = response_headers
if speedups is not None:
    # The compiled hot path: the same function for lists of (bytes, bytes)
    # with valid fields, handing anything else to the one above.
    speedups.setup_h2_fields(CONNECTION_SPECIFIC, pure_response_headers)
    response_headers = speedups.response_fields  # noqa: F811
