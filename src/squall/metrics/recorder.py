"""The figures a server counts, as plain ints, and snapshots of them.

A `Recorder` hangs off the server's `ServerState` (`server_state.metrics`)
only when metrics are on; the connections then call it once when a request
starts (the rest happens in the request task's done callback) and add body
bytes as they arrive.  With metrics off it is None and costs one attribute
check per request.  Nothing here imports prometheus_client: the figures
are read at scrape time (see `collector.py`), or written to a file for a
supervisor to add up (see `shared.py`).

A `Snapshot` is what a scrape reads: the recorder's figures plus what the
server state knows anyway (its open connections, its event counters).  It
has a JSON form, so that workers can hand theirs to the supervisor.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from squall.protocols.http.stream import ASGIStream
    from squall.server import ServerState

# Upper bounds of the request duration histogram's buckets, in seconds.
DURATION_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP1 = "http/1.1"
HTTP2 = "h2"
WEBSOCKET = "websocket"

# A client chooses the method: any other is counted as "other", so that it
# cannot make up label values without end.
KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"))
STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
# A request whose client left before any response was started.
NO_STATUS = "none"

# Reasons and causes shown (at 0) before anything happened, so that rate() works from the start.
REJECTION_REASONS = ("400", "413", "414", "431", "503", "timeout", "h2_reset")
RESTART_CAUSES = ("exited", "killed", "healthcheck", "max_requests", "reload", "failed_start")

# ServerState event counters (server_state.count) -> the rejection reason they count as.
TIMEOUT_EVENTS = ("timeout_request_header", "timeout_request_body", "timeout_write")
REJECTED_PREFIX = "rejected_"  # rejected_400, rejected_431, rejected_503...
H2_RESET_EVENT = "h2_reset"


def status_class(status: int) -> str:
    return STATUS_CLASSES.get(status // 100, NO_STATUS)


class Recorder:
    """Per-request figures of one server process, counted with plain ints."""

    __slots__ = ("requests", "in_flight", "duration_counts", "duration_sum", "received_h1", "received_h2", "sent", "loop_lag")

    def __init__(self) -> None:
        # (method, status class, protocol) -> requests completed.
        self.requests: dict[tuple[str, str, str], int] = {}
        self.in_flight = 0
        # Per bucket, not cumulative; the last one is +Inf.
        self.duration_counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0
        # Request body bytes, added by the connections as they arrive.
        self.received_h1 = 0
        self.received_h2 = 0
        # Response body bytes per protocol, added when each request ends.
        self.sent = {HTTP1: 0, HTTP2: 0}
        # How late the last probe timer fired, in seconds (see runtime.LoopLagProbe).
        self.loop_lag = 0.0

    def request_started(self, stream: ASGIStream, task: asyncio.Task[None]) -> None:
        """Called by `Connection.start_stream`: the app's task for `stream` has been created."""
        self.in_flight += 1
        # Not the loop's clock: uvloop's counts whole milliseconds.
        started = time.perf_counter()
        task.add_done_callback(lambda _: self._request_finished(stream, started))

    def _request_finished(self, stream: ASGIStream, started: float) -> None:
        self.in_flight -= 1
        duration = time.perf_counter() - started
        self.duration_counts[bisect.bisect_left(DURATION_BUCKETS, duration)] += 1
        self.duration_sum += duration
        scope = stream.scope
        method = scope["method"]
        protocol = HTTP2 if scope["http_version"] == "2" else HTTP1
        key = (method if method in KNOWN_METHODS else "other", status_class(stream.status), protocol)
        self.requests[key] = self.requests.get(key, 0) + 1
        if not stream.is_head:
            self.sent[protocol] += stream.bytes_sent


@dataclass
class Snapshot:
    """Every figure at one moment: counters only grow, gauges are as of now."""

    # Counters.
    requests: dict[tuple[str, str, str], int] = field(default_factory=dict)
    duration_counts: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    duration_sum: float = 0.0
    received: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    # Gauges.
    in_flight: int = 0
    connections: dict[str, int] = field(default_factory=dict)
    loop_lag: float = 0.0

    def add_counters(self, other: Snapshot) -> None:
        """Add `other`'s counters to this one's (a worker's, to the supervisor's total)."""
        for mine, theirs in (
            (self.requests, other.requests),
            (self.received, other.received),
            (self.sent, other.sent),
            (self.rejected, other.rejected),
            (self.restarts, other.restarts),
        ):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value  # type: ignore[index]
        self.duration_counts = [a + b for a, b in zip(self.duration_counts, other.duration_counts)]
        self.duration_sum += other.duration_sum

    def add_gauges(self, other: Snapshot) -> None:
        """Add a live worker's gauges (the loop lag is the worst worker's)."""
        self.in_flight += other.in_flight
        for key, value in other.connections.items():
            self.connections[key] = self.connections.get(key, 0) + value
        self.loop_lag = max(self.loop_lag, other.loop_lag)

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": [[*key, value] for key, value in self.requests.items()],
            "duration_counts": self.duration_counts,
            "duration_sum": self.duration_sum,
            "received": self.received,
            "sent": self.sent,
            "rejected": self.rejected,
            "restarts": self.restarts,
            "in_flight": self.in_flight,
            "connections": self.connections,
            "loop_lag": self.loop_lag,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        return cls(
            requests={(method, klass, protocol): value for method, klass, protocol, value in data["requests"]},
            duration_counts=list(data["duration_counts"]),
            duration_sum=float(data["duration_sum"]),
            received=dict(data["received"]),
            sent=dict(data["sent"]),
            rejected=dict(data["rejected"]),
            restarts=dict(data["restarts"]),
            in_flight=int(data["in_flight"]),
            connections=dict(data["connections"]),
            loop_lag=float(data["loop_lag"]),
        )


def rejections(events: Iterable[tuple[str, int]]) -> dict[str, int]:
    """The server state's event counters, as rejection reasons."""
    reasons = dict.fromkeys(REJECTION_REASONS, 0)
    for event, count in events:
        if event.startswith(REJECTED_PREFIX):
            reason = event[len(REJECTED_PREFIX):]
        elif event in TIMEOUT_EVENTS:
            reason = "timeout"
        elif event == H2_RESET_EVENT:
            reason = H2_RESET_EVENT
        else:
            continue
        reasons[reason] = reasons.get(reason, 0) + count
    return reasons


def count_connections(connections: Iterable[Any]) -> dict[str, int]:
    """The server state's open connections by what they serve, for the open connections gauge."""
    from squall.protocols.http.connection import Connection
    from squall.protocols.http.h1_connection import H1Connection
    from squall.protocols.websockets.asgi import WebSocketProtocol

    counts = {HTTP1: 0, HTTP2: 0, WEBSOCKET: 0}
    for connection in connections:
        if isinstance(connection, H1Connection):
            counts[HTTP1] += 1
        elif isinstance(connection, WebSocketProtocol):
            counts[WEBSOCKET] += 1
        elif isinstance(connection, Connection):
            counts[HTTP2] += 1  # the only other kind of HTTP connection
    return counts


def take_snapshot(recorder: Recorder, state: ServerState) -> Snapshot:
    """The server's figures now (read in the server's event loop)."""
    return Snapshot(
        requests=dict(recorder.requests),
        duration_counts=list(recorder.duration_counts),
        duration_sum=recorder.duration_sum,
        received={HTTP1: recorder.received_h1, HTTP2: recorder.received_h2},
        sent=dict(recorder.sent),
        rejected=rejections(state.counters.items()),
        in_flight=recorder.in_flight,
        connections=count_connections(list(state.connections)),
        loop_lag=recorder.loop_lag,
    )
