"""`--log-level trace`: a line when each HTTP connection is made and lost.

The server serves a subclass of the HTTP protocol class that adds the two
lines, and only when the trace level is on: the protocols themselves carry
no per-connection logging cost.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from squall.logging import TRACE_LOG_LEVEL

logger = logging.getLogger("squall.error")


@functools.cache
def with_connection_trace(protocol_class: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    class Traced(protocol_class):  # type: ignore[valid-type, misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            logger.log(TRACE_LOG_LEVEL, "%sHTTP connection made", client_prefix(self, transport))

        def connection_lost(self, exc: Exception | None) -> None:
            logger.log(TRACE_LOG_LEVEL, "%sHTTP connection lost", client_prefix(self, None))
            super().connection_lost(exc)

    Traced.__name__ = Traced.__qualname__ = protocol_class.__name__
    return Traced


def client_prefix(protocol: Any, transport: asyncio.BaseTransport | None) -> str:
    """"host:port - " for the connection's client, as the trace lines start; "" if unknown."""
    client = getattr(protocol, "client", None)
    if client is None and transport is not None:
        client = transport.get_extra_info("peername")
    if isinstance(client, (tuple, list)) and len(client) >= 2:
        return f"{client[0]}:{client[1]} - "
    return ""
