"""The chunked transfer coding (RFC 9112 7.1), decoded the same way whichever parser read the head.

h11 and llhttp each decode chunked bodies with their own leniencies (one
takes `5 ` or a bare LF where the other refuses it).  A body framed one way
by Squall and another way by a proxy in front of it is how requests are
smuggled, so Squall decodes chunked bodies itself, strictly, for both
parsers: `ChunkedDecoder` is fed bytes and hands out body data, without
I/O.

What is accepted, exactly (anything else is a 400):

    chunk-line    = 1*HEXDIG *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] ) CRLF
    chunk         = chunk-line chunk-data CRLF          (size > 0)
    last-chunk    = chunk-line                          (size 0)
    trailer-field = token ":" OWS field-value OWS CRLF  (read and dropped)
    end           = CRLF after the trailer fields

Every line ends in CRLF: a bare LF or CR is refused.  A size must fit in 63
bits.  A chunk line is limited like a header field line (413 for a body over
`--limit-request-body`, 431 for trailers over the field limits).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from squall.protocols.http.h1_request import FIELD_LINE, TOKEN, BadRequest, RequestLimits

_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]+)((?:[ \t]*;[ \t]*" + TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + TOKEN + rb"|" + _QUOTED + rb"))?)*)\r\n"
)

# The largest chunk size and Content-Length taken: what a signed 64-bit
# integer holds, as most proxies store them.
MAX_LENGTH = (1 << 63) - 1

# Decoder states.
_SIZE = 0  # reading a chunk line
_DATA = 1  # reading chunk data
_DATA_END = 2  # reading the CRLF after chunk data
_TRAILER = 3  # reading trailer fields, or the final CRLF
DONE = 4


class ChunkedDecoder:
    """Decodes one chunked request body from the bytes it is fed."""

    __slots__ = ("state", "_remaining", "_line", "_limits", "_body_size", "_trailer_fields", "_trailer_size", "trailers")

    def __init__(self, limits: RequestLimits) -> None:
        self.state = _SIZE
        self._remaining = 0
        # An unfinished line (chunk line, the CRLF after data, a trailer field).
        self._line = b""
        self._limits = limits
        self._body_size = 0
        self._trailer_fields = 0
        self._trailer_size = 0
        # The trailer fields, as a request's headers are: lowercase names, trimmed values.
        self.trailers: list[tuple[bytes, bytes]] = []

    def decode(self, data: bytes, pos: int, on_body: Callable[[bytes], None]) -> int:
        """Decode `data[pos:]`, passing body data to `on_body`; return where decoding stopped.

        That is `len(data)` while the body goes on; once `state` is DONE, it
        is where the next request begins.  Raises BadRequest on a framing
        error.
        """
        end = len(data)
        while pos < end:
            if self.state == _DATA:
                take = self._remaining
                if take >= end - pos:
                    take = end - pos
                on_body(data if take == end and pos == 0 else data[pos : pos + take])
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self.state = _DATA_END
                continue
            newline = data.find(b"\n", pos)
            if newline == -1:
                self._line += data[pos:]
                self._check_unfinished_line()
                return end
            line = data[pos : newline + 1]
            if self._line:
                line = self._line + line
                self._line = b""
            pos = newline + 1
            self._on_line(line)
            if self.state == DONE:
                return pos
        return pos

    def _on_line(self, line: bytes) -> None:
        state = self.state
        if state == _SIZE:
            self._on_chunk_line(line)
        elif state == _DATA_END:
            if line != b"\r\n":
                raise BadRequest("Chunk data is not followed by CRLF.")
            self.state = _SIZE
        elif line == b"\r\n":
            self.state = DONE
        else:
            self._on_trailer_field(line)

    def _on_chunk_line(self, line: bytes) -> None:
        if len(line) > self._limits.line_size:
            raise BadRequest("A chunk line is longer than --limit-request-field-size.")
        match = _CHUNK_LINE.fullmatch(line)
        if match is None:
            raise BadRequest(f"Invalid chunk line {line[:40]!r}.")
        digits = match.group(1)
        if len(digits) > 16 and len(digits.lstrip(b"0")) > 16:
            raise BadRequest("Chunk size too large.")
        size = int(digits, 16)
        if size > MAX_LENGTH:
            raise BadRequest("Chunk size too large.")
        self._body_size += size
        max_body = self._limits.body
        if max_body is not None and self._body_size > max_body:
            raise BadRequest("The request body is larger than --limit-request-body.", 413)
        if size:
            self._remaining = size
            self.state = _DATA
        else:
            self.state = _TRAILER

    def _on_trailer_field(self, line: bytes) -> None:
        limits = self._limits
        self._trailer_fields += 1
        self._trailer_size += len(line)
        if limits.fields and self._trailer_fields > limits.fields:
            raise BadRequest("More trailer fields than --limit-request-fields.", 431)
        if limits.field_size and len(line) > limits.field_size:
            raise BadRequest("A trailer field is longer than --limit-request-field-size.", 431)
        if self._trailer_size > limits.head_size:
            raise BadRequest("The trailer section is larger than --h11-max-incomplete-event-size.", 431)
        if FIELD_LINE.fullmatch(line) is None:
            raise BadRequest(f"Invalid trailer field {line[:40]!r}.")
        name, _, value = line.partition(b":")
        self.trailers.append((name.lower(), value.strip(b" \t\r\n")))

    def _check_unfinished_line(self) -> None:
        """Refuse a line that is already too long, without waiting for its end."""
        line = self._line
        state = self.state
        if state == _DATA_END:
            if not b"\r\n".startswith(line):
                raise BadRequest("Chunk data is not followed by CRLF.")
        elif state == _SIZE:
            if len(line) > self._limits.line_size:
                raise BadRequest("A chunk line is longer than --limit-request-field-size.")
        else:
            if len(line) > self._limits.line_size or self._trailer_size + len(line) > self._limits.head_size:
                raise BadRequest("A trailer field is longer than --limit-request-field-size.", 431)
