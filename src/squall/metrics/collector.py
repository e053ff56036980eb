"""The Prometheus side: a custom collector that turns a `Snapshot` into metric families.

The figures are read when Prometheus scrapes, never pushed per request: the
hot path only adds to plain ints (see `recorder.py`).  The exposition
format is prometheus_client's (`generate_latest`), never written by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from squall.metrics.recorder import DURATION_BUCKETS, HTTP1, HTTP2, WEBSOCKET, Snapshot

PREFIX = "squall_"


class SnapshotCollector(Collector):
    """Collects whatever snapshot `source` returns at scrape time."""

    def __init__(self, source: Callable[[], Snapshot], *, supervised: bool = False) -> None:
        self.source = source
        # Worker restarts only exist under a supervisor (--workers).
        self.supervised = supervised

    def collect(self) -> Iterator[Metric]:
        snap = self.source()

        requests = CounterMetricFamily(
            PREFIX + "requests", "HTTP requests completed, by method, status class and protocol.",
            labels=["method", "status_class", "protocol"],
        )
        for (method, klass, protocol), value in sorted(snap.requests.items()):
            requests.add_metric([method, klass, protocol], value)
        yield requests

        yield GaugeMetricFamily(PREFIX + "requests_in_flight", "HTTP requests whose app is running.", value=snap.in_flight)

        connections = GaugeMetricFamily(PREFIX + "connections_open", "Open connections, by protocol.", labels=["protocol"])
        for protocol in (HTTP1, HTTP2, WEBSOCKET):
            connections.add_metric([protocol], snap.connections.get(protocol, 0))
        yield connections

        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip((*map(str, DURATION_BUCKETS), "+Inf"), snap.duration_counts):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            PREFIX + "request_duration_seconds", "Time from a request's start to its app's return, in seconds.",
            buckets=buckets, sum_value=snap.duration_sum,
        )

        for name, doc, values in (
            ("request_body_bytes", "Request body bytes received, by protocol.", snap.received),
            ("response_body_bytes", "Response body bytes sent, by protocol.", snap.sent),
        ):
            family = CounterMetricFamily(PREFIX + name, doc, labels=["protocol"])
            for protocol in (HTTP1, HTTP2):
                family.add_metric([protocol], values.get(protocol, 0))
            yield family

        rejected = CounterMetricFamily(
            PREFIX + "rejected_requests", "Requests refused before or instead of the app, by reason.", labels=["reason"]
        )
        for reason, value in sorted(snap.rejected.items()):
            rejected.add_metric([reason], value)
        yield rejected

        if self.supervised:
            restarts = CounterMetricFamily(PREFIX + "worker_restarts", "Worker processes replaced, by cause.", labels=["cause"])
            for cause, value in sorted(snap.restarts.items()):
                restarts.add_metric([cause], value)
            yield restarts

        yield GaugeMetricFamily(
            PREFIX + "event_loop_lag_seconds",
            "How late the last periodic probe timer ran (the worst worker's, under --workers).",
            value=snap.loop_lag,
        )


def make_registry(source: Callable[[], Snapshot], *, supervised: bool = False) -> CollectorRegistry:
    """A registry of Squall's metrics only (not prometheus_client's default process collectors)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(source, supervised=supervised))
    return registry
