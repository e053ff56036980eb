"""Load generators: h2load for HTTP/1.1 and HTTP/2, and the idle connections
of the memory scenario. (The WebSocket one is ws_load.py, run as a process.)

h2load sends a fixed number of requests and, with --log-file, writes one
line per request with its duration, from which the latency percentiles of
exactly the measured requests are taken: no second, separately timed pass.
"""

from __future__ import annotations

import re
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _harness import HOST, ServerError, run_tool

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(text: str) -> float:
    """'1.52ms' -> 0.00152 (h2load's way of printing durations)."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"unrecognised duration {text!r}")
    return float(match[1]) * _UNITS[match[2]]


@dataclass
class Load:
    requests: int
    seconds: float
    latencies_ms: list[float]  # one per request, in the order h2load logged them


def h2load(
    url: str,
    *,
    requests: int,
    connections: int,
    streams: int = 1,
    http1: bool = True,
    upload: int = 0,
    body_size: int,
    cpu: int | None,
    timeout: float,
) -> Load:
    """`requests` requests over `connections` keep-alive connections from one
    client thread, each connection with `streams` requests in flight (HTTP/2
    streams; HTTP/1.1 sends one at a time). Without `http1`, HTTP/2 over
    cleartext with prior knowledge (h2c), h2load's default for http:// URLs.
    Every response must be a 2xx with a body of `body_size` bytes, or the
    run fails."""
    with tempfile.TemporaryDirectory(prefix="squall-bench-") as scratch:
        log = Path(scratch, "requests.log")
        command = [
            "h2load", "-n", str(requests), "-c", str(connections), "-t", "1",
            "-m", str(streams), "--log-file", str(log),
            # A server that stops answering fails the run instead of hanging it.
            "--connection-inactivity-timeout", "10s",
        ]  # fmt: skip
        if http1:
            command.append("--h1")
        if upload:
            data = Path(scratch, "upload")
            data.write_bytes(b"u" * upload)
            command += ["--data", str(data)]
        output = run_tool([*command, url], cpu=cpu, timeout=timeout).stdout
        finished = re.search(r"finished in ([\d.]+\w+), [\d.]+ req/s", output)
        counts = re.search(
            r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
            r"(\d+) failed, (\d+) errored, (\d+) timeout",
            output,
        )
        status = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", output)
        traffic = re.search(r"\((\d+)\) data", output)
        if not (finished and counts and status and traffic):
            raise ServerError(f"could not parse h2load's output:\n{output}")
        check_responses(counts, status, traffic, body_size, http1)
        total = int(counts[1])
        # Columns: start time (µs since the epoch), status, duration (µs).
        durations = [int(line.split("\t")[2]) / 1e3 for line in log.read_text().splitlines()]
    if len(durations) != total:
        raise ServerError(f"h2load logged {len(durations)} of {total} requests")
    return Load(requests=total, seconds=_seconds(finished[1]), latencies_ms=durations)


def check_responses(
    counts: re.Match, status: re.Match, traffic: re.Match, body_size: int, http1: bool
) -> None:
    """Fail unless every request got a 2xx response with the expected body.

    h2load reads no status code from an HTTP/1.1 status line without a
    reason phrase (Hypercorn sends `HTTP/1.1 200 `) and counts those
    requests as failed although they completed. When it read no status at
    all, the body bytes received, which must add up to exactly one expected
    body per request, are what shows that every response was the right one.
    """
    total, done, errored, timed_out = (int(counts[i]) for i in (1, 2, 5, 6))
    statuses = [int(status[i]) for i in (1, 2, 3, 4)]
    data = int(traffic[1])
    if done < total or errored or timed_out:
        raise ServerError(
            f"{done} of {total} requests completed ({errored} errored, {timed_out} timed out)"
        )
    unreadable = http1 and not any(statuses)
    if statuses[0] < total and not unreadable:
        raise ServerError(
            f"{statuses[0]} of {total} responses were 2xx (3xx: {statuses[1]}, "
            f"4xx: {statuses[2]}, 5xx: {statuses[3]})"
        )
    if data != total * body_size:
        raise ServerError(
            f"the responses carried {data:,} bytes of body, {total * body_size:,} expected"
        )


# --- idle connections --------------------------------------------------------------

_REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


def _one_response(sock: socket.socket) -> None:
    """Read one keep-alive response with a Content-Length (the hello route's)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ServerError("the server closed a connection before answering")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"\r\ncontent-length:\s*(\d+)", head.lower())
    if not head.startswith(b"HTTP/1.1 200") or not length:
        raise ServerError(f"unexpected response: {head[:200]!r}")
    while len(body) < int(length[1]):
        chunk = sock.recv(4096)
        if not chunk:
            raise ServerError("the server closed a connection mid-response")
        body += chunk


class IdleConnections:
    """`count` keep-alive connections that have each made one request and
    then stay silent, opened one after the other; closed on exit."""

    def __init__(self, port: int, count: int, timeout: float):
        self.port, self.count, self.timeout = port, count, timeout
        self.sockets: list[socket.socket] = []

    def __enter__(self) -> IdleConnections:
        deadline = time.monotonic() + self.timeout
        try:
            for _ in range(self.count):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ServerError(
                        f"opened only {len(self.sockets)} of {self.count} "
                        f"connections in {self.timeout:.0f} s"
                    )
                sock = socket.create_connection((HOST, self.port), timeout=remaining)
                self.sockets.append(sock)
                sock.sendall(_REQUEST)
                _one_response(sock)
        except OSError as exc:
            self.close()
            raise ServerError(
                f"connection {len(self.sockets)} of {self.count} failed: {exc}"
            ) from None
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def closed_by_server(self) -> int:
        """How many of the connections the server has closed (or reset)."""
        closed = 0
        for sock in self.sockets:
            sock.setblocking(False)  # a peek that must not wait
            try:
                closed += sock.recv(1, socket.MSG_PEEK) == b""
            except BlockingIOError:
                pass  # open, nothing to read: idle as it should be
            except OSError:
                closed += 1
        return closed

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
