"""Reading HTTP/1.1 requests from a byte stream, the same way whichever parser is used.

`H1Reader` owns the framing of the byte stream: where each request head
ends (the first CRLF CRLF), the checks on the head as bytes
(`check_head_bytes`), and the request body (`Content-Length`, or chunked
through the shared `ChunkedDecoder`).  The parser — h11 or llhttp, in a
subclass — is only asked to split a complete, pre-checked head into a
method, a target, a version and fields (`parse_head`).  So both parsers
see exactly the same heads, and bodies are framed by one piece of code:
nothing a proxy could read one way and Squall another depending on the
`--http` setting.

It reports to its `H1Connection`: `on_head` (which returns what the head
means for the framing), `on_body`, `on_message_end`, `on_switch` and
`on_error`, and asks it `may_parse` before each request head: when the
connection may not take another request yet, the rest of the input is held
(and reading is paused by the connection) until `resume`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from squall.protocols.http.h1_body import DONE, ChunkedDecoder
from squall.protocols.http.h1_request import BadRequest, check_head_bytes, check_unfinished_head

if TYPE_CHECKING:
    from squall.protocols.http.h1_connection import H1Connection

# Reader states (module constants, compared with `is`).
HEAD = 0  # reading a request head (or the empty lines before one)
LENGTH = 1  # reading a body framed by Content-Length
CHUNKED = 2  # reading a chunked body
STOPPED = 3  # nothing more is parsed: an error, a protocol switch, or Connection: close

_HEAD_END = b"\r\n\r\n"


class H1Reader:
    """The framing of requests on a connection; `parse_head` is the parser's part."""

    # The compiled reader of common heads (squall._speedups.parse_request_head),
    # for a parser that gives way to it: it returns what `check_head_bytes`
    # then `parse_head` would, and `plain`: when `check_request_head` would
    # find nothing to act on but a valid Content-Length, the body's length (0
    # without one), else -1; or None, and the head takes the pure path.
    # Callable[[bytes, int, int, int, int], tuple[bytes, bytes, str, list[tuple[bytes, bytes]], int] | None] | None
    # (not annotated in the class body: a compiled class cannot have one).
    fast_parse = None

    def __init__(self, conn: H1Connection) -> None:
        self.conn = conn
        self.limits = conn.limits
        self.state = HEAD
        # Input not parsed yet: an unfinished head, or what waits for `resume`.
        self._buffer = b""
        # Body bytes still to come (LENGTH), or the chunked body's decoder.
        self._remaining = 0
        self._decoder: ChunkedDecoder | None = None
        # The request being read: does it keep the connection, is it a HEAD.
        self._keep_alive = True
        self._is_head = False

    def parse_head(self, head: bytes) -> tuple[bytes, bytes, str, list[tuple[bytes, bytes]]]:
        """(method, target, HTTP version, fields) of a complete head; BadRequest if the parser refuses it.

        The fields' names are lowercase, their values without surrounding
        whitespace, in the order sent.
        """
        raise NotImplementedError

    def resume(self) -> None:
        """Parse what was held back, as far as the connection now allows."""
        if self._buffer and self.state is HEAD:
            self.feed(b"")

    def feed(self, data: bytes) -> None:
        """Parse `data`, calling back the connection; hold back what may not be parsed yet."""
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        conn = self.conn
        pos = 0
        end = len(data)
        try:
            while pos < end:
                state = self.state
                if state is HEAD:
                    if not conn.may_parse():
                        if not conn.closing and conn.pending_error is None:
                            self._buffer = data[pos:]
                        return
                    # RFC 9112 2.2: empty lines before a request line are ignored.
                    while data.startswith(b"\r\n", pos):
                        pos += 2
                    head_end = data.find(_HEAD_END, pos)
                    if head_end == -1:
                        rest = data[pos:] if pos else data
                        if rest:
                            self._is_head = rest.startswith(b"HEAD ")
                            check_unfinished_head(rest, self.limits)
                            self._buffer = rest
                        return
                    head_end += 4
                    head = data[pos:head_end] if pos or head_end != end else data
                    pos = head_end
                    if self._on_head(head):
                        conn.on_switch(data[pos:])
                        return
                elif state is LENGTH:
                    take = self._remaining
                    if take >= end - pos:
                        take = end - pos
                    conn.on_body(data if take == end else data[pos : pos + take])
                    pos += take
                    self._remaining -= take
                    if not self._remaining:
                        self._end_message()
                elif state is CHUNKED:
                    decoder = self._decoder
                    assert decoder is not None
                    pos = decoder.decode(data, pos, conn.on_body)
                    if decoder.state == DONE:
                        self._end_message(decoder.trailers)
                else:
                    return
        except BadRequest as exc:
            self.state = STOPPED
            self._buffer = b""
            self._decoder = None
            conn.on_error(exc.status, str(exc), self._is_head)

    def _on_head(self, head: bytes) -> bool:
        """Check and parse a complete head, then set up reading its body; True if the connection switches."""
        self._is_head = head.startswith(b"HEAD ")
        limits = self.limits
        fast_parse = self.fast_parse
        parsed = (
            fast_parse(head, limits.request_line_size, limits.head_size, limits.fields, limits.field_size)
            if fast_parse is not None
            else None
        )
        if parsed is None:
            check_head_bytes(head, limits)
            method, target, http_version, headers = self.parse_head(head)
            plain = -1
        else:
            method, target, http_version, headers, plain = parsed
        info = self.conn.on_head(method, target, http_version, headers, plain)
        if info.switch:
            self.state = STOPPED
            return True
        self._keep_alive = info.keep_alive
        if info.chunked:
            self._decoder = ChunkedDecoder(self.limits)
            self.state = CHUNKED
        elif info.content_length:
            self._remaining = info.content_length
            self.state = LENGTH
        elif not info.keep_alive:
            # RFC 9112 9.6: no further request on the connection is processed.
            self.state = STOPPED
        return False

    def _end_message(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        self._decoder = None
        # RFC 9112 9.6: after a request that closes the connection, nothing
        # more is processed.
        self.state = HEAD if self._keep_alive else STOPPED
        self.conn.on_message_end(trailers)
