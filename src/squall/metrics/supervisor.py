"""Metrics under --workers: the supervisor serves the sum over its workers.

The supervisor makes a temporary directory and hands it to its workers
(`config.metrics_dir`); each writes its figures there (see `shared.py`).
The metrics socket is the supervisor's, served from a thread of its own
running an event loop (the supervisor's main loop is a plain selector
loop), so it answers even while every worker is busy or restarting.
`/readyz` is 200 while at least one worker serves and no stop was asked for.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
from typing import TYPE_CHECKING

from squall.metrics.collector import make_registry
from squall.metrics.endpoint import MetricsEndpoint, bind_metrics_socket, metrics_url
from squall.metrics.recorder import RESTART_CAUSES, Snapshot
from squall.metrics.shared import SharedFigures

if TYPE_CHECKING:
    from squall.supervisors.multiprocess import Multiprocess

logger = logging.getLogger("squall.error")

STOP_TIMEOUT = 5.0


class SupervisorMetrics:
    def __init__(self, supervisor: Multiprocess) -> None:
        self.supervisor = supervisor
        self.directory = tempfile.mkdtemp(prefix="squall-metrics-")
        supervisor.config.metrics_dir = self.directory  # the workers get the config, and write there
        self.shared = SharedFigures(self.directory)
        self.endpoint = MetricsEndpoint(make_registry(self.snapshot, supervised=True), self.ready)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def snapshot(self) -> Snapshot:
        total = self.shared.total()
        total.restarts = {**dict.fromkeys(RESTART_CAUSES, 0), **self.supervisor.restarts}
        return total

    def ready(self) -> bool:
        supervisor = self.supervisor
        if supervisor.stopping:
            return False
        return any(worker.ready and not worker.stopping for worker in list(supervisor.slots.values()))

    def start(self) -> bool:
        """Bind and serve the metrics socket; False (logged) if it cannot be bound."""
        config = self.supervisor.config
        try:
            sock = bind_metrics_socket(config.metrics_host, config.metrics_port)
        except OSError as exc:
            logger.error("Could not listen for metrics on %s:%s: %s", config.metrics_host, config.metrics_port, exc.strerror or exc)
            self.close()
            return False
        loop = self._loop = asyncio.new_event_loop()
        loop.run_until_complete(self.endpoint.start(sock))
        self._thread = threading.Thread(target=loop.run_forever, name="squall-metrics", daemon=True)
        self._thread.start()
        logger.info("Metrics on %s (and /healthz, /readyz), summed over the workers", metrics_url(sock))
        return True

    def worker_exited(self, pid: int) -> None:
        self.shared.worker_exited(pid)

    def close(self) -> None:
        """Stop serving, and remove the workers' directory."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(STOP_TIMEOUT)
            if not thread.is_alive():
                loop.run_until_complete(self.endpoint.stop())
                loop.close()
        self._loop = self._thread = None
        shutil.rmtree(self.directory, ignore_errors=True)
