"""Every setting Squall knows, its default, and its validation.

`Config` is built from keyword arguments (the CLI and `squall.run` both pass
the same names, which are Uvicorn's).  Nothing here touches the network until
`bind_socket` is called; `load()` resolves the app and the implementations and
raises `ConfigError` with a one-line message a user can act on.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import logging
import os
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from squall import logger_aliases
from squall.importer import ImportFromStringError, ImportRaisedError, check_module_exists, import_from_string
from squall.log_config import LogConfig, LogConfigError, apply_log_config
from squall.access_log import AccessFormat, AccessFormatError
from squall.logging import LOG_FORMATS, LOGGING_CONFIG, TRACE_LOG_LEVEL, LogFormat, default_logging_config, install_escaping

if TYPE_CHECKING:
    from squall.middleware.proxy_headers import ProxyHeaders

__all__ = ["LOGGING_CONFIG", "Config", "ConfigError"]

# Each of --loop, --http and --ws also takes a "module:attribute" import
# string naming a custom implementation (a loop factory, a protocol class).
LoopSetting = Literal["auto", "asyncio", "uvloop", "none"] | str
HTTPSetting = Literal["auto", "h11", "httptools"] | str
WSSetting = Literal["auto", "none", "websockets", "websockets-sansio", "wsproto"] | str
LifespanSetting = Literal["auto", "on", "off"]
InterfaceSetting = Literal["auto", "asgi3", "asgi2", "wsgi"]

LOG_LEVELS: dict[str, int] = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE_LOG_LEVEL,
}

# Implementation names -> "module:attribute" of the protocol class.  Loading is
# deferred so that a plain install never imports httptools or websockets.
HTTP_PROTOCOLS: dict[str, str] = {
    "h11": "squall.protocols.http.h11_impl:H11Protocol",
    "httptools": "squall.protocols.http.httptools_impl:HttpToolsProtocol",
}
WS_PROTOCOLS: dict[str, str | None] = {
    "none": None,
    "websockets": "squall.protocols.websockets.websockets_impl:WebSocketsProtocol",
    "websockets-sansio": "squall.protocols.websockets.websockets_sansio_impl:WebSocketsSansIOProtocol",
    "wsproto": "squall.protocols.websockets.wsproto_impl:WSProtocol",
}
HTTP2_WIRES: dict[str, str] = {
    "squall": "squall.protocols.http2.frames:SquallWire",
    "h2": "squall.protocols.http2.h2_wire:H2LibWire",
}
LIFESPAN: dict[str, str] = {
    "auto": "squall.lifespan:LifespanOn",
    "on": "squall.lifespan:LifespanOn",
    "off": "squall.lifespan:LifespanOff",
}
# The names each implementation option takes (besides an import string).
IMPLEMENTATION_NAMES: dict[str, tuple[str, ...]] = {
    "--loop": ("auto", "asyncio", "uvloop", "none"),
    "--http": ("auto", *HTTP_PROTOCOLS),
    "--ws": ("auto", *WS_PROTOCOLS),
}
SSL_PROTOCOL_VERSION: int = ssl.PROTOCOL_TLS_SERVER

# The exit status of a server that could not start: a setting it cannot
# use, an app it cannot import, an address it cannot bind (Uvicorn's too).
STARTUP_FAILURE = 3

DEFAULT_MAX_INCOMPLETE_EVENT_SIZE = 16 * 1024
DEFAULT_RELOAD_INCLUDES = ["*.py"]
# Hidden files and folders, compiled Python, editor swap and backup files.
DEFAULT_RELOAD_EXCLUDES = [".*", ".py[cod]", ".sw.*", "~*", "*~", "*.py[cod]"]

SSLContextFactory = Callable[["Config", Callable[[], ssl.SSLContext]], ssl.SSLContext]

logger = logging.getLogger("squall.error")


def _setting(option: str) -> str:
    """The parameter name of a command-line option: --ws-max-size is ws_max_size."""
    return option.lstrip("-").replace("-", "_")


def _optional_seconds(option: str, value: float | str | None) -> float | None:
    """A number of seconds, or None for "no limit" (given as None, or as 'none' from the command line)."""
    if value is None or isinstance(value, str) and value.strip().lower() in ("none", "off"):
        return None
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{option} must be a number of seconds or 'none', not {value!r}", setting=_setting(option)) from None


class ConfigError(Exception):
    """A setting is unusable: the message is shown to the user as one line.

    `traceback_of`, when set, is an exception raised by the user's own code
    (importing the app, calling its factory): its traceback is shown after
    the line, since it points at the bug.  `setting`, when set, is the one
    setting at fault (its parameter name), so that the command line can say
    where its value came from (a config file, the environment).
    """

    def __init__(self, message: str, traceback_of: BaseException | None = None, setting: str | None = None) -> None:
        super().__init__(message)
        self.traceback_of = traceback_of
        self.setting = setting

    def log(self, to: logging.Logger) -> None:
        """The line (and the user's traceback); the cause's traceback too when debugging."""
        if self.traceback_of is not None:
            to.error("%s", self, exc_info=self.traceback_of)
        elif self.__cause__ is not None and to.isEnabledFor(logging.DEBUG):
            to.error("%s", self, exc_info=self.__cause__)
        else:
            to.error("%s", self)


def implementation_problem(option: str, value: str) -> str | None:
    """What is wrong with `value` for --loop, --http or --ws; None when it is one of
    the option's names or a "module:attribute" import string."""
    names = IMPLEMENTATION_NAMES[option]
    if value in names:
        return None
    module, sep, attr = value.partition(":")
    if sep and module and attr:
        return None
    return f"{value!r} is not one of {', '.join(names)}, nor a \"module:attribute\" import string"


def _module_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def resolve_loop(setting: str) -> str:
    if setting == "auto":
        if sys.platform != "win32" and sys.implementation.name == "cpython" and _module_available("uvloop"):
            return "uvloop"
        return "asyncio"
    if setting == "uvloop" and not _module_available("uvloop"):
        raise ConfigError("--loop uvloop was asked for, but uvloop is not installed: pip install 'squall[standard]'")
    return setting


def resolve_http(setting: str) -> str:
    if setting == "auto":
        return "httptools" if _module_available("httptools") else "h11"
    if setting == "httptools" and not _module_available("httptools"):
        raise ConfigError("--http httptools was asked for, but httptools is not installed: pip install httptools")
    return setting


def resolve_ws(setting: str) -> str:
    if setting == "auto":
        if _module_available("websockets"):
            return "websockets"
        if _module_available("wsproto"):
            return "wsproto"
        return "none"
    needs = {"websockets": "websockets", "websockets-sansio": "websockets", "wsproto": "wsproto"}.get(setting)
    if needs and not _module_available(needs):
        raise ConfigError(f"--ws {setting} was asked for, but {needs} is not installed: pip install {needs}")
    return setting


def new_event_loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory `asyncio.Runner` should use for the resolved loop setting."""
    if loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    if loop == "asyncio":
        if sys.platform == "win32":
            return asyncio.ProactorEventLoop  # pragma: no cover
        return asyncio.SelectorEventLoop
    return None


def _load_attr(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


class LazyClass:
    """A class named by "module:attr", imported when first instantiated.

    For what many server processes never use (the HTTP/2 modules take most
    of a megabyte of memory, a WebSocket implementation with its library
    three): calling it makes an instance of the class.  The first call
    pays for the import (tens of milliseconds, once per process).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.__name__ = path.rpartition(":")[2]
        self._class: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        cls = self._class
        if cls is None:
            cls = self._class = _load_attr(self.path)
        return cls(*args, **kwargs)


def _load_custom(option: str, import_str: str) -> Any:
    """A custom implementation named by an import string (--loop, --http, --ws)."""
    try:
        return import_from_string(import_str)
    except ImportRaisedError as exc:
        raise ConfigError(f"{option} {import_str!r}: {exc}", traceback_of=exc.exception) from exc
    except ImportFromStringError as exc:
        raise ConfigError(f"{option} {import_str!r} could not be loaded: {exc}") from exc


def _split_header(value: str | tuple[str, str] | Sequence[str]) -> tuple[str, str]:
    if isinstance(value, str):
        name, sep, val = value.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"--header {value!r} is not of the form Name:Value", setting="headers")
        return name.strip(), val.strip()
    # (name, value) pairs; Uvicorn's command line passes ["Name", "Value"] lists.
    if len(value) != 2 or not all(isinstance(part, str) for part in value):
        raise ConfigError(f"headers entry {value!r} is not a (name, value) pair", setting="headers")
    return value[0], value[1]


class Config:
    """All of a server's settings.

    The names and defaults are Uvicorn's, so that `squall.run(app, **kwargs)`
    and `squall.Config(app, **kwargs)` accept what a Uvicorn user already
    passes.  Settings beyond Uvicorn's are marked as such.
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 8000,
        uds: str | None = None,
        fd: int | None = None,
        loop: LoopSetting = "auto",
        http: HTTPSetting | type[asyncio.Protocol] = "auto",
        http2: bool | None = None,
        ws: WSSetting | type[asyncio.Protocol] = "auto",
        ws_max_size: int = 16 * 1024 * 1024,
        ws_max_queue: int = 32,
        ws_ping_interval: float | None = 20.0,
        ws_ping_timeout: float | None = 20.0,
        ws_per_message_deflate: bool = True,
        lifespan: LifespanSetting = "auto",
        env_file: str | os.PathLike[str] | None = None,
        log_config: LogConfig | None = LOGGING_CONFIG,
        log_level: str | int | None = None,
        access_log: bool = True,
        use_colors: bool | None = None,
        access_log_format: str | None = None,
        log_format: LogFormat = "text",
        interface: InterfaceSetting = "auto",
        reload: bool = False,
        reload_dirs: Sequence[str] | str | None = None,
        reload_delay: float = 0.25,
        reload_includes: Sequence[str] | str | None = None,
        reload_excludes: Sequence[str] | str | None = None,
        workers: int | None = None,
        proxy_headers: bool = True,
        server_header: bool = True,
        date_header: bool = True,
        forwarded_allow_ips: Sequence[str] | str | None = None,
        proxy_protocol: bool = False,
        root_path: str = "",
        limit_concurrency: int | None = None,
        limit_max_requests: int | None = None,
        limit_max_requests_jitter: int = 0,
        backlog: int = 2048,
        timeout_keep_alive: float = 5,
        timeout_notify: int = 30,
        timeout_graceful_shutdown: float | None = None,
        timeout_worker_healthcheck: float = 5,
        timeout_request_header: float = 10,
        timeout_request_body_idle: float = 60,
        timeout_write: float = 60,
        timeout_graceful_streams: float | str | None = 1.0,
        callback_notify: Callable[..., Awaitable[None]] | None = None,
        ssl_keyfile: str | os.PathLike[str] | None = None,
        ssl_certfile: str | os.PathLike[str] | None = None,
        ssl_keyfile_password: str | None = None,
        ssl_version: int = SSL_PROTOCOL_VERSION,
        ssl_cert_reqs: int = ssl.CERT_NONE,
        ssl_ca_certs: str | None = None,
        ssl_ciphers: str | None = None,
        ssl_context_factory: SSLContextFactory | None = None,
        headers: Sequence[tuple[str, str] | str] | None = None,
        factory: bool = False,
        h11_max_incomplete_event_size: int | None = None,
        reset_contextvars: bool = False,
        limit_request_line: int = 4094,
        limit_request_fields: int = 100,
        limit_request_field_size: int = 8190,
        limit_request_body: int | None = None,
        timeout_lifespan_startup: float = 60,
        timeout_lifespan_shutdown: float = 30,
        app_dir: str | None = None,
        http2_max_concurrent_streams: int = 100,
        http2_initial_window_size: int = 256 * 1024,
        http2_max_frame_size: int = 16384,
        http2_max_header_list_size: int = 64 * 1024,
        http2_impl: Literal["squall", "h2"] = "squall",
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.uds = uds
        self.fd = fd
        self.loop = loop
        self.http = http
        # HTTP/2: None serves it when the h2 package is installed.
        self.http2 = http2
        self.ws = ws
        self.ws_max_size = ws_max_size
        self.ws_max_queue = ws_max_queue
        self.ws_ping_interval = ws_ping_interval
        self.ws_ping_timeout = ws_ping_timeout
        self.ws_per_message_deflate = ws_per_message_deflate
        self.lifespan = lifespan
        self.log_config = log_config
        self.log_level = log_level
        self.access_log = access_log
        self.use_colors = use_colors
        # Beyond Uvicorn: Gunicorn's atoms (squall.access_log), and JSON lines.
        self.access_log_format = access_log_format
        self.log_format = log_format
        self.access_line_format: AccessFormat | None = None
        self.interface = interface
        self.reload = reload
        self.reload_delay = reload_delay
        self.workers = workers if workers is not None else 1
        self.proxy_headers = proxy_headers
        self.proxy_protocol = proxy_protocol
        self.server_header = server_header
        self.date_header = date_header
        self.root_path = root_path
        self.limit_concurrency = limit_concurrency
        self.limit_max_requests = limit_max_requests
        self.limit_max_requests_jitter = limit_max_requests_jitter
        self.backlog = backlog
        self.timeout_keep_alive = timeout_keep_alive
        self.timeout_notify = timeout_notify
        self.timeout_graceful_shutdown = timeout_graceful_shutdown
        self.timeout_worker_healthcheck = timeout_worker_healthcheck
        # Beyond Uvicorn: 0 turns each off.
        self.timeout_request_header = timeout_request_header
        self.timeout_request_body_idle = timeout_request_body_idle
        self.timeout_write = timeout_write
        # On shutdown, responses still streaming after this long are ended
        # for their clients (None: they are waited for, as Uvicorn does).
        self.timeout_graceful_streams = _optional_seconds("--timeout-graceful-streams", timeout_graceful_streams)
        self.callback_notify = callback_notify
        self.ssl_keyfile = ssl_keyfile
        self.ssl_certfile = ssl_certfile
        self.ssl_keyfile_password = ssl_keyfile_password
        self.ssl_version = ssl_version
        self.ssl_cert_reqs = ssl_cert_reqs
        self.ssl_ca_certs = ssl_ca_certs
        self.ssl_ciphers = ssl_ciphers
        self.ssl_context_factory = ssl_context_factory
        self.headers: list[tuple[str, str]] = [_split_header(h) for h in headers or []]
        self.factory = factory
        self.h11_max_incomplete_event_size = h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        self.reset_contextvars = reset_contextvars
        # Beyond Uvicorn (see docs/security.md).  The request limits have
        # Gunicorn's names and meanings: bytes of the request line, number of
        # header fields, bytes of one field line; 0 lifts each (the head size
        # limit above still bounds them).  The body limit is off by default.
        self.limit_request_line = limit_request_line
        self.limit_request_fields = limit_request_fields
        self.limit_request_field_size = limit_request_field_size
        self.limit_request_body = limit_request_body
        # 0 waits for the app without a limit.
        self.timeout_lifespan_startup = timeout_lifespan_startup
        self.timeout_lifespan_shutdown = timeout_lifespan_shutdown
        self.app_dir = app_dir
        self.env_file = env_file
        self.http2_max_concurrent_streams = http2_max_concurrent_streams
        self.http2_initial_window_size = http2_initial_window_size
        self.http2_max_frame_size = http2_max_frame_size
        self.http2_max_header_list_size = http2_max_header_list_size
        # The HTTP/2 wire layer: Squall's own, or the h2 library's (the reference).
        self.http2_impl = http2_impl
        # Beyond Uvicorn: Prometheus metrics and health probes on a socket of
        # their own (see squall.metrics); off unless a port is given.
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        # Under --workers, the directory the supervisor made for the workers'
        # figures (set by the supervisor, not by the user).
        self.metrics_dir: str | None = None

        self.loaded = False
        self.ssl: ssl.SSLContext | None = None
        # With --proxy-protocol the TLS context lives here instead of in `ssl`.
        self.proxy_protocol_ssl: ssl.SSLContext | None = None
        self.loaded_app: Any = None
        # With --proxy-headers: what rewrites each scope from a trusted proxy's headers.
        self.proxy_rewriter: ProxyHeaders | None = None
        self.http_protocol_class: type[asyncio.Protocol] | None = None
        # Set when HTTP/2 is served: the protocol an HTTP/1.1 connection
        # hands over to, its wire layer, and the settings it announces.
        self.h2_protocol_class: type[asyncio.Protocol] | None = None
        self.h2_wire_class: Any = None
        self.h2_settings: Any = None
        self.ws_protocol_class: type[asyncio.Protocol] | None = None
        self.lifespan_class: type | None = None

        self.configure_logging()
        if env_file is not None:
            self._load_env_file(env_file)
        for option, value in (("--loop", loop), ("--http", http), ("--ws", ws)):
            problem = implementation_problem(option, value) if isinstance(value, str) else None
            if problem:
                raise ConfigError(f"{option} {problem}")
        if workers is None:
            self.workers = self._workers_from_environment()
        self._validate_numbers()
        if metrics_port is not None and not _module_available("prometheus_client"):
            raise ConfigError("--metrics-port needs prometheus-client: pip install 'squall[standard]'")

        self.reload_dirs: list[Path] = []
        self.reload_includes: list[str] = []
        self.reload_excludes: list[str] = []
        if self.reload:
            self._resolve_reload_paths(reload_dirs, reload_includes, reload_excludes)
        elif reload_dirs or reload_includes or reload_excludes:
            logger.warning("--reload-dir, --reload-include and --reload-exclude only take effect with --reload.")

        if self.reload and self.workers > 1:
            if workers is not None:
                raise ConfigError(
                    "--reload and --workers are mutually exclusive: use --reload in development, --workers N in production."
                )
            # $WEB_CONCURRENCY comes with the environment (a base image, a
            # platform), not from the developer who typed --reload.
            logger.warning("$WEB_CONCURRENCY=%d is ignored with --reload: running one reloading process.", self.workers)
            self.workers = 1

        if forwarded_allow_ips is None:
            forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
        if isinstance(forwarded_allow_ips, str):
            forwarded_allow_ips = [ip.strip() for ip in forwarded_allow_ips.split(",") if ip.strip()]
        self.forwarded_allow_ips: list[str] = list(forwarded_allow_ips)

    # -- validation ---------------------------------------------------------

    def _validate_numbers(self) -> None:
        checks = [
            ("--port", self.port, 0, 65535),
            ("--backlog", self.backlog, 1, None),
            ("--workers", self.workers, 1, None),
            ("--limit-concurrency", self.limit_concurrency, 1, None),
            ("--limit-max-requests", self.limit_max_requests, 1, None),
            ("--limit-max-requests-jitter", self.limit_max_requests_jitter, 0, None),
            ("--timeout-keep-alive", self.timeout_keep_alive, 0, None),
            ("--timeout-graceful-shutdown", self.timeout_graceful_shutdown, 0, None),
            ("--timeout-worker-healthcheck", self.timeout_worker_healthcheck, 0, None),
            ("--timeout-request-header", self.timeout_request_header, 0, None),
            ("--timeout-request-body-idle", self.timeout_request_body_idle, 0, None),
            ("--timeout-write", self.timeout_write, 0, None),
            ("--timeout-graceful-streams", self.timeout_graceful_streams, 0, None),
            ("--reload-delay", self.reload_delay, 0, None),
            ("--ws-max-size", self.ws_max_size, 1, None),
            ("--ws-max-queue", self.ws_max_queue, 1, None),
            ("--h11-max-incomplete-event-size", self.h11_max_incomplete_event_size, 1, None),
            ("--limit-request-line", self.limit_request_line, 0, None),
            ("--limit-request-fields", self.limit_request_fields, 0, None),
            ("--limit-request-field-size", self.limit_request_field_size, 0, None),
            ("--limit-request-body", self.limit_request_body, 0, None),
            ("--timeout-lifespan-startup", self.timeout_lifespan_startup, 0, None),
            ("--timeout-lifespan-shutdown", self.timeout_lifespan_shutdown, 0, None),
            ("--http2-max-concurrent-streams", self.http2_max_concurrent_streams, 1, 2**31 - 1),
            ("--http2-initial-window-size", self.http2_initial_window_size, 1, 2**31 - 1),
            # RFC 9113 6.5.2: SETTINGS_MAX_FRAME_SIZE lies between these.
            ("--http2-max-frame-size", self.http2_max_frame_size, 16384, 16777215),
            ("--http2-max-header-list-size", self.http2_max_header_list_size, 1, None),
            ("--metrics-port", self.metrics_port, 0, 65535),
        ]
        for option, value, low, high in checks:
            if value is None:
                continue
            if value < low or (high is not None and value > high):
                bound = f"between {low} and {high}" if high is not None else f"at least {low}"
                raise ConfigError(f"{option} must be {bound}, not {value}", setting=_setting(option))

    @staticmethod
    def _workers_from_environment() -> int:
        value = os.environ.get("WEB_CONCURRENCY", "").strip()
        if not value:
            return 1
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"$WEB_CONCURRENCY must be a number of workers, not {value!r}") from None

    @staticmethod
    def _load_env_file(env_file: str | os.PathLike[str]) -> None:
        if not os.path.isfile(env_file):
            raise ConfigError(f"--env-file {os.fspath(env_file)!r} does not exist")
        try:
            from dotenv import load_dotenv
        except ImportError:
            raise ConfigError("--env-file needs python-dotenv: pip install 'squall[standard]'") from None
        load_dotenv(dotenv_path=env_file)

    def _resolve_reload_paths(
        self,
        reload_dirs: Sequence[str] | str | None,
        reload_includes: Sequence[str] | str | None,
        reload_excludes: Sequence[str] | str | None,
    ) -> None:
        def as_list(value: Sequence[str] | str | None) -> list[str]:
            if value is None:
                return []
            return [value] if isinstance(value, str) else list(value)

        dirs = as_list(reload_dirs) or [os.getcwd()]
        for d in dirs:
            if not os.path.isdir(d):
                raise ConfigError(f"--reload-dir {d!r} is not a directory", setting="reload_dirs")
        self.reload_dirs = sorted({Path(d).resolve() for d in dirs})
        # Like Uvicorn, given patterns add to the defaults; a pattern given
        # explicitly on one side takes it off the other side's defaults.
        given_includes = as_list(reload_includes)
        given_excludes = as_list(reload_excludes)
        includes = [p for p in DEFAULT_RELOAD_INCLUDES if p not in given_excludes] + given_includes
        excludes = [p for p in DEFAULT_RELOAD_EXCLUDES if p not in given_includes] + given_excludes
        self.reload_includes = list(dict.fromkeys(includes))
        self.reload_excludes = list(dict.fromkeys(excludes))

    # -- derived -------------------------------------------------------------

    @property
    def is_ssl(self) -> bool:
        return bool(self.ssl_keyfile or self.ssl_certfile or self.ssl_context_factory)

    @property
    def metrics_enabled(self) -> bool:
        """This process counts requests: it serves --metrics-port, or writes for a supervisor that does."""
        return self.metrics_port is not None or self.metrics_dir is not None

    @property
    def use_subprocess(self) -> bool:
        return bool(self.reload or self.workers > 1)

    @property
    def should_reload(self) -> bool:
        return isinstance(self.app, str) and self.reload

    @property
    def asgi_version(self) -> Literal["2.0", "3.0"]:
        return "2.0" if self.interface == "asgi2" else "3.0"

    @property
    def server_header_value(self) -> str:
        return "squall"

    def configure_logging(self) -> None:
        logging.addLevelName(TRACE_LOG_LEVEL, "TRACE")
        # Before any configuration is applied and before the app is imported,
        # so that both find `uvicorn.error` & co. to be Squall's loggers.
        logger_aliases.install()
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"--log-format {self.log_format!r} is not one of {', '.join(LOG_FORMATS)}")
        if self.access_log_format is not None:
            try:
                self.access_line_format = AccessFormat(self.access_log_format)
            except AccessFormatError as exc:
                raise ConfigError(f"--access-log-format: {exc}") from None
        log_config = self.log_config
        # A configuration of the user's own wins over both options.  (Equal,
        # not identical: a Config reaches worker processes by pickle.)
        if log_config == LOGGING_CONFIG:
            log_config = default_logging_config(self.log_format, self.access_line_format is not None)
        if log_config is not None:
            try:
                apply_log_config(log_config, self.use_colors)
            except LogConfigError as exc:
                raise ConfigError(str(exc)) from exc
        install_escaping()
        if self.log_level is not None:
            level = LOG_LEVELS.get(self.log_level.lower()) if isinstance(self.log_level, str) else self.log_level
            if level is None:
                raise ConfigError(f"--log-level {self.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
            for name in ("squall.error", "squall.access", "squall.asgi"):
                logging.getLogger(name).setLevel(level)
        if not self.access_log:
            access = logging.getLogger("squall.access")
            access.handlers = []
            access.propagate = False

    # -- loading -------------------------------------------------------------

    def load(self) -> None:
        """Resolve the implementations, TLS, and import the app.  Idempotent."""
        if self.loaded:
            return

        self.ssl = self._make_ssl_context() if self.is_ssl else None
        if self.proxy_protocol and self.ssl is not None:
            # The PROXY header comes before the TLS handshake on the wire: the
            # listener stays plain TCP and squall.protocols.proxy_reader starts
            # TLS once it has read the header.
            self.proxy_protocol_ssl, self.ssl = self.ssl, None

        self.encoded_headers: list[tuple[bytes, bytes]] = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers
        ]
        if self.server_header and not any(name == b"server" for name, _ in self.encoded_headers):
            self.encoded_headers.insert(0, (b"server", self.server_header_value.encode()))

        if isinstance(self.loop, str) and ":" not in self.loop:
            self.loop = resolve_loop(self.loop)
        self.http_protocol_class = self._load_protocol("--http", self.http, HTTP_PROTOCOLS, resolve_http)
        # Imported with the first WebSocket connection.
        self.ws_protocol_class = self._load_protocol("--ws", self.ws, WS_PROTOCOLS, resolve_ws, lazy=True)
        self.lifespan_class = _load_attr(LIFESPAN[self.lifespan])
        self._load_http2()

        self.loaded_app = self._load_app()
        if self.proxy_headers:
            from squall.middleware.proxy_headers import ProxyHeaders

            # Applied by the connections as they build each scope (not as a
            # middleware: one coroutine less per request, and the peer's
            # trust is decided once per connection).
            self.proxy_rewriter = ProxyHeaders(self.forwarded_allow_ips)
        self.loaded = True

    def _load_http2(self) -> None:
        """Serve HTTP/2 beside HTTP/1.1 (h2c, the preface, ALPN) when asked or available."""
        if self.http2 is False:
            available = False
        else:
            available = _module_available("h2")
            if self.http2 and not available:
                raise ConfigError("--http2 was asked for, but the h2 package is not installed: pip install 'squall[standard]'")
        if available:
            from squall.protocols.http2.wire import H2Settings

            if self.http2_impl not in HTTP2_WIRES:
                raise ConfigError(f"--http2-impl must be one of {', '.join(HTTP2_WIRES)}, not {self.http2_impl!r}")
            # Imported with the first HTTP/2 connection (preface, h2c upgrade or ALPN).
            self.h2_protocol_class = LazyClass("squall.protocols.http2.connection:H2Connection")  # type: ignore[assignment]
            self.h2_wire_class = LazyClass(HTTP2_WIRES[self.http2_impl])
            self.h2_settings = H2Settings(
                max_concurrent_streams=self.http2_max_concurrent_streams,
                initial_window_size=self.http2_initial_window_size,
                connection_window_size=max(65535, 4 * self.http2_initial_window_size),
                max_frame_size=self.http2_max_frame_size,
                max_header_list_size=self.http2_max_header_list_size,
                # WebSockets over HTTP/2 (RFC 8441), when WebSockets are served at all.
                enable_connect_protocol=self.ws_protocol_class is not None and self.interface != "wsgi",
            )
        tls = self.ssl or self.proxy_protocol_ssl
        if tls is not None:
            tls.set_alpn_protocols(["h2", "http/1.1"] if available else ["http/1.1"])

    @staticmethod
    def _load_protocol(
        option: str, setting: Any, known: dict[str, Any], resolve: Callable[[str], str], lazy: bool = False
    ) -> type[asyncio.Protocol] | None:
        if not isinstance(setting, str):
            return setting  # type: ignore[no-any-return]  # a class passed from Python
        if ":" in setting:
            return _load_custom(option, setting)  # type: ignore[no-any-return]
        path = known[resolve(setting)]
        if not path:
            return None
        return LazyClass(path) if lazy else _load_attr(path)  # type: ignore[return-value]

    def _ensure_app_dir_on_path(self) -> None:
        if self.app_dir is not None and self.app_dir not in sys.path:
            sys.path.insert(0, self.app_dir)

    def check_app_path(self) -> None:
        """Fail now, with one line, if the app's import string is malformed or its module does not exist.

        For a supervisor, which leaves importing the app to its server processes.
        """
        if not isinstance(self.app, str):
            return
        self._ensure_app_dir_on_path()
        try:
            check_module_exists(self.app)
        except ImportFromStringError as exc:
            raise ConfigError(str(exc)) from exc

    def _load_app(self) -> Any:
        from squall.middleware.asgi2 import ASGI2Middleware
        from squall.middleware.fresh_context import FreshContextMiddleware
        from squall.middleware.message_logger import MessageLoggerMiddleware
        from squall.middleware.wsgi import WSGIMiddleware

        self._ensure_app_dir_on_path()
        try:
            app = import_from_string(self.app)
        except ImportRaisedError as exc:
            raise ConfigError(str(exc), traceback_of=exc.exception) from exc
        except ImportFromStringError as exc:
            raise ConfigError(str(exc)) from exc

        if self.factory:
            if not callable(app):
                raise ConfigError(f"--factory was given, but {self.app!r} is not callable")
            app = self._call_factory(app)
        elif _looks_like_factory(app):
            logger.warning(
                "%r takes no arguments and is not an ASGI app: calling it as an app factory (pass --factory to say so).",
                self.app,
            )
            app = self._call_factory(app)

        if self.interface == "auto":
            if inspect.isclass(app):
                use_asgi3 = hasattr(app, "__await__")
            elif inspect.isfunction(app):
                use_asgi3 = inspect.iscoroutinefunction(app)
            else:
                call = getattr(app, "__call__", None)
                use_asgi3 = inspect.iscoroutinefunction(call)
            self.interface = "asgi3" if use_asgi3 else "asgi2"

        if self.interface == "wsgi":
            app = WSGIMiddleware(app)
            self.ws_protocol_class = None
        elif self.interface == "asgi2":
            app = ASGI2Middleware(app)

        if logging.getLogger("squall.error").getEffectiveLevel() <= TRACE_LOG_LEVEL:
            app = MessageLoggerMiddleware(app)
        if self.reset_contextvars:
            app = FreshContextMiddleware(app)
        return app

    def _call_factory(self, factory: Callable[[], Any]) -> Any:
        try:
            app = factory()
        except Exception as exc:
            raise ConfigError(f"Error calling the app factory {self.app!r}:", traceback_of=exc) from exc
        if not callable(app):
            raise ConfigError(f"The app factory {self.app!r} returned {app!r}, not an ASGI app")
        return app

    def _make_ssl_context(self) -> ssl.SSLContext:
        from squall.tls import create_ssl_context

        def default_context() -> ssl.SSLContext:
            return create_ssl_context(
                certfile=self.ssl_certfile,
                keyfile=self.ssl_keyfile,
                password=self.ssl_keyfile_password,
                ssl_version=self.ssl_version,
                cert_reqs=self.ssl_cert_reqs,
                ca_certs=self.ssl_ca_certs,
                ciphers=self.ssl_ciphers,
            )

        if self.ssl_context_factory is None:
            return default_context()
        try:
            context = self.ssl_context_factory(self, default_context)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError("Error calling ssl_context_factory:", traceback_of=exc) from exc
        if not isinstance(context, ssl.SSLContext):
            raise ConfigError(f"ssl_context_factory must return an ssl.SSLContext, not {type(context).__name__}")
        return context

    def setup_event_loop(self) -> None:
        """Kept for code written against older Uvicorn; Squall picks the loop in `Server.run`."""

    def get_loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop] | None:
        """What makes the event loop `Server.run` runs in: a custom factory, or one for the loop setting."""
        if isinstance(self.loop, str) and ":" in self.loop:
            factory = _load_custom("--loop", self.loop)
            if not callable(factory):
                raise ConfigError(f"--loop {self.loop!r} is not callable: it must name a function that returns a new event loop")
            return factory  # type: ignore[no-any-return]
        return new_event_loop_factory(resolve_loop(self.loop) if isinstance(self.loop, str) else "asyncio")

    def bind_socket(self) -> socket.socket:
        """Bind the listening socket in this process (used by the supervisors)."""
        from squall.sockets import bind_socket

        return bind_socket(self)


def _looks_like_factory(app: Any) -> bool:
    """A zero-argument callable that is not an ASGI app: an app factory passed without --factory."""
    if not callable(app) or inspect.iscoroutinefunction(app):
        return False
    if not inspect.isclass(app) and not inspect.isfunction(app):
        if inspect.iscoroutinefunction(getattr(app, "__call__", None)):
            return False
    try:
        signature = inspect.signature(app)
    except (TypeError, ValueError):
        return False
    # Not `*args`/`**kwargs`: a wrapper that passes its arguments on to an
    # app looks like that, and must not be called to find out.
    return all(
        param.default is not param.empty and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
        for param in signature.parameters.values()
    )
