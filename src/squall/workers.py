"""Gunicorn worker classes: Squall under Gunicorn's arbiter.

    gunicorn -k squall.workers.SquallWorker module:app
    gunicorn -k squall.workers.SquallH11Worker module:app   # pure Python: h11 + asyncio

Gunicorn binds the sockets, forks the workers, restarts them (SIGHUP,
max_requests, timeouts) and owns the logs; each worker runs one Squall
server on the sockets it inherited.  How Gunicorn's settings map onto
Squall's is in docs/deployment.md.  To change other Squall settings,
subclass and extend `CONFIG_KWARGS`:

    class MyWorker(SquallWorker):
        CONFIG_KWARGS = {**SquallWorker.CONFIG_KWARGS, "ws": "none"}
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, ClassVar

from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker

from squall.config import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE, Config, ConfigError
from squall.supervisors.drain import DrainableServer, drain_limit

__all__ = ["SquallH11Worker", "SquallWorker"]


class SquallWorker(Worker):  # type: ignore[misc]  # Gunicorn is untyped
    """Squall with its fastest stack available (uvloop and httptools when installed)."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {"loop": "auto", "http": "auto"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server: _ArbitratedServer | None = None
        self._notified_at = 0.0
        self.config = Config(app=None, **self._config_kwargs())

    def _config_kwargs(self) -> dict[str, Any]:
        cfg = self.cfg
        kwargs: dict[str, Any] = {
            "workers": 1,  # Gunicorn runs the processes
            "log_config": None,  # Gunicorn owns logging: see _use_gunicorn_logging
            "access_log": _access_log_enabled(self),
            "timeout_keep_alive": cfg.keepalive,
            "timeout_graceful_shutdown": cfg.graceful_timeout,
            "timeout_notify": 0,  # every tick of the server's main loop
            "callback_notify": self._on_tick,
            "limit_max_requests": self.max_requests if cfg.max_requests > 0 else None,  # jitter already added
            "backlog": cfg.backlog,
            "forwarded_allow_ips": cfg.forwarded_allow_ips,
            "h11_max_incomplete_event_size": _head_size_limit(cfg.limit_request_line, cfg.limit_request_field_size),
            # The same names and meanings as Gunicorn's (0: no limit of its own).
            "limit_request_line": max(cfg.limit_request_line, 0),
            "limit_request_fields": max(cfg.limit_request_fields, 0),
            "limit_request_field_size": max(cfg.limit_request_field_size, 0),
        }
        if cfg.is_ssl:
            kwargs.update(
                ssl_certfile=cfg.certfile,
                ssl_keyfile=cfg.keyfile,
                ssl_ca_certs=cfg.ca_certs,
                ssl_cert_reqs=cfg.cert_reqs,
                ssl_ciphers=cfg.ciphers,
            )
        kwargs.update(self.CONFIG_KWARGS)
        return kwargs

    async def _on_tick(self) -> None:
        if self.server is not None and not self.server.should_exit:
            if not self.alive:
                # Gunicorn's --reload watcher runs in a thread and can only
                # ask the worker to stop by clearing `alive`.
                self.server.should_exit = True
            elif os.getppid() != self.ppid:
                # The arbiter is gone (killed with SIGKILL?): nobody supervises
                # this worker any more, and it must not hold the port.
                self.log.warning("Gunicorn's arbiter [%s] is gone; shutting down.", self.ppid)
                self.server.should_exit = True
        # The arbiter passes half its --timeout as `timeout`, leaving room
        # for one late notification (0: the arbiter does not check).
        now = time.monotonic()
        if self.timeout and now - self._notified_at >= self.timeout:
            self._notified_at = now
            self.notify()

    # -- process setup (after the fork) ------------------------------------------

    def init_process(self) -> None:
        self._use_gunicorn_logging()
        super().init_process()  # loads the app, then calls run()

    def _use_gunicorn_logging(self) -> None:
        """Squall's loggers write through Gunicorn's handlers, at Gunicorn's level."""
        error = logging.getLogger("squall")
        error.handlers = list(self.log.error_log.handlers)
        error.setLevel(self.log.error_log.level)
        error.propagate = False
        access = logging.getLogger("squall.access")
        access.handlers = list(self.log.access_log.handlers) if _access_log_enabled(self) else []
        access.setLevel(logging.INFO)
        access.propagate = False

    def init_signals(self) -> None:
        # Until the server's event loop takes SIGINT and SIGTERM over, there
        # is nothing to drain or shut down: these just end the process.
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, self._on_exit_signal)
        signal.signal(signal.SIGINT, self._on_exit_signal)
        signal.signal(signal.SIGQUIT, self._on_exit_signal)
        signal.signal(signal.SIGUSR1, self.handle_usr1)  # reopen log files
        signal.signal(signal.SIGABRT, self.handle_abort)  # the arbiter's timeout
        signal.siginterrupt(signal.SIGUSR1, False)

    def _on_exit_signal(self, sig: int, frame: FrameType | None) -> None:
        if self.server is not None:
            self.server.handle_exit(sig, frame)
            return
        if sig != signal.SIGTERM:
            self._on_quit()
        sys.exit(0)

    def _on_quit(self) -> None:
        self.cfg.worker_int(self)  # Gunicorn's hook for SIGINT/SIGQUIT

    # -- serving -----------------------------------------------------------------

    def run(self) -> None:
        self.config.app = self.wsgi  # the app object Gunicorn imported
        self.server = _ArbitratedServer(self.config, on_quit=self._on_quit)
        try:
            self.server.run(sockets=[listener.sock for listener in self.sockets])
        except ConfigError as exc:
            self.log.error("%s", exc)
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
        if not self.server.started:
            # Gunicorn stops instead of restarting a worker that cannot boot.
            sys.exit(Arbiter.WORKER_BOOT_ERROR)


class SquallH11Worker(SquallWorker):
    """Squall on the pure-Python stack: h11 and the asyncio event loop."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {"loop": "asyncio", "http": "h11"}


class _ArbitratedServer(DrainableServer):
    """Gunicorn's signal meanings.

    SIGTERM is the arbiter's word both for "stop" and for "you are being
    replaced" (reload, scaling down), so the worker drains first: a reload
    then fails no request.  Drain and shutdown share --graceful-timeout,
    after which the arbiter kills the worker.  SIGINT and SIGQUIT mean quit
    now.
    """

    def __init__(self, config: Config, on_quit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_quit = on_quit
        self._draining: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig in (signal.SIGINT, signal.SIGQUIT):
            if not self.force_exit:  # once, though the signal is delivered again after the shutdown
                self._on_quit()
            self.should_exit = self.force_exit = True
        elif self._draining is None and not self.should_exit and self.started:
            self._draining = asyncio.get_running_loop().create_task(self._drain_then_exit())
        else:
            super().handle_exit(sig, frame)

    async def _drain_then_exit(self) -> None:
        budget = self.config.timeout_graceful_shutdown
        loop = asyncio.get_running_loop()
        began = loop.time()
        limit = drain_limit(self.config) if budget is None else min(drain_limit(self.config), budget / 2)
        await self.drain(limit)
        if budget is not None:
            self.config.timeout_graceful_shutdown = max(0.0, budget - (loop.time() - began))
        self.should_exit = True


def _head_size_limit(request_line: int, field_size: int) -> int:
    """The head size limit that leaves room for Gunicorn's per-line limits.

    Room for one request line and one header field at Gunicorn's limits,
    and never less than Squall's default.  Squall always bounds the head
    as a whole: with Gunicorn's 0 ("unlimited"), that bound is what remains.
    """
    return max(DEFAULT_MAX_INCOMPLETE_EVENT_SIZE, request_line + field_size)


def _access_log_enabled(worker: Worker) -> bool:
    # Gunicorn 23+ says so itself; before, an access log file had to be set.
    enabled = getattr(worker.log, "access_log_enabled", None)
    return bool(worker.cfg.accesslog) if enabled is None else bool(enabled)
