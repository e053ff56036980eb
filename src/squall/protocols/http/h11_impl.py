"""HTTP/1.1 request heads parsed by h11: the pure-Python wire layer.

h11 only splits each request head into its parts; the framing of the byte
stream (where heads end, request bodies, limits) is the shared `H1Reader`'s,
and responses are written by `h1_connection.py`, so both parsers behave
alike.  h11 keeps a per-request state machine that expects to see our
response too, so each head is given to a fresh `h11.Connection`.
"""

from __future__ import annotations

import asyncio

import h11

from squall.protocols.http.h1_connection import H1Connection
from squall.protocols.http.h1_reader import H1Reader
from squall.protocols.http.h1_request import BadRequest


class H11Reader(H1Reader):
    def parse_head(self, head: bytes) -> tuple[bytes, bytes, str, list[tuple[bytes, bytes]]]:
        parser = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.head_size)
        parser.receive_data(head)
        try:
            event = parser.next_event()
        except h11.RemoteProtocolError as exc:
            raise BadRequest(str(exc)) from None
        if type(event) is not h11.Request:
            raise BadRequest("Incomplete request head.")
        headers = list(event.headers)
        for name, _ in headers:
            if name == b"content-length":
                _check_one_content_length(head)
                break
        return event.method, event.target, event.http_version.decode("ascii"), headers


def _check_one_content_length(head: bytes) -> None:
    """h11 merges repeated equal Content-Length fields (and "5, 5" lists) into one: refuse them as llhttp does."""
    lines = [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
    if len(lines) != 1 or b"," in lines[0]:
        raise BadRequest("More than one Content-Length value.")


class H11Protocol(H1Connection, asyncio.Protocol):
    """`--http h11`: an HTTP/1.1 connection read by h11."""

    reader_class = H11Reader
