"""Checking an HTTP/1.1 request head, the same way whichever parser read it.

A request head is checked twice here, around the parser.  Before it, as
bytes (`check_head_bytes`): the limits, line endings, characters and the
shape of the request line, so that both parsers only ever see heads that
RFC 9112's grammar allows line by line.  After it (`check_request_head`):
what the parsed fields mean for the connection — is it a valid request,
how is its body framed, does it keep the connection alive, does it ask for
a protocol switch.  The parsers (h11, httptools) only split the head into a
method, a target, a version and header fields; everything else is decided
here once, so that a request is served or refused alike whatever parser
reads it.  The table of what is refused is in docs/http.md.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import unquote

from squall._compiled import speedups

if TYPE_CHECKING:
    from squall.config import Config


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

TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# RFC 9112 3: method SP request-target SP HTTP-version, single spaces; the
# target is any visible characters (which ones make a path is split_target's
# business).
_REQUEST_LINE = TOKEN + rb" [\x21-\x7e\x80-\xff]+ HTTP/[0-9]\.[0-9]\r\n"
# RFC 9112 5 (a trailer field too): name ":" OWS value OWS CRLF, the value
# visible characters (obs-text included), spaces and tabs.
_FIELD_LINE = TOKEN + rb":[\t \x21-\x7e\x80-\xff]*\r\n"
FIELD_LINE = re.compile(_FIELD_LINE)
# A whole head as RFC 9112 allows it line by line: no control character but
# HTAB, no CR or LF outside a CRLF, no obs-fold, no whitespace before a colon.
# One regular expression is the fast path; `_why_invalid` explains a refusal.
_HEAD = re.compile(_REQUEST_LINE + rb"(?:" + _FIELD_LINE + rb")*\r\n")
# What a head may contain besides CRLF line ends: HTAB, SP, visible ASCII
# and obs-text.
_HEAD_BYTES = bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100)) + b"\t\r\n"
# A Transfer-Encoding field whose value ends in a tab: llhttp refuses it
# (other whitespace around values both parsers take).
_TE_TRAILING_TAB = re.compile(rb"\ntransfer-encoding:[^\r]*\t[ \t]*\r", re.IGNORECASE)
# The largest Content-Length taken: what a signed 64-bit integer holds, as
# most proxies store it.
MAX_CONTENT_LENGTH = (1 << 63) - 1


# An absolute-form target's scheme and authority (RFC 3986 3.2: userinfo,
# host, port; unreserved, sub-delims, pct-encoded, ":", "@", "[", "]").
_ABSOLUTE_FORM = re.compile(rb"[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9\-._~%!$&'()*+,;=:@\[\]]*")


REQUEST_LINE_TOO_LONG = "The request line is longer than --limit-request-line (or the head size limit)."


class RequestLimits:
    """The size limits on a request, in bytes (and fields); 0 lifts a limit, `body` None too."""

    __slots__ = ("head_size", "request_line", "fields", "field_size", "body", "line_size", "request_line_size")

    def __init__(
        self, head_size: int, request_line: int = 0, fields: int = 0, field_size: int = 0, body: int | None = None
    ) -> None:
        self.head_size = head_size
        self.request_line = request_line
        self.fields = fields
        self.field_size = field_size
        self.body = body
        # The longest line accepted in a head, a chunk line or a trailer field.
        self.line_size = field_size or head_size
        # The longest request line accepted (without its CRLF), whichever limit gives it.
        self.request_line_size = min(request_line or head_size, head_size - 4)

    @classmethod
    def from_config(cls, config: Config) -> RequestLimits:
        return cls(
            config.h11_max_incomplete_event_size,
            config.limit_request_line,
            config.limit_request_fields,
            config.limit_request_field_size,
            config.limit_request_body,
        )


def check_head_bytes(head: bytes, limits: RequestLimits) -> None:
    """Check a complete request head as bytes, before any parser sees it.

    `head` runs from the request line to the empty line that ends the head,
    CRLFs included.  Raises BadRequest: 414 for a request line over its
    limit, 431 for a head or fields over theirs, 400 for what RFC 9112 does
    not allow (bare CR or LF, control characters, obs-fold, a request line
    that is not three parts separated by single spaces, a malformed field).
    """
    line_end = head.find(b"\r\n")
    size = len(head)
    if line_end > limits.request_line_size:
        raise BadRequest(REQUEST_LINE_TOO_LONG, 414)
    if size > limits.head_size:
        raise BadRequest("The request head is larger than --h11-max-incomplete-event-size.", 431)
    if _HEAD.fullmatch(head) is None:
        raise BadRequest(_why_invalid(head, line_end))
    # Method and version before the parser sees them: llhttp stops at an
    # unknown method, h11 at nothing; both must answer alike, whatever else
    # the head holds.
    method = head[: head.find(b" ")]
    if method not in KNOWN_METHODS:
        raise BadRequest(f"Unknown method {method[:20]!r}.")
    version = head[line_end - 3 : line_end]
    if version != b"1.1" and version != b"1.0":
        raise BadRequest(f"Unsupported HTTP version {version.decode()}.", 505 if version == b"2.0" else 400)
    # A field line is at least 4 bytes ("a:" CRLF): only a head that long
    # can have too many.
    fields = limits.fields
    if fields and size - line_end > 4 * fields and head.count(b"\r\n") - 2 > fields:
        raise BadRequest("More header fields than --limit-request-fields.", 431)
    field_size = limits.field_size
    if field_size and size - line_end - 2 > field_size:
        # Some field line may be over the limit (with its CRLF, as Gunicorn counts).
        for line in head[line_end + 2 :].split(b"\r\n"):
            if len(line) + 2 > field_size:
                raise BadRequest("A header field is longer than --limit-request-field-size.", 431)
    if b"\t" in head and _TE_TRAILING_TAB.search(head) is not None:
        raise BadRequest("A tab after the Transfer-Encoding value.")


def _why_invalid(head: bytes, line_end: int) -> str:
    """What makes a head that `_HEAD` refused invalid, for the log."""
    if head.translate(None, _HEAD_BYTES):
        return "A control character in the request head."
    line_ends = head.count(b"\r\n")
    if head.count(b"\n") != line_ends or head.count(b"\r") != line_ends:
        return "A bare CR or LF in the request head."
    if b"\n " in head or b"\n\t" in head:
        # obs-fold, which RFC 9112 5.2 lets a server refuse, or whitespace
        # between the request line and the first field (2.2: refuse).
        return "A header line begins with whitespace."
    if re.fullmatch(_REQUEST_LINE, head[: line_end + 2]) is None:
        return "Invalid request line."
    return "Invalid header field."


def check_unfinished_head(head: bytes, limits: RequestLimits) -> None:
    """Refuse early what an unfinished head already shows: sizes over the limits, a bare LF."""
    line_end = head.find(b"\r\n")
    if (len(head) - 1 if line_end == -1 else line_end) > limits.request_line_size:
        raise BadRequest(REQUEST_LINE_TOO_LONG, 414)
    if len(head) > limits.head_size:
        raise BadRequest("The request head is larger than --h11-max-incomplete-event-size.", 431)
    if head.count(b"\n") != head.count(b"\r\n"):
        raise BadRequest("A bare LF in the request head.")

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

    __slots__ = ("keep_alive", "has_body", "chunked", "content_length", "expect_100", "switch", "te_trailers", "h2_settings")

    def __init__(self) -> None:
        self.keep_alive = True
        self.has_body = False
        self.chunked = False
        self.content_length = 0
        self.expect_100 = False
        self.switch = SWITCH_NONE
        self.te_trailers = False
        self.h2_settings: bytes | None = None


# What check_request_head returns for a plain head (HTTP/1.1, one Host, no
# field it acts on): shared by every such request, never modified.
_PLAIN_REQUEST = RequestInfo()


def plain_request(content_length: int) -> RequestInfo:
    """What check_request_head returns for a plain head with a valid Content-Length (0: none)."""
    if not content_length:
        return _PLAIN_REQUEST
    info = RequestInfo()
    info.has_body = True
    info.content_length = content_length
    return info


def check_request_head(
    method: bytes, target: bytes, http_version: str, headers: list[tuple[bytes, bytes]], max_body: int | None
) -> RequestInfo:
    """Validate a parsed head; raise BadRequest for one that cannot be served."""
    info = RequestInfo()
    connection: set[bytes] | None = None
    content_length: bytes | None = None
    chunked = False
    upgrade: bytes | None = None
    hosts = 0
    for name, value in headers:
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
                # cannot be delimited or handed to the app as sent, and
                # chunked must not be applied twice (RFC 9112 6.1).
                if value.strip().lower() != b"chunked" or chunked:
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
    if hosts != 1 and (hosts or http_version == "1.1"):
        # RFC 9112 3.2: exactly one Host in HTTP/1.1, at most one in 1.0.
        raise BadRequest("A request must have exactly one Host header.")
    if content_length is not None and chunked:
        raise BadRequest("Both Content-Length and Transfer-Encoding were sent.")
    if chunked and http_version == "1.0":
        # RFC 9112 6.1: a message with Transfer-Encoding in HTTP/1.0 is
        # faulty (a 1.0 recipient may frame it otherwise); the server must
        # close after it, and refusing it is simplest.
        raise BadRequest("Transfer-Encoding in an HTTP/1.0 request.")
    if content_length is not None:
        if len(content_length) > 19 and len(content_length.lstrip(b"0")) > 19:
            raise BadRequest("Content-Length too large.")
        info.content_length = int(content_length)
        if info.content_length > MAX_CONTENT_LENGTH:
            raise BadRequest("Content-Length too large.")
        if max_body is not None and info.content_length > max_body:
            raise BadRequest("The request body is larger than --limit-request-body.", 413)
    info.chunked = chunked

    if http_version == "1.1":
        info.keep_alive = connection is None or b"close" not in connection
    else:
        info.keep_alive = connection is not None and b"keep-alive" in connection
        info.expect_100 = False
    info.has_body = chunked or info.content_length > 0
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
    """The path of an absolute-form target (RFC 9112 3.2.2), or the target itself.

    Only http and https URLs are taken, with an authority of RFC 3986's
    characters: what llhttp accepts (it refuses digits in a scheme, and a
    host with other characters), so that both parsers agree.
    """
    if target == b"*":
        return target
    match = _ABSOLUTE_FORM.match(target)
    path = target[match.end() :] if match is not None else b"?"
    if path and path[0] != 47:  # "/"
        raise BadRequest("Invalid request target.")
    return path or b"/"


pure_split_target = split_target
if speedups is not None:
    # The compiled hot path: the same function for a plain ASCII path and an
    # empty root path, handing any other target to the one above.
    speedups.setup_targets(pure_split_target)
    split_target = speedups.split_target  # noqa: F811
