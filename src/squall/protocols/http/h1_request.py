"""Checking an HTTP/1.1 request head, the same way whichever parser read it.

The parsers (h11, httptools) only split bytes into a method, a target, a
version and header fields.  What those mean for the connection — is it a
valid request, does it have a body, does it keep the connection alive, does
it ask for a protocol switch — is decided here once, so that a request is
served or refused alike whatever parser reads it.
"""

from __future__ import annotations

from urllib.parse import unquote


class BadRequest(Exception):
    """The request cannot be served; answered with `status` and the connection closed."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# The request methods llhttp knows; it rejects any other, and h11 is held to
# the same list so that a request is served or refused whichever parser reads it.
KNOWN_METHODS = frozenset(
    b"GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH PURGE QUERY COPY LOCK MKCOL MOVE PROPFIND"
    b" PROPPATCH SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY"
    b" SUBSCRIBE UNSUBSCRIBE MKCALENDAR LINK UNLINK SOURCE".split()
)

# What a request line adds to its method and target: b" " + b" HTTP/1.1" + b"\r\n".
REQUEST_LINE_OVERHEAD = 12

_SPECIAL = frozenset(
    (b"host", b"connection", b"content-length", b"transfer-encoding", b"expect", b"upgrade", b"te", b"http2-settings")
)

# What a request asks of the connection beyond being answered.
SWITCH_NONE = 0
SWITCH_WEBSOCKET = 1
SWITCH_H2C = 2


def connection_tokens(value: bytes) -> set[bytes]:
    """The options of a Connection header (RFC 9110 7.6.1): a comma-separated token list, any case."""
    return {token.strip(b" \t").lower() for token in value.split(b",")} - {b""}


class RequestInfo:
    """What the head says about framing and the connection."""

    __slots__ = ("keep_alive", "has_body", "expect_100", "switch", "te_trailers", "h2_settings")

    def __init__(self) -> None:
        self.keep_alive = True
        self.has_body = False
        self.expect_100 = False
        self.switch = SWITCH_NONE
        self.te_trailers = False
        self.h2_settings: bytes | None = None


def check_request_head(
    method: bytes, target: bytes, http_version: str, headers: list[tuple[bytes, bytes]], max_head_size: int
) -> RequestInfo:
    """Validate a parsed head; raise BadRequest for one that cannot be served."""
    if http_version != "1.1" and http_version != "1.0":
        # llhttp rejects other versions outright (and reads a request line
        # without one as 0.9); h11 takes any digit.digit.  Answer alike.
        raise BadRequest(f"Unsupported HTTP version {http_version}.", 505 if http_version == "2.0" else 400)
    if method not in KNOWN_METHODS:
        raise BadRequest(f"Unknown method {method[:20]!r}.")
    # The head size limit, counted alike whichever parser read it (and
    # however the bytes arrived): request line, then each header line.
    head_size = len(method) + len(target) + REQUEST_LINE_OVERHEAD
    if head_size > max_head_size:
        raise BadRequest("The request line is longer than --h11-max-incomplete-event-size.", 400)
    info = RequestInfo()
    connection: set[bytes] | None = None
    content_length: bytes | None = None
    chunked = False
    upgrade: bytes | None = None
    hosts = 0
    for name, value in headers:
        head_size += len(name) + len(value) + 4
        if name in _SPECIAL:
            if name == b"host":
                hosts += 1
            elif name == b"content-length":
                # Even a repeated equal value is refused (RFC 9110 8.6
                # allows either), as llhttp does.
                if content_length is not None:
                    raise BadRequest("More than one Content-Length header.")
                if not value.isdigit():
                    raise BadRequest("Invalid Content-Length header.")
                content_length = value
            elif name == b"transfer-encoding":
                # Only chunked is decoded: a body in any other coding
                # cannot be delimited or handed to the app as sent.
                if value.strip().lower() != b"chunked":
                    raise BadRequest("Unsupported Transfer-Encoding.")
                chunked = True
            elif name == b"connection":
                tokens = connection_tokens(value)
                connection = tokens if connection is None else connection | tokens
            elif name == b"expect":
                info.expect_100 = value.lower() == b"100-continue"
            elif name == b"upgrade":
                upgrade = value.strip().lower()
            elif name == b"te":
                info.te_trailers = b"trailers" in connection_tokens(value)
            else:
                info.h2_settings = value
    if head_size + 2 > max_head_size:
        raise BadRequest("The request head is larger than --h11-max-incomplete-event-size.", 431)
    if hosts != 1 and (hosts or http_version == "1.1"):
        # RFC 9112 3.2: exactly one Host in HTTP/1.1, at most one in 1.0.
        raise BadRequest("A request must have exactly one Host header.")
    if content_length is not None and chunked:
        raise BadRequest("Both Content-Length and Transfer-Encoding were sent.")

    if http_version == "1.1":
        info.keep_alive = connection is None or b"close" not in connection
    else:
        info.keep_alive = connection is not None and b"keep-alive" in connection
        info.expect_100 = False
    info.has_body = chunked or (content_length is not None and content_length.strip(b"0") != b"")
    if not info.has_body:
        info.expect_100 = False
    if upgrade is not None and connection is not None and b"upgrade" in connection:
        if upgrade == b"websocket":
            info.switch = SWITCH_WEBSOCKET
        elif upgrade == b"h2c" and info.h2_settings is not None and b"http2-settings" in connection:
            info.switch = SWITCH_H2C
    return info


class RequestHead:
    """What was read of a request before its body, in wire form, for protocol switches."""

    __slots__ = ("method", "target", "http_version", "headers")

    def __init__(self, method: bytes, target: bytes, http_version: str, headers: list[tuple[bytes, bytes]]) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers

    def serialize(self) -> bytes:
        lines = [b"%s %s HTTP/%s\r\n" % (self.method, self.target, self.http_version.encode())]
        lines.extend(name + b": " + value + b"\r\n" for name, value in self.headers)
        lines.append(b"\r\n")
        return b"".join(lines)


def split_target(target: bytes, root_path: str) -> tuple[str, bytes, bytes]:
    """(path, raw_path, query_string) of a request target, as ASGI scopes have them.

    Raises BadRequest for a target that is not a path (or absolute URL) in ASCII.
    """
    raw_path, _, query = target.partition(b"?")
    if not raw_path.startswith(b"/"):
        raw_path = _origin_path(raw_path)
    try:
        path = raw_path.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest("Invalid characters in the request target.") from None
    if "%" in path:
        path = unquote(path)
    if root_path:
        path = root_path + path
        raw_path = root_path.encode("ascii") + raw_path
    return path, raw_path, query


def _origin_path(target: bytes) -> bytes:
    """The path of an absolute-form target (RFC 9112 3.2.2), or the target itself."""
    if target == b"*":
        return target
    scheme_end = target.find(b"://")
    if scheme_end == -1:
        raise BadRequest("Invalid request target.")
    slash = target.find(b"/", scheme_end + 3)
    return target[slash:] if slash != -1 else b"/"
