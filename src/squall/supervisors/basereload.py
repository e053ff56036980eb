"""`--reload`: serve from a child process, and start a fresh one when watched files change.

The listening socket stays bound here the whole time, so during a restart
connections wait in its queue instead of being refused.  A new process
that fails to start (a syntax error, an import error) has already said why
in the log; the reloader keeps watching and tries again on the next change.

Subclasses only say how to notice changes: `watch()`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Iterator, Sequence
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from threading import Event

from squall.config import Config
from squall.logging import style_pid
from squall.supervisors.filefilter import FileFilter
from squall.supervisors.process import describe_exit, log_listening, start_server_process
from squall.supervisors.signals import SignalQueue

logger = logging.getLogger("squall.error")

# How long a restart lets the old process finish when --timeout-graceful-shutdown
# is not set.  In development a request that never ends (a streaming
# response, an open WebSocket) must not hold up seeing the new code.
RESTART_GRACE = 5.0
# Beyond --timeout-graceful-shutdown, time for the old process's lifespan shutdown.
KILL_MARGIN = 5.0


class BaseReload:
    """Run the server in a fresh process, restarted whenever `watch()` reports changes."""

    #: Shown in the startup log: how changes are noticed.
    backend = "?"

    def __init__(self, config: Config, sockets: Sequence[socket.socket]) -> None:
        self.config = config
        self.sockets = list(sockets)
        self.file_filter = FileFilter(config.reload_dirs, config.reload_includes, config.reload_excludes)
        self.process: BaseProcess | None = None
        self._exit_reported = False
        self._stopping = False
        self._signals = SignalQueue((signal.SIGINT, signal.SIGTERM))

    def watch(self, stop: Event) -> Iterator[list[Path]]:
        """Yield the files changed since the last yield, or [] at least every second,
        until `stop` is set."""
        raise NotImplementedError

    def run(self) -> int:
        with self._signals as signals:
            logger.info("Will watch for changes in these directories: %s", [str(d) for d in self.config.reload_dirs])
            log_listening(self.sockets, self.config.is_ssl)
            started = "Started reloader process [%d] using %s"
            logger.info(started, os.getpid(), self.backend, extra={"color_message": style_pid(started)})
            self._start()
            for changed in self.watch(signals.arrived):
                if self._stop_requested():
                    break
                if changed:
                    names = ", ".join(repr(self._display(path)) for path in changed)
                    logger.warning("%s detected changes in %s. Reloading...", self.backend, names)
                    self._stop_process(restarting=True)
                    if self._stop_requested():
                        break
                    self._start()
                else:
                    self._report_exit()
            self._stop_process(restarting=False)
        logger.info("Stopping reloader process [%d]", os.getpid(), extra={"color_message": style_pid("Stopping reloader process [%d]")})
        return 0

    def _stop_requested(self) -> bool:
        # SIGINT and SIGTERM are the only signals caught: any of them means stop.
        if self._signals.arrived.is_set() and self._signals.drain():
            self._stopping = True
        return self._stopping

    def _start(self) -> None:
        self.process = start_server_process(self.config, self.sockets)
        self._exit_reported = False

    def _report_exit(self) -> None:
        """Say once that the server process has gone, and that a save will bring it back."""
        process = self.process
        if process is None or self._exit_reported or process.is_alive():
            return
        self._exit_reported = True
        logger.error(
            "Server process [%d] %s; waiting for a change to a watched file to start it again.",
            process.pid, describe_exit(process.exitcode),
        )

    def _stop_process(self, restarting: bool) -> None:
        """SIGTERM the server process and wait until it has gone.

        With --timeout-graceful-shutdown the server cancels what is still
        running at that timeout, and is killed KILL_MARGIN later if it has not
        exited.  Without it, a restart kills it after RESTART_GRACE, and the
        final stop waits as long as the server takes; a further Ctrl+C is
        passed on, which makes the server quit at once.
        """
        process = self.process
        if process is None:
            return
        self.process = None
        if process.is_alive():
            graceful = self.config.timeout_graceful_shutdown
            grace: float | None = graceful + KILL_MARGIN if graceful is not None else None
            if restarting and grace is None:
                grace = RESTART_GRACE
            os.kill(process.pid, signal.SIGTERM)  # type: ignore[arg-type]
            self._wait_for_exit(process, grace)
        process.join()
        process.close()

    def _wait_for_exit(self, process: BaseProcess, grace: float | None) -> None:
        signal_fd = self._signals.fileno()
        deadline = None if grace is None else time.monotonic() + grace
        while process.is_alive():
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = wait([process.sentinel, signal_fd], timeout=timeout)
            if not ready:
                logger.warning("Server process [%d] did not stop in time; killing it.", process.pid)
                process.kill()
                return
            if signal_fd in ready:
                received = self._signals.drain()
                if received and self._stopping and signal.SIGINT in received:
                    os.kill(process.pid, signal.SIGINT)  # type: ignore[arg-type]
                self._stopping = self._stopping or bool(received)

    @staticmethod
    def _display(path: Path) -> str:
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)
