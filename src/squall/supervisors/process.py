"""What both supervisors do alike: start a server process, say where it
listens, and describe how a process ended."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
from collections.abc import Sequence
from multiprocessing.process import BaseProcess

import click

from squall.config import Config
from squall.sockets import describe_socket
from squall.supervisors.child import run_server_process

logger = logging.getLogger("squall.error")

# "spawn", never "fork": each server process is a fresh interpreter that
# imports the app itself, so a restart runs the code as it is on disk now,
# and no state (threads, locks, open connections) leaks from the supervisor.
_spawn = multiprocessing.get_context("spawn")


def start_server_process(
    config: Config, sockets: Sequence[socket.socket], channel: socket.socket | None = None
) -> BaseProcess:
    """Start a server process serving on `sockets` (passed down, never re-bound)."""
    process = _spawn.Process(target=run_server_process, args=(config, list(sockets), channel), name="squall-server")
    process.start()
    return process


def describe_exit(exitcode: int | None) -> str:
    """'exited with code 1' or 'was killed by SIGKILL', for the logs."""
    if exitcode is None:
        return "is still running"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name}"
    return f"exited with code {exitcode}"


def log_listening(sockets: Sequence[socket.socket], is_ssl: bool) -> None:
    """The "Squall running on ..." line, which the server itself leaves to a supervisor."""
    coloured = "Squall running on " + click.style("%s", bold=True) + " (Press CTRL+C to quit)"
    seen: list[str] = []
    for sock in sockets:
        where = describe_socket(sock, is_ssl)
        if where not in seen:
            seen.append(where)
            logger.info("Squall running on %s (Press CTRL+C to quit)", where, extra={"color_message": coloured})
