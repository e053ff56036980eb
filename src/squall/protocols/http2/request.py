"""An HTTP/2 request head as ASGI wants it, and the response head as HTTP/2 wants it.

Requests: the pseudo-header fields become the scope's method, scheme and
path; `:authority` becomes the `host` header, first in the list (RFC 9113
8.3.1: it takes the place of Host); cookie fields, which HTTP/2 lets a client
split, are joined into one (8.2.3); what remains is passed in order.

Responses: field names must be lowercase (8.2.1) and connection-specific
fields (8.2.2) have no meaning in HTTP/2: they are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable

from squall.protocols.http.response import check_header

REQUIRED_PSEUDO = (b":method", b":scheme", b":path")
# RFC 9113 8.2.2.
CONNECTION_SPECIFIC = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"))


class MalformedRequest(Exception):
    """A request RFC 9113 8.1.1 calls malformed: a stream error of type PROTOCOL_ERROR."""


class H2Request:
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
    """Split a request's field list; raise MalformedRequest for what the wire layer let through."""
    request = H2Request()
    headers: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    for name, value in fields:
        if name[:1] == b":":
            if name == b":method":
                request.method = value
            elif name == b":path":
                request.path = value
            elif name == b":scheme":
                request.scheme = value
            elif name == b":authority":
                request.authority = value
            elif name == b":protocol":
                request.protocol = value
            continue
        if name == b"cookie":
            cookies.append(value)
        elif name == b"host":
            if request.authority is None:
                request.authority = value
        else:
            if name == b"content-length":
                if not value.isdigit() or request.content_length is not None:
                    raise MalformedRequest("Invalid or repeated content-length.")
                request.content_length = int(value)
            elif name == b"te":
                request.te_trailers = value.strip().lower() == b"trailers"
            headers.append((name, value))
    if request.method == b"CONNECT" and request.protocol is None:
        if request.authority is None:
            raise MalformedRequest("A CONNECT request without :authority.")
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
