"""The servers under test, and how each one's command line is built.

Every server is run as `python -m NAME` with the Python running the
benchmark, from bench/, serving app.py's `app`, on 127.0.0.1 and a free port.
A server gets its own documented options for what a scenario asks (logging
off, N workers, a longer keep-alive timeout) and its defaults for the rest,
except where noted below; nothing else is tuned.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from _harness import BENCH_DIR, HOST


@dataclass(frozen=True)
class Launch:
    """What a scenario asks of a server's command line."""

    port: int
    quiet: bool = True  # access log off, warnings only; False: the server's defaults
    workers: int | None = None  # None: the server's default (one worker)
    keep_alive: int | None = None  # idle keep-alive timeout in seconds, if not default


@dataclass(frozen=True)
class ServerSpec:
    name: str  # short label in tables and on the command line (--servers)
    title: str  # what the page calls it
    package: str  # distribution whose version the page reports
    build: Callable[[Launch], list[str]]
    workers: bool = True  # has a --workers option
    keep_alive: bool = False  # has an idle keep-alive timeout option
    env: tuple[tuple[str, str], ...] = ()  # added to the server's environment

    def command(self, launch: Launch) -> list[str]:
        if launch.workers is not None and not self.workers:
            raise ValueError(f"{self.name} has no workers option")
        if launch.keep_alive is not None and not self.keep_alive:
            raise ValueError(f"{self.name} has no keep-alive timeout option")
        return self.build(launch)


def _uvicorn_like(module: str, http: str, loop: str) -> Callable[[Launch], list[str]]:
    """Squall takes Uvicorn's command line, so both are built the same way."""

    def build(launch: Launch) -> list[str]:
        command = [
            sys.executable, "-m", module, "app:app", "--app-dir", str(BENCH_DIR),
            "--host", HOST, "--port", str(launch.port), "--http", http, "--loop", loop,
        ]  # fmt: skip
        if launch.quiet:
            command += ["--no-access-log", "--log-level", "warning"]
        if launch.workers is not None:
            command += ["--workers", str(launch.workers)]
        if launch.keep_alive is not None:
            command += ["--timeout-keep-alive", str(launch.keep_alive)]
        return command

    return build


def _granian(launch: Launch) -> list[str]:
    # --http auto (its default, written out) serves HTTP/1.1 and h2c on one port.
    command = [
        sys.executable, "-m", "granian", "--interface", "asgi", "--http", "auto",
        "--host", HOST, "--port", str(launch.port),
    ]  # fmt: skip
    if launch.quiet:
        command += ["--no-access-log", "--log-level", "warning"]
    if launch.workers is not None:
        command += ["--workers", str(launch.workers)]
    return [*command, "app:app"]


def _h2corn(launch: Launch) -> list[str]:
    command = [
        sys.executable, "-m", "h2corn", "app:app", "--app-dir", str(BENCH_DIR),
        "--bind", f"{HOST}:{launch.port}",
    ]  # fmt: skip
    if launch.quiet:
        command += ["--no-access-log"]  # it has no log level option
    if launch.workers is not None:
        command += ["--workers", str(launch.workers)]
    return command


def _hypercorn(launch: Launch) -> list[str]:
    # Hypercorn has no --app-dir: it imports app.py from its working
    # directory, bench/. Its default worker class is asyncio; it is given
    # uvloop, as Squall and Uvicorn are, so that the loop is not what differs,
    # and hypercorn.toml lifts its limit of requests per connection.
    command = [
        sys.executable, "-m", "hypercorn", "app:app", "--config", str(BENCH_DIR / "hypercorn.toml"),
        "--worker-class", "uvloop", "--bind", f"{HOST}:{launch.port}",
    ]  # fmt: skip
    if launch.quiet:
        command += ["--log-level", "warning"]  # its access log is off by default
    if launch.workers is not None:
        command += ["--workers", str(launch.workers)]
    return command


def _script(name: str) -> Callable[[Launch], list[str]]:
    """The benchmark's own reference servers (ceiling.py, asgi_floor.py): no options."""

    def build(launch: Launch) -> list[str]:
        return [sys.executable, str(BENCH_DIR / name), "--host", HOST, "--port", str(launch.port)]

    return build


SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        ServerSpec(
            "squall", "Squall", "squall",
            _uvicorn_like("squall", "httptools", "uvloop"), keep_alive=True,
        ),
        ServerSpec(
            "squall-pure", "Squall (h11, asyncio)", "squall",
            _uvicorn_like("squall", "h11", "asyncio"), keep_alive=True,
            env=(("SQUALL_NO_EXTENSIONS", "1"),),  # no compiled code at all
        ),
        ServerSpec(
            "uvicorn", "Uvicorn", "uvicorn",
            _uvicorn_like("uvicorn", "httptools", "uvloop"), keep_alive=True,
        ),
        ServerSpec(
            "uvicorn-h11", "Uvicorn (h11, asyncio)", "uvicorn",
            _uvicorn_like("uvicorn", "h11", "asyncio"), keep_alive=True,
        ),
        ServerSpec("granian", "Granian", "granian", _granian),
        ServerSpec("h2corn", "h2corn", "h2corn", _h2corn),
        ServerSpec("hypercorn", "Hypercorn", "hypercorn", _hypercorn),
        ServerSpec("floor", "ASGI floor", "uvloop", _script("asgi_floor.py"), workers=False),
        ServerSpec("ceiling", "raw ceiling", "uvloop", _script("ceiling.py"), workers=False),
    )
}  # fmt: skip

# Ratios are taken against this server, row by row; the pure-Python stacks
# are also compared with each other (same --http and --loop on both).
REFERENCE = "uvicorn"
SAME_SETTINGS = (("squall", "uvicorn"), ("squall-pure", "uvicorn-h11"))
CEILING = "ceiling"
FLOOR = "floor"
