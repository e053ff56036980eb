"""HTTP/1.1 parsed by httptools (llhttp, in C): the fast implementation."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httptools

from squall.protocols.http.connection import BadRequest, HTTPConnection, RequestHead

if TYPE_CHECKING:
    from squall.config import Config
    from squall.server import ServerState


class HttpToolsProtocol(HTTPConnection):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        # Bytes of the unfinished request head read so far, or -1 between
        # heads: llhttp has no size limit of its own.  Within the read where
        # a head begins the callbacks count it; once a read ends inside the
        # head (`_head_spans_reads`), every further read counts whole.  The
        # limit of a complete head is checked in `on_request_head`.
        self._head_size = -1
        self._head_spans_reads = False
        self._upgrade_head: RequestHead | None = None
        # llhttp takes everything after an upgrade request's head for the new
        # protocol, body included.  When the upgrade is not taken and there is
        # a body, this is a head that frames it alike, for a fresh parser to
        # read the body with (`_replaying` while that head is fed to it).
        self._skipped_body_head: bytes | None = None
        self._replaying = False

    def data_received(self, data: bytes) -> None:
        if self.pending_upgrade is not None:
            self.buffer_for_upgrade(data)
            return
        if self.closing or self.pending_error is not None:
            return  # llhttp stays failed after an error; nothing more is read
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._on_upgrade(data[exc.args[0] :])
            return
        except httptools.HttpParserCallbackError as exc:
            error = exc.__context__
            if isinstance(error, BadRequest):
                self.on_parse_error(error.status, str(error))
                return
            raise
        except httptools.HttpParserError as exc:
            self.on_parse_error(400, str(exc))
            return
        if self._head_size >= 0:  # the read ended inside a head
            if self._head_spans_reads:
                self._head_size += len(data)
            else:
                self._head_spans_reads = True
            if self._head_size > self.max_head_size:
                self._head_size = -1
                status = self.head_overflow_status(self.parser.get_method() if self._url else b"", self._url)
                self.on_parse_error(status, "The request head is larger than --h11-max-incomplete-event-size.")

    def _on_upgrade(self, trailing: bytes) -> None:
        head, self._upgrade_head = self._upgrade_head, None
        if head is not None:
            self.upgrade(head, trailing)
            return
        # An upgrade we don't do (h2c, or WebSockets disabled): the request is
        # served as plain HTTP, so go on parsing its body and what follows.
        if self._skipped_body_head is not None:
            synthetic, self._skipped_body_head = self._skipped_body_head, None
            self.parser = httptools.HttpRequestParser(self)
            self._replaying = True
            try:
                self.parser.feed_data(synthetic)
            finally:
                self._replaying = False
        if trailing and not self.closing:
            self.data_received(trailing)

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
        if self.on_request_head(method, self._url, http_version, self._headers):
            self._upgrade_head = RequestHead(method, self._url, http_version, self._headers)
        elif parser.should_upgrade() and self.parsing is not None and self.parsing.more_body:
            framing = b"Transfer-Encoding: chunked"
            for name, value in self._headers:
                if name == b"content-length":
                    framing = b"Content-Length: " + value
            self._skipped_body_head = b"POST / HTTP/1.1\r\n" + framing + b"\r\n\r\n"

    def on_body(self, body: bytes) -> None:
        cycle = self.parsing
        if cycle is not None:
            cycle.feed_body(body)

    def on_message_complete(self) -> None:
        if self._skipped_body_head is not None:
            return  # llhttp skipped the body: the replaying parser reads it
        cycle = self.parsing
        if cycle is not None:
            cycle.end_body()
