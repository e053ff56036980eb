"""Log formatting: the default logging configuration, and the formatters it names.

Loggers: `squall.error` for the server's own messages, `squall.access` for
one line per HTTP request, `squall.asgi` for the ASGI messages traced at
`--log-level trace`.  Uvicorn's names for them (`uvicorn.error`...) are the
same logger objects: see `squall.logger_aliases`.

The formatters take Uvicorn's class names and arguments, so a logging
configuration written for Uvicorn only has to swap the module name (which
Squall does itself when it applies one).  Colours follow `use_colors`, or,
when it is None, whether the stream the handler writes to is a terminal.
"""

from __future__ import annotations

import functools
import http
import logging
import os
import sys
from typing import Any, Literal

import click

from squall.access_log import escape

TRACE_LOG_LEVEL = 5

_LEVEL_COLOURS: dict[int, str] = {
    TRACE_LOG_LEVEL: "blue",
    logging.DEBUG: "cyan",
    logging.INFO: "green",
    logging.WARNING: "yellow",
    logging.ERROR: "red",
    logging.CRITICAL: "bright_red",
}
# By the status code's class: 1xx ... 5xx.
_STATUS_COLOURS: dict[int, str] = {1: "bright_white", 2: "green", 3: "yellow", 4: "red", 5: "bright_red"}

# The access line of Squall's default configuration, and the fields it uses.
ACCESS_FORMAT = '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'


def _copy_record(record: logging.LogRecord) -> logging.LogRecord:
    """A shallow copy to decorate for one handler (others see the record as it was).

    Several times cheaper than `copy.copy`, which goes through `__reduce_ex__`;
    this runs for every access line.
    """
    clone = object.__new__(type(record))
    clone.__dict__.update(record.__dict__)
    return clone


def style_pid(template: str) -> str:
    """A message template with its `%d` (the process id) in cyan, for `color_message`."""
    return template.replace("%d", click.style("%d", fg="cyan"), 1)


class ColourizedFormatter(logging.Formatter):
    """Adds `%(levelprefix)s`: the level name and a colon, padded to 9 columns,
    coloured on a terminal.  With colours on, a record's `color_message`
    (given as `extra`) replaces its message template."""

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        use_colors: bool | None = None,
    ) -> None:
        self.use_colors = self._stream_is_a_terminal() if use_colors is None else bool(use_colors)
        super().__init__(fmt=fmt, datefmt=datefmt, style=style)

    def _stream_is_a_terminal(self) -> bool:
        return sys.stdout.isatty()

    def formatMessage(self, record: logging.LogRecord) -> str:
        return self._decorated(_copy_record(record))

    def _decorated(self, record: logging.LogRecord) -> str:
        """The message of `record`, a copy of our own to add fields to."""
        name = record.levelname
        pad = " " * max(0, 8 - len(name))
        if self.use_colors:
            colour = _LEVEL_COLOURS.get(record.levelno)
            if colour is not None:
                name = click.style(name, fg=colour)
            if "color_message" in record.__dict__:
                record.msg = record.__dict__["color_message"]
                record.__dict__["message"] = record.getMessage()
        record.__dict__["levelprefix"] = f"{name}:{pad}"
        return super().formatMessage(record)


class DefaultFormatter(ColourizedFormatter):
    """For the server's messages, which go to stderr."""

    def direct_line(self, message: str, args: tuple[Any, ...]) -> str | None:
        """With --access-log-format the access line is the rendered format as it is."""
        if type(self) is not DefaultFormatter or self._fmt != ACCESS_LINE_FORMAT or args:
            return None
        return message

    def _stream_is_a_terminal(self) -> bool:
        return sys.stderr.isatty()


class AccessFormatter(ColourizedFormatter):
    """Expects the record's args to be (client, method, path, http_version, status).

    Adds `%(client_addr)s`, `%(request_line)s` and `%(status_code)s` (the
    code and its reason phrase, coloured by class).  A record logged to the
    access logger with other arguments (by an app) is shown with its message
    as the request line rather than failing.
    """

    def direct_line(self, message: str, args: tuple[Any, ...]) -> str | None:
        """The line `format` would make of an INFO access record of Uvicorn's
        arguments, made without the record; None when this formatter is not
        exactly Squall's default (a subclass, another format)."""
        if type(self) is not AccessFormatter or self._fmt != ACCESS_FORMAT or len(args) != 5:
            return None
        client, method, path, http_version, status = args
        request_line = f"{method} {path} HTTP/{http_version}"
        if self.use_colors:
            return f"{_INFO_PREFIX_COLOURED}{client} - \"{click.style(request_line, bold=True)}\" {self._status(status)}"
        return f"INFO:     {client} - \"{request_line}\" {_status_text(status)}"

    def formatMessage(self, record: logging.LogRecord) -> str:
        record = _copy_record(record)
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, path, http_version, status = args
            request_line = f"{method} {path} HTTP/{http_version}"
            status_text = self._status(int(status))  # type: ignore[call-overload]
        else:
            client, request_line, status_text = "-", record.getMessage(), ""
        if self.use_colors:
            request_line = click.style(request_line, bold=True)
        record.__dict__.update(client_addr=client, request_line=request_line, status_code=status_text)
        return self._decorated(record)

    def _status(self, status: int) -> str:
        text = _status_text(status)
        if not self.use_colors:
            return text
        colour = _STATUS_COLOURS.get(status // 100)
        return click.style(text, fg=colour) if colour else text


_INFO_PREFIX_COLOURED = click.style("INFO", fg=_LEVEL_COLOURS[logging.INFO]) + ":     "


@functools.lru_cache(maxsize=128)
def _status_text(status: int) -> str:
    """'404 Not Found' (the enum lookup is slow for a per-request line)."""
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} "


# The default logging configuration, in `logging.config.dictConfig` form.
# Programs import it to adjust a copy (`squall.config.LOGGING_CONFIG` is the
# same object), as they do with Uvicorn's.
LOGGING_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {
            "()": "squall.logging.DefaultFormatter",
            "fmt": "%(levelprefix)s %(message)s",
            "use_colors": None,
        },
        "access": {
            "()": "squall.logging.AccessFormatter",
            "fmt": ACCESS_FORMAT,
        },
    },
    "handlers": {
        "default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        "access": {"formatter": "access", "class": "squall.log_handlers.BatchedStreamHandler", "stream": "ext://sys.stdout"},
    },
    "loggers": {
        "squall": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "squall.error": {"level": "INFO"},
        "squall.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}


# With --access-log-format, the access handler writes the format's line as it is.
ACCESS_LINE_FORMAT = "%(message)s"
LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[str, ...] = ("text", "json")


def default_logging_config(log_format: LogFormat, access_line_only: bool) -> dict[str, Any]:
    """`LOGGING_CONFIG` as --log-format and --access-log-format want it (itself when they don't)."""
    if log_format == "text" and not access_line_only:
        return LOGGING_CONFIG
    formatters = dict(LOGGING_CONFIG["formatters"])
    if log_format == "json":
        json_formatter = {"()": "squall.log_json.JSONFormatter"}
        formatters["default"] = json_formatter
        formatters["access"] = json_formatter
    else:
        formatters["access"] = {"()": "squall.logging.DefaultFormatter", "fmt": ACCESS_LINE_FORMAT, "use_colors": False}
    return {**LOGGING_CONFIG, "formatters": formatters}


_SQUALL_SOURCE = os.path.dirname(os.path.abspath(__file__)) + os.sep


class EscapeRequestData(logging.Filter):
    """Escapes control characters in the arguments of Squall's own records.

    The server's messages put request data (a path, a parser's complaint)
    in their arguments, never in the template: escaping the arguments keeps
    a client from breaking or colouring a line, and leaves the messages'
    own line breaks (a traceback's introduction) alone.  Records an app
    logs to the same loggers are its business, and left as they are.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args and record.pathname.startswith(_SQUALL_SOURCE):
            record.args = tuple(_escaped(arg) for arg in args)
        return True


def _escaped(arg: Any) -> Any:
    if isinstance(arg, str):
        return escape(arg)
    if isinstance(arg, BaseException):
        return escape(str(arg))
    return arg


def install_escaping() -> None:
    """Put `EscapeRequestData` on `squall.error` (once): whatever handlers a configuration sets, it applies."""
    error_logger = logging.getLogger("squall.error")
    if not any(isinstance(f, EscapeRequestData) for f in error_logger.filters):
        error_logger.addFilter(EscapeRequestData())


def with_colours(config: dict[str, Any], use_colors: bool | None) -> dict[str, Any]:
    """`config` with `use_colors` set on its "default" and "access" formatters.

    A copy: the caller's dict (often `LOGGING_CONFIG` itself) is left as it was.
    """
    if use_colors is None:
        return config
    formatters = dict(config.get("formatters") or {})
    for name in ("default", "access"):
        if isinstance(formatters.get(name), dict):
            formatters[name] = {**formatters[name], "use_colors": use_colors}
    return {**config, "formatters": formatters}

