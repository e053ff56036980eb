"""--metrics-port: Prometheus metrics, /healthz and /readyz, scraped from a real server while traffic flows.

Each test reads the counters before and after sending known traffic, over
real sockets (httpx, raw sockets, an HTTP/2 client, a WebSocket client),
and checks that they moved by exactly that traffic.  Under --workers, the
supervisor's figures are the sum over the workers.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.sync.client
from prometheus_client.parser import text_string_to_metric_families
from support import SquallProcess, recv_all, recv_until, run_squall, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent / "protocols" / "http2"))
from h2_client import H2Client  # noqa: E402

METRICS_RE = r"Metrics on http://127\.0\.0\.1:(\d+)/metrics"
APP = "test_metrics:app"

# -- the app --------------------------------------------------------------------------------


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("the client left")
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def respond(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text") or ""})
    path = scope["path"]
    if path == "/echo":
        await respond(send, 201, b"echo:" + await read_body(receive))
    elif path == "/hold":
        # Answers once the whole body is in: the test decides when by sending its end.
        await respond(send, 200, b"held:" + await read_body(receive))
    elif path == "/missing":
        await respond(send, 404, b"nope")
    elif path == "/fail":
        raise RuntimeError("this request fails on purpose")
    elif path == "/pid":
        await respond(send, 200, str(os.getpid()).encode())
    else:
        await respond(send, 200, b"hello")


# -- helpers ----------------------------------------------------------------------------------

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def request_count(samples: Samples, protocol: str) -> dict[tuple[str, str], float]:
    """squall_requests_total for one protocol, by (method, status class)."""
    counts: dict[tuple[str, str], float] = {}
    for (name, labels), count in samples.items():
        found = dict(labels)
        if name == "squall_requests_total" and found["protocol"] == protocol:
            counts[(found["method"], found["status_class"])] = count
    return counts


def moved(before: Samples, after: Samples) -> Samples:
    """What changed between two scrapes (counters' increases, gauges' changes)."""
    return {key: after.get(key, 0.0) - before.get(key, 0.0) for key in set(before) | set(after) if after.get(key, 0.0) != before.get(key, 0.0)}


def raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        return recv_all(sock)


@pytest.fixture
def metrics_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="squall.error")
    yield caplog


def metrics_port_in(caplog: pytest.LogCaptureFixture) -> int:
    match = wait_until(lambda: re.search(METRICS_RE, caplog.text), 5, "the metrics line")
    return int(match.group(1))


# -- one server, in this process -------------------------------------------------------------


def test_http1_counters_move_by_exactly_the_traffic_sent(serve: Any, metrics_log: pytest.LogCaptureFixture) -> None:
    options = dict(metrics_port=0, limit_request_field_size=200, limit_request_body=2000)
    with serve(app, **options) as server:
        port = metrics_port_in(metrics_log)
        before = scrape(port)

        body = b"x" * 1000
        with httpx.Client(base_url=server.url, timeout=5.0) as client:
            assert [client.get("/").status_code for _ in range(3)] == [200, 200, 200]
            assert [client.post("/echo", content=body).status_code for _ in range(2)] == [201, 201]
            assert client.get("/missing").status_code == 404
            assert client.get("/fail").status_code == 500
        sent_bytes = 3 * len(b"hello") + 2 * len(b"echo:" + body) + len(b"nope")

        # Rejected before the app, by raw socket: one of each.
        rejected = {
            "431": b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"y" * 300 + b"\r\n\r\n",
            "414": b"GET /" + b"z" * 5000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
            "413": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n",
            "400": b"NOT AN HTTP REQUEST\r\n\r\n",
        }
        for status, request in rejected.items():
            assert raw_exchange(server.port, request).startswith(b"HTTP/1.1 " + status.encode()), status

        expected = {
            ("GET", "2xx"): 3,
            ("POST", "2xx"): 2,
            ("GET", "4xx"): 1,
            ("GET", "5xx"): 1,
        }

        def counted() -> Samples | None:
            after = scrape(port)
            changes = request_count(moved(before, after), "http/1.1")
            return after if changes == expected else None

        after = wait_until(counted, 5, "the requests to be counted")
        change = moved(before, after)
        assert value(change, "squall_request_duration_seconds_count") == 7
        assert value(change, "squall_request_duration_seconds_bucket", le="+Inf") == 7
        assert value(change, "squall_request_body_bytes_total", protocol="http/1.1") == 2 * len(body)
        assert value(change, "squall_response_body_bytes_total", protocol="http/1.1") == sent_bytes
        assert value(change, "squall_request_body_bytes_total", protocol="h2") == 0
        for reason in rejected:
            assert value(change, "squall_rejected_requests_total", reason=reason) == 1, reason
        assert value(after, "squall_rejected_requests_total", reason="timeout") == 0
        assert value(after, "squall_requests_in_flight") == 0


def test_in_flight_and_open_connections(metrics_log: pytest.LogCaptureFixture) -> None:
    from support import running_server

    with running_server(app, metrics_port=0, ws="websockets") as server:
        port = metrics_port_in(metrics_log)
        assert value(scrape(port), "squall_connections_open", protocol="http/1.1") == 0
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as held:
            held.sendall(b"POST /hold HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab")
            wait_until(lambda: value(scrape(port), "squall_requests_in_flight") == 1, 5, "one request in flight")
            samples = scrape(port)
            assert value(samples, "squall_connections_open", protocol="http/1.1") == 1
            with websockets.sync.client.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
                ws.send("hi")
                assert ws.recv(timeout=5) == "hi"
                samples = scrape(port)
                assert value(samples, "squall_connections_open", protocol="websocket") == 1
                assert value(samples, "squall_connections_open", protocol="http/1.1") == 1
            wait_until(lambda: value(scrape(port), "squall_connections_open", protocol="websocket") == 0, 5, "the WebSocket to close")
            held.sendall(b"cd")
            response = recv_until(held, b"\r\n0\r\n\r\n")
            assert response.startswith(b"HTTP/1.1 200 ") and b"\r\n9\r\nheld:abcd\r\n" in response, response
        wait_until(lambda: value(scrape(port), "squall_requests_in_flight") == 0, 5, "no request in flight")
        wait_until(lambda: value(scrape(port), "squall_connections_open", protocol="http/1.1") == 0, 5, "the connection to close")
        # The WebSocket session is a connection, not an HTTP request.
        assert request_count(scrape(port), "http/1.1") == {("POST", "2xx"): 1}


def test_http2_requests_bytes_and_resets(metrics_log: pytest.LogCaptureFixture) -> None:
    from support import running_server

    with running_server(app, metrics_port=0, http2=True) as server:
        port = metrics_port_in(metrics_log)
        before = scrape(port)
        with H2Client.connect(server.port) as client:
            assert client.get("/").status == 200
            assert client.get("/missing").status == 404
            stream = client.request("POST", "/echo", body=b"b" * 300)
            assert client.response(stream).body == b"echo:" + b"b" * 300
            assert value(scrape(port), "squall_connections_open", protocol="h2") == 1
            held = client.request("POST", "/hold", end_stream=False)
            wait_until(lambda: value(scrape(port), "squall_requests_in_flight") == 1, 5, "the held request to start")
            client.reset(held)

            def counted() -> Samples | None:
                after = scrape(port)
                changes = request_count(moved(before, after), "h2")
                return after if changes.get(("POST", "none")) == 1 else None

            after = wait_until(counted, 5, "the reset request to end")
        change = moved(before, after)
        assert request_count(change, "h2") == {("GET", "2xx"): 1, ("GET", "4xx"): 1, ("POST", "2xx"): 1, ("POST", "none"): 1}
        assert value(change, "squall_rejected_requests_total", reason="h2_reset") == 1
        assert value(change, "squall_request_body_bytes_total", protocol="h2") == 300
        assert value(change, "squall_response_body_bytes_total", protocol="h2") == len(b"hello") + len(b"nope") + 305
        assert value(change, "squall_request_body_bytes_total", protocol="http/1.1") == 0
        wait_until(lambda: value(scrape(port), "squall_connections_open", protocol="h2") == 0, 5, "the connection to close")


def test_probes_and_other_paths(metrics_log: pytest.LogCaptureFixture) -> None:
    from support import running_server

    with running_server(app, metrics_port=0) as server:
        port = metrics_port_in(metrics_log)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(base + "/healthz").status_code == 200
        assert httpx.get(base + "/readyz").text == "ready\n"
        assert httpx.get(base + "/other").status_code == 404
        assert httpx.post(base + "/metrics").status_code == 405
        head = httpx.head(base + "/metrics")
        assert head.status_code == 200 and head.content == b""
        lag = value(scrape(port), "squall_event_loop_lag_seconds")
        assert 0 <= lag < 1
        # The metrics socket's own requests are not the app's traffic.
        assert request_count(scrape(port), "http/1.1") == {}
        server.server.server_state.draining = True  # what a worker's drain sets
        assert httpx.get(base + "/readyz").status_code == 503
        assert httpx.get(base + "/healthz").status_code == 200


# -- the squall command ----------------------------------------------------------------------


def test_readyz_turns_503_on_sigterm_while_the_request_in_flight_completes() -> None:
    with SquallProcess(APP, "--port", "0", "--metrics-port", "0", "--lifespan", "off") as proc:
        port = proc.wait_started()
        assert port is not None
        metrics = int(proc.wait_for_log(METRICS_RE).group(1))
        base = f"http://127.0.0.1:{metrics}"
        assert httpx.get(base + "/readyz").status_code == 200
        with socket.create_connection(("127.0.0.1", port), timeout=5) as held:
            held.sendall(b"POST /hold HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab")
            wait_until(lambda: value(scrape(metrics), "squall_requests_in_flight") == 1, 5, "the request to reach the app")
            proc.signal(signal.SIGTERM)
            wait_until(lambda: httpx.get(base + "/readyz").status_code == 503, 2, "/readyz to say 503")
            assert httpx.get(base + "/healthz").status_code == 200  # still alive, finishing its requests
            held.sendall(b"cd")
            response = recv_all(held)
        assert response.startswith(b"HTTP/1.1 200 ") and response.endswith(b"\r\n9\r\nheld:abcd\r\n0\r\n\r\n"), response
        assert proc.wait() == 0


def test_workers_sum_and_restarts() -> None:
    with SquallProcess(APP, "--port", "0", "--metrics-port", "0", "--workers", "2", "--lifespan", "off") as proc:
        port = proc.wait_started()
        assert port is not None
        metrics = int(proc.wait_for_log(METRICS_RE).group(1))
        proc.wait_for_matches(r"Worker \d \[\d+\] is serving", 2)
        base = f"http://127.0.0.1:{metrics}"
        assert httpx.get(base + "/readyz").status_code == 200

        # Fresh connections until both workers have answered some.
        pids: dict[str, int] = {}
        sent = 0
        while len(pids) < 2 and sent < 500:
            with httpx.Client(timeout=5.0) as client:
                pid = client.get(f"http://127.0.0.1:{port}/pid").text
            pids[pid] = pids.get(pid, 0) + 1
            sent += 1
        assert len(pids) == 2, f"one worker answered all {sent} requests"

        def total() -> float:
            return value(scrape(metrics), "squall_requests_total", method="GET", status_class="2xx", protocol="http/1.1")

        wait_until(lambda: total() == sent, 5, f"the sum over workers to reach {sent}")
        samples = scrape(metrics)
        assert value(samples, "squall_response_body_bytes_total", protocol="http/1.1") == sum(len(pid) * n for pid, n in pids.items())
        assert value(samples, "squall_worker_restarts_total", cause="killed") == 0

        victim = int(next(iter(pids)))
        os.kill(victim, signal.SIGKILL)
        proc.wait_for_log(rf"\[{victim}\] was killed by SIGKILL; replaced by \[\d+\]")
        wait_until(lambda: value(scrape(metrics), "squall_worker_restarts_total", cause="killed") == 1, 5, "the restart to be counted")
        # The killed worker's requests still count: counters never go down.
        assert total() == sent
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (["--metrics-port", "70000"], {}, "--metrics-port must be between 0 and 65535, not 70000"),
        (["--metrics-port", "0"], {"HIDE_PROMETHEUS": "1"}, "--metrics-port needs prometheus-client: pip install 'squall[standard]'"),
    ],
)
def test_metrics_port_mistakes_are_one_line(tmp_path: Path, args: list[str], env: dict[str, str], line: str) -> None:
    # A sitecustomize that makes prometheus_client look absent, when asked to.
    (tmp_path / "sitecustomize.py").write_text(
        "import os, sys\nif os.environ.get('HIDE_PROMETHEUS'):\n    sys.modules['prometheus_client'] = None\n"
    )
    tests_dir = str(Path(__file__).resolve().parent)
    result = run_squall(APP, "--port", "0", *args, env={**env, "PYTHONPATH": os.pathsep.join([str(tmp_path), tests_dir])})
    assert result.returncode == 3, result.stderr
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert lines == [f"ERROR:    {line}"]


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["single", "workers"])
def test_metrics_port_taken_fails_startup(workers: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        tests_dir = str(Path(__file__).resolve().parent)
        result = run_squall(APP, "--app-dir", tests_dir, "--port", "0", "--metrics-port", str(busy), "--lifespan", "off", *workers)
    output = result.stderr + result.stdout
    assert result.returncode == 3, output
    assert re.search(rf"^ERROR: +Could not listen for metrics on 127\.0\.0\.1:{busy}: .+$", output, re.MULTILINE), output
    assert "Traceback" not in output
    # Nothing was served: no worker started, nothing listened for the app.
    assert "Squall running on" not in output and "Started worker" not in output


def test_nothing_is_counted_when_metrics_are_off() -> None:
    from support import running_server

    with running_server(app) as server:
        assert server.server.server_state.metrics is None
        assert httpx.get(server.url + "/").status_code == 200
