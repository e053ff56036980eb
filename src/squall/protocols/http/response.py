"""Turning the app's `http.response.start` into HTTP/1.1 bytes, and the
server's own error responses.

Both parser implementations write responses through here, so framing,
default headers and header validation are identical whichever is in use.
"""

from __future__ import annotations

import http
import re
from collections.abc import Iterable

from squall._compiled import speedups
from squall.protocols.http.h1_request import connection_tokens

# How the response body is delimited on the wire.
FRAMING_NONE = 0  # 1xx, 204, 304: no body at all
FRAMING_LENGTH = 1  # the app's Content-Length
FRAMING_CHUNKED = 2  # HTTP/1.1 without a Content-Length
FRAMING_CLOSE = 3  # HTTP/1.0 without a Content-Length: the body ends at close


def _status_line(code: int) -> bytes:
    try:
        phrase = http.HTTPStatus(code).phrase
    except ValueError:
        phrase = ""
    return b"HTTP/1.1 %d %s\r\n" % (code, phrase.encode("ascii"))


STATUS_LINES: dict[int, bytes] = {int(code): _status_line(int(code)) for code in http.HTTPStatus}

# RFC 9110 5.6.2: a field name is a token.
_TOKEN_RE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Names that passed validation once; names repeat on every response.
_valid_names: set[bytes] = set()
_VALID_NAMES_MAX = 512

_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
_CONNECTION = b"connection"
_FRAMING_OR_DEFAULT = frozenset((_CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION, b"server", b"date"))


# What the body writer needs to know about the head that was built: its
# bytes, framing (FRAMING_*), Content-Length (or None) and whether the
# connection stays open.  A plain tuple, which the compiled builder makes
# without calling back into Python.
ResponseHead = tuple[bytes, int, "int | None", bool]


def check_header(name: bytes, value: bytes) -> None:
    if name not in _valid_names:
        if not isinstance(name, bytes) or not _TOKEN_RE.fullmatch(name):
            raise RuntimeError(f"Invalid HTTP header name {name!r} in the response.")
        if len(_valid_names) < _VALID_NAMES_MAX:
            _valid_names.add(name)
    if not isinstance(value, bytes):
        raise RuntimeError(f"HTTP header value for {name!r} must be bytes, not {type(value).__name__}.")
    if b"\r" in value or b"\n" in value or b"\x00" in value:
        raise RuntimeError(f"Invalid HTTP header value for {name!r}: it contains CR, LF or NUL.")


def build_response_head(
    status: int,
    headers: Iterable[tuple[bytes, bytes]],
    default_headers: bytes,
    default_header_names: frozenset[bytes],
    http_11: bool,
    keep_alive: bool,
    is_head: bool,
) -> ResponseHead:
    """Validate the app's headers and choose the framing, as RFC 9112 section 6 says."""
    status_line = STATUS_LINES.get(status)
    if status_line is None:
        if not isinstance(status, int) or not 100 <= status <= 999:
            raise RuntimeError(f"Invalid HTTP status code {status!r} in the response.")
        status_line = _status_line(status)

    content_length: int | None = None
    app_chunked = False
    app_closes = False
    overridden: list[bytes] | None = None
    lines = [status_line, b""]  # b"" is replaced by the default headers below
    for name, value in headers:
        check_header(name, value)
        lname = name.lower()
        if lname in _FRAMING_OR_DEFAULT:
            if lname == _CONTENT_LENGTH:
                if content_length is not None or not value.strip().isdigit():
                    raise RuntimeError(f"Invalid or repeated Content-Length {value!r} in the response.")
                content_length = int(value)
            elif lname == _TRANSFER_ENCODING:
                if value.strip().lower() != b"chunked":
                    raise RuntimeError(f"Unsupported Transfer-Encoding {value!r}: only 'chunked' may be set.")
                app_chunked = True
            elif lname == _CONNECTION:
                if b"close" in connection_tokens(value):
                    app_closes = True
            elif lname in default_header_names:
                # The app's own Server or Date replaces the default one.
                overridden = (overridden or []) + [lname]
        lines.append(name + b": " + value + b"\r\n")

    if content_length is not None and app_chunked:
        raise RuntimeError("The response has both Content-Length and Transfer-Encoding: chunked.")

    if status < 200 or status == 204 or status == 304:
        framing = FRAMING_NONE
    elif app_chunked:
        framing = FRAMING_CHUNKED
    elif content_length is not None:
        framing = FRAMING_LENGTH
    elif http_11:
        framing = FRAMING_CHUNKED
        lines.append(b"transfer-encoding: chunked\r\n")
    else:
        framing = FRAMING_CLOSE
        if not is_head:
            keep_alive = False

    if app_closes:
        keep_alive = False
    elif not keep_alive:
        lines.append(b"connection: close\r\n")
    elif not http_11:
        lines.append(b"connection: keep-alive\r\n")

    lines[1] = _without(default_headers, overridden) if overridden else default_headers
    lines.append(b"\r\n")
    return b"".join(lines), framing, content_length, keep_alive


def _without(default_headers: bytes, names: list[bytes]) -> bytes:
    kept = [
        line
        for line in default_headers.split(b"\r\n")
        if line and line.split(b":", 1)[0].lower() not in names
    ]
    return b"".join(line + b"\r\n" for line in kept)


def simple_response(
    status: int, body: str, default_headers: bytes = b"", close: bool = True, head_only: bool = False
) -> bytes:
    """A complete plain-text response written by the server itself (`head_only` for HEAD requests)."""
    data = body.encode("utf-8")
    return b"".join(
        (
            STATUS_LINES.get(status) or _status_line(status),
            default_headers,
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(data),
            b"connection: close\r\n" if close else b"",
            b"\r\n",
            b"" if head_only else data,
        )
    )


# The pure-Python function above is the reference; the compiled one (same
# arguments, same results, checked by tests/protocols/http/test_hot_path.py)
# replaces it when the extension is built and not disabled.
pure_build_response_head = build_response_head
if speedups is not None:
    speedups.setup(STATUS_LINES, pure_build_response_head)
    build_response_head = speedups.build_response_head  # noqa: F811
