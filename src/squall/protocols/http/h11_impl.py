"""HTTP/1.1 parsed by h11: the pure-Python wire layer.

h11 is used as the request parser only; responses are written by the shared
code in `h1_connection.py`, so both parsers frame responses alike.  h11
keeps a per-request state machine that expects to see our response too, so
after each request a fresh `h11.Connection` takes over what was left unread.
"""

from __future__ import annotations

import re

import h11

from squall.protocols.http.h1_connection import H1Connection, H1Reader
from squall.protocols.http.h1_request import BadRequest

# What h11 accepts in a request head and llhttp refuses: control characters
# other than HTAB, a CR or LF that is not part of a CRLF, and obs-fold
# continuation lines (RFC 9112 5.2 lets a server refuse them).
_INVALID_HEAD = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n|\n[ \t]")


class H11Reader(H1Reader):
    def __init__(self, conn: H1Connection, max_head_size: int) -> None:
        self.conn = conn
        self.max_head_size = max_head_size
        # True while the parser has no bytes of the next request yet.
        self._before_request = True
        # The bytes of the next request head as they arrive (h11 does not
        # expose them), to hold it to llhttp's rules; None once it is parsed.
        self._raw_head: bytes | None = b""
        self.parser = self._new_parser(b"")

    def _new_parser(self, data: bytes) -> h11.Connection:
        parser = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head_size)
        # RFC 9112 2.2: empty lines before a request line are ignored (llhttp
        # does so too); h11 would take them for a missing request line.
        data = data.lstrip(b"\r\n")
        self._before_request = not data
        self._raw_head = data
        if data:
            parser.receive_data(data)
        return parser

    def feed(self, data: bytes) -> None:
        if self._before_request:
            data = data.lstrip(b"\r\n")
            if not data:
                return
            self._before_request = False
        if self._raw_head is not None:
            self._raw_head += data
        self.parser.receive_data(data)
        self._parse()

    def resume(self) -> None:
        self._parse()

    def _parse(self) -> None:
        conn = self.conn
        # Stop when the connection may not take another request yet: the
        # rest waits in h11's buffer (and reading is paused) until it may.
        while conn.may_parse():
            try:
                event = self.parser.next_event()
            except h11.RemoteProtocolError as exc:
                if exc.error_status_hint == 431 and self._raw_head is not None:
                    # An unfinished head over the limit (in a body, the same
                    # error means an endless chunk-size line: a plain 400).
                    line = self.parser.trailing_data[0].partition(b"\r\n")[0]
                    method, _, rest = line.partition(b" ")
                    status = conn.head_overflow_status(method, rest.partition(b" ")[0])
                else:
                    status = 400
                conn.on_error(status, str(exc))
                return
            event_type = type(event)
            if event_type is h11.Data:
                conn.on_body(bytes(event.data))  # type: ignore[union-attr]
            elif event_type is h11.Request:
                if self._on_request(event):  # type: ignore[arg-type]
                    return
            elif event_type is h11.EndOfMessage:
                conn.on_message_end()
                # h11 would wait for our response before the next request;
                # a fresh parser reads it instead, from what is left.
                self.parser = self._new_parser(self.parser.trailing_data[0])
            else:  # NEED_DATA, or ConnectionClosed (the transport closes itself)
                return

    def _on_request(self, event: h11.Request) -> bool:
        conn = self.conn
        headers = list(event.headers)
        http_version = event.http_version.decode("ascii")
        raw_head, self._raw_head = self._raw_head, None
        try:
            _check_raw_head(raw_head or b"", headers)
            switch = conn.on_head(event.method, event.target, http_version, headers)
        except BadRequest as exc:
            conn.on_error(exc.status, str(exc), event.method == b"HEAD")
            return True
        if switch:
            # The switching request has no body: what follows the head is the new protocol's.
            conn.on_switch(self.parser.trailing_data[0])
            return True
        return False


def _check_raw_head(data: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """Refuse what h11 lets through but llhttp does not, so that both parsers serve the same requests."""
    end = data.find(b"\r\n\r\n")
    if end == -1:
        raise BadRequest("The request head ends in a bare LF.")
    head = data[: end + 2]
    match = _INVALID_HEAD.search(head)
    if match is not None:
        raise BadRequest(f"Invalid character {match.group()[:1]!r} in the request head.")
    # h11 merges repeated Content-Length headers (and "5, 5" lists) into one.
    if any(name == b"content-length" for name, _ in headers):
        lines = [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
        if len(lines) != 1 or b"," in lines[0]:
            raise BadRequest("More than one Content-Length value.")


class H11Protocol(H1Connection):
    """`--http h11`: an HTTP/1.1 connection read by h11."""

    reader_class = H11Reader
