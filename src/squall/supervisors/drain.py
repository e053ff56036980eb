"""Handing over to another process without failing a request: draining.

A plain graceful shutdown closes idle keep-alive connections at once.  A
client may be sending its next request on one at that very moment, and gets
a reset instead of a response: acceptable when the whole service stops, but
a failed request in what should be an invisible restart.  So a server being
replaced first *drains*:

- it stops accepting (the listening socket stays open in the supervisor or
  the Gunicorn arbiter, so new connections queue for the other workers
  rather than being refused);
- every response from then on carries `Connection: close`, so a keep-alive
  client moves to another worker between two requests, never during one;
- a connection accepted whose first request is not read yet reads it, and
  is answered the same way;
- a client that sends nothing more is closed by the usual keep-alive
  timeout, a race every keep-alive client already has to handle.

Then the server shuts down as usual.
"""

from __future__ import annotations

import asyncio

from squall.config import Config
from squall.server import Server

# How often the drain checks whether every connection has gone.
POLL_SECONDS = 0.05
# Beyond --timeout-keep-alive: the server sweeps idle connections twice a second.
SLACK_SECONDS = 1.0


def drain_limit(config: Config) -> float:
    """How long a drain may take: every idle connection has timed out by then."""
    return config.timeout_keep_alive + SLACK_SECONDS


class DrainableServer(Server):
    """A `Server` that can `drain()` before it shuts down."""

    async def drain(self, limit: float | None = None) -> None:
        """Stop accepting, and wait for the connections to end between requests.

        Waits at most `limit` seconds, by default `drain_limit(config)`.
        """
        self.server_state.draining = True
        for listener in self.servers:
            listener.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (drain_limit(self.config) if limit is None else limit)
        while self.server_state.connections and not self.should_exit and loop.time() < deadline:
            await asyncio.sleep(POLL_SECONDS)
