"""`--log-format json`: one JSON object per line, for log pipelines.

Every record has `timestamp` (ISO 8601, UTC, milliseconds), `level`,
`logger` and `message`, plus `exception` (the traceback) when it carries
one.  An access record adds the fields of its `squall.access_log.AccessEntry`
(see `AccessEntry.fields`), each under its own key.  The schema is in
docs/logging.md.

Output is ASCII: json escapes control characters and everything beyond
ASCII, so no byte from a request reaches the log raw.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Literal

_second = -1
_second_text = ""


def iso_timestamp(created: float) -> str:
    """2026-11-28T21:00:00.123Z; the part up to the second is formatted once per second."""
    global _second, _second_text
    second = int(created)
    if second != _second:
        _second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = second
    return f"{_second_text}.{int((created - second) * 1000):03d}Z"


class JSONFormatter(logging.Formatter):
    """A record as one line of JSON.

    Takes the arguments of Squall's other formatters (`fmt`, `use_colors`...)
    so that a logging configuration can swap it in, and ignores them.
    """

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        use_colors: bool | None = None,
    ) -> None:
        super().__init__(fmt=fmt, datefmt=datefmt, style=style)

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "timestamp": iso_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry = getattr(record, "access", None)
        if entry is not None and hasattr(entry, "fields"):
            data.update(entry.fields())
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=str)
