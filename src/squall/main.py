"""`squall.run`: the Python API behind the command line."""

from __future__ import annotations

import logging
import multiprocessing
import sys
from typing import Any

from squall.config import Config, ConfigError

logger = logging.getLogger("squall.error")

# Exit codes: a bad setting, and a server that could not start.
EXIT_CONFIG_ERROR = 1
EXIT_STARTUP_FAILURE = 3


def run(app: Any, **kwargs: Any) -> None:
    """Serve `app` (an ASGI app, or an import string like "main:app") until told to stop.

    Takes the command line's options as keyword arguments: `port=8000`,
    `workers=4`, `reload=True`, `log_level="debug"` ...
    """
    try:
        config = Config(app, **kwargs)
        if (config.reload or config.workers > 1) and not isinstance(app, str):
            raise ConfigError(
                "To use --reload or --workers, pass the app as an import string, like squall.run(\"main:app\", ...)."
            )
        _serve(config)
    except ConfigError as exc:
        _fail(exc, EXIT_CONFIG_ERROR)
    except KeyboardInterrupt:
        pass


def _serve(config: Config) -> None:
    from squall.server import Server

    if config.reload or config.workers > 1:
        # The supervisor binds the socket once and keeps it for its whole life;
        # each server process it spawns imports the app itself (see
        # squall.supervisors), so the app is never loaded in this process.
        from squall.supervisors import ChangeReload, Multiprocess

        # A spawned server process imports the script that started Squall
        # again; an unguarded squall.run() in it would land here.
        if getattr(multiprocessing.current_process(), "_inheriting", False):
            raise ConfigError(
                'Call squall.run() with reload or workers under `if __name__ == "__main__":`: '
                "each server process imports the main module again."
            )
        sockets = [config.bind_socket()]
        supervisor = ChangeReload(config, sockets) if config.reload else Multiprocess(config, sockets)
        status = supervisor.run()
        if status:
            sys.exit(status)
    else:
        server = Server(config)
        server.run()
        if not server.started:
            sys.exit(EXIT_STARTUP_FAILURE)


def _fail(exc: ConfigError, code: int) -> None:
    """One line for the user; the full traceback only when debugging."""
    cause = exc.__cause__
    if cause is not None and logger.isEnabledFor(logging.DEBUG):
        logger.error("%s", exc, exc_info=cause)
    else:
        logger.error("%s", exc)
    sys.exit(code)
