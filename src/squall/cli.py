"""The `squall` command: argv, the environment and a config file in, a `Config` out, then serving it.

Option names and defaults are Uvicorn's, so scripts carry over unchanged.
Every option can also come from the environment: `SQUALL_<NAME>`, else
Uvicorn's `UVICORN_<NAME>` (`SQUALL_PORT`, `UVICORN_PORT`; NAME is the
option's parameter name, so `--reload-dir` is `RELOAD_DIRS`), and from a
TOML file under the key <name> (see `squall.config_file`).  The command line
wins over the environment, which wins over the file.

A mistake on the command line (an unknown option, a bad value, a file that
does not exist) is a usage error: one line, exit status 2; so is a bad key
or value in the environment or the file, named with where it came from.
"""

from __future__ import annotations

import logging
import os
import platform
import ssl
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

import squall
from squall import config_file
from squall._compiled import HOT_PATH
from squall.access_log import AccessFormat, AccessFormatError
from squall.config import (
    IMPLEMENTATION_NAMES,
    LOG_LEVELS,
    SSL_PROTOCOL_VERSION,
    STARTUP_FAILURE,
    Config,
    ConfigError,
    implementation_problem,
)
from squall.config_sources import located, setting_lines
from squall.logging import LOG_FORMATS
from squall.main import run_config

ENVVAR_PREFIXES = ("SQUALL_", "UVICORN_")
USAGE_ERROR = 2
# Options about the command itself, not settings: no SQUALL_<NAME>, no file key.
COMMAND_OPTIONS = ("config", "print_config", "check_config")
# Where the eager --config callback leaves the file it read, in ctx.meta.
CONFIG_FILE_KEY = "squall.config_file"

logger = logging.getLogger("squall.error")


class ImplementationType(click.ParamType):
    """--loop, --http, --ws: one of the option's names, or a "module:attribute" import string."""

    def __init__(self, option: str) -> None:
        self.option = option
        self.name = option.lstrip("-")

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(IMPLEMENTATION_NAMES[self.option]) + "|module:attr]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        problem = implementation_problem(self.option, value) if isinstance(value, str) else None
        if problem:
            self.fail(problem, param, ctx)
        return value


class AccessFormatType(click.ParamType):
    """--access-log-format: compiled here, so that a mistake is a usage error."""

    name = "format"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            AccessFormat(value)
        except AccessFormatError as exc:
            self.fail(str(exc), param, ctx)
        return value


LIFESPAN_CHOICES = click.Choice(["auto", "on", "off"])
INTERFACE_CHOICES = click.Choice(["auto", "asgi3", "asgi2", "wsgi"])
LEVEL_CHOICES = click.Choice(list(LOG_LEVELS))


def print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(
        f"Running squall {squall.__version__} ({HOT_PATH}) with "
        f"{platform.python_implementation()} {platform.python_version()} on {platform.system()}"
    )
    ctx.exit()


def is_setting(param: click.Parameter) -> bool:
    return bool(param.expose_value and param.name and param.name not in COMMAND_OPTIONS)


def read_config_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Eager, so it runs before the settings: the file's values become their `default_map`."""
    if ctx.resilient_parsing:
        return value
    found = config_file.load(value, [p for p in ctx.command.params if is_setting(p)])
    if found is not None:
        ctx.default_map = {**(ctx.default_map or {}), **found.values}
        ctx.meta[CONFIG_FILE_KEY] = found
    return value


@click.command()
@click.argument("app", required=False, metavar="APP")
@click.option("--config", type=click.Path(exists=True, dir_okay=False), envvar="SQUALL_CONFIG", is_eager=True, callback=read_config_file, help="Read settings from this TOML file; default: [tool.squall] in ./pyproject.toml, else ./squall.toml.")
@click.option("--print-config", is_flag=True, default=False, help="Print every setting, its value and where it came from, and exit.")
@click.option("--check-config", is_flag=True, default=False, help="Check every setting, TLS files and that the app imports, and exit.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind to this host (IPv4, IPv6 or a name).")
@click.option("--port", type=int, default=8000, show_default=True, help="Bind to this port; 0 picks a free one.")
@click.option("--uds", default=None, help="Bind to this Unix domain socket.")
@click.option("--fd", type=int, default=None, help="Serve on the already bound socket with this file descriptor.")
@click.option("--reload", is_flag=True, default=False, help="Restart the server when watched files change.")
@click.option("--reload-dir", "reload_dirs", multiple=True, type=click.Path(exists=True), help="Watch this directory (repeatable); default: the current one.")
@click.option("--reload-include", "reload_includes", multiple=True, help="Also watch files matching this glob (repeatable); '*.py' always, unless excluded.")
@click.option("--reload-exclude", "reload_excludes", multiple=True, help="Also ignore files matching this glob (repeatable); hidden files, *.py[cod] and swap files always, unless included.")
@click.option("--reload-delay", type=float, default=0.25, show_default=True, help="Seconds between checks for changes.")
@click.option("--workers", type=int, default=None, help="Number of worker processes; default $WEB_CONCURRENCY, else 1. Not with --reload (which ignores $WEB_CONCURRENCY).")
@click.option("--loop", type=ImplementationType("--loop"), default="auto", show_default=True, help="Event loop; auto = uvloop when installed. Or a module:attr loop factory.")
@click.option("--http", type=ImplementationType("--http"), default="auto", show_default=True, help="HTTP implementation; auto = httptools when installed. Or a module:attr protocol class.")
@click.option("--ws", type=ImplementationType("--ws"), default="auto", show_default=True, help="WebSocket implementation; auto = websockets, else wsproto, else none. Or a module:attr protocol class.")
@click.option("--ws-max-size", type=int, default=16 * 1024 * 1024, show_default=True, help="Largest WebSocket message accepted, in bytes.")
@click.option("--ws-max-queue", type=int, default=32, show_default=True, help="Incoming WebSocket messages buffered before reading pauses.")
@click.option("--ws-ping-interval", type=float, default=20.0, show_default=True, help="Seconds between WebSocket pings.")
@click.option("--ws-ping-timeout", type=float, default=20.0, show_default=True, help="Seconds to wait for a pong before closing.")
@click.option("--ws-per-message-deflate", type=bool, default=True, show_default=True, help="Offer WebSocket per-message-deflate compression.")
@click.option("--lifespan", type=LIFESPAN_CHOICES, default="auto", show_default=True, help="Run the ASGI lifespan protocol.")
@click.option("--interface", type=INTERFACE_CHOICES, default="auto", show_default=True, help="The app's interface.")
@click.option("--env-file", type=click.Path(exists=True, dir_okay=False), default=None, help="Load environment variables from this file.")
@click.option("--log-config", type=click.Path(exists=True, dir_okay=False), default=None, help="Logging configuration file (.json, .yaml or .ini); Uvicorn's logger and formatter names work.")
@click.option("--log-level", type=LEVEL_CHOICES, default=None, help="Log level.  [default: info]")
@click.option("--access-log/--no-access-log", default=True, help="Log one line per request.")
@click.option("--use-colors/--no-use-colors", default=None, help="Colour the logs; default: when writing to a terminal.")
@click.option("--access-log-format", type=AccessFormatType(), default=None, help="Access log line in Gunicorn's atoms, e.g. '%(h)s \"%(r)s\" %(s)s %(b)s %(D)s'; default: Uvicorn's line.")
@click.option("--log-format", type=click.Choice(list(LOG_FORMATS)), default="text", show_default=True, help="'json': one JSON object per line, for the server's and the access log.")
@click.option("--proxy-headers/--no-proxy-headers", default=True, help="Trust X-Forwarded-*/Forwarded from --forwarded-allow-ips.")
@click.option("--server-header/--no-server-header", default=True, help="Send a Server header.")
@click.option("--date-header/--no-date-header", default=True, help="Send a Date header.")
@click.option("--forwarded-allow-ips", default=None, help="Comma-separated IPs, networks or socket paths to trust with proxy headers; default $FORWARDED_ALLOW_IPS, else 127.0.0.1,::1. '*' trusts all.")
@click.option("--proxy-protocol", is_flag=True, default=False, help="Expect a PROXY protocol (v1 or v2) header on each connection.")
@click.option("--root-path", default="", help="The ASGI root_path, for apps mounted below a URL path.")
@click.option("--limit-concurrency", type=int, default=None, help="Answer 503 beyond this many concurrent connections or tasks.")
@click.option("--backlog", type=int, default=2048, show_default=True, help="Listen backlog.")
@click.option("--limit-max-requests", type=int, default=None, help="Exit after serving this many requests.")
@click.option("--limit-max-requests-jitter", type=int, default=0, show_default=True, help="Add up to this many to --limit-max-requests, to stagger worker restarts.")
@click.option("--timeout-keep-alive", type=int, default=5, show_default=True, help="Close idle keep-alive connections after this many seconds.")
@click.option("--timeout-graceful-shutdown", type=int, default=None, help="Seconds to let in-flight requests finish on shutdown before cancelling them.")
@click.option("--timeout-request-header", type=float, default=10, show_default=True, help="Seconds a client may take to send a whole request head; 0: no limit.")
@click.option("--timeout-request-body-idle", type=float, default=60, show_default=True, help="Seconds a request body may stall while the app waits for it; 0: no limit.")
@click.option("--timeout-write", type=float, default=60, show_default=True, help="Seconds a client may stop reading a response before it is dropped; 0: no limit.")
@click.option("--timeout-graceful-streams", default="1", show_default=True, help="On shutdown, end responses still streaming (SSE, long downloads) after this many seconds (their send raises, receive says http.disconnect); 'none' waits for them.")
@click.option("--timeout-worker-healthcheck", type=int, default=5, show_default=True, help="Seconds a worker may take to answer the supervisor's health check.")
@click.option("--ssl-keyfile", type=str, default=None, help="TLS private key file.")
@click.option("--ssl-certfile", type=str, default=None, help="TLS certificate file.")
@click.option("--ssl-keyfile-password", type=str, default=None, help="Password of the TLS key file.")
@click.option("--ssl-version", type=int, default=SSL_PROTOCOL_VERSION, show_default=True, help="TLS protocol (see the ssl module's PROTOCOL_* constants).")
@click.option("--ssl-cert-reqs", type=int, default=int(ssl.CERT_NONE), show_default=True, help="Client certificates: 0 none, 1 optional, 2 required.")
@click.option("--ssl-ca-certs", type=str, default=None, help="CA certificates to verify clients with.")
@click.option("--ssl-ciphers", type=str, default=None, help="Ciphers to allow; default: OpenSSL's.")
@click.option("--header", "headers", multiple=True, help="Extra default response header, Name:Value (repeatable).")
@click.option("--version", is_flag=True, callback=print_version, expose_value=False, is_eager=True, help="Show the version and exit.")
@click.option("--app-dir", default="", show_default=True, help="Import APP from this directory; default: the current one.")
@click.option("--h11-max-incomplete-event-size", type=int, default=None, help="Largest request head accepted, in bytes (both HTTP implementations); default 16 KiB.")
@click.option("--limit-request-line", type=int, default=4094, show_default=True, help="Longest request line accepted, in bytes (414 beyond); 0: only the head size limit.")
@click.option("--limit-request-fields", type=int, default=100, show_default=True, help="Most header fields accepted in a request, and trailer fields after it (431 beyond); 0: no limit.")
@click.option("--limit-request-field-size", type=int, default=8190, show_default=True, help="Longest header or trailer field line (and chunk-size line) accepted, in bytes (431 beyond); 0: no limit.")
@click.option("--limit-request-body", type=int, default=None, help="Largest request body accepted, in bytes (413 beyond); default: no limit.")
@click.option("--timeout-lifespan-startup", type=float, default=60, show_default=True, help="Seconds the app's lifespan startup may take before the server gives up; 0: no limit.")
@click.option("--timeout-lifespan-shutdown", type=float, default=30, show_default=True, help="Seconds the app's lifespan shutdown may take before the server exits anyway; 0: no limit.")
@click.option("--http2/--no-http2", default=None, help="Serve HTTP/2 (h2c, prior knowledge, ALPN h2); default: when the h2 package is installed.")
@click.option("--http2-max-concurrent-streams", type=int, default=100, show_default=True, help="HTTP/2 streams a client may have open at once.")
@click.option("--http2-initial-window-size", type=int, default=256 * 1024, show_default=True, help="HTTP/2 request body bytes buffered per stream before the client must wait.")
@click.option("--http2-max-frame-size", type=int, default=16384, show_default=True, help="Largest HTTP/2 frame payload accepted, in bytes.")
@click.option("--http2-max-header-list-size", type=int, default=64 * 1024, show_default=True, help="Largest HTTP/2 request header list accepted, in bytes (RFC 9113 size).")
@click.option("--http2-impl", type=click.Choice(["squall", "h2"]), default="squall", show_default=True, help="HTTP/2 wire layer: Squall's own, or the h2 library's.")
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics, /healthz and /readyz on this port (0 picks a free one); default: off. Needs prometheus-client.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Bind the --metrics-port socket to this host.")
@click.option("--reset-contextvars", is_flag=True, default=False, help="Run each request in an empty contextvars.Context, hiding context variables set before serving.")
@click.option("--factory", is_flag=True, default=False, help="APP is a factory: call it with no arguments to get the app.")
def command(app: str | None, config: str | None, print_config: bool, check_config: bool, **options: Any) -> None:
    """Serve the ASGI app APP, given as "module:attribute" (e.g. main:app).

    Every option can also be set in the environment as SQUALL_<NAME>, else
    UVICORN_<NAME> (SQUALL_PORT=8080, SQUALL_RELOAD_DIRS="src lib"), or in
    the config file as <name> (port = 8080, reload_dirs = ["src", "lib"]);
    the command line wins over the environment, which wins over the file.
    """
    ctx = click.get_current_context()
    if app is None and not print_config:
        raise click.MissingParameter(ctx=ctx, param=next(p for p in ctx.command.params if p.name == "app"))
    settings = [p for p in ctx.command.params if is_setting(p)]
    options["app_dir"] = options["app_dir"] or os.getcwd()
    sys.path.insert(0, options["app_dir"])
    if options["workers"] is None:
        options.pop("workers")  # so that Config reads $WEB_CONCURRENCY
    if options["log_config"] is None:
        options.pop("log_config")  # Squall's default
    options["reload_dirs"] = list(options["reload_dirs"]) or None
    options["reload_includes"] = list(options["reload_includes"]) or None
    options["reload_excludes"] = list(options["reload_excludes"]) or None
    options["headers"] = list(options["headers"])
    try:
        server_config = Config(app, **options)
        if print_config:
            click.echo("\n".join(setting_lines(ctx, settings, ctx.meta.get(CONFIG_FILE_KEY))))
            return
        if check_config:
            server_config.load()
            click.echo("configuration OK")
            return
    except ConfigError as exc:
        fail(ctx, exc, check_config)
    run_config(server_config)


def fail(ctx: click.Context, exc: ConfigError, check_config: bool) -> NoReturn:
    """A setting Config refused: a usage error naming the variable or file key it came
    from; else (the command line's) the server's own startup failure."""
    param = next((p for p in ctx.command.params if exc.setting and p.name == exc.setting), None)
    message = located(ctx, param, str(exc), ctx.meta.get(CONFIG_FILE_KEY)) if param else None
    if message is not None:
        raise click.UsageError(message, ctx)
    if check_config:
        line = str(exc)
        if exc.traceback_of is not None:  # the app's own exception, summed up in the same line
            line = f"{line.rstrip(':')}: {type(exc.traceback_of).__name__}: {exc.traceback_of}"
        failure = click.ClickException(line)
        failure.exit_code = STARTUP_FAILURE
        raise failure
    exc.log(logger)
    sys.exit(STARTUP_FAILURE)


# SQUALL_<NAME>, else UVICORN_<NAME>, for every setting (not --version, --config...).
for _param in command.params:
    if is_setting(_param):
        _param.envvar = [prefix + _param.name.upper() for prefix in ENVVAR_PREFIXES]  # type: ignore[union-attr]


def main(args: Sequence[str] | None = None) -> None:
    """The console script: usage errors are one line and exit status 2."""
    try:
        command.main(args=args, prog_name="squall", standalone_mode=False)
    except click.BadParameter as exc:
        # A value click could not convert: name the variable or file key it came from.
        message = None
        if exc.ctx is not None and exc.param is not None:
            message = located(exc.ctx, exc.param, exc.message, exc.ctx.meta.get(CONFIG_FILE_KEY))
        click.echo(f"Error: {message or exc.format_message()}", err=True)
        sys.exit(USAGE_ERROR)
    except click.UsageError as exc:
        click.echo(f"Error: {exc.format_message()}", err=True)
        sys.exit(USAGE_ERROR)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
