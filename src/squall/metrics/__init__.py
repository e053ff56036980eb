"""Prometheus metrics and health probes (`--metrics-port`, `--metrics-host`).

- `recorder`: the figures a server counts with plain ints, and snapshots of them;
- `collector`: the prometheus_client collector that reads a snapshot at scrape time;
- `endpoint`: the metrics socket (`/metrics`, `/healthz`, `/readyz`);
- `runtime`: what one server process runs (the loop lag probe, its endpoint or its export);
- `shared`, `supervisor`: the sum over workers under --workers.

docs/deployment.md lists the metrics, their labels, and the Kubernetes probes.
prometheus_client is only imported where the exposition is served.
"""
