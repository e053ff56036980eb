"""One measurement: one scenario against one freshly started server.

A measurement that fails (the server does not start, dies, refuses the
protocol, answers with errors, stalls...) is not an exception for the
benchmark: it is a result saying that this server cannot complete this
scenario, and why.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from _harness import BENCH_DIR, Meter, Server, ServerError, free_port, rss_bytes, run_tool
from loads import IdleConnections, h2load
from scenarios import Scenario
from servers import Launch, ServerSpec

MIB = 2**20
WS_MESSAGE_SIZE = 32  # bytes of text in each WebSocket message


@dataclass
class Measurement:
    scenario: str
    server: str
    round: int
    error: str | None = None  # why the server could not complete the scenario
    count: int | None = None  # requests, messages or connections measured
    seconds: float | None = None  # duration of the measured run
    rate: float | None = None  # requests or messages per second
    cpu_us: float | None = None  # server CPU time (user + sys, all processes) per request
    p50_ms: float | None = None
    p99_ms: float | None = None
    rss_mib: float | None = None  # all the server's processes, after the run
    idle_kib: float | None = None  # idle scenario: RSS growth per connection


FIGURES = ("rate", "cpu_us", "p50_ms", "p99_ms", "rss_mib", "idle_kib")


@dataclass(frozen=True)
class Settings:
    scale: float  # multiplies every scenario's count
    server_cpu: int | None  # None: not pinned
    client_cpu: int | None
    timeout: float  # limit for any one load-generator run, in seconds


def measure(scenario: Scenario, spec: ServerSpec, round_: int, settings: Settings) -> Measurement:
    port = free_port()
    launch = Launch(
        port, quiet=scenario.quiet, workers=scenario.workers, keep_alive=scenario.keep_alive
    )
    count = scenario.scaled(settings.scale)
    try:
        with Server(spec.name, spec.command(launch), port, cpu=settings.server_cpu, env=spec.env) as server:
            if scenario.workers:
                server.wait_until_idle()
            figures = RUNNERS[scenario.kind](scenario, server, count, settings)
            server.check_alive()
    except ServerError as exc:
        return Measurement(scenario.name, spec.name, round_, error=str(exc).strip())
    return Measurement(scenario.name, spec.name, round_, **figures)


def h2load_options(scenario: Scenario, cpu: int | None, timeout: float) -> dict:
    """The `loads.h2load` arguments that put `scenario`'s load on a server."""
    return dict(
        connections=scenario.connections,
        streams=scenario.streams,
        http1=scenario.kind == "http1",
        upload=scenario.upload,
        body_size=scenario.body_size,
        cpu=cpu,
        timeout=timeout,
    )


def _http(scenario: Scenario, server: Server, count: int, settings: Settings) -> dict:
    options = h2load_options(scenario, settings.client_cpu, settings.timeout)
    url = server.url(scenario.path)
    try:
        h2load(url, requests=max(count // 10, scenario.connections), **options)
    except ServerError as exc:
        raise ServerError(f"warm-up: {exc}") from None
    meter = Meter(server)
    load = h2load(url, requests=count, **options)
    cpu = meter.seconds()
    return dict(
        count=load.requests,
        seconds=load.seconds,
        rate=load.rate,
        cpu_us=cpu / load.requests * 1e6,
        p50_ms=load.p50_ms,
        p99_ms=load.p99_ms,
        rss_mib=rss_bytes(meter.pids) / MIB,
    )


def _websocket(scenario: Scenario, server: Server, count: int, settings: Settings) -> dict:
    pids = server.processes()
    command = [
        sys.executable, str(BENCH_DIR / "ws_load.py"),
        "--port", str(server.port),
        "--server-pids", ",".join(map(str, pids)),
        "--connections", str(scenario.connections),
        "--messages", str(count),
        "--warmup", str(count // 10),
        "--size", str(WS_MESSAGE_SIZE),
        "--deadline", str(settings.timeout),
    ]  # fmt: skip
    # The load generator's own limits come first; this one is a backstop.
    output = run_tool(command, cpu=settings.client_cpu, timeout=settings.timeout + 60)
    if server.processes() != pids:
        raise ServerError(f"{server.name}'s processes changed during the run")
    run = json.loads(output.stdout)
    return dict(
        count=run["messages"],
        seconds=run["seconds"],
        rate=run["messages"] / run["seconds"],
        cpu_us=run["server_cpu_seconds"] / run["messages"] * 1e6,
        p50_ms=run["p50_ms"],
        p99_ms=run["p99_ms"],
        rss_mib=run["rss_bytes"] / MIB,
    )


def _idle(scenario: Scenario, server: Server, count: int, settings: Settings) -> dict:
    pids = server.processes()
    # One connection first, so that code and buffers every connection needs
    # once are in place before the baseline is read.
    with IdleConnections(server.port, 1, settings.timeout):
        pass
    before = rss_bytes(pids)
    with IdleConnections(server.port, count, settings.timeout) as idle:
        after = rss_bytes(pids)
        closed = idle.closed_by_server()
    if closed:
        raise ServerError(f"the server closed {closed} of {count} idle connections")
    return dict(count=count, rss_mib=after / MIB, idle_kib=(after - before) / count / 1024)


RUNNERS = {"http1": _http, "http2": _http, "websocket": _websocket, "idle": _idle}
