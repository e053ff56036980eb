"""Log formatting: the default config, and the formatters it names.

Loggers: `squall.error` for the server's own messages, `squall.access` for one
line per request.  Colours follow `--use-colors`, or whether stderr/stdout is
a TTY when it is not given.
"""

from __future__ import annotations

import http
import logging
import sys
from copy import copy
from typing import Any, Literal

import click

TRACE_LOG_LEVEL = 5

_LEVEL_COLOURS = {
    TRACE_LOG_LEVEL: lambda s: click.style(s, fg="blue"),
    logging.DEBUG: lambda s: click.style(s, fg="cyan"),
    logging.INFO: lambda s: click.style(s, fg="green"),
    logging.WARNING: lambda s: click.style(s, fg="yellow"),
    logging.ERROR: lambda s: click.style(s, fg="red"),
    logging.CRITICAL: lambda s: click.style(s, fg="bright_red"),
}


class ColourFormatter(logging.Formatter):
    """Adds `%(levelprefix)s`: the level name, padded, coloured on a TTY."""

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        use_colors: bool | None = None,
    ) -> None:
        self.use_colors = sys.stdout.isatty() if use_colors is None else use_colors
        super().__init__(fmt=fmt, datefmt=datefmt, style=style)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record = copy(record)
        name = record.levelname
        pad = " " * max(0, 8 - len(name))
        if self.use_colors:
            name = _LEVEL_COLOURS.get(record.levelno, str)(name)
            if "color_message" in record.__dict__:
                record.msg = record.__dict__["color_message"]
                record.__dict__["message"] = record.getMessage()
        record.__dict__["levelprefix"] = f"{name}:{pad}"
        return super().formatMessage(record)


class DefaultFormatter(ColourFormatter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("use_colors") is None:
            kwargs["use_colors"] = sys.stderr.isatty()
        super().__init__(*args, **kwargs)


class AccessFormatter(ColourFormatter):
    """Expects the record's args to be (client, method, path, http_version, status)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record = copy(record)
        client, method, path, http_version, status = record.args  # type: ignore[misc]
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        status_text = f"{status} {phrase}".rstrip()
        request_line = f"{method} {path} HTTP/{http_version}"
        if self.use_colors:
            request_line = click.style(request_line, bold=True)
            fg = "green" if status < 400 else ("yellow" if status < 500 else "red")
            status_text = click.style(status_text, fg=fg)
        record.__dict__.update(
            client_addr=client, request_line=request_line, status_code=status_text
        )
        return super().formatMessage(record)


def default_logging_config(use_colors: bool | None) -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {
                "()": "squall.logging.DefaultFormatter",
                "fmt": "%(levelprefix)s %(message)s",
                "use_colors": use_colors,
            },
            "access": {
                "()": "squall.logging.AccessFormatter",
                "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
                "use_colors": use_colors,
            },
        },
        "handlers": {
            "default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
            "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "squall": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "squall.error": {"level": "INFO"},
            "squall.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }
