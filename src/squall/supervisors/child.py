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
from types import FrameType

from squall.config import STARTUP_FAILURE, Config, ConfigError
from squall.supervisors.channel import DRAINING, PING, PONG, READY, RETIRE, receive, send
from squall.server import is_duplicate_signal
from squall.supervisors.drain import DrainableServer

logger = logging.getLogger("squall.error")


def run_server_process(config: Config, sockets: Sequence[socket.socket], channel: socket.socket | None = None) -> None:
    """Serve on `sockets` until told to stop; with a `channel`, as a supervised worker.

    Exits 0 once stopped, and with STARTUP_FAILURE when the app cannot be
    loaded or the server cannot start (the supervisor reads the status).
    """
    # These are the supervisor's signals, but a closing terminal or a job-control
    # shell sends them to the whole process group, and their default actions
    # would kill (SIGHUP) or suspend (SIGTTIN/SIGTTOU) a worker.
    for name in ("SIGHUP", "SIGTTIN", "SIGTTOU"):
        if hasattr(signal, name):  # POSIX only
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    # SIGTERM while the app is still being imported, or delivered again by
    # the server once it has shut down: stop quietly, as after Ctrl+C.
    signal.signal(signal.SIGTERM, _interrupt)

    server = SupervisedServer(config)
    try:
        # The Config arrived by pickle, which does not run __init__ again.
        config.configure_logging()
        if channel is not None:
            WorkerAgent(server, channel).attach()
        server.run(sockets=sockets)
    except ConfigError as exc:
        # The app failed to import or load: as for a single process.
        exc.log(logger)
        sys.exit(STARTUP_FAILURE)
    except KeyboardInterrupt:
        return  # told to stop, by the supervisor or the terminal
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _interrupt(sig: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class SupervisedServer(DrainableServer):
    """A server in a process that a supervisor started.

    Ctrl+C in a terminal reaches the whole process group: the supervisor,
    which then sends each server process SIGTERM, and each server process
    directly.  So a server process gets SIGINT and SIGTERM for the same
    Ctrl+C, in either order; only a second SIGINT (a second Ctrl+C, or
    the supervisor passing one on) means "quit now".
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        repeated = sig == signal.SIGINT and signal.SIGINT in self._captured_signals
        self._captured_signals.append(sig)
        if repeated and not is_duplicate_signal(self._stop_signal_at):
            self.force_exit = True
        if not self.should_exit:
            self._stop_signal_at = time.monotonic()
        self.should_exit = True


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
