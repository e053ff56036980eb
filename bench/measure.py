"""One round of one scenario: every server of the scenario, started side
by side, taking turns under the same load.

Each server's count is sent in a few parts (`PARTS`), and the servers take
turns part by part: Squall's first part, Uvicorn's first part, ..., then
everyone's second part. On a shared machine the CPU's speed drifts by tens
of percent within seconds; measured one after the other, two servers can
land on different sides of such a swing, and a ratio taken between them
says more about the machine than about the servers. Taking turns spreads
every server's requests over the same stretch of time, so such swings fall
on all of them alike. A server waiting for its turn is idle: the servers
are pinned to one CPU, and only one of them has a load at a time.

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
PARTS = 5  # each server's count is sent in this many turns (fewer for tiny counts)


@dataclass
class Measurement:
    scenario: str
    server: str
    round: int
    error: str | None = None  # why the server could not complete the scenario
    count: int | None = None  # requests, messages or connections measured
    seconds: float | None = None  # duration of the measured run (its parts added up)
    rate: float | None = None  # requests or messages per second
    cpu_us: float | None = None  # server CPU time (user + sys, all processes) per request
    p50_ms: float | None = None
    p99_ms: float | None = None
    rss_mib: float | None = None  # all the server's processes, after the run
    idle_kib: float | None = None  # idle scenario: RSS growth per connection


@dataclass
class Part:
    """One turn of load against one server."""

    count: int
    seconds: float
    cpu_seconds: float
    latencies_ms: list[float]
    rss_bytes: int  # after the turn


FIGURES = ("rate", "cpu_us", "p50_ms", "p99_ms", "rss_mib", "idle_kib")


@dataclass(frozen=True)
class Settings:
    scale: float  # multiplies every scenario's count
    server_cpu: int | None  # None: not pinned
    client_cpu: int | None
    timeout: float  # limit for any one load-generator run, in seconds


def part_counts(count: int, connections: int) -> list[int]:
    """`count` split into up to PARTS turns, none smaller than one request per connection."""
    parts = max(1, min(PARTS, count // connections))
    return [count // parts + (1 if i < count % parts else 0) for i in range(parts)]


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The value below which `fraction` of the values lie (nearest rank)."""
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def start(scenario: Scenario, spec: ServerSpec, settings: Settings) -> Server:
    """`spec`'s server, running and ready for `scenario` (the caller stops it)."""
    port = free_port()
    launch = Launch(
        port, quiet=scenario.quiet, workers=scenario.workers, keep_alive=scenario.keep_alive
    )
    server = Server(spec.name, spec.command(launch), port, cpu=settings.server_cpu, env=spec.env).start()
    if scenario.workers:
        try:
            server.wait_until_idle()
        except BaseException:
            server.stop()
            raise
    return server


def measure(
    scenario: Scenario, specs: list[ServerSpec], round_: int, settings: Settings
) -> list[Measurement]:
    """One round of `scenario` for each of `specs`, in that order."""
    if scenario.kind == "idle":  # no load to share out: one server at a time
        return [_measure_idle(scenario, spec, round_, settings) for spec in specs]
    count = scenario.scaled(settings.scale)
    turn = RUNNERS[scenario.kind]
    errors: dict[str, str] = {}
    parts: dict[str, list[Part]] = {spec.name: [] for spec in specs}
    servers: dict[str, Server] = {}
    try:
        for spec in specs:
            try:
                servers[spec.name] = start(scenario, spec, settings)
            except ServerError as exc:
                errors[spec.name] = str(exc).strip()
                continue
            try:
                turn(scenario, servers[spec.name], max(count // 10, scenario.connections), settings)
            except ServerError as exc:
                errors[spec.name] = f"warm-up: {exc}".strip()
                servers.pop(spec.name).stop()
        for part in part_counts(count, scenario.connections):
            for name, server in list(servers.items()):
                try:
                    parts[name].append(turn(scenario, server, part, settings))
                    server.check_alive()
                except ServerError as exc:
                    errors[name] = str(exc).strip()
                    servers.pop(name).stop()  # a failing server must not disturb the others' turns
    finally:
        for server in servers.values():
            server.stop()
    return [
        Measurement(scenario.name, spec.name, round_, error=errors[spec.name])
        if spec.name in errors
        else _combined(scenario, spec.name, round_, parts[spec.name])
        for spec in specs
    ]


def _combined(scenario: Scenario, server: str, round_: int, parts: list[Part]) -> Measurement:
    """One server's turns, added up into the round's figures."""
    count = sum(part.count for part in parts)
    seconds = sum(part.seconds for part in parts)
    latencies = sorted(latency for part in parts for latency in part.latencies_ms)
    return Measurement(
        scenario.name,
        server,
        round_,
        count=count,
        seconds=seconds,
        rate=count / seconds,
        cpu_us=sum(part.cpu_seconds for part in parts) / count * 1e6,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        rss_mib=parts[-1].rss_bytes / MIB,
    )


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


def _http(scenario: Scenario, server: Server, count: int, settings: Settings) -> Part:
    meter = Meter(server)
    load = h2load(
        server.url(scenario.path), requests=count, **h2load_options(scenario, settings.client_cpu, settings.timeout)
    )
    cpu = meter.seconds()
    return Part(load.requests, load.seconds, cpu, load.latencies_ms, rss_bytes(meter.pids))


def _websocket(scenario: Scenario, server: Server, count: int, settings: Settings) -> Part:
    pids = server.processes()
    command = [
        sys.executable, str(BENCH_DIR / "ws_load.py"),
        "--port", str(server.port),
        "--server-pids", ",".join(map(str, pids)),
        "--connections", str(scenario.connections),
        "--messages", str(count),
        # The new connections' first messages, untimed; the server itself was warmed up before its first turn.
        "--warmup", str(scenario.connections),
        "--size", str(WS_MESSAGE_SIZE),
        "--deadline", str(settings.timeout),
    ]  # fmt: skip
    # The load generator's own limits come first; this one is a backstop.
    output = run_tool(command, cpu=settings.client_cpu, timeout=settings.timeout + 60)
    if server.processes() != pids:
        raise ServerError(f"{server.name}'s processes changed during the run")
    run = json.loads(output.stdout)
    return Part(
        run["messages"], run["seconds"], run["server_cpu_seconds"], run["round_trips_ms"], run["rss_bytes"]
    )


def _measure_idle(scenario: Scenario, spec: ServerSpec, round_: int, settings: Settings) -> Measurement:
    count = scenario.scaled(settings.scale)
    try:
        server = start(scenario, spec, settings)
    except ServerError as exc:
        return Measurement(scenario.name, spec.name, round_, error=str(exc).strip())
    try:
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
        server.check_alive()
    except ServerError as exc:
        return Measurement(scenario.name, spec.name, round_, error=str(exc).strip())
    finally:
        server.stop()
    return Measurement(
        scenario.name, spec.name, round_, count=count, rss_mib=after / MIB, idle_kib=(after - before) / count / 1024
    )


RUNNERS = {"http1": _http, "http2": _http, "websocket": _websocket}
