"""HTTP/1.1 request heads parsed by httptools (llhttp, in C): the fast wire layer.

llhttp only splits each request head into its parts; the framing of the
byte stream (where heads end, request bodies, limits) is the shared
`H1Reader`'s, so both parsers behave alike.  llhttp is given one complete
head at a time.  After a head without a body it is ready for the next one;
after a head announcing a body (which it is never given), an upgrade, or
one it does not keep the connection for, a fresh parser takes the next.
"""

from __future__ import annotations

import asyncio

import httptools

from squall._compiled import speedups
from squall.protocols.http.h1_connection import H1Connection
from squall.protocols.http.h1_reader import H1Reader
from squall.protocols.http.h1_request import BadRequest, RequestHead


class HttpToolsReader(H1Reader):
    # With the compiled hot path, common heads are read by it, not by llhttp
    # (one C call instead of a Python callback per field); llhttp reads the
    # rest, and every head with SQUALL_NO_EXTENSIONS=1.
    fast_parse = speedups.parse_request_head if speedups is not None else None

    def __init__(self, conn: H1Connection) -> None:
        super().__init__(conn)
        self._parser: httptools.HttpRequestParser | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_done = False
        self._message_done = False

    def parse_head(self, head: bytes) -> tuple[bytes, bytes, str, list[tuple[bytes, bytes]]]:
        parser = self._parser
        if parser is None:
            parser = self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers = []
        self._head_done = self._message_done = False
        try:
            parser.feed_data(head)
        except httptools.HttpParserUpgrade:
            self._parser = None  # llhttp takes nothing more after an upgrade (or CONNECT)
        except httptools.HttpParserError as exc:
            self._parser = None
            raise BadRequest(str(exc) or type(exc).__name__) from None
        else:
            if not self._message_done or not parser.should_keep_alive():
                self._parser = None
        if not self._head_done:
            self._parser = None
            raise BadRequest("Incomplete request head.")
        return parser.get_method(), self._url, parser.get_http_version(), self._headers

    # -- httptools callbacks ---------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp drops the whitespace before a value but keeps what follows
        # it; neither is part of the value (RFC 9110 5.5), and h11 drops both.
        name = name.lower()
        value = value.rstrip(b" \t")
        if name == b"transfer-encoding":
            value = value.lower()  # as h11 gives it
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._head_done = True

    def on_message_complete(self) -> None:
        self._message_done = True


class HttpToolsProtocol(H1Connection, asyncio.Protocol):
    """`--http httptools`: an HTTP/1.1 connection read by llhttp."""

    reader_class = HttpToolsReader


__all__ = ["HttpToolsProtocol", "HttpToolsReader", "RequestHead"]
