"""`squall.run`: the Python API behind the command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import ssl
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from types import FrameType
from typing import Any, Literal

from squall.config import (
    LOGGING_CONFIG,
    SSL_PROTOCOL_VERSION,
    STARTUP_FAILURE,
    Config,
    ConfigError,
    HTTPSetting,
    InterfaceSetting,
    LifespanSetting,
    LoopSetting,
    SSLContextFactory,
    WSSetting,
)
from squall.log_config import LogConfig
from squall.logging import LogFormat
from squall.sockets import remove_unix_socket_file, unix_socket_file

logger = logging.getLogger("squall.error")


def run(
    app: Any,
    *,
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
    """Serve `app` until told to stop, then return.

    `app` is an ASGI (or, with `interface="wsgi"`, WSGI) application, or an
    import string such as "main:app" (required with `reload` or `workers`).
    Every other parameter is the command-line option of the same name
    (`--ws-max-size` is `ws_max_size`), with the same default, and is a
    `squall.Config` setting; `squall --help` and docs/index.md describe them.
    Beyond the command line:

    - `log_config`: a `logging.config.dictConfig` dict (default
      `squall.config.LOGGING_CONFIG`), a path to a .json, .yaml or .ini
      file, a parsed `configparser` INI, or None to leave logging alone.
    - `http`, `ws`: an `asyncio.Protocol` class, besides a name or an import string.
    - `headers`: (name, value) pairs, or "Name:Value" strings.
    - `ssl_context_factory(config, default)`: returns the server's
      `ssl.SSLContext`; `default()` builds the one the ssl_* settings describe.
    - `callback_notify`, `timeout_notify`: an async callable called every
      `timeout_notify` seconds from the server's main loop.

    A setting that cannot be used, an app that cannot be imported, or a
    server that cannot start, logs why and exits the process with status 3.
    Ctrl+C (SIGINT) and SIGTERM stop the server gracefully; then run() returns.
    """
    settings = dict(locals())  # every parameter but `app` is a Config setting of that name
    del settings["app"]
    with _sigterm_as_keyboard_interrupt():
        try:
            config = Config(app, **settings)
        except ConfigError as exc:
            exc.log(logger)
            sys.exit(STARTUP_FAILURE)
        except KeyboardInterrupt:
            return
        run_config(config)


def run_config(config: Config) -> None:
    """Serve a `Config` already built, as `run` does (the command line builds its own, to check it first)."""
    with _sigterm_as_keyboard_interrupt():
        try:
            if config.use_subprocess and not isinstance(config.app, str):
                raise ConfigError(
                    'To use --reload or --workers, pass the app as an import string, like squall.run("main:app", ...).'
                )
            _serve(config)
        except ConfigError as exc:
            exc.log(logger)
            sys.exit(STARTUP_FAILURE)
        except KeyboardInterrupt:
            pass


@contextlib.contextmanager
def _sigterm_as_keyboard_interrupt() -> Iterator[None]:
    """Make SIGTERM end `run` as Ctrl+C does: with KeyboardInterrupt, which `run` catches.

    While serving, the server handles SIGTERM itself and then re-delivers
    it here, once shut down; a SIGTERM before that (while the app is being
    imported) just stops.  Either way `run` returns and the process exits
    0, where the default action would kill it.  A program that set a
    SIGTERM handler of its own keeps it, and hears of the signal.
    """
    in_main_thread = threading.current_thread() is threading.main_thread()
    if not in_main_thread or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def interrupt(sig: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _serve(config: Config) -> None:
    from squall.server import Server

    if not config.use_subprocess:
        server = Server(config)
        server.run()
        if not server.started:
            sys.exit(STARTUP_FAILURE)
        return

    # The supervisor binds the socket once and keeps it for its whole life;
    # each server process it spawns imports the app itself (see
    # squall.supervisors), so the app is never loaded in this process.
    from squall.supervisors import ChangeReload, Multiprocess

    # A spawned server process imports the script that started Squall
    # again; an unguarded squall.run() in it would land here.
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise ConfigError(
            'Call squall.run() with reload or workers under `if __name__ == "__main__":`: '
            "each server process imports the main module again."
        )
    if not config.reload:
        # Rather than N worker processes each failing to find it.
        config.check_app_path()
    sock = config.bind_socket()
    socket_file = unix_socket_file(sock) if config.uds else None
    try:
        supervisor = ChangeReload(config, [sock]) if config.reload else Multiprocess(config, [sock])
        status = supervisor.run()
    finally:
        sock.close()
        remove_unix_socket_file(socket_file)
    if status:
        sys.exit(status)
