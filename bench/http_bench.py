"""HTTP/1.1 keep-alive benchmark: Squall against Uvicorn on bench/app.py.

For each round and each server (interleaved: squall, uvicorn, squall, ...):

1. start `python -m <server> app:app --app-dir bench ...` on a free port of
   127.0.0.1, pinned to one CPU (the load generator gets another one);
2. warm it up with a short untimed load;
3. drive a fixed number of requests over keep-alive connections with
   `h2load --h1` and read the server's user+sys CPU time from /proc before
   and after, which gives CPU time per request;
4. h2load prints no percentiles, so a short, time-bounded `wrk --latency`
   pass follows to get the p99 latency (not counted in the CPU figure);
5. read the server's RSS, stop it.

Without h2load, wrk alone is used: a run of fixed duration, whose request
count comes from wrk's report. See docs/benchmarks.md for the reasoning.

    python bench/http_bench.py --rounds 5 --requests 200000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from statistics import median

from _harness import (
    Server,
    ServerError,
    pinning_cpus,
    run_tool,
    add_server_arguments,
    print_table,
)


@dataclass
class Result:
    server: str
    requests: int  # requests completed in the measured run
    errors: int  # failed requests, or non-2xx responses
    seconds: float  # duration of the measured run
    requests_per_second: float
    cpu_us_per_request: float  # server user+sys CPU time / requests
    p99_ms: float | None  # from the wrk pass; None when wrk is unavailable
    rss_mib: float  # server RSS after the measured run


# --- load generators ---------------------------------------------------------

_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(text: str) -> float:
    """'1.52ms' -> 0.00152 (wrk's and h2load's way of printing durations)."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"unrecognised duration {text!r}")
    return float(match[1]) * _DURATION_UNITS[match[2]]


def h2load(url: str, requests: int, connections: int, cpu, timeout: float) -> dict:
    """A fixed number of HTTP/1.1 requests, spread over `connections`
    keep-alive connections handled by one client thread."""
    command = [
        "h2load",
        "--h1",
        "-n",
        str(requests),
        "-c",
        str(connections),
        "-t",
        "1",
        url,
    ]
    output = run_tool(command, cpu=cpu, timeout=timeout).stdout
    finished = re.search(r"finished in ([\d.]+\w+), ([\d.]+) req/s", output)
    counts = re.search(
        r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded", output
    )
    status = re.search(r"status codes: (\d+) 2xx", output)
    if not (finished and counts and status):
        raise ServerError(f"could not parse h2load output:\n{output}")
    done, ok_2xx = int(counts[2]), int(status[1])
    return {
        "requests": done,
        "errors": int(counts[1]) - ok_2xx,
        "seconds": _seconds(finished[1]),
        "requests_per_second": float(finished[2]),
    }


def wrk(url: str, duration: float, connections: int, cpu, timeout: float) -> dict:
    """As many requests as fit in `duration` seconds, with latency percentiles."""
    command = [
        "wrk", "--latency", "-t", "1", "-c", str(connections),
        "-d", f"{duration:g}s", "--timeout", "5s", url,
    ]  # fmt: skip
    output = run_tool(command, cpu=cpu, timeout=timeout).stdout
    total = re.search(r"(\d+) requests in ([\d.]+\w+)", output)
    p99 = re.search(r"^\s*99(?:\.0+)?%\s+([\d.]+\w+)\s*$", output, re.MULTILINE)
    if not (total and p99):
        raise ServerError(f"could not parse wrk output:\n{output}")
    socket_errors = re.search(r"Socket errors: (.*)", output)
    errors = sum(map(int, re.findall(r"\d+", socket_errors[1]))) if socket_errors else 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    requests, seconds = int(total[1]), _seconds(total[2])
    return {
        "requests": requests,
        "errors": errors + (int(non_2xx[1]) if non_2xx else 0),
        "seconds": seconds,
        "requests_per_second": requests / seconds,
        "p99_ms": _seconds(p99[1]) * 1e3,
    }


# --- one measurement ---------------------------------------------------------


def measure(label: str, module: str, args, generator: str, cpus) -> Result:
    server_cpu, client_cpu = cpus if cpus else (None, None)
    with Server(module, http=args.http, loop=args.loop, cpu=server_cpu) as server:
        if generator == "h2load":
            h2load(server.url, args.warmup, args.connections, client_cpu, args.timeout)
            cpu_before = server.cpu_seconds()
            run = h2load(
                server.url, args.requests, args.connections, client_cpu, args.timeout
            )
            cpu_used = server.cpu_seconds() - cpu_before
            rss = server.rss_bytes()
            p99 = None
            if shutil.which("wrk"):
                latency = wrk(
                    server.url,
                    args.latency_duration,
                    args.connections,
                    client_cpu,
                    args.timeout,
                )
                p99 = latency["p99_ms"]
        else:
            wrk(
                server.url,
                args.warmup_duration,
                args.connections,
                client_cpu,
                args.timeout,
            )
            cpu_before = server.cpu_seconds()
            run = wrk(
                server.url, args.duration, args.connections, client_cpu, args.timeout
            )
            cpu_used = server.cpu_seconds() - cpu_before
            rss = server.rss_bytes()
            p99 = run["p99_ms"]

    return Result(
        server=label,
        requests=run["requests"],
        errors=run["errors"],
        seconds=run["seconds"],
        requests_per_second=run["requests_per_second"],
        cpu_us_per_request=cpu_used / max(run["requests"], 1) * 1e6,
        p99_ms=p99,
        rss_mib=rss / 2**20,
    )


# --- reporting ---------------------------------------------------------------

COLUMNS = [
    # (title, Result attribute, format)
    ("req/s", "requests_per_second", "{:,.0f}"),
    ("CPU µs/req", "cpu_us_per_request", "{:.1f}"),
    ("p99 ms", "p99_ms", "{:.2f}"),
    ("RSS MiB", "rss_mib", "{:.1f}"),
    ("errors", "errors", "{:d}"),
]


def summarise(labels: list[str], rounds: list[list[Result]]) -> dict[str, dict]:
    """Per server, the median of every column over the rounds."""
    summary = {}
    for label in labels:
        results = [r for round_ in rounds for r in round_ if r.server == label]
        row = {"server": label}
        for _, key, _ in COLUMNS:
            values = [getattr(r, key) for r in results if getattr(r, key) is not None]
            row[key] = median(values) if values else None
        row["errors"] = sum(r.errors for r in results)  # a total, not a median
        summary[label] = row
    return summary


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# --- main --------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds (default 5)"
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=200_000,
        help="requests per measured run with h2load (default 200000)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=64,
        help="keep-alive connections (default 64)",
    )
    add_server_arguments(parser)
    parser.add_argument(
        "--load-generator",
        choices=("auto", "h2load", "wrk"),
        default="auto",
        help="auto: h2load (fixed request count) if installed, else wrk",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=20_000,
        help="untimed warm-up requests with h2load (default 20000)",
    )
    parser.add_argument(
        "--latency-duration",
        type=float,
        default=3.0,
        help="seconds of the wrk pass that gives p99 with h2load (default 3)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="seconds of a measured run when only wrk is available (default 10)",
    )
    parser.add_argument(
        "--warmup-duration",
        type=float,
        default=2.0,
        help="seconds of warm-up when only wrk is available (default 2)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="limit for any one load-generator run, in seconds (default 300)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write all results to FILE")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.requests < 1 or args.connections < 1:
        parser.error("--rounds, --requests and --connections must be positive")
    if args.requests < args.connections or args.warmup < args.connections:
        parser.error("h2load needs --requests and --warmup of at least --connections")
    return args


def pick_generator(choice: str) -> str:
    candidates = ["h2load", "wrk"] if choice == "auto" else [choice]
    for name in candidates:
        if shutil.which(name):
            return name
    sys.exit(
        f"{' or '.join(candidates)} not found; install nghttp2-client (h2load) "
        "and wrk (`make bench` does, as root)"
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    modules = [name.strip() for name in args.servers.split(",") if name.strip()]
    if not modules:
        sys.exit("--servers names no server")
    # The same server may be listed twice (e.g. to see the noise between two
    # identical servers); give each entry its own label.
    labels = [
        name
        if modules[:i].count(name) == 0
        else f"{name}#{modules[:i].count(name) + 1}"
        for i, name in enumerate(modules)
    ]
    generator = pick_generator(args.load_generator)
    cpus = pinning_cpus()

    pinning = (
        f"server on CPU {cpus[0]}, load on CPU {cpus[1]}" if cpus else "not pinned"
    )
    if generator == "h2load":
        load = f"h2load --h1, {args.requests:,} requests"
        latency = (
            f"wrk pass of {args.latency_duration:g} s"
            if shutil.which("wrk")
            else "none"
        )
    else:
        load, latency = f"wrk, {args.duration:g} s", "wrk"
    print(f"python {platform.python_version()} ({sys.executable})")
    print(f"cpu: {cpu_model()}, {os.cpu_count()} CPUs, {pinning}")
    print(f"load: {load} over {args.connections} connections; p99 from: {latency}")
    print(f"servers: --http {args.http} --loop {args.loop}")

    rounds: list[list[Result]] = []
    started = time.monotonic()
    for number in range(1, args.rounds + 1):
        results = [
            measure(label, module, args, generator, cpus)
            for label, module in zip(labels, modules, strict=True)
        ]
        rounds.append(results)
        print_table(
            f"Round {number}/{args.rounds}",
            [asdict(r) for r in results],
            ["server"],
            COLUMNS,
        )

    summary = summarise(labels, rounds)
    print_table(
        f"Medians over {args.rounds} rounds (errors: total)",
        list(summary.values()),
        ["server"],
        COLUMNS,
    )

    ratios = {}
    if len(labels) >= 2:
        # Compare the first server with the second: squall/uvicorn by default.
        a, b = summary[labels[0]], summary[labels[1]]
        ratios = {"name": f"{labels[0]}/{labels[1]}"}
        for key in ("cpu_us_per_request", "requests_per_second"):
            ratios[key] = a[key] / b[key] if b[key] else None
        print(
            f"\n{ratios['name']}: CPU µs/request x{ratios['cpu_us_per_request'] or 0:.2f} "
            f"(lower is better), req/s x{ratios['requests_per_second'] or 0:.2f} "
            "(higher is better)"
        )
    print(f"\nfinished in {time.monotonic() - started:.0f} s")

    if args.json:
        report = {
            "settings": vars(args) | {"load_generator": generator},
            "environment": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpu": cpu_model(),
                "cpu_count": os.cpu_count(),
                "pinned": {"server": cpus[0], "load_generator": cpus[1]}
                if cpus
                else None,
            },
            "rounds": [[asdict(r) for r in results] for results in rounds],
            "medians": summary,
            "ratio": ratios,
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
            out.write("\n")
        print(f"results written to {args.json}")

    errors = sum(row["errors"] for row in summary.values())
    if errors:
        print(
            f"error: {errors} requests failed, see the errors column", file=sys.stderr
        )
    return 1 if errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ServerError as exc:
        sys.exit(f"error: {exc}")
