"""The metrics socket: a tiny HTTP/1.1 responder of its own, apart from the app's.

It answers three paths, one request per connection:

- `/metrics`: the Prometheus text exposition (prometheus_client's `generate_latest`);
- `/healthz`: 200 while the process runs (a liveness probe);
- `/readyz`: 200 while serving, 503 from the moment a graceful shutdown or a
  drain begins (a readiness probe: the load balancer stops sending traffic
  while the requests in flight finish).

It runs in an event loop: the server's own, or a thread's in the supervisor.
Every read is bounded in size and time.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from squall.sockets import format_host_port

logger = logging.getLogger("squall.error")

# A probe's or a scraper's request head is a few hundred bytes.
MAX_HEAD = 8192
HEAD_TIMEOUT = 5.0
WRITE_TIMEOUT = 10.0


def bind_metrics_socket(host: str, port: int) -> socket.socket:
    """Bind and listen on the metrics address; OSError if it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def metrics_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{format_host_port(host, port)}/metrics"


class MetricsEndpoint:
    """Serves `registry` and the probes on a bound socket, in the running event loop."""

    def __init__(self, registry: CollectorRegistry, ready: Callable[[], bool]) -> None:
        self.registry = registry
        self.ready = ready
        self._server: asyncio.AbstractServer | None = None

    async def start(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_server(self._handle, sock=sock, limit=MAX_HEAD)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
                return
            try:
                response = self._respond(head)
            except Exception:
                logger.exception("The metrics endpoint failed to answer")
                response = _response(500, b"text/plain; charset=utf-8", b"Internal Server Error\n")
            writer.write(response)
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
        except (ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()

    def _respond(self, head: bytes) -> bytes:
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return _response(400, b"text/plain; charset=utf-8", b"Bad Request\n")
        method, target = parts[0], parts[1]
        if method not in (b"GET", b"HEAD"):
            return _response(405, b"text/plain; charset=utf-8", b"Method Not Allowed\n", [b"allow: GET, HEAD"])
        path = target.split(b"?", 1)[0]
        if path == b"/metrics":
            status, kind, body = 200, CONTENT_TYPE_LATEST.encode(), generate_latest(self.registry)
        elif path == b"/healthz":
            status, kind, body = 200, b"text/plain; charset=utf-8", b"ok\n"
        elif path == b"/readyz":
            if self.ready():
                status, kind, body = 200, b"text/plain; charset=utf-8", b"ready\n"
            else:
                status, kind, body = 503, b"text/plain; charset=utf-8", b"shutting down\n"
        else:
            status, kind, body = 404, b"text/plain; charset=utf-8", b"Not Found: try /metrics, /healthz or /readyz\n"
        return _response(status, kind, body, head_only=method == b"HEAD")


_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


def _response(status: int, kind: bytes, body: bytes, extra: list[bytes] | None = None, head_only: bool = False) -> bytes:
    lines = [
        b"HTTP/1.1 %d %s" % (status, _REASONS[status]),
        b"content-type: " + kind,
        b"content-length: %d" % len(body),
        b"cache-control: no-store",
        b"connection: close",
        *(extra or []),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if head_only else body)
