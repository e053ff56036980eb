"""HTTP/1.1 parsed by httptools (llhttp, in C): the fast wire layer."""

from __future__ import annotations

import httptools

from squall.protocols.http.h1_connection import H1Connection, H1Reader
from squall.protocols.http.h1_request import BadRequest, RequestHead

_HEAD_END = b"\r\n\r\n"


class HttpToolsReader(H1Reader):
    def __init__(self, conn: H1Connection, max_head_size: int) -> None:
        self.conn = conn
        self.max_head_size = max_head_size
        self.parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        # Bytes the connection may not take yet (see `feed`).
        self._held = b""
        # The last bytes fed to llhttp, where the next head end may begin.
        self._fed_tail = b""
        # Bytes of the unfinished request head read so far, or -1 between
        # heads: llhttp has no size limit of its own.  Within the read where
        # a head begins the callbacks count it; once a read ends inside the
        # head (`_head_spans_reads`), every further read counts whole.  The
        # limit of a complete head is checked in `on_head`.
        self._head_size = -1
        self._head_spans_reads = False
        self._switching = False
        # llhttp takes everything after an upgrade request's head for the new
        # protocol, body included.  When the upgrade is not taken and there is
        # a body, this is a head that frames it alike, for a fresh parser to
        # read the body with (`_replaying` while that head is fed to it).
        self._skipped_body_head: bytes | None = None
        self._replaying = False

    def feed(self, data: bytes) -> None:
        """Feed llhttp, one request head at a time when a read holds several.

        llhttp parses all it is given, so a single read of small pipelined
        requests would queue them all.  Cutting the input after each head
        end lets the connection say when to stop; the rest is held (and
        reading is paused) until it may go on.  Cutting never changes what
        llhttp parses: it is a streaming parser.
        """
        if self._held:
            data = self._held + data
            self._held = b""
        conn = self.conn
        while data:
            if not conn.may_parse():
                if not conn.closing and conn.pending_error is None:
                    self._held = data
                return
            # The offset just past the first head end; it may begin in the
            # bytes fed before (a read can end inside "\r\n\r\n").
            tail = self._fed_tail
            end = (tail + data[:3]).find(_HEAD_END)
            if end != -1:
                end += 4 - len(tail)
            else:
                end = data.find(_HEAD_END)
                if end != -1:
                    end += 4
            if end == -1 or data.find(_HEAD_END, end) == -1:
                self._fed_tail = (tail + data[-3:])[-3:]
                self._feed(data, b"")
                return
            self._fed_tail = (tail + data[max(0, end - 3) : end])[-3:]
            if not self._feed(data[:end], data[end:]):
                return
            data = data[end:]

    def resume(self) -> None:
        if self._held:
            self.feed(b"")

    def _feed(self, data: bytes, rest: bytes) -> bool:
        """Parse `data`, the part of the input before `rest`; False if `rest` was taken by a protocol switch."""
        conn = self.conn
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            return self._on_upgrade(data[exc.args[0] :], rest)
        except httptools.HttpParserCallbackError as exc:
            error = exc.__context__
            if isinstance(error, BadRequest):
                conn.on_error(error.status, str(error), self._is_head())
                return True
            raise
        except httptools.HttpParserError as exc:
            conn.on_error(400, str(exc))
            return True
        if self._head_size >= 0:  # the read ended inside a head
            if self._head_spans_reads:
                self._head_size += len(data)
            else:
                self._head_spans_reads = True
            if self._head_size > self.max_head_size:
                self._head_size = -1
                status = conn.head_overflow_status(self.parser.get_method() if self._url else b"", self._url)
                conn.on_error(status, "The request head is larger than --h11-max-incomplete-event-size.")
        return True

    def _is_head(self) -> bool:
        try:
            return self.parser.get_method() == b"HEAD"
        except httptools.HttpParserError:
            return False

    def _on_upgrade(self, trailing: bytes, rest: bytes) -> bool:
        if self._switching:
            self._switching = False
            self.conn.on_switch(trailing + rest)
            return False
        # An upgrade we don't do (WebSockets disabled, h2c with a body, an
        # unknown protocol): the request is served as plain HTTP, so go on
        # parsing its body and what follows.
        if self._skipped_body_head is not None:
            synthetic, self._skipped_body_head = self._skipped_body_head, None
            self.parser = httptools.HttpRequestParser(self)
            self._replaying = True
            try:
                self.parser.feed_data(synthetic)
            finally:
                self._replaying = False
        if trailing and not self.conn.closing:
            self.feed(trailing + rest)
            return False
        return True

    # -- httptools callbacks ---------------------------------------------------

    def on_message_begin(self) -> None:
        if self._replaying:
            return
        self._url = b""
        self._headers = []
        self._head_size = 0
        self._head_spans_reads = False

    def on_url(self, url: bytes) -> None:
        if self._replaying:
            return
        self._url += url
        if not self._head_spans_reads:
            self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head_size < 0:
            return  # a trailer field after a chunked body (or a replayed head): not part of the scope
        if not self._head_spans_reads:
            self._head_size += len(name) + len(value) + 4
        # llhttp drops the whitespace before a value but keeps what follows
        # it; neither is part of the value (RFC 9110 5.5), and h11 drops both.
        name = name.lower()
        value = value.rstrip(b" \t")
        if name == b"transfer-encoding":
            value = value.lower()  # as h11 gives it
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._replaying:
            return
        self._head_size = -1
        parser = self.parser
        method = parser.get_method()
        http_version = parser.get_http_version()
        upgrade = parser.should_upgrade()
        conn = self.conn
        if conn.on_head(method, self._url, http_version, self._headers, upgrade):
            self._switching = True
        elif upgrade and conn.parsing is not None and conn.parsing.more_body:
            framing = b"Transfer-Encoding: chunked"
            for name, value in self._headers:
                if name == b"content-length":
                    framing = b"Content-Length: " + value
            self._skipped_body_head = b"POST / HTTP/1.1\r\n" + framing + b"\r\n\r\n"

    def on_body(self, body: bytes) -> None:
        self.conn.on_body(body)

    def on_message_complete(self) -> None:
        if self._skipped_body_head is not None or self._switching:
            return  # llhttp skipped the body: the replaying parser reads it
        self.conn.on_message_end()


class HttpToolsProtocol(H1Connection):
    """`--http httptools`: an HTTP/1.1 connection read by llhttp."""

    reader_class = HttpToolsReader


__all__ = ["HttpToolsProtocol", "HttpToolsReader", "RequestHead"]
