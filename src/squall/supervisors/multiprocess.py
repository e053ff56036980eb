"""`--workers N`: a supervisor that keeps N server processes serving.

All workers accept from the one listening socket this process bound.  A
shared socket hands each new connection to whichever worker is free to
accept it, keeps queueing connections while workers come and go, and works
the same for TCP, --uds and --fd; docs/deployment.md has the measurements
against one SO_REUSEPORT socket per worker.

Each worker occupies a numbered slot (1..N).  A slot's worker can have a
*successor*: a new process started to take its place (rolling restart, or
its request limit reached).  The old worker keeps serving until the
successor reports ready, and only then is retired: it drains its
connections (squall.supervisors.drain) and exits.  Capacity never drops,
and no request fails.

Signals: SIGINT/SIGTERM stop every worker gracefully (a second SIGINT makes
them quit at once); SIGHUP restarts the workers one slot at a time, with the
app imported anew; SIGTTIN/SIGTTOU add/remove a worker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import time
from collections import Counter, deque
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from squall.config import STARTUP_FAILURE, Config
from squall.logging import style_pid
from squall.supervisors.channel import DRAINING, PING, PONG, READY, RETIRE, channel_pair, receive, send
from squall.server import is_duplicate_signal
from squall.sockets import refuse_new_connections
from squall.supervisors.drain import drain_limit
from squall.supervisors.process import describe_exit, log_listening, start_server_process
from squall.supervisors.signals import SignalQueue

if TYPE_CHECKING:
    from squall.metrics.supervisor import SupervisorMetrics

logger = logging.getLogger("squall.error")

# SIGHUP, SIGTTIN and SIGTTOU are POSIX-only.
HANDLED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGTTIN", "SIGTTOU") if hasattr(signal, name)
)
# Pings go out at most this often; with a shorter --timeout-worker-healthcheck
# they go out every timeout, so a stuck worker is found within about twice it.
MAX_PING_INTERVAL = 5.0
# A stopping worker cancels its own requests at --timeout-graceful-shutdown;
# this leaves it time for the lifespan shutdown before it is killed.
KILL_MARGIN = 5.0
# A worker that dies before it is ready is retried after this delay, doubled
# on each further failure: a broken deploy must not become a spawn loop.
RESPAWN_DELAY_FIRST = 0.5
RESPAWN_DELAY_MAX = 30.0
# The supervisor wakes at least this often even with nothing to do.
IDLE_WAKEUP = 1.0


class Worker:
    """One worker process, and what the supervisor knows about it."""

    def __init__(self, slot: int, process: BaseProcess, channel: socket.socket) -> None:
        self.slot = slot
        self.process = process
        self.channel = channel
        self.pid: int = process.pid  # type: ignore[assignment]
        self.ready = False
        self.draining = False  # asked to be replaced (request limit reached)
        self.stopping = False  # retired or sent SIGTERM: on its way out
        self.terminated = False  # sent SIGTERM
        self.unhealthy = False  # killed by the health check
        self.successor: Worker | None = None
        self.predecessor: Worker | None = None
        self.ping_sent_at: float | None = None
        self.next_ping_at = 0.0
        self.kill_at: float | None = None

    def signal(self, sig: int) -> None:
        # A worker that has already exited is reported by its sentinel.
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def stop(self, kill_after: float | None) -> None:
        """Ask for a graceful exit (SIGTERM); kill it if still running `kill_after` seconds from now.

        A retiring worker gets SIGTERM too: it ends its drain and shuts down at once.
        """
        if self.terminated:
            return
        self.terminated = self.stopping = True
        self.signal(signal.SIGTERM)
        self._kill_in(kill_after)

    def retire(self, kill_after: float | None) -> None:
        """Ask a serving worker to drain, then exit (see squall.supervisors.drain).

        A worker not serving yet has no connections to drain: it just stops.
        """
        if self.stopping:
            return
        if not self.ready or not send(self.channel, RETIRE):
            self.stop(kill_after)
            return
        self.stopping = True
        self._kill_in(kill_after)

    def _kill_in(self, seconds: float | None) -> None:
        if seconds is not None:
            deadline = time.monotonic() + seconds
            self.kill_at = deadline if self.kill_at is None else min(self.kill_at, deadline)


class Multiprocess:
    """Run `config.workers` server processes on `sockets` until told to stop.

    `run()` returns the exit status: 0 after a requested stop, else the
    status of a worker that could not start when none ever had.
    """

    def __init__(self, config: Config, sockets: Sequence[socket.socket]) -> None:
        self.config = config
        self.sockets = list(sockets)
        self.target = config.workers
        self.slots: dict[int, Worker] = {}  # slot -> the worker serving it, or starting to
        self.processes: set[Worker] = set()  # every live process, successors and leavers too
        self.selector = selectors.DefaultSelector()
        self.stopping = False
        self._stop_signal_at = 0.0  # when the signal that stopped us arrived
        self.ever_ready = False
        self.exit_status = 0
        self.respawn_at: dict[int, float] = {}
        self.respawn_delay: dict[int, float] = {}
        self.rolling = False  # a SIGHUP restart is under way
        self.restart_queue: deque[int] = deque()  # slots it has still to restart
        self.restarting: Worker | None = None  # the successor it waits for
        # Workers replaced, by cause (for squall_worker_restarts_total).
        self.restarts: Counter[str] = Counter()
        self.metrics: SupervisorMetrics | None = None

        timeout = config.timeout_worker_healthcheck
        self.healthcheck_timeout = float(timeout) if timeout and timeout > 0 else None
        self.ping_interval = min(MAX_PING_INTERVAL, self.healthcheck_timeout or MAX_PING_INTERVAL)
        graceful = config.timeout_graceful_shutdown
        self.kill_after = graceful + KILL_MARGIN if graceful is not None else None
        self.retire_kill_after = self.kill_after + drain_limit(config) if self.kill_after is not None else None

    # -- the loop ------------------------------------------------------------

    def run(self) -> int:
        if self.config.metrics_port is not None:
            from squall.metrics.supervisor import SupervisorMetrics

            self.metrics = SupervisorMetrics(self)
            if not self.metrics.start():
                return STARTUP_FAILURE
        try:
            return self._run()
        finally:
            if self.metrics is not None:
                self.metrics.close()

    def _run(self) -> int:
        with SignalQueue(HANDLED_SIGNALS) as signals:
            self.selector.register(signals, selectors.EVENT_READ, None)
            logger.info("Started parent process [%d]", os.getpid(), extra={"color_message": style_pid("Started parent process [%d]")})
            log_listening(self.sockets, self.config.is_ssl)
            for slot in range(1, self.target + 1):
                worker = self._spawn(slot)
                logger.info("Started worker %d [%d]", slot, worker.pid)

            while self.processes or not self.stopping:
                for key, _ in self.selector.select(self._seconds_to_next_timer()):
                    if key.data is not None:
                        handler, worker = key.data
                        # An exit handled earlier in this batch may have reaped it.
                        if worker in self.processes:
                            handler(worker)
                for sig in signals.drain():
                    self._on_signal(sig)
                self._on_timers()
        self.selector.close()
        logger.info("Stopping parent process [%d]", os.getpid(), extra={"color_message": style_pid("Stopping parent process [%d]")})
        return self.exit_status

    def _seconds_to_next_timer(self) -> float:
        deadlines = list(self.respawn_at.values())
        for worker in self.processes:
            if worker.kill_at is not None:
                deadlines.append(worker.kill_at)
            if self.healthcheck_timeout is not None and worker.ready and not worker.stopping:
                if worker.ping_sent_at is not None:
                    deadlines.append(worker.ping_sent_at + self.healthcheck_timeout)
                else:
                    deadlines.append(worker.next_ping_at)
        wait = min(deadlines, default=time.monotonic() + IDLE_WAKEUP) - time.monotonic()
        return min(max(wait, 0.0), IDLE_WAKEUP)

    # -- processes -----------------------------------------------------------

    def _spawn(self, slot: int, predecessor: Worker | None = None, cause: str | None = None) -> Worker:
        """Start a worker for `slot`; `cause` says why, when it replaces another."""
        if cause is not None:
            self.restarts[cause] += 1
        supervisor_end, worker_end = channel_pair()
        process = start_server_process(self.config, self.sockets, worker_end)
        worker_end.close()  # the child has its own copy now
        worker = Worker(slot, process, supervisor_end)
        self.selector.register(process.sentinel, selectors.EVENT_READ, (self._on_exit, worker))
        self.selector.register(supervisor_end, selectors.EVENT_READ, (self._on_messages, worker))
        self.processes.add(worker)
        if predecessor is not None:
            predecessor.successor = worker
            worker.predecessor = predecessor
        else:
            self.slots[slot] = worker
        return worker

    def _forget(self, worker: Worker) -> int | None:
        """Reap an exited worker and release what it held; return its exit code."""
        self.selector.unregister(worker.process.sentinel)
        if worker.channel.fileno() != -1:
            self._close_channel(worker)
        worker.process.join()
        exitcode = worker.process.exitcode
        worker.process.close()
        self.processes.discard(worker)
        if self.metrics is not None:
            self.metrics.worker_exited(worker.pid)
        return exitcode

    def _close_channel(self, worker: Worker) -> None:
        self.selector.unregister(worker.channel)
        worker.channel.close()

    def _on_messages(self, worker: Worker) -> None:
        data = receive(worker.channel)
        if data is None:
            # The worker is exiting; its sentinel reports how.
            self._close_channel(worker)
            return
        if PONG in data:
            worker.ping_sent_at = None
            worker.next_ping_at = time.monotonic() + self.ping_interval
        if READY in data:
            self._on_ready(worker)
        if DRAINING in data:
            self._on_draining(worker)

    def _on_ready(self, worker: Worker) -> None:
        worker.ready = True
        worker.next_ping_at = time.monotonic() + self.ping_interval
        self.ever_ready = True
        self.respawn_delay.pop(worker.slot, None)
        old = worker.predecessor
        if old is None:
            logger.info("Worker %d [%d] is serving", worker.slot, worker.pid)
        elif not self.stopping and not worker.stopping:
            # The successor is accepting: only now does the old worker leave.
            worker.predecessor = None
            old.successor = None
            self.slots[worker.slot] = worker
            logger.info("Worker %d: [%d] is serving; retiring [%d]", worker.slot, worker.pid, old.pid)
            old.retire(self.retire_kill_after)
        if worker is self.restarting:
            self.restarting = None
        if self.rolling:
            self._continue_restart()

    def _on_draining(self, worker: Worker) -> None:
        if self.stopping or worker.stopping or self.slots.get(worker.slot) is not worker:
            return
        worker.draining = True
        if worker.successor is None:
            successor = self._spawn(worker.slot, predecessor=worker, cause="max_requests")
            logger.info(
                "Worker %d [%d] reached its request limit; starting [%d] to take over",
                worker.slot, worker.pid, successor.pid,
            )

    def _on_exit(self, worker: Worker) -> None:
        exitcode = self._forget(worker)
        slot, pid, how = worker.slot, worker.pid, describe_exit(exitcode)
        if self.stopping or worker.stopping:
            logger.info("Worker %d [%d] %s", slot, pid, how)
            return

        old = worker.predecessor
        if old is not None:
            # A successor that never became ready: the old worker keeps serving.
            old.successor = None
            logger.error(
                "Worker %d: the new process [%d] %s before serving; [%d] keeps serving", slot, pid, how, old.pid
            )
            if worker is self.restarting:
                self.restarting = None
                self.restart_queue.clear()
                self.rolling = False
                logger.error("Rolling restart abandoned: the other workers keep running the code they loaded.")
            if old.draining:
                self._schedule_respawn(slot)
            return

        if self.slots.get(slot) is not worker:
            return
        successor = worker.successor
        if successor is not None:
            # Its replacement was already on the way: it takes the slot over.
            successor.predecessor = None
            self.slots[slot] = successor
            logger.warning("Worker %d [%d] %s; [%d] takes its place", slot, pid, how, successor.pid)
            if self.rolling:
                self._continue_restart()
            return

        del self.slots[slot]
        if worker.ready:
            if worker.unhealthy:
                cause = "healthcheck"
            else:
                cause = "killed" if exitcode is not None and exitcode < 0 else "exited"
            replacement = self._spawn(slot, cause=cause)
            logger.error("Worker %d [%d] %s; replaced by [%d]", slot, pid, how, replacement.pid)
        elif not self.ever_ready:
            # Nothing has ever served: the app cannot start (its error is in the log above).
            logger.error("Worker %d [%d] %s before serving; stopping.", slot, pid, how)
            self.exit_status = exitcode if exitcode is not None and exitcode > 0 else STARTUP_FAILURE
            self._stop_all()
        else:
            delay = self._schedule_respawn(slot)
            logger.error("Worker %d [%d] %s before serving; trying again in %.1fs", slot, pid, how, delay)

    def _schedule_respawn(self, slot: int) -> float:
        delay = self.respawn_delay.get(slot, RESPAWN_DELAY_FIRST / 2) * 2
        delay = min(delay, RESPAWN_DELAY_MAX)
        self.respawn_delay[slot] = delay
        self.respawn_at[slot] = time.monotonic() + delay
        return delay

    def _respawn(self, slot: int) -> None:
        current = self.slots.get(slot)
        if current is None:
            worker = self._spawn(slot, cause="failed_start")
            logger.info("Started worker %d [%d]", slot, worker.pid)
        elif current.draining and current.successor is None and not current.stopping:
            successor = self._spawn(slot, predecessor=current, cause="max_requests")
            logger.info("Worker %d: starting [%d] to take over from [%d]", slot, successor.pid, current.pid)

    # -- timers --------------------------------------------------------------

    def _on_timers(self) -> None:
        now = time.monotonic()
        for slot, at in list(self.respawn_at.items()):
            if at <= now:
                del self.respawn_at[slot]
                if not self.stopping:
                    self._respawn(slot)

        for worker in list(self.processes):
            if worker.kill_at is not None and now >= worker.kill_at:
                worker.kill_at = None
                logger.error("Worker %d [%d] did not stop in time; killing it", worker.slot, worker.pid)
                worker.signal(signal.SIGKILL)

        if self.healthcheck_timeout is None or self.stopping:
            return
        for worker in list(self.slots.values()):
            if not worker.ready or worker.stopping or worker.unhealthy:
                continue
            if worker.ping_sent_at is not None:
                if now - worker.ping_sent_at > self.healthcheck_timeout:
                    worker.unhealthy = True
                    logger.error(
                        "Worker %d [%d] did not answer the health check within %gs "
                        "(is its event loop blocked?); killing it",
                        worker.slot, worker.pid, self.healthcheck_timeout,
                    )
                    worker.signal(signal.SIGKILL)
            elif now >= worker.next_ping_at:
                worker.ping_sent_at = now
                send(worker.channel, PING)

    # -- signals -------------------------------------------------------------

    def _on_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if sig in (signal.SIGINT, signal.SIGTERM):
            if not self.stopping:
                logger.info("Received %s: stopping %d worker(s) gracefully", name, len(self.slots))
                self._stop_signal_at = time.monotonic()
                self._stop_all()
            elif sig == signal.SIGINT and not is_duplicate_signal(self._stop_signal_at):
                # A second Ctrl+C: the servers' own meaning is "quit now".
                logger.warning("Received SIGINT again: telling workers to quit now")
                for worker in self.processes:
                    worker.signal(signal.SIGINT)
        elif self.stopping:
            return
        elif sig == signal.SIGHUP:
            logger.info("Received SIGHUP: restarting %d worker(s) one at a time", len(self.slots))
            self.rolling = True
            self.restart_queue = deque(sorted(self.slots))
            self._continue_restart()
        elif sig == signal.SIGTTIN:
            self.target += 1
            slot = max([*self.slots, *self.respawn_at, 0]) + 1
            worker = self._spawn(slot)
            logger.info(
                "Received SIGTTIN: started worker %d [%d]; %d worker(s) now", slot, worker.pid, self.target
            )
        elif sig == signal.SIGTTOU:
            if self.target <= 1:
                logger.warning("Received SIGTTOU, but one worker is the minimum: keeping it")
                return
            self._remove_slot(max([*self.slots, *self.respawn_at], default=self.target))
            self.target -= 1
            logger.info("Received SIGTTOU: %d worker(s) now", self.target)

    def _remove_slot(self, slot: int) -> None:
        self.respawn_at.pop(slot, None)
        if slot in self.restart_queue:
            self.restart_queue.remove(slot)
        worker = self.slots.pop(slot, None)
        if worker is None:
            return
        logger.info("Retiring worker %d [%d]", slot, worker.pid)
        worker.retire(self.retire_kill_after)
        if worker.successor is not None:
            worker.successor.stop(self.kill_after)
        if worker.successor is not None and worker.successor is self.restarting:
            self.restarting = None
        if self.rolling:
            self._continue_restart()

    def _continue_restart(self) -> None:
        """Start the successor for the next slot of a rolling restart, unless one is starting."""
        for _ in range(len(self.restart_queue)):
            if self.restarting is not None:
                return
            slot = self.restart_queue.popleft()
            worker = self.slots.get(slot)
            if worker is None or worker.stopping:
                continue
            if worker.successor is not None:
                # A replacement started before SIGHUP may have loaded the old
                # code: let it take over, then restart the slot once more.
                self.restart_queue.append(slot)
                continue
            self.restarting = self._spawn(slot, predecessor=worker, cause="reload")
            logger.info("Worker %d: starting [%d] to replace [%d]", slot, self.restarting.pid, worker.pid)
        if not self.restart_queue and self.restarting is None:
            self.rolling = False
            logger.info("Rolling restart complete")

    def _stop_all(self) -> None:
        # Stop accepting first, everywhere at once: the workers close their
        # copies of the listening socket as they stop, and so does this
        # process.  Were it to keep its copy, the kernel would go on queueing
        # connections that no one accepts, and reset them all on exit.  New
        # connection attempts are ignored from now on (they find the port
        # closed when retried), so that the last worker to stop leaves no
        # connection queued (see refuse_new_connections).
        for sock in self.sockets:
            if self.config.fd is None:
                refuse_new_connections(sock)
            sock.close()
        self.stopping = True
        self.rolling = False
        self.restart_queue.clear()
        self.restarting = None
        self.respawn_at.clear()
        for worker in self.processes:
            worker.stop(self.kill_after)
