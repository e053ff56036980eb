"""Instructions per request: the benchmark's deterministic figure (`make bench-instructions`).

CPU time on a shared machine moves by 30-50 % between rounds of one run,
more than the margins the targets leave. The number of instructions a
server's process executes per request does not: it is the same to about
±0.3 % from run to run, so a change of 1 % shows. Each server runs under
valgrind's callgrind tool; after the warm-up its counters are zeroed, the
scenario's requests are sent with h2load, and the counters are dumped. The
figure leaves out the kernel's share of each request (the socket calls,
about the same for every server), so a ratio of instructions is further
from 1 than the ratio of CPU time; it complements the CPU figures of
`bench/run.py`, it does not replace them.

Only single-process HTTP scenarios are measured (valgrind runs one process;
the WebSocket load generator has its own warm-up), and only the Python
servers and the ceiling by default: the Rust servers' threads run but are
slow enough under valgrind to make the run long without adding anything.

    python bench/instructions.py [--servers ...] [--scenarios ...] [--count N]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _harness import Server, ServerError, free_port
from loads import h2load
from measure import h2load_options
from scenarios import SCENARIOS, Scenario
from servers import REFERENCE, SERVERS, Launch

DEFAULT_SERVERS = ("squall", "squall-pure", "uvicorn", "uvicorn-h11", "ceiling")
DEFAULT_SCENARIOS = ("hello", "json", "upload", "stream", "logged", "http2")
DEFAULT_COUNT = 5_000
# Python starts about 50 times slower under valgrind.
STARTUP_TIMEOUT = 180.0


def measure(scenario: Scenario, server_name: str, count: int, scratch: Path) -> float:
    """Instructions per request of `server_name` in `scenario`, over `count` requests."""
    spec = SERVERS[server_name]
    out = scratch / f"{scenario.name}-{server_name}"
    port = free_port()
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", *spec.command(Launch(port, quiet=scenario.quiet))]
    load = h2load_options(scenario, cpu=None, timeout=600.0)
    with Server(server_name, command, port, startup_timeout=STARTUP_TIMEOUT, env=spec.env) as server:
        url = server.url(scenario.path)
        h2load(url, requests=max(count // 5, scenario.connections), **load)
        _control("-z", server.pid)
        measured = h2load(url, requests=count, **load)
        _control("-d", server.pid)
        dumps = sorted(scratch.glob(f"{out.name}.{server.pid}.*"), key=lambda path: int(path.suffix[1:]))
        if not dumps:
            raise ServerError(f"callgrind wrote no dump for {server_name}")
        total = _total(dumps[-1])
    return total / measured.requests


def _control(option: str, pid: int) -> None:
    subprocess.run(["callgrind_control", option, str(pid)], check=True, capture_output=True, timeout=120)


def _total(dump: Path) -> int:
    match = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(errors="replace"), re.MULTILINE)
    if match is None:
        raise ServerError(f"no total in {dump}")
    return int(match[1])


def table(results: dict[tuple[str, str], float | str], scenarios: list[str], servers: list[str]) -> str:
    """Markdown: instructions per request, and the ratio to Uvicorn's in the same scenario."""
    lines = ["| Scenario | " + " | ".join(SERVERS[name].title for name in servers) + " |"]
    lines.append("| --- |" + " ---: |" * len(servers))
    for scenario in scenarios:
        reference = results.get((scenario, REFERENCE))
        cells = []
        for server in servers:
            value = results.get((scenario, server))
            if value is None:
                cells.append("")
            elif isinstance(value, str):
                cells.append("failed")
            elif isinstance(reference, float):
                cells.append(f"{value:,.0f} (x{value / reference:.2f})")
            else:
                cells.append(f"{value:,.0f}")
        lines.append(f"| {SCENARIOS[scenario].title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(DEFAULT_SERVERS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="requests measured per server (default %(default)s)")
    args = parser.parse_args()
    servers = args.servers.split(",")
    scenarios = args.scenarios.split(",")
    for name in servers:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r}: choose from {', '.join(SERVERS)}")
    for name in scenarios:
        if name not in SCENARIOS or SCENARIOS[name].kind not in ("http1", "http2") or SCENARIOS[name].workers:
            parser.error(f"{name!r} is not a single-process HTTP scenario")
    for tool in ("valgrind", "callgrind_control", "h2load"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (Debian: valgrind, nghttp2-client; `make bench-instructions` installs them)")
    results: dict[tuple[str, str], float | str] = {}
    with tempfile.TemporaryDirectory(prefix="squall-instructions-") as scratch:
        for scenario in scenarios:
            for server in servers:
                if server not in SCENARIOS[scenario].servers:
                    continue
                try:
                    results[scenario, server] = measure(SCENARIOS[scenario], server, args.count, Path(scratch))
                    print(f"{scenario:8s} {server:12s} {results[scenario, server]:10,.0f} instructions/request", flush=True)
                except ServerError as exc:
                    results[scenario, server] = str(exc).splitlines()[0]
                    print(f"{scenario:8s} {server:12s} failed: {results[scenario, server]}", flush=True)
    print()
    print(table(results, scenarios, servers))
    return 0 if all(isinstance(value, float) for value in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
