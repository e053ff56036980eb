"""Metrics inside one server process: the recorder, the loop lag probe, and where figures go.

A server alone (or under --reload) serves its own metrics socket, in its own
event loop.  A worker under --workers serves none: it writes its snapshot to
the directory its supervisor made (`config.metrics_dir`), and the supervisor
serves the sum (see `supervisor.py`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from squall.metrics.recorder import Recorder, Snapshot, take_snapshot
from squall.metrics.shared import write_snapshot

if TYPE_CHECKING:
    from squall.metrics.endpoint import MetricsEndpoint
    from squall.server import Server

logger = logging.getLogger("squall.error")

# How often the loop lag is measured, and a worker's figures written out
# (so a scrape under --workers is at most this much behind).
PROBE_SECONDS = 0.25


class LoopLagProbe:
    """A timer that re-arms itself and records how late it fires: the event loop's lag."""

    def __init__(self, recorder: Recorder, on_tick: Callable[[], None] | None = None) -> None:
        self.recorder = recorder
        self.on_tick = on_tick
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._arm()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self) -> None:
        assert self._loop is not None
        self._due = self._loop.time() + PROBE_SECONDS
        self._handle = self._loop.call_at(self._due, self._fire)

    def _fire(self) -> None:
        assert self._loop is not None
        self.recorder.loop_lag = max(0.0, self._loop.time() - self._due)
        if self.on_tick is not None:
            self.on_tick()
        self._arm()


class ServerMetrics:
    """What `Server` starts when metrics are on; it sets `server_state.metrics`."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.recorder = Recorder()
        server.server_state.metrics = self.recorder
        config = server.config
        self.directory: str | None = config.metrics_dir
        self.probe = LoopLagProbe(self.recorder, self._export if self.directory else None)
        self._endpoint: MetricsEndpoint | None = None
        # Warned that figures could not be written: once, not four times a second.
        self._export_failed = False

    def snapshot(self) -> Snapshot:
        return take_snapshot(self.recorder, self.server.server_state)

    def ready(self) -> bool:
        server = self.server
        return server.started and not server.should_exit and not server.server_state.draining

    async def start(self) -> bool:
        """Start measuring, and serve the metrics socket unless a supervisor does; False if it cannot be bound."""
        if self.directory is None:
            from squall.metrics.collector import make_registry
            from squall.metrics.endpoint import MetricsEndpoint, bind_metrics_socket, metrics_url

            config = self.server.config
            try:
                sock = bind_metrics_socket(config.metrics_host, config.metrics_port)
            except OSError as exc:
                logger.error("Could not listen for metrics on %s:%s: %s", config.metrics_host, config.metrics_port, exc.strerror or exc)
                return False
            self._endpoint = MetricsEndpoint(make_registry(self.snapshot), self.ready)
            await self._endpoint.start(sock)
            logger.info("Metrics on %s (and /healthz, /readyz)", metrics_url(sock))
        self.probe.start()
        return True

    async def stop(self) -> None:
        self.probe.stop()
        if self._endpoint is not None:
            await self._endpoint.stop()
        if self.directory is not None:
            self._export()

    def _export(self) -> None:
        """Write this worker's figures for the supervisor (a few hundred bytes, four times a second)."""
        assert self.directory is not None
        try:
            write_snapshot(self.directory, os.getpid(), self.snapshot())
        except OSError as exc:
            if not self._export_failed:
                self._export_failed = True
                logger.warning("Could not write metrics for the supervisor: %s", exc)
