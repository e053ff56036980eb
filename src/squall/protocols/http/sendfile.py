"""A file's contents as response body: `http.response.pathsend` and `http.response.zerocopysend`.

Where the kernel can copy the file to the socket itself — HTTP/1.1 on plain
TCP under asyncio's own event loop, whose `loop.sendfile` uses sendfile(2) —
the host does that (`H1Connection.stream_sendfile`).  Elsewhere (TLS, which
must encrypt in user space; HTTP/2, which frames the bytes; uvloop, which has
no `sendfile`) the file is mapped into memory and written through the
stream's host like any body, a slice at a time, waiting for the peer between
slices, so that framing, flow control and back-pressure are those of
`http.response.body`; each slice is copied once, into the write buffer, as
any body is.
"""

from __future__ import annotations

import mmap
import os
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from squall.protocols.http.stream import ASGIStream, StreamHost

SLICE_SIZE = 256 * 1024


def file_span(file: IO[bytes] | int, offset: int | None, count: int | None) -> tuple[int, int]:
    """(offset, count) of what to send of an open file; RuntimeError if they do not fit it."""
    fd = file if isinstance(file, int) else file.fileno()
    size = os.fstat(fd).st_size
    if offset is None:
        offset = os.lseek(fd, 0, os.SEEK_CUR)
    if count is None:
        count = max(0, size - offset)
    if not (isinstance(offset, int) and isinstance(count, int)) or offset < 0 or count < 0 or offset + count > size:
        raise RuntimeError(f"Cannot send {count!r} bytes from offset {offset!r} of a {size} byte file.")
    return offset, count


async def send_mapped(host: StreamHost, stream: ASGIStream, file: IO[bytes] | int, offset: int, count: int, more_body: bool) -> None:
    """Write `count` bytes of the file from `offset` as body, through the host, from a memory map."""
    if not count:
        host.stream_send_body(stream, b"", more_body)
        return
    fd = file if isinstance(file, int) else file.fileno()
    start = offset - offset % mmap.ALLOCATIONGRANULARITY
    with mmap.mmap(fd, count + offset - start, access=mmap.ACCESS_READ, offset=start) as mapped:
        position = offset - start
        end = position + count
        while position < end:
            if stream.blocked:
                await stream.wait_writable()
            if stream.disconnected:
                # Imported here: stream.py imports this module.
                from squall.protocols.http.stream import ClientDisconnected

                raise ClientDisconnected("The client disconnected.")
            # A slice of a map is bytes: the transport may keep what it
            # cannot send yet after the map is closed.
            piece = mapped[position : min(end, position + SLICE_SIZE)]
            position += len(piece)
            host.stream_send_body(stream, piece, more_body or position < end)
