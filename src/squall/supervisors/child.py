"""What runs inside a server process that a supervisor started.

The process is spawned, not forked: it starts from a fresh interpreter and
imports the app itself, which is what lets a restart pick up new code.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

from squall.config import Config, ConfigError
from squall.server import Server
from squall.supervisors.channel import DRAINING, PING, PONG, READY, RETIRE, receive, send
from squall.supervisors.drain import DrainableServer

logger = logging.getLogger("squall.error")

# Exit codes a supervisor reads (the same as a single `squall` process's).
EXIT_CONFIG_ERROR = 1
EXIT_STARTUP_FAILURE = 3


def run_server_process(config: Config, sockets: Sequence[socket.socket], channel: socket.socket | None = None) -> None:
    """Serve on `sockets` until told to stop; with a `channel`, as a supervised worker."""
    # These are the supervisor's signals, but a closing terminal or a job-control
    # shell sends them to the whole process group, and their default actions
    # would kill (SIGHUP) or suspend (SIGTTIN/SIGTTOU) a worker.
    for name in ("SIGHUP", "SIGTTIN", "SIGTTOU"):
        if hasattr(signal, name):  # POSIX only
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    # The Config arrived by pickle, which does not run __init__ again.
    config.configure_logging()

    server: Server
    if channel is None:
        server = Server(config)
    else:
        server = DrainableServer(config)
        WorkerAgent(server, channel).attach()
    try:
        server.run(sockets=sockets)
    except ConfigError as exc:
        # The app failed to import or load: one line, as for a single process.
        cause = exc.__cause__
        logger.error("%s", exc, exc_info=cause if cause is not None and logger.isEnabledFor(logging.DEBUG) else None)
        sys.exit(EXIT_CONFIG_ERROR)
    except KeyboardInterrupt:
        # Ctrl+C reached this process while it was still importing the app,
        # before the server had its own handlers; the supervisor is stopping.
        pass
    if not server.started:
        sys.exit(EXIT_STARTUP_FAILURE)


class WorkerAgent:
    """The worker's end of the channel, living in the server's event loop.

    It rides on the server's periodic notify callback (the same hook a
    Gunicorn worker uses to tell its arbiter it is alive), so it runs from the
    server's main loop: its first call means the server is listening, and a
    ping only gets an answer while that loop is actually turning.

    When its replacement is serving, the supervisor sends RETIRE: the worker
    drains (see squall.supervisors.drain), then shuts down as usual.

    It also takes over --limit-max-requests: instead of the server leaving
    its main loop at the limit, the agent asks for a replacement and the
    worker keeps serving until the supervisor, with the replacement ready,
    retires it.  No capacity is lost while the replacement imports the app.
    """

    def __init__(self, server: DrainableServer, channel: socket.socket) -> None:
        self.server = server
        self.channel = channel
        self.ready = False
        self.draining = False
        self.max_requests: int | None = None
        self._chained: Callable[[], Awaitable[None]] | None = None
        self._chained_every = 0.0
        self._chained_at = 0.0
        self._retiring: asyncio.Task[None] | None = None

    def attach(self) -> None:
        """Hook into the server's config; call before the server runs."""
        config = self.server.config
        if config.limit_max_requests is not None:
            self.max_requests = config.limit_max_requests + random.randint(0, config.limit_max_requests_jitter)
            config.limit_max_requests = None  # this process's own copy of the config

        # A notify callback given through the Python API keeps being called at its own interval.
        self._chained = config.callback_notify
        self._chained_every = config.timeout_notify
        config.callback_notify = self._on_tick
        config.timeout_notify = 0  # every tick of the server's main loop

    async def _on_tick(self) -> None:
        if not self.ready:
            self.ready = True
            self.channel.setblocking(False)
            asyncio.get_running_loop().add_reader(self.channel.fileno(), self._on_message)
            send(self.channel, READY)

        limit = self.max_requests
        if limit is not None and not self.draining and self.server.server_state.total_requests >= limit:
            self.draining = True
            logger.warning("Maximum request limit of %d reached; stopping once a replacement worker is serving.", limit)
            send(self.channel, DRAINING)

        if self._chained is not None:
            now = time.monotonic()
            if now - self._chained_at > self._chained_every:
                self._chained_at = now
                await self._chained()

    def _on_message(self) -> None:
        data = receive(self.channel)
        if data is None:
            # The supervisor is gone (killed with SIGKILL?): a worker nobody
            # supervises must not linger holding the port.
            asyncio.get_running_loop().remove_reader(self.channel.fileno())
            logger.warning("The supervisor process is gone; shutting down.")
            self.server.should_exit = True
            return
        if PING in data:
            send(self.channel, PONG)
        if RETIRE in data and self._retiring is None:
            self._retiring = asyncio.get_running_loop().create_task(self._retire())

    async def _retire(self) -> None:
        await self.server.drain()
        self.server.should_exit = True
