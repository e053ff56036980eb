"""The scenarios: what load each one puts on which servers, and how much.

Counts are fixed per scenario, the same for every server, so that the CPU
time per request compares the same work; `--scale` multiplies them all
(the smoke test in `make test` runs with tiny ones). They are as large as
three rounds of everything allow within 15 minutes on two cores, where the
slowest servers (Hypercorn, the pure-Python stacks) take most of the time.

To add a scenario, add a route to app.py (and the same bytes to
ceiling.py's RESPONSES if the ceiling can serve it) and a Scenario below.
The planned "1 MiB file" comparison is one: a route answering with the ASGI
`http.response.pathsend` extension where the server offers it in
`scope["extensions"]`, a second route sending the same file's bytes from
Python, and two `Scenario(kind="http1", ...)` entries for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import app
from servers import SERVERS

ALL = tuple(SERVERS)  # every server, the ceiling and the ASGI floor included
# The ASGI floor (asgi_floor.py) serves plain HTTP/1.1 requests only, and has no logging.
NO_FLOOR = tuple(server for server in SERVERS if server != "floor")

UPLOAD = 4096  # bytes POSTed to /upload, which answers with their count

Kind = Literal["http1", "http2", "websocket", "idle"]


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str  # short, for the chart and sentences
    title: str  # for table headings
    kind: Kind
    count: int  # requests (http1, http2), messages (websocket) or connections (idle)
    servers: tuple[str, ...]
    path: str = "/"
    body_size: int = len(app.HELLO)  # bytes of each response's body
    connections: int = 64
    streams: int = 1  # concurrent requests per connection (HTTP/2 streams)
    upload: int = 0  # bytes POSTed with each request
    quiet: bool = True  # False: the servers' default logging, to a file
    workers: int | None = None
    keep_alive: int | None = None  # seconds, for servers that must hold idle connections
    compare_to: str | None = None  # also show each server's ratio to this scenario

    def scaled(self, scale: float) -> int:
        """The count times `scale`, never fewer than one per connection."""
        minimum = 1 if self.kind == "idle" else self.connections
        return max(minimum, round(self.count * scale))


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("hello", "hello", "Plaintext hello", "http1", 30_000, ALL),
        Scenario(
            "json", "JSON", "JSON built per request (~100 bytes)", "http1", 30_000, ALL,
            path="/json", body_size=len(app.json_document("GET", "/json")),
        ),
        Scenario(
            "upload", "4 KiB POST", "POST of 4 KiB, read in full", "http1", 30_000, ALL,
            path="/upload", upload=UPLOAD, body_size=len(str(UPLOAD)),
        ),
        Scenario(
            "stream", "streaming", "Streaming response, 16 chunks of 1 KiB", "http1", 10_000, ALL,
            path="/stream", body_size=len(app.STREAM_CHUNK) * app.STREAM_CHUNKS,
        ),
        Scenario(
            "mib", "1 MiB response", "1 MiB response", "http1", 1_000, ALL,
            path="/1mib", body_size=len(app.MIB),
        ),
        Scenario(
            "logged", "default logging", "Hello, default logging to a file", "http1", 30_000, NO_FLOOR,
            quiet=False, compare_to="hello",
        ),
        Scenario(
            "websocket", "WebSocket echo", "WebSocket echo, 32-byte messages, default --ws",
            "websocket", 30_000, NO_FLOOR,
        ),
        Scenario(
            "workers", "--workers 2", "Hello, --workers 2 (all processes)", "http1", 30_000,
            ("squall", "uvicorn", "granian", "h2corn", "hypercorn"),
            workers=2, compare_to="hello",
        ),
        Scenario(
            "http2", "HTTP/2", "HTTP/2 hello, h2c, 8 connections x 16 streams", "http2", 50_000,
            ("squall", "granian", "h2corn", "hypercorn"),
            connections=8, streams=16, compare_to="hello",
        ),
        Scenario(
            "idle", "idle connections", "Memory per idle keep-alive connection", "idle", 2_000,
            ("squall", "squall-pure", "uvicorn", "uvicorn-h11"), keep_alive=120,
        ),
    )
}  # fmt: skip
