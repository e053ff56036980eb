"""`http.response.pathsend`: a file's contents as the response body.

The file is read in chunks and written through the stream's host like any
body, waiting for the peer between chunks, so framing, flow control and
back-pressure are the same as for `http.response.body`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from squall.protocols.http.stream import ClientDisconnected

if TYPE_CHECKING:
    from squall.protocols.http.stream import ASGIStream, StreamHost

CHUNK_SIZE = 256 * 1024


async def send_file(host: StreamHost, stream: ASGIStream, path: str, more_body: bool) -> None:
    loop = asyncio.get_running_loop()
    try:
        file = await loop.run_in_executor(None, open, path, "rb")
    except OSError as exc:
        raise RuntimeError(f"'http.response.pathsend' cannot open {path!r}: {exc}") from None
    try:
        chunk = await loop.run_in_executor(None, file.read, CHUNK_SIZE)
        while True:
            following = await loop.run_in_executor(None, file.read, CHUNK_SIZE) if chunk else b""
            last = not following
            host.stream_send_body(stream, chunk, more_body or not last)
            stream.bytes_sent += len(chunk)
            if last:
                return
            chunk = following
            if stream.blocked:
                await stream.wait_writable()
            if stream.disconnected:
                raise ClientDisconnected("The client disconnected.")
    finally:
        file.close()
