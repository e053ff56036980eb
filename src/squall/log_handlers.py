"""A stream handler that writes the lines of one event-loop turn at once.

The access log writes a line per request.  `logging.StreamHandler` does a
`write` and a `flush` (a system call, when the stream is a file or a pipe)
for each; under load that is most of what the access log costs.  Inside a
running event loop, `BatchedStreamHandler` keeps the formatted lines and
writes them together once the loop's current turn ends (one callback per
turn, not per line), or as soon as `MAX_LINES` are waiting.  Outside an
event loop (another thread, or before the server runs), each line is written
at once, as the standard handler would.

A line is therefore written at most one loop turn after its request ended;
the buffer is written out by `flush`, which `logging.shutdown` calls at exit.
"""

from __future__ import annotations

import asyncio
import logging
from typing import IO, Any

__all__ = ["BatchedStreamHandler"]


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    MAX_LINES = 256

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__(stream)
        self._lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # Called by Handler.handle with the handler's lock held.
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._add(line)

    def write_line(self, line: str) -> None:
        """Write a line formatted by the caller, as `emit` writes a record's."""
        with self.lock:  # type: ignore[union-attr]
            self._add(line)

    def _add(self, line: str) -> None:
        lines = self._lines
        lines.append(line)
        if len(lines) == 1:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            loop.call_soon(self.flush)
        elif len(lines) >= self.MAX_LINES:
            self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            lines, self._lines = self._lines, []
            if not lines:
                super().flush()  # as StreamHandler: logging.shutdown expects its errors
                return
            try:
                self.stream.write(self.terminator.join(lines) + self.terminator)
                super().flush()
            except Exception:
                # What StreamHandler does for a line it could not write; this
                # may run as a loop callback, where an exception would be
                # reported as the loop's own.
                self.handleError(_FLUSH_RECORD)


# handleError wants a record; a failed batch write has none of its own.
_FLUSH_RECORD: Any = logging.makeLogRecord({"msg": "access log lines lost: writing them failed"})
