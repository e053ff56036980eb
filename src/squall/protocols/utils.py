"""What every protocol needs to know about its transport."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any


def get_remote_addr(transport: asyncio.BaseTransport) -> tuple[str, int] | None:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, (list, tuple)) and len(peer) >= 2:
        return (str(peer[0]), int(peer[1]))
    # Unix sockets have no client address: ASGI says None.
    return None


def get_local_addr(transport: asyncio.BaseTransport) -> tuple[str, int | None] | None:
    sockname = transport.get_extra_info("sockname")
    if isinstance(sockname, (list, tuple)) and len(sockname) >= 2:
        return (str(sockname[0]), int(sockname[1]))
    if isinstance(sockname, str) and sockname:
        # ASGI: a Unix socket server is (path, None).
        return (sockname, None)
    return None


def is_ssl(transport: asyncio.BaseTransport) -> bool:
    return transport.get_extra_info("sslcontext") is not None


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI `tls` extension for a TLS connection, or None on plain TCP."""
    ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    from squall.tls import describe_tls_connection

    return describe_tls_connection(ssl_object)
