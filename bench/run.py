"""The benchmark suite: every scenario against every server, in interleaved
rounds, then a table on the console and docs/benchmarks.md, .png and .json.

    python bench/run.py                       # `make bench`: 3 rounds of everything
    python bench/run.py --rounds 1            # `make bench-quick`
    python bench/run.py --servers squall,uvicorn --scenarios hello,json --output /tmp/b
    python bench/run.py --from-json docs/benchmarks.json   # only re-render page and chart

Each round of a scenario starts a fresh process of each server, all pinned
to one CPU, warms each up, then drives a fixed count of requests (or
messages, or connections) at each from a load generator pinned to the
other CPU, in parts, the servers taking turns (measure.py says why), and
reads each server's CPU time and memory from /proc. A round measures every
server in every scenario; the order of the servers rotates from one round
to the next, and each figure is the median over the rounds. See
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from _harness import BENCH_DIR, compile_bytecode, pinning_cpus, raise_fd_limit
from measure import Measurement, Settings, measure
from report import print_tables, write_chart, write_page
from results import environment, summarise
from scenarios import SCENARIOS
from servers import SERVERS

PAGE, CHART, DATA = "benchmarks.md", "benchmarks.png", "benchmarks.json"


def _names(known: dict, what: str):
    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(known)}"
            )
        return names

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--scale", type=float, default=1.0,
        help="multiply every scenario's count (default 1; the smoke test uses tiny ones)",
    )  # fmt: skip
    parser.add_argument(
        "--servers", type=_names(SERVERS, "server"), default=list(SERVERS),
        help=f"comma-separated, from {','.join(SERVERS)} (default all)",
    )  # fmt: skip
    parser.add_argument(
        "--scenarios", type=_names(SCENARIOS, "scenario"), default=list(SCENARIOS),
        help=f"comma-separated, from {','.join(SCENARIOS)} (default all)",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=float, default=300.0,
        help="limit of any one load-generator run, in seconds (default 300)",
    )  # fmt: skip
    parser.add_argument(
        "--output", type=Path, default=BENCH_DIR.parent / "docs",
        help=f"directory for {PAGE}, {CHART} and {DATA} (default docs/)",
    )  # fmt: skip
    parser.add_argument("--note", help="a remark to print at the top of the results")
    parser.add_argument(
        "--from-json", type=Path, metavar="FILE",
        help=f"run nothing: write the page and chart from a {DATA} written before",
    )  # fmt: skip
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if args.rounds < 1 or args.scale <= 0 or args.timeout <= 0:
        parser.error("--rounds, --scale and --timeout must be positive")
    return args


def shown_command(argv: list[str]) -> str:
    """The command line for the page, without the --note (which the page shows)."""
    shown, skip = ["bench/run.py"], False
    for arg in argv:
        if skip or arg.startswith("--note="):
            skip = False
        elif arg == "--note":
            skip = True
        else:
            shown.append(arg)
    return " ".join(shown)


def _progress(m: Measurement, round_: int, rounds: int) -> str:
    head = f"[{round_}/{rounds}] {m.scenario:<10} {m.server:<12}"
    if m.error is not None:
        return f"{head} cannot complete: {m.error.splitlines()[0]}"
    if m.idle_kib is not None:
        return f"{head} {m.idle_kib:8.1f} KiB per idle connection"
    return (
        f"{head} {m.cpu_us:8.1f} µs CPU {m.rate:>10,.0f}/s "
        f"p50 {m.p50_ms:6.2f} ms  p99 {m.p99_ms:6.2f} ms  RSS {m.rss_mib:5.1f} MiB"
    )


def run(args: argparse.Namespace) -> dict:
    """Measure everything asked; return what --from-json reads back."""
    cpus = pinning_cpus()
    env = environment(cpus, shown_command(args.argv))
    settings = Settings(
        scale=args.scale,
        server_cpu=cpus[0] if cpus else None,
        client_cpu=cpus[1] if cpus else None,
        timeout=args.timeout,
    )
    raise_fd_limit()  # this process holds the idle connections
    compile_bytecode()
    pinning = f"servers on CPU {cpus[0]}, load on CPU {cpus[1]}" if cpus else "not pinned"
    print(
        f"{env['python']} on {env['cpu']}, {env['cpu_count']} CPUs, "
        f"load average {env['load_average_before']:.1f}; {pinning}"
    )
    started = time.monotonic()
    measurements: list[Measurement] = []
    for round_ in range(1, args.rounds + 1):
        for name in args.scenarios:
            scenario = SCENARIOS[name]
            servers = [server for server in scenario.servers if server in args.servers]
            if not servers:
                continue
            shift = (round_ - 1) % len(servers)  # no server always goes first
            specs = [SERVERS[server] for server in servers[shift:] + servers[:shift]]
            for m in measure(scenario, specs, round_, settings):
                print(_progress(m, round_, args.rounds), flush=True)
                measurements.append(m)
    env["elapsed_seconds"] = time.monotonic() - started
    env["load_average_after"] = os.getloadavg()[0]
    return {
        "environment": env,
        "settings": {
            "rounds": args.rounds,
            "scale": args.scale,
            "timeout": args.timeout,
            "servers": args.servers,
            "scenarios": args.scenarios,
        },
        "note": args.note,
        "measurements": [asdict(m) for m in measurements],
    }


def busy_note(env: dict) -> str | None:
    """A warning for the page when the machine was not idle at the start."""
    load = env["load_average_before"]
    if load < 0.5 * (env["cpu_count"] or 1):
        return None
    return (
        f"The machine was busy when this run started (load average {load:.1f} on "
        f"{env['cpu_count']} CPUs): other work took CPU time from the servers and the "
        "load generator, so rates and latencies are low and noisy. CPU time per request "
        "and the ratios between servers are the figures to read."
    )


def write_outputs(data: dict, output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    rows = summarise([Measurement(**m) for m in data["measurements"]])
    print_tables(rows)
    write_chart(output / CHART, rows)
    note = " ".join(filter(None, [data.get("note"), busy_note(data["environment"])]))
    write_page(output / PAGE, rows, data["environment"], data["settings"], CHART, note or None)
    print(f"\nwrote {output / PAGE}, {output / CHART} and {output / DATA}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        data = json.loads(args.from_json.read_text())
        if args.note:
            data["note"] = args.note
    else:
        if not shutil.which("h2load"):
            sys.exit("error: h2load not found: install nghttp2-client (`make bench` does, as root)")
        data = run(args)
        print(f"\nfinished in {data['environment']['elapsed_seconds'] / 60:.1f} min")
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / DATA).write_text(json.dumps(data, indent=1) + "\n")
    write_outputs(data, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
