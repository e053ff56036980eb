"""Running a server: sockets, the event loop, signals and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from email.utils import formatdate
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from squall._compiled import HOT_PATH
from squall.config import Config
from squall.logging import TRACE_LOG_LEVEL, style_pid
from squall.sockets import (
    UnixSocketFile,
    describe_socket,
    refuse_new_connections,
    remove_unix_socket_file,
    unix_socket_file,
)

if TYPE_CHECKING:
    from squall.lifespan import LifespanOff, LifespanOn

logger = logging.getLogger("squall.error")

HANDLED_SIGNALS: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
if sys.platform == "win32":  # pragma: no cover
    HANDLED_SIGNALS += (signal.SIGBREAK,)  # Ctrl+Break
# How often the server wakes to refresh the Date header, check the
# connections' timeouts and look for a requested exit.
TICK_SECONDS = 0.1
# Connections' timeouts are checked at this interval rather than each
# request arming a timer: keep-alive and the other timeouts cost nothing on
# the request path.
TIMEOUT_SWEEP_TICKS = 5
# While shutting down, how often to look whether the last connection closed.
SHUTDOWN_POLL_SECONDS = 0.01
# How long connections taken from the listen queue at shutdown may take to
# be set up (a TLS handshake) before the shutdown goes on without them.
QUEUED_HANDSHAKE_SECONDS = 2.0
# Once new connection attempts are ignored, how long the handshakes already
# under way may take to complete (one network round trip) before the queue is
# drained a last time and the listener closed.
LATE_HANDSHAKE_SECONDS = 0.05


# A SIGINT this soon after the signal that stopped the server is the same
# Ctrl+C delivered twice (`timeout -s INT` signals both its child and the
# child's process group), not a second Ctrl+C asking to quit at once.
DUPLICATE_SIGNAL_SECONDS = 0.2


def is_duplicate_signal(first_at: float) -> bool:
    return time.monotonic() - first_at < DUPLICATE_SIGNAL_SECONDS


class ServerState:
    """What every connection of one server shares.

    `default_headers` is the block of response headers (Server, Date, any
    `--header`) already encoded, refreshed once a second by the server.
    `counters` counts events worth reporting (timeouts, refusals) by name.
    """

    __slots__ = (
        "total_requests",
        "connections",
        "tasks",
        "default_headers",
        "default_header_names",
        "default_header_list",
        "draining",
        "counters",
        "metrics",
    )

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.total_requests = 0
        self.connections: set[Any] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.default_headers = b""
        self.default_header_names: frozenset[bytes] = frozenset()
        # The same headers as (name, value) pairs, for HTTP/2.
        self.default_header_list: list[tuple[bytes, bytes]] = []
        # Set when the server is going away: every response then closes its
        # connection, so keep-alive clients move on between two requests.
        self.draining = False
        # The per-request figures (squall.metrics.recorder.Recorder) when
        # metrics are on; None costs the connections one check per request.
        self.metrics: Any = None

    def count(self, event: str) -> None:
        self.counters[event] += 1


class Server:
    """One server: `run()` it in a new event loop, or `await serve()` in yours.

    What a program embedding it reads, as with Uvicorn's: `config`,
    `started` (listening, lifespan startup done), `should_exit` (set it to
    stop gracefully, from any thread), `force_exit` (stop without waiting),
    `servers` (the asyncio servers listening) and `server_state`.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.server_state = ServerState()
        self.started = False
        self._should_exit = False
        self._wakeup: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.force_exit = False
        self.servers: list[asyncio.AbstractServer] = []
        self.lifespan: LifespanOn | LifespanOff | None = None
        self.last_notified = 0.0
        # The second the Date header was last written for.
        self._date_second = -1
        self._max_requests: int | None = None
        self._captured_signals: list[int] = []
        # When the signal that stopped the server arrived (monotonic time).
        self._stop_signal_at = 0.0
        # The socket file this server bound for --uds, removed when it stops.
        self._unix_socket: UnixSocketFile | None = None
        self._protocol_factory: Any = None
        # Whether the listeners end with this server (not shared with a
        # supervisor, an arbiter or the process that passed --fd).
        self._owns_listeners = False

    # -- entry points --------------------------------------------------------

    def run(self, sockets: Sequence[socket.socket] | None = None) -> None:
        """Run until told to exit, in a new event loop of the configured kind.

        The app is imported first, before that loop exists: a module that
        runs an event loop of its own at import (`asyncio.run(...)`) works.
        """
        self.config.load()
        loop_factory = self.config.get_loop_factory()
        # Signals that stopped the server are re-delivered once the loop is
        # closed, not inside it: a KeyboardInterrupt raised in the loop would
        # leave its tasks (the lifespan's, a request's) unfinished.
        with self.capture_signals():
            run_in_new_loop(self._serve(sockets), loop_factory)

    async def serve(self, sockets: Sequence[socket.socket] | None = None) -> None:
        """Serve inside an already running event loop."""
        with self.capture_signals():
            await self._serve(sockets)

    async def _serve(self, sockets: Sequence[socket.socket] | None) -> None:
        self.config.load()
        self.lifespan = self.config.lifespan_class(self.config, self.server_state)  # type: ignore[misc]
        pid = os.getpid()
        logger.info("Started server process [%d]", pid, extra={"color_message": style_pid("Started server process [%d]")})
        logger.debug("Squall hot path: %s", HOT_PATH)
        metrics = None
        if self.config.metrics_enabled:
            from squall.metrics.runtime import ServerMetrics

            metrics = ServerMetrics(self)
            if not await metrics.start():
                return
        try:
            await self.startup(sockets=sockets)
            if not self.started:
                return
            # Told to exit while starting (a signal during a slow lifespan
            # startup): still shut down properly, the app's shutdown included.
            if not self.should_exit:
                await self.main_loop()
            await self.shutdown(sockets=sockets)
        finally:
            # Last: /readyz says 503 and /healthz 200 throughout the shutdown.
            if metrics is not None:
                await metrics.stop()
        # Access lines wait for the end of a loop turn (BatchedStreamHandler): write them now.
        for handler in logging.getLogger("squall.access").handlers:
            handler.flush()
        logger.info("Finished server process [%d]", pid, extra={"color_message": style_pid("Finished server process [%d]")})

    # -- signals -------------------------------------------------------------

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Handle SIGINT and SIGTERM while serving.

        Afterwards the handlers that were there before are put back, and the
        signals that arrived are delivered to them, so that a program that
        embeds the server still hears of the Ctrl+C (a KeyboardInterrupt,
        by default) or the SIGTERM that stopped it.  Signals can only be
        handled in the main thread: elsewhere, set `should_exit` instead.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                if handler is not None:  # None: set from C, cannot be put back from Python
                    signal.signal(sig, handler)
        # Most recent first: an earlier handler may end the program.
        for sig in reversed(self._captured_signals):
            signal.raise_signal(sig)

    @property
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        """May be set from any thread; the main loop notices at once, not at its next tick."""
        self._should_exit = value
        loop = self._loop
        if value and loop is not None:
            try:
                loop.call_soon_threadsafe(self._wake_main_loop)
            except RuntimeError:  # the loop is already closed
                pass

    def _wake_main_loop(self) -> None:
        waiter = self._wakeup
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """The signal handler: the first signal stops gracefully, a further SIGINT at once."""
        self._captured_signals.append(sig)
        if self.should_exit and sig == signal.SIGINT and not is_duplicate_signal(self._stop_signal_at):
            self.force_exit = True
        elif not self.should_exit:
            self._stop_signal_at = time.monotonic()
            self.should_exit = True

    # -- startup -------------------------------------------------------------

    async def startup(self, sockets: Sequence[socket.socket] | None = None) -> None:
        assert self.lifespan is not None
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            self.should_exit = True
            return

        config = self.config
        loop = asyncio.get_running_loop()
        self._refresh_default_headers()
        if config.limit_max_requests is not None:
            self._max_requests = config.limit_max_requests + random.randint(0, config.limit_max_requests_jitter)
        protocol_class: Any = config.http_protocol_class
        if logger.isEnabledFor(TRACE_LOG_LEVEL):
            from squall.protocols.tracing import with_connection_trace

            protocol_class = with_connection_trace(protocol_class)
        protocol_factory: Any = functools.partial(
            protocol_class,
            config=config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        if config.proxy_protocol:
            from squall.protocols.proxy_reader import ProxyProtocolReader

            protocol_factory = functools.partial(ProxyProtocolReader, protocol_factory)
        self._protocol_factory = protocol_factory

        try:
            if sockets is not None:
                for sock in sockets:
                    self.servers.append(
                        await loop.create_server(protocol_factory, sock=sock, ssl=config.ssl, backlog=config.backlog)
                    )
            elif config.fd is not None or config.uds is not None:
                sock = config.bind_socket()
                if config.uds is not None:
                    self._unix_socket = unix_socket_file(sock)
                    self._owns_listeners = True
                try:
                    self.servers.append(
                        await loop.create_server(protocol_factory, sock=sock, ssl=config.ssl, backlog=config.backlog)
                    )
                except BaseException:
                    sock.close()
                    raise
            else:
                self._owns_listeners = True
                self.servers.append(
                    await loop.create_server(
                        protocol_factory,
                        host=config.host,
                        port=config.port,
                        ssl=config.ssl,
                        backlog=config.backlog,
                        reuse_address=True,
                    )
                )
        except OSError as exc:
            from squall.sockets import format_host_port

            where = config.uds or (f"fd {config.fd}" if config.fd is not None else format_host_port(config.host, config.port))
            logger.error("Could not listen on %s: %s", where, exc.strerror or exc)
            self._close_listeners()
            await self.lifespan.shutdown()
            self.should_exit = True
            return
        except Exception as exc:
            from squall.config import ConfigError

            if not isinstance(exc, ConfigError):
                raise
            logger.error("%s", exc)
            self._close_listeners()
            await self.lifespan.shutdown()
            self.should_exit = True
            return

        if sockets is None:
            self._log_started_message()
        self.started = True

    @property
    def listening_sockets(self) -> list[socket.socket]:
        return [sock for server in self.servers for sock in server.sockets]  # type: ignore[misc]

    @property
    def port(self) -> int | None:
        """The TCP port actually bound (useful with `port=0`)."""
        for sock in self.listening_sockets:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                return sock.getsockname()[1]
        return None

    def _log_started_message(self) -> None:
        config = self.config
        seen: list[str] = []
        for sock in self.listening_sockets:
            where = describe_socket(sock, config.is_ssl)
            if where not in seen:
                seen.append(where)
        coloured = "Squall running on " + click.style("%s", bold=True) + " (Press CTRL+C to quit)"
        for where in seen:
            logger.info("Squall running on %s (Press CTRL+C to quit)", where, extra={"color_message": coloured})

    # -- main loop -----------------------------------------------------------

    async def main_loop(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        ticks = 0
        while not await self.on_tick(ticks):
            ticks += 1
            self._wakeup = loop.create_future()
            timer = loop.call_later(TICK_SECONDS, self._wake_main_loop)
            await self._wakeup
            timer.cancel()
        self._wakeup = None

    async def on_tick(self, ticks: int) -> bool:
        now = time.time()
        if int(now) != self._date_second:
            self._refresh_default_headers(now)
        if ticks % TIMEOUT_SWEEP_TICKS == 0:
            self._check_timeouts()

        if self.config.callback_notify is not None and now - self.last_notified > self.config.timeout_notify:
            self.last_notified = now
            await self.config.callback_notify()

        if self.should_exit:
            return True
        if self._max_requests is not None and self.server_state.total_requests >= self._max_requests:
            logger.warning("Maximum request limit of %d exceeded. Terminating process.", self._max_requests)
            return True
        return False

    def _refresh_default_headers(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self._date_second = int(now)
        headers = list(self.config.encoded_headers)
        if self.config.date_header:
            headers.insert(0, (b"date", formatdate(now, usegmt=True).encode()))
        self.server_state.default_headers = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        self.server_state.default_header_names = frozenset(name for name, _ in headers)
        self.server_state.default_header_list = headers

    def _check_timeouts(self) -> None:
        now = asyncio.get_running_loop().time()
        for connection in list(self.server_state.connections):
            connection.check_timeouts(now)

    # -- shutdown ------------------------------------------------------------

    async def shutdown(self, sockets: Sequence[socket.socket] | None = None) -> None:
        logger.info("Shutting down")
        # Responses from now on say `Connection: close`.
        self.server_state.draining = True
        queued = await self._stop_listening()
        for sock in sockets or []:
            sock.close()
        if queued:
            # Served like any connection open at shutdown (shut down below).
            await asyncio.wait(queued, timeout=QUEUED_HANDSHAKE_SECONDS)

        # Idle connections close now; busy ones after their current response.
        for connection in list(self.server_state.connections):
            connection.shutdown()

        try:
            await asyncio.wait_for(self._wait_for_connections(), timeout=self.config.timeout_graceful_shutdown)
        except asyncio.TimeoutError:
            logger.error(
                "Cancelling %d running task(s): the graceful shutdown timeout of %ss was exceeded.",
                len(self.server_state.tasks),
                self.config.timeout_graceful_shutdown,
            )
            for task in list(self.server_state.tasks):
                task.cancel()
            for connection in list(self.server_state.connections):
                connection.abort()

        if self.force_exit:
            # Asked for (a second Ctrl+C): one line, not an error.  The
            # connections are dropped first, so that the cancelled apps'
            # requests end silently rather than with a 500 after the last line.
            logger.warning("Forced exit: open connections, running tasks and the lifespan shutdown are abandoned.")
            for connection in list(self.server_state.connections):
                connection.abort()
            return
        assert self.lifespan is not None
        await self.lifespan.shutdown()

    def _close_listeners(self) -> None:
        """Stop accepting, and remove the --uds socket file this server made."""
        for server in self.servers:
            server.close()
        remove_unix_socket_file(self._unix_socket)
        self._unix_socket = None

    async def _stop_listening(self) -> list[asyncio.Task[Any]]:
        """Stop accepting, and serve the connections the kernel has queued.

        Closing a listening socket resets the connections in its queue:
        clients whose connect() succeeded, and whose request may already be
        sent, would get no answer.  So the listeners are held open a moment
        longer than the servers: the queue is taken from a duplicate, and its
        connections are served (with `Connection: close`) like the others
        open at shutdown.  A listener this server owns first stops taking
        new connections (its Unix socket file removed, or its TCP SYNs
        ignored), so that the last drain leaves nothing behind.  A shared
        listener stays open elsewhere: what is queued on it waits for the
        other workers.
        """
        held: list[socket.socket] = []
        for listener in self.listening_sockets:
            try:
                held.append(socket.socket(fileno=os.dup(listener.fileno())))
            except OSError:
                continue
        filtered = [refuse_new_connections(sock) for sock in held] if self._owns_listeners else []
        self._close_listeners()
        try:
            queued = self._accept_from(held)
            if any(filtered):
                await asyncio.sleep(LATE_HANDSHAKE_SECONDS)
                queued += self._accept_from(held)
        finally:
            for sock in held:
                sock.close()
        return queued

    def _accept_from(self, listeners: list[socket.socket]) -> list[asyncio.Task[Any]]:
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[Any]] = []
        if self._protocol_factory is None:
            return tasks
        for sock in listeners:
            sock.setblocking(False)
            while len(tasks) < self.config.backlog:
                try:
                    conn, _ = sock.accept()
                except OSError:  # BlockingIOError: nothing more is queued
                    break
                conn.setblocking(False)
                tasks.append(loop.create_task(self._serve_accepted(conn)))
        return tasks

    async def _serve_accepted(self, conn: socket.socket) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(self._protocol_factory, conn, ssl=self.config.ssl)
        except OSError as exc:  # the client left, or its TLS handshake failed
            logger.debug("A connection accepted at shutdown failed: %s", exc)
            conn.close()

    async def _wait_for_connections(self) -> None:
        if self.server_state.connections and not self.force_exit:
            logger.info("Waiting for connections to close. (CTRL+C to force quit)")
            loop = asyncio.get_running_loop()
            grace = self.config.timeout_graceful_streams
            streams_end_at = None if grace is None else loop.time() + grace
            while self.server_state.connections and not self.force_exit:
                await asyncio.sleep(SHUTDOWN_POLL_SECONDS)
                self._check_timeouts()
                if streams_end_at is not None and loop.time() >= streams_end_at:
                    # Responses still streaming (Server-Sent Events, long
                    # downloads) would hold the shutdown for ever: end them.
                    streams_end_at = None
                    for connection in list(self.server_state.connections):
                        end_streams = getattr(connection, "end_streams", None)
                        if end_streams is not None:
                            end_streams()
        tasks = self.server_state.tasks
        # A request task cancelled before its first step never ran the code
        # that takes it out of the set: only a task not done is waited for.
        tasks.difference_update([task for task in tasks if task.done()])
        if tasks and not self.force_exit:
            logger.info("Waiting for background tasks to complete. (CTRL+C to force quit)")
            while tasks and not self.force_exit:
                await asyncio.sleep(SHUTDOWN_POLL_SECONDS)
                tasks.difference_update([task for task in tasks if task.done()])
        if not self.force_exit:
            for server in self.servers:
                await server.wait_closed()


def run_in_new_loop(
    main: Awaitable[None], loop_factory: Callable[[], asyncio.AbstractEventLoop] | None
) -> None:
    """Run `main` in a new event loop; cancel what is left and close the loop afterwards."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(main)  # type: ignore[arg-type]
        return
    loop = loop_factory() if loop_factory else asyncio.new_event_loop()  # pragma: no cover - Python 3.10
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main)
    finally:
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
