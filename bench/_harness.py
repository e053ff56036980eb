"""Shared pieces of the benchmark scripts: starting an ASGI server as a
subprocess on 127.0.0.1, pinning processes to CPUs, and reading a process's
CPU time and memory from /proc.

Servers are started as `python -m <name>` with the interpreter running the
benchmark, and every server gets the very same command line apart from the
module name, so Squall and Uvicorn are compared like for like.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def can_pin() -> bool:
    """Pinning needs sched_setaffinity (Linux) and at least two usable CPUs."""
    return hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2


def pinning_cpus() -> tuple[int, int] | None:
    """(server CPU, load generator CPU), or None when pinning is not possible.

    Server and client on distinct cores keeps them from stealing each other's
    time slices, which would otherwise add noise to both throughput and the
    server's CPU time per request.
    """
    if not can_pin():
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[0], cpus[1]


def pinned(cpu: int | None):
    """A preexec_fn that pins the child before it execs, so every thread it
    starts later inherits the affinity (pinning a running pid only moves its
    main thread)."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def cpu_seconds(pid: int) -> float:
    """User + system CPU time consumed so far by all threads of `pid`."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces; fields after it are plain.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid` (VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class ServerError(RuntimeError):
    pass


class Server:
    """An ASGI server subprocess serving bench/app.py on a free local port.

    Use as a context manager; the server is stopped (and killed if it does
    not stop in time) on exit, whatever happened inside.
    """

    def __init__(
        self,
        name: str,
        *,
        http: str = "httptools",
        loop: str = "uvloop",
        ws: str | None = None,
        app: str = "app:app",
        app_dir: Path = BENCH_DIR,
        cpu: int | None = None,
        extra_args: tuple[str, ...] = (),
        python: str = sys.executable,
        startup_timeout: float = 30.0,
    ):
        self.name = name
        self.port = free_port()
        self.cpu = cpu
        self.startup_timeout = startup_timeout
        self.command = [
            python, "-m", name, app,
            "--app-dir", str(app_dir),
            "--host", HOST,
            "--port", str(self.port),
            "--http", http,
            "--loop", loop,
            *(["--ws", ws] if ws else []),
            "--no-access-log",
            "--log-level", "warning",
            *extra_args,
        ]  # fmt: skip
        self.process: subprocess.Popen | None = None
        # Output goes to a file, not a pipe: nobody reads a pipe during the
        # run, and a full pipe would block the server mid-benchmark.
        self._log = tempfile.TemporaryFile()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def __enter__(self) -> Server:
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=pinned(self.cpu),
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _wait_until_ready(self) -> None:
        """Poll until the server answers an HTTP request (an open port alone
        may precede the application's startup)."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.output()}"
                )
            if self._answers():
                return
            time.sleep(0.1)
        raise ServerError(
            f"{self.name} did not answer on port {self.port} within "
            f"{self.startup_timeout:.0f} s:\n{self.output()}"
        )

    def _answers(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.sendall(
                    b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                )
                return sock.recv(16).startswith(b"HTTP/1.1 ")
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT for a graceful shutdown (as Ctrl+C would), then SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def output(self, limit: int = 4000) -> str:
        """The tail of what the server printed (for error messages)."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-limit:]

    def cpu_seconds(self) -> float:
        self._check_alive()
        return cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        self._check_alive()
        return rss_bytes(self.pid)

    def _check_alive(self) -> None:
        """A server that died under load must fail the run, not be measured."""
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise ServerError(
                f"{self.name} is not running (exit code {code}):\n{self.output()}"
            )


def run_tool(
    command: list[str], *, cpu: int | None = None, timeout: float
) -> subprocess.CompletedProcess:
    """Run a load generator (pinned to `cpu`), fail loudly on error or timeout."""
    try:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=pinned(cpu),
        )
    except subprocess.TimeoutExpired as exc:
        raise ServerError(
            f"{command[0]} did not finish within {timeout:.0f} s"
        ) from exc
    if result.returncode != 0:
        raise ServerError(
            f"{' '.join(command)} exited with {result.returncode}:\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return result


# --- shared by the benchmark scripts' command lines and reports ----------------


def add_server_arguments(parser) -> None:
    """The options every benchmark takes to choose and configure the servers."""
    parser.add_argument(
        "--servers",
        default="squall,uvicorn",
        help="comma-separated server modules, run as `python -m NAME`; "
        "a name may repeat (default squall,uvicorn)",
    )
    parser.add_argument("--http", default="httptools", help="--http of the servers")
    parser.add_argument("--loop", default="uvloop", help="--loop of the servers")


def print_table(
    title: str, rows: list[dict], labels: list[str], columns: list[tuple[str, str, str]]
) -> None:
    """Print `rows` (dicts) as a table: the `labels` keys left-aligned, then
    `columns` as (title, key, format) right-aligned; a missing value shows as "-"."""
    widths = [
        max(len(label), *(len(str(row[label])) for row in rows)) for label in labels
    ]
    print(f"\n{title}")
    head = "  ".join(f"{label:<{width}}" for label, width in zip(labels, widths))
    print(head + "".join(f"{name:>13}" for name, _, _ in columns))
    for row in rows:
        left = "  ".join(
            f"{row[label]!s:<{width}}" for label, width in zip(labels, widths)
        )
        cells = (
            "-" if row.get(key) is None else fmt.format(row[key])
            for _, key, fmt in columns
        )
        print(left + "".join(f"{cell:>13}" for cell in cells))
