"""The first protocol of a connection under `--proxy-protocol`.

A load balancer speaking the PROXY protocol starts every connection with a
header naming the real client.  `ProxyProtocolReader` reads that header,
then hands the transport to the HTTP protocol with `client` set to the
address the header names (or to the real peer for LOCAL and UNKNOWN headers,
and for Unix-socket sources, which have no address).  A connection whose
header is malformed, or incomplete after `HEADER_TIMEOUT`, is closed.

The reader never writes, and until the handoff the HTTP protocol has not
seen `connection_made`: a connection that ends before its header is complete
is the reader's alone, and the HTTP protocol is never told of it.

With TLS the header comes before the handshake on the wire, so the listener
is plain TCP (see `Config.load`) and the reader starts TLS after the header.
It must then not read a byte past the header: what follows is the client's
ClientHello, and asyncio has no way to give bytes back to a transport.  So
it reads with a buffer no larger than the fewest bytes that could complete
the header; outside TLS it reads freely and passes any surplus on.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections.abc import Callable
from typing import Any

from squall.protocols.proxy_protocol import V2_SIGNATURE, ProxyProtocolError, parse_proxy_header

logger = logging.getLogger("squall.error")

# Seconds a connection may take to send its whole PROXY header.  Proxies
# send it at once, so only a misconfigured peer or a scanner ever waits.
HEADER_TIMEOUT = 5.0

# The read buffer while the header is incomplete, without TLS.
_READ_SIZE = 65536
# "PROXY UNKNOWN\r\n": no header of either version is shorter.
_SHORTEST_HEADER = 15
_V2_FIXED_PART = 16

# Handshakes in progress, so that their tasks are not garbage collected.
_handshakes: set[asyncio.Task[None]] = set()


class ProxyProtocolReader(asyncio.BufferedProtocol):
    def __init__(self, protocol_factory: Callable[[], asyncio.Protocol]) -> None:
        # Made now rather than after the header: its config says whether the
        # reader is to start TLS.
        self._protocol: Any = protocol_factory()
        config = getattr(self._protocol, "config", None)
        self._tls: ssl.SSLContext | None = getattr(config, "proxy_protocol_ssl", None)
        self._transport: asyncio.Transport = None  # type: ignore[assignment]
        self._received = bytearray()
        self._buffer = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self._peername: Any = None
        # Listed with the server's connections until the hand-over, so that a
        # shutdown closes it and waits for it like any other connection.
        self._connections: set[Any] = getattr(getattr(self._protocol, "server_state", None), "connections", set())

    # -- asyncio.BufferedProtocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        # For log messages; uvloop cannot tell it any more once the connection is lost.
        self._peername = transport.get_extra_info("peername")
        self._timer = asyncio.get_running_loop().call_later(HEADER_TIMEOUT, self._on_timeout)
        self._connections.add(self)

    def get_buffer(self, sizehint: int) -> bytearray:
        size = _header_bytes_missing(self._received) if self._tls is not None else _READ_SIZE
        self._buffer = bytearray(size)
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self._received += memoryview(self._buffer)[:nbytes]
        try:
            result = parse_proxy_header(self._received)
        except ProxyProtocolError as exc:
            logger.warning("Closing a connection from %s: %s", self._peer(), exc)
            self._close()
            return
        if result is None:
            return
        info, consumed = result
        self._cancel_timer()
        client = info.source if info.source is not None and _is_ip(info.source[0]) else None
        if self._tls is None:
            self._hand_over(self._transport, client)
            rest = bytes(self._received[consumed:])
            if rest:
                self._protocol.data_received(rest)
        else:
            # Nothing more may reach this protocol: the rest is for TLS.
            self._transport.pause_reading()
            task = asyncio.get_running_loop().create_task(self._start_tls(client))
            _handshakes.add(task)
            task.add_done_callback(_handshakes.discard)
        self._received = self._buffer = bytearray()

    def eof_received(self) -> bool:
        return False  # the header never came: close

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._connections.discard(self)

    # -- called by the server, like an HTTP connection's -------------------------------

    def shutdown(self) -> None:
        """No request has been read yet: nothing to finish, close now."""
        self._close()

    def check_timeouts(self, now: float) -> None:
        """The header has its own deadline (`HEADER_TIMEOUT`), not the keep-alive one."""

    def abort(self) -> None:
        if not self._transport.is_closing():
            self._transport.abort()

    # -- internals --------------------------------------------------------------------

    def _hand_over(self, transport: asyncio.Transport, client: tuple[str, int] | None) -> None:
        self._connections.discard(self)
        protocol = self._protocol
        if client is not None:
            protocol.client = client  # connection_made keeps it rather than asking the transport
        transport.set_protocol(protocol)
        protocol.connection_made(transport)

    async def _start_tls(self, client: tuple[str, int] | None) -> None:
        try:
            await self._handshake_and_hand_over(client)
        finally:
            # From the handshake on, the TLS layer (not this reader) hears
            # of the connection's end: stop counting it here either way.
            self._connections.discard(self)

    async def _handshake_and_hand_over(self, client: tuple[str, int] | None) -> None:
        transport = self._transport
        assert self._tls is not None
        if transport.is_closing():  # lost while this task was waiting to start
            return
        early = _EarlyEvents()
        try:
            tls_transport = await asyncio.get_running_loop().start_tls(
                transport, early, self._tls, server_side=True
            )
        except (OSError, asyncio.TimeoutError) as exc:  # ssl.SSLError is an OSError
            # As for TLS without the PROXY protocol: the client's problem, not the server's.
            logger.debug("TLS handshake with %s failed: %s", self._peer(), str(exc) or type(exc).__name__)
            if not transport.is_closing():
                transport.close()
            return
        if tls_transport is None or early.lost:  # closed as the handshake completed
            return
        self._hand_over(tls_transport, client)  # type: ignore[arg-type]
        early.replay(self._protocol, tls_transport)

    def _on_timeout(self) -> None:
        self._timer = None
        logger.debug("Closing a connection from %s: no PROXY header within %ss", self._peer(), HEADER_TIMEOUT)
        self._close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _close(self) -> None:
        self._cancel_timer()
        if not self._transport.is_closing():
            self._transport.close()

    def _peer(self) -> str:
        peer = self._peername
        if isinstance(peer, (tuple, list)) and len(peer) >= 2:
            return f"{peer[0]}:{peer[1]}"
        return "a Unix socket client" if isinstance(peer, str) else "a client"


class _EarlyEvents(asyncio.Protocol):
    """Stands in for the HTTP protocol while TLS starts.

    asyncio delivers the first decrypted bytes (and any EOF) as soon as the
    handshake completes, before `start_tls` returns and the HTTP protocol can
    be given the new transport; they are kept here and replayed to it.
    """

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.eof = False
        self.lost = False
        self.writing_paused = False

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def eof_received(self) -> None:
        self.eof = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False

    def replay(self, protocol: asyncio.Protocol, transport: asyncio.Transport) -> None:
        if self.writing_paused:
            protocol.pause_writing()
        if self.data:
            protocol.data_received(b"".join(self.data))
        if self.eof and not protocol.eof_received():
            transport.close()


def _header_bytes_missing(received: bytearray) -> int:
    """The fewest bytes that could complete a header starting with *received*.

    Reading no more than this never reads past the header.  A v2 header
    says its length in its fixed part; a v1 line ends at a CRLF that could
    come as soon as the next two bytes (one, after a CR).
    """
    if len(received) < _SHORTEST_HEADER:
        return _SHORTEST_HEADER - len(received)
    if received[0] == V2_SIGNATURE[0]:
        if len(received) < _V2_FIXED_PART:
            return _V2_FIXED_PART - len(received)
        length = int.from_bytes(received[_V2_FIXED_PART - 2 : _V2_FIXED_PART], "big")
        return _V2_FIXED_PART + length - len(received)
    return 1 if received.endswith(b"\r") else 2


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
