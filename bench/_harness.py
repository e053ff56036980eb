"""Shared pieces of the benchmark: starting a server as a subprocess on
127.0.0.1, pinning processes to CPUs, reading a server's CPU time and memory
from /proc, and running a load generator with a time limit.

A server is measured as its whole process tree: Squall and Uvicorn serve in
the process they start in, but Granian, h2corn and Hypercorn run a
supervisor and a worker even with one worker, and `--workers 2` adds more.
Summing over the tree counts everything the server costs the machine.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"


class ServerError(RuntimeError):
    """A server or a load generator did not do what the measurement needs;
    the message says why, and becomes the "cannot complete" reason."""


def free_port() -> int:
    """A TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def pinning_cpus() -> tuple[int, int] | None:
    """(server CPU, load generator CPU), or None when pinning is not possible.

    Server and load generator on distinct cores keeps them from stealing each
    other's time slices, which would add noise to both throughput and the
    server's CPU time per request.
    """
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[0], cpus[1]


def compile_bytecode() -> None:
    """Write the bytecode of Squall's modules and the bench app, as an install would.

    pip writes it for every package it installs except an editable one (`make
    bench` installs Squall with `-e`), and with PYTHONDONTWRITEBYTECODE set
    nothing writes it at run time: each Squall process would then compile its
    modules from source at start, which leaves it a larger heap (about 1 MiB
    more RSS in the WebSocket scenario) than the servers installed from wheels.
    """
    import compileall

    import squall

    for directory in (Path(squall.__file__).parent, BENCH_DIR):
        compileall.compile_dir(directory, quiet=1)


def raise_fd_limit() -> None:
    """Raise the soft limit on open files to the hard one: the idle-connection
    scenario holds thousands of sockets, in the client and in the server."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def child_setup(cpu: int | None) -> Callable[[], None]:
    """A preexec_fn: pin the child before it execs, so every thread and
    process it starts later inherits the affinity (pinning a running pid only
    moves its main thread), and give it the raised file limit."""

    def setup() -> None:
        raise_fd_limit()
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return setup


# --- /proc ---------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    """Fields 3 onwards of /proc/PID/stat (the command name, field 2, may
    contain spaces and parentheses; everything after its last ')' is plain)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, root first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(_stat_fields(int(entry.name))[1])  # field 4
            except (OSError, ValueError, IndexError):
                continue  # exited while we looked
            children.setdefault(ppid, []).append(int(entry.name))
    tree, index = [root], 0
    while index < len(tree):
        tree.extend(sorted(children.get(tree[index], ())))
        index += 1
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time consumed so far by all threads of `pids`."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        ticks += int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_bytes(pids: list[int]) -> int:
    """Resident set size (VmRSS) of `pids`, added up. Pages shared between a
    supervisor and its workers count once per process, as `ps` shows them."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
                break
    return total


# --- servers ---------------------------------------------------------------------


class Server:
    """A server subprocess, started from `command` in bench/ (where app.py
    is) and ready once it answers an HTTP request on `port`.

    Use as a context manager; the server and every process it started are
    stopped (killed if they do not stop in time) on exit, whatever happened.
    """

    def __init__(
        self,
        name: str,
        command: list[str],
        port: int,
        *,
        cpu: int | None = None,
        startup_timeout: float = 30.0,
        env: tuple[tuple[str, str], ...] = (),
    ):
        self.name = name
        self.command = command
        self.env = {**os.environ, **dict(env)}
        self.port = port
        self.cpu = cpu
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        # Output goes to a file, as a user redirecting it would have it, and
        # not to a pipe: nobody reads a pipe during the run, and a full pipe
        # would block the server mid-benchmark.
        self._log = tempfile.TemporaryFile()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self.port}{path}"

    def __enter__(self) -> Server:
        return self.start()

    def start(self) -> Server:
        """Start the server and wait until it answers (stopping it if it never does)."""
        self.process = subprocess.Popen(
            self.command,
            cwd=BENCH_DIR,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=child_setup(self.cpu),
            start_new_session=True,  # its own process group, to clean up after it
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
                sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                return sock.recv(16).startswith(b"HTTP/1.1 ")
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT for a graceful shutdown (as Ctrl+C would), then SIGKILL to
        whatever is left of the process group."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the group is already gone: the usual case
        self.process.wait(timeout)

    def output(self, limit: int = 4000) -> str:
        """The tail of what the server printed (for error messages)."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-limit:]

    def processes(self) -> list[int]:
        """The server's process tree, checking that the server is still up."""
        self.check_alive()
        return process_tree(self.pid)

    def wait_until_idle(self, timeout: float = 30.0, quiet: float = 0.3) -> None:
        """Wait until the server's processes stay the same and use (almost)
        no CPU for `quiet` seconds: with several workers, the first one to
        answer is not the last one to finish starting, and the others'
        startup must neither land in the measured run nor change the set
        of processes measured."""
        deadline = time.monotonic() + timeout
        pids = self.processes()
        used = cpu_seconds(pids)
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now_pids = self.processes()
            now_used = cpu_seconds(now_pids)
            if now_pids == pids and now_used - used < 0.02:  # two clock ticks
                return
            pids, used = now_pids, now_used
        raise ServerError(f"{self.name} was still busy {timeout:.0f} s after answering")

    def check_alive(self) -> None:
        """A server that died under load must fail the run, not be measured."""
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise ServerError(f"{self.name} is not running (exit code {code}):\n{self.output()}")


class Meter:
    """CPU time of a server's processes over a stretch of time: taken with
    the same set of processes at both ends, which must all still exist (a
    worker that died or was replaced in between would lose its CPU time)."""

    def __init__(self, server: Server):
        self.server = server
        self.pids = server.processes()
        self.start = cpu_seconds(self.pids)

    def seconds(self) -> float:
        try:
            used = cpu_seconds(self.pids) - self.start
        except OSError:
            raise ServerError(
                f"{self.server.name}: a process of the server exited during the run:\n"
                f"{self.server.output()}"
            ) from None
        if self.server.processes() != self.pids:
            raise ServerError(f"{self.server.name}'s processes changed during the run")
        return used


def run_tool(
    command: list[str], *, cpu: int | None = None, timeout: float
) -> subprocess.CompletedProcess:
    """Run a load generator (pinned to `cpu`), fail loudly on error or timeout."""
    try:
        result = subprocess.run(
            command,
            cwd=BENCH_DIR,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=child_setup(cpu),
        )
    except subprocess.TimeoutExpired as exc:
        raise ServerError(f"{command[0]} did not finish within {timeout:.0f} s") from exc
    if result.returncode != 0:
        raise ServerError(
            f"{Path(command[0]).name} exited with {result.returncode}: "
            f"{(result.stderr or result.stdout).strip()[-2000:]}"
        )
    return result
