"""--ws websockets-sansio: the same implementation as --ws websockets.

Uvicorn has two implementations on the `websockets` library: `websockets`,
on its deprecated legacy asyncio protocol, and `websockets-sansio`, on its
sans-I/O `ServerProtocol` (and Uvicorn has announced that `websockets` will
become the sans-I/O one).  Squall's `--ws websockets` already is the sans-I/O
one, driven by the shared connection code, so this name only keeps Uvicorn
command lines working: both names give the same behaviour and speed.
"""

from __future__ import annotations

from squall.protocols.websockets.websockets_impl import WebSocketsProtocol


class WebSocketsSansIOProtocol(WebSocketsProtocol):
    """`WebSocketsProtocol` under the name `--ws websockets-sansio` selects."""
