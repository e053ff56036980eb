"""The access log's record of one request, and `--access-log-format`.

`AccessEntry` is what an HTTP request (or a WebSocket session) leaves for the
access log: plain values only, so a record carrying it can be pickled or
queued.  Its atoms (`%(h)s`, `%(r)s`...) have Gunicorn's names and meanings;
`AccessFormat` is a format string compiled once, at startup, into a template
and the getters of just the atoms it names.

Everything that comes from the request (or from the app's response headers)
goes through `escape`, so a client cannot write a line break, a terminal
escape sequence or a bidirectional override into a log line.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any

from squall.log_handlers import BatchedStreamHandler

__all__ = ["AccessEntry", "AccessFormat", "AccessFormatError", "clf_time", "escape", "log_access"]

access_logger = logging.getLogger("squall.access")


# -- escaping ---------------------------------------------------------------------------

_NAMED_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\\": "\\\\"}


def _escape_char(char: str) -> str:
    if char.isprintable() and char != "\\":
        return char
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(text: str) -> str:
    """`text` with every non-printable character (C0 and C1 controls, DEL, line
    and paragraph separators, bidirectional overrides...) written as a Python
    escape, and backslashes doubled so that an escape cannot be faked."""
    if text.isprintable() and "\\" not in text:
        return text  # the usual case: one C-level scan
    return "".join(map(_escape_char, text))


# -- %(t)s --------------------------------------------------------------------------------

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_clf_second = -1
_clf_text = ""


def clf_time(now: float) -> str:
    """`[28/Nov/2026:21:00:00 +0000]` (UTC), formatted once per second."""
    global _clf_second, _clf_text
    second = int(now)
    if second != _clf_second:
        t = time.gmtime(second)
        # Month names by hand: strftime's %b follows the locale.
        _clf_text = (
            f"[{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000]"
        )
        _clf_second = second
    return _clf_text


# -- the entry ------------------------------------------------------------------------------


def _header(headers: list[tuple[bytes, bytes]] | None, name: bytes) -> str | None:
    """The values of header `name` (lower case), joined by ", "; None if absent."""
    if not headers:
        return None
    values = [value for key, value in headers if key.lower() == name]
    if not values:
        return None
    return escape(b", ".join(values).decode("latin-1"))


def protocol_text(http_version: str) -> str:
    """The protocol as the access log writes it: HTTP/1.0, HTTP/1.1, HTTP/2.0 (as Uvicorn's line does)."""
    return "HTTP/2.0" if http_version == "2" else f"HTTP/{http_version}"


class AccessEntry:
    """One request and its response, for the access log.

    `client`, `method`, `path`, `raw_path`, `query`, `http_version` and
    `request_headers` are the scope's; `status`, `bytes_sent` and
    `response_headers` what the app sent (the status on the wire for a
    WebSocket: 101, or 200 over HTTP/2, or the denial's); `duration` is in
    seconds.  `kind` is "http" or "websocket".
    """

    __slots__ = (
        "kind",
        "client",
        "method",
        "path",
        "raw_path",
        "query",
        "http_version",
        "request_headers",
        "status",
        "bytes_sent",
        "duration",
        "response_headers",
        "format",
    )

    def __init__(
        self,
        kind: str,
        scope: dict[str, Any],
        method: str,
        status: int,
        bytes_sent: int,
        duration: float,
        response_headers: list[tuple[bytes, bytes]] | None,
        format: AccessFormat | None,
    ) -> None:
        self.kind = kind
        self.client: tuple[str, int] | None = scope.get("client")
        self.method = method
        self.path: str = scope["path"]
        self.raw_path: bytes | None = scope.get("raw_path")
        self.query: bytes = scope["query_string"]
        self.http_version: str = scope["http_version"]
        self.request_headers: list[tuple[bytes, bytes]] = scope["headers"]
        self.status = status
        self.bytes_sent = bytes_sent
        self.duration = duration
        self.response_headers = response_headers
        # The --access-log-format in use, whose header atoms the JSON record names.
        self.format = format

    # The atoms, each a str as the text line shows it.

    def host(self) -> str:
        return escape(self.client[0]) if self.client else "-"

    def client_text(self) -> str:
        """host:port, as Uvicorn's line shows the client."""
        client = self.client
        return escape(f"{client[0]}:{client[1]}") if client else "-"

    def path_and_query(self) -> str:
        """The decoded path, and the query string after a '?' (Uvicorn's line)."""
        if self.query:
            return escape(self.path + "?" + self.query.decode("latin-1"))
        return escape(self.path)

    def request_line(self) -> str:
        target = self.raw_path.decode("latin-1") if self.raw_path is not None else self.path
        if self.query:
            target += "?" + self.query.decode("latin-1")
        return f"{escape(self.method)} {escape(target)} {protocol_text(self.http_version)}"

    def query_text(self) -> str:
        """Gunicorn's %(q)s: '?' and the query string, or nothing."""
        return escape("?" + self.query.decode("latin-1")) if self.query else ""

    def user(self) -> str | None:
        """The user name of Basic authentication, if the request has one."""
        value = _header(self.request_headers, b"authorization")
        if value is None or not value[:6].lower() == "basic ":
            return None
        try:
            decoded = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return escape(decoded.partition(":")[0])

    def request_header(self, name: bytes) -> str | None:
        return _header(self.request_headers, name)

    def response_header(self, name: bytes) -> str | None:
        return _header(self.response_headers, name)

    def fields(self) -> dict[str, Any]:
        """Every field as a JSON value (None where the text line shows '-')."""
        client = self.client
        duration_us = int(self.duration * 1_000_000)
        fields: dict[str, Any] = {
            "type": self.kind,
            "client": escape(client[0]) if client else None,
            "client_port": client[1] if client else None,
            "request_line": self.request_line(),
            "method": escape(self.method),
            "path": escape(self.path),
            "query": escape(self.query.decode("latin-1")),
            "protocol": protocol_text(self.http_version),
            "status": self.status,
            "bytes": self.bytes_sent,
            "duration_us": duration_us,
            "user_agent": _header(self.request_headers, b"user-agent"),
            "referer": _header(self.request_headers, b"referer"),
            "user": self.user(),
            "pid": os.getpid(),
        }
        if self.format is not None:
            for name in self.format.request_headers:
                fields["request_header_" + _key(name)] = _header(self.request_headers, name)
            for name in self.format.response_headers:
                fields["response_header_" + _key(name)] = _header(self.response_headers, name)
        return fields


def _key(header: bytes) -> str:
    return header.decode("latin-1").replace("-", "_")


# -- --access-log-format ------------------------------------------------------------------

Getter = Callable[[AccessEntry], str]


def _or_dash(value: str | None) -> str:
    return "-" if value is None else value


# Gunicorn's atoms.  Times: D microseconds, M milliseconds, T whole seconds, L decimal seconds.
ATOMS: dict[str, tuple[str, Getter]] = {
    "h": ("client address", AccessEntry.host),
    "l": ("'-' (no ident lookup)", lambda e: "-"),
    "u": ("user name of Basic authentication, or '-'", lambda e: _or_dash(e.user())),
    "t": ("time the request ended, [28/Nov/2026:21:00:00 +0000]", lambda e: clf_time(time.time())),
    "r": ("request line, as sent", AccessEntry.request_line),
    "m": ("method", lambda e: escape(e.method)),
    "U": ("path, decoded, without the query", lambda e: escape(e.path)),
    "q": ("'?' and the query string, or nothing", AccessEntry.query_text),
    "H": ("protocol, e.g. HTTP/1.1", lambda e: protocol_text(e.http_version)),
    "s": ("status code", lambda e: str(e.status)),
    "B": ("response body bytes", lambda e: str(e.bytes_sent)),
    "b": ("response body bytes, or '-' for none", lambda e: str(e.bytes_sent) if e.bytes_sent else "-"),
    "f": ("Referer header, or '-'", lambda e: _or_dash(_header(e.request_headers, b"referer"))),
    "a": ("User-Agent header, or '-'", lambda e: _or_dash(_header(e.request_headers, b"user-agent"))),
    "T": ("response time, whole seconds", lambda e: str(int(e.duration))),
    "M": ("response time, milliseconds", lambda e: str(int(e.duration * 1000))),
    "D": ("response time, microseconds", lambda e: str(int(e.duration * 1_000_000))),
    "L": ("response time, decimal seconds", lambda e: f"{e.duration:.6f}"),
    "p": ("process id, <1234>", lambda e: f"<{os.getpid()}>"),
}

# %(x)s, %({Header-Name}i)s, %({Header-Name}o)s, %%; any other '%' is a mistake.
_TOKEN = re.compile(r"%\((\{(?P<header>[^}]*)\}(?P<side>[io])|(?P<atom>[^)]*))\)s|%%|%")
_TOKEN_CHARS = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class AccessFormatError(ValueError):
    """The format names an unknown atom, or has a '%' that starts none."""


class AccessFormat:
    """A compiled `--access-log-format`: `render(entry)` is the line.

    Raises AccessFormatError (one line) for a format it cannot compile.
    """

    def __init__(self, fmt: str) -> None:
        self.source = fmt
        self.request_headers: list[bytes] = []
        self.response_headers: list[bytes] = []
        pieces: list[str] = []
        getters: list[Getter] = []
        position = 0
        for match in _TOKEN.finditer(fmt):
            pieces.append(fmt[position : match.start()].replace("%", "%%"))
            position = match.end()
            token = match.group(0)
            if token == "%%":
                pieces.append("%%")
                continue
            getters.append(self._getter(match, token))
            pieces.append("%s")
        pieces.append(fmt[position:].replace("%", "%%"))
        self._template = "".join(pieces)
        self._getters = tuple(getters)

    def _getter(self, match: re.Match[str], token: str) -> Getter:
        header, side, atom = match.group("header"), match.group("side"), match.group("atom")
        if header is not None:
            if not _TOKEN_CHARS.fullmatch(header):
                raise AccessFormatError(f"{token!r} does not name a header")
            name = header.lower().encode("ascii")
            if side == "i":
                self.request_headers.append(name)
                return lambda e: _or_dash(_header(e.request_headers, name))
            self.response_headers.append(name)
            return lambda e: _or_dash(_header(e.response_headers, name))
        if atom is None:
            raise AccessFormatError("a '%' that starts no atom (write '%%' for a percent sign)")
        known = ATOMS.get(atom)
        if known is None:
            raise AccessFormatError(f"unknown atom {token!r}; known: {', '.join(ATOMS)}, {{Header}}i, {{Header}}o")
        return known[1]

    def render(self, entry: AccessEntry) -> str:
        return self._template % tuple([getter(entry) for getter in self._getters])

    def __reduce__(self) -> tuple[Any, ...]:
        # Configs travel to worker processes by pickle: compile again there.
        return (AccessFormat, (self.source,))


# Uvicorn's access line; its arguments are (client, method, path, HTTP version, status).
UVICORN_LINE = '%s - "%s %s HTTP/%s" %d'


def log_access(entry: AccessEntry) -> None:
    """Write `entry` to `squall.access`: Uvicorn's line, or the entry's --access-log-format line.

    Uvicorn's line keeps Uvicorn's arguments, which its AccessFormatter and
    users' filters read.  Either way the record carries the entry as
    `access`, for the JSON formatter.  The record is made and handed to the
    logger directly: `Logger.info` would also look up the caller's source
    line in the stack, for every request, and no access line shows it.
    Levels, filters, handlers and propagation apply as usual.
    """
    logger = access_logger
    if not logger.isEnabledFor(logging.INFO):
        return
    if entry.format is not None:
        message, args = entry.format.render(entry), ()
    else:
        version = entry.http_version
        message = UVICORN_LINE
        args = (
            entry.client_text(),
            escape(entry.method),
            entry.path_and_query(),
            "2.0" if version == "2" else version,
            entry.status,
        )
    handler = _direct_handler(logger)
    if handler is not None:
        direct_line = getattr(handler.formatter, "direct_line", None)
        line = direct_line(message, args) if direct_line is not None else None
        if line is not None:
            handler.write_line(line)
            return
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, message, args, None, "log_access", {"access": entry})
    logger.handle(record)


# -- the direct path ------------------------------------------------------------------------
#
# With the default configuration a record exists only to be formatted into
# one line and written: making the LogRecord and passing it through the
# logging machinery was a third of a request's CPU time.  So when the access
# logger is set up exactly as Squall sets it up (its own batching handler,
# Squall's formatter, no filter anywhere, nothing propagated), the line is
# made directly, the same line the formatter would make.  Any other set-up
# (a filter or handler added by the app or a --log-config, a changed format)
# gets the records, as before.


def _direct_handler(logger: logging.Logger) -> BatchedStreamHandler | None:
    if logger.filters or logger.propagate:
        return None
    handlers = logger.handlers
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if type(handler) is not BatchedStreamHandler or handler.filters or handler.level > logging.INFO:
        return None
    return handler
