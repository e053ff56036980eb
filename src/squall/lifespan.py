"""The ASGI lifespan protocol: startup before serving, shutdown after.

`LifespanOn` runs the app's lifespan task for the server's whole life.  With
`--lifespan auto` an app that raises before it first calls `receive`, or
returns without answering the startup event, is taken not to support
lifespan, and the server carries on without it; with `on` the same is an
error.  "Application startup complete." is said only when the app said so.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from squall.config import Config

logger = logging.getLogger("squall.error")

STARTUP_FAILED = "Application startup failed. Exiting."


class LifespanOff:
    def __init__(self, config: Config) -> None:
        self.should_exit = False
        self.state: dict[str, Any] = {}

    async def startup(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass


class LifespanOn:
    def __init__(self, config: Config) -> None:
        if not config.loaded:
            config.load()
        self.config = config
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
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        logger.info("Waiting for application startup.")
        self._task = asyncio.get_running_loop().create_task(self._main())
        await self._events.put({"type": "lifespan.startup"})
        await self._startup_done.wait()

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
        await self._shutdown_done.wait()

        if self._shutdown_failed or (self._error_occurred and self.config.lifespan == "on"):
            logger.error("Application shutdown failed. Exiting.")
            self.should_exit = True
        else:
            logger.info("Application shutdown complete.")

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
            if self._startup_failed or self._shutdown_failed:
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
