"""The ASGI lifespan protocol: startup before serving, shutdown after.

`LifespanOn` runs the app's lifespan task for the server's whole life.  With
`--lifespan auto` an app that raises before it first calls `receive`, or
returns without answering the startup event, is taken not to support
lifespan, and the server carries on without it; with `on` the same is an
error.  "Application startup complete." is said only when the app said so.

Both phases are bounded: an app that has not answered startup within
`--timeout-lifespan-startup` seconds fails the startup (the server exits
without serving), one that has not answered shutdown within
`--timeout-lifespan-shutdown` is left behind with a warning.  Either way its
lifespan task is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from squall.config import Config

if TYPE_CHECKING:
    from squall.server import ServerState

logger = logging.getLogger("squall.error")

STARTUP_FAILED = "Application startup failed. Exiting."
# How long a lifespan task cancelled after a timeout gets to finish.
CANCEL_WAIT_SECONDS = 1.0


class LifespanOff:
    def __init__(self, config: Config, server_state: ServerState | None = None) -> None:
        self.should_exit = False
        self.state: dict[str, Any] = {}

    async def startup(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass


class LifespanOn:
    def __init__(self, config: Config, server_state: ServerState | None = None) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.server_state = server_state
        self.state: dict[str, Any] = {}
        self.should_exit = False

        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._startup_done = asyncio.Event()
        self._shutdown_done = asyncio.Event()
        self._startup_complete = False
        self._startup_failed = False
        self._shutdown_failed = False
        self._finished = False
        self._error_occurred = False
        self._called_receive = False
        # The app's task was cancelled because a phase took too long.
        self._timed_out = False
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        logger.info("Waiting for application startup.")
        self._task = asyncio.get_running_loop().create_task(self._main())
        await self._events.put({"type": "lifespan.startup"})
        timeout = self.config.timeout_lifespan_startup
        if not await self._wait(self._startup_done, timeout, "timeout_lifespan_startup"):
            logger.error("Application startup did not complete within %ss (--timeout-lifespan-startup). Exiting.", timeout)
            self.should_exit = True
            return

        required = self.config.lifespan == "on"
        if self._startup_failed or (self._error_occurred and required):
            logger.error(STARTUP_FAILED)
            self.should_exit = True
        elif self._startup_complete:
            logger.info("Application startup complete.")
        elif not self._error_occurred:
            # The app returned without answering: it takes no part in the lifespan.
            if required:
                logger.error("The ASGI app returned without answering 'lifespan.startup'.")
                logger.error(STARTUP_FAILED)
                self.should_exit = True
            else:
                logger.info("ASGI 'lifespan' protocol appears unsupported.")

    async def shutdown(self) -> None:
        if self._error_occurred or self._finished:
            return  # nobody left to tell
        logger.info("Waiting for application shutdown.")
        await self._events.put({"type": "lifespan.shutdown"})
        timeout = self.config.timeout_lifespan_shutdown
        if not await self._wait(self._shutdown_done, timeout, "timeout_lifespan_shutdown"):
            logger.warning(
                "Application shutdown did not complete within %ss (--timeout-lifespan-shutdown); exiting anyway.", timeout
            )
            return

        if self._shutdown_failed or (self._error_occurred and self.config.lifespan == "on"):
            logger.error("Application shutdown failed. Exiting.")
            self.should_exit = True
        else:
            logger.info("Application shutdown complete.")

    async def _wait(self, done: asyncio.Event, timeout: float, counter: str) -> bool:
        """Wait for the app to answer a phase; past `timeout` seconds (0: none), cancel its task."""
        if not timeout:
            await done.wait()
            return True
        try:
            await asyncio.wait_for(done.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            pass
        if self.server_state is not None:
            self.server_state.count(counter)
        self._timed_out = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            # An app that swallows the cancellation is not waited for.
            await asyncio.wait({task}, timeout=CANCEL_WAIT_SECONDS)
        return False

    async def _main(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": self.config.asgi_version, "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.config.loaded_app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            # The server is going away without a lifespan shutdown (a forced
            # exit): expected, and already said in one line by the server.
            raise
        except BaseException as exc:
            self._error_occurred = True
            if self._startup_failed or self._shutdown_failed or self._timed_out:
                return
            if self.config.lifespan == "auto" and not self._called_receive:
                logger.info("ASGI 'lifespan' protocol appears unsupported.")
                logger.debug("The app raised this before receiving a lifespan event:", exc_info=exc)
            else:
                logger.error("Exception in 'lifespan' protocol", exc_info=exc)
        finally:
            self._finished = True
            # Whatever happened, nobody waits forever on an event the app never sent.
            self._startup_done.set()
            self._shutdown_done.set()

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            self._check_order(startup=True)
            self._startup_complete = True
            self._startup_done.set()
        elif kind == "lifespan.startup.failed":
            self._check_order(startup=True)
            self._startup_failed = True
            self._startup_done.set()
            if message.get("message"):
                logger.error(message["message"])
        elif kind == "lifespan.shutdown.complete":
            self._check_order(startup=False)
            self._shutdown_done.set()
        elif kind == "lifespan.shutdown.failed":
            self._check_order(startup=False)
            self._shutdown_failed = True
            self._shutdown_done.set()
            if message.get("message"):
                logger.error(message["message"])
        else:
            raise RuntimeError(f"Unexpected ASGI message type {kind!r} sent during lifespan.")

    def _check_order(self, startup: bool) -> None:
        if startup and self._startup_done.is_set():
            raise RuntimeError("The lifespan startup was already answered.")
        if not startup and (not self._startup_done.is_set() or self._shutdown_done.is_set()):
            raise RuntimeError("A lifespan shutdown message was sent before shutdown was asked for.")

    async def _receive(self) -> dict[str, Any]:
        self._called_receive = True
        return await self._events.get()
