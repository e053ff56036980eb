"""Squall under Gunicorn: `gunicorn -k squall.workers.SquallWorker` (and the h11 worker).

Real Gunicorn arbiters with real workers and signals, plus a check of how
Gunicorn's settings become Squall's.
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import trustme
from gunicorn.config import Config as GunicornConfig
from gunicorn.glogging import Logger
from support import LoggedProcess
from websockets.sync.client import connect
from supervisors.supervised import NO_BYTECODE, Load, is_running, parse_answer, wait_until

from squall.config import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from squall.workers import SquallH11Worker, SquallWorker

START_TIMEOUT = 20.0

GUNICORN_APP = '''
import os

VERSION = "%s"


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": f"{os.getpid()} {message['text']}"})
        await send({"type": "websocket.close", "code": 1000})
        return
    body = f"{os.getpid()} {VERSION}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%%d" %% len(body))]})
    await send({"type": "http.response.body", "body": body})
'''


def _has_setting(name: str) -> bool:
    return name in GunicornConfig().settings


class Gunicorn(LoggedProcess):
    """A Gunicorn arbiter in a subprocess."""

    timeout = START_TIMEOUT

    def __init__(self, *args: str, cwd: Path) -> None:
        extra = ["--no-control-socket"] if _has_setting("control_socket_disable") else []
        super().__init__([sys.executable, "-m", "gunicorn", *extra, *args], cwd=cwd, env=NO_BYTECODE)

    def wait_started(self, workers: int) -> int:
        port = int(self.wait_for_log(r"Listening at: https?://127\.0\.0\.1:(\d+)").group(1))
        self.wait_for_matches(r"Application startup complete", count=workers)
        return port

    def stop(self) -> int:
        self.signal(signal.SIGTERM)
        return self.wait()


@contextmanager
def gunicorn_serving(tmp_path: Path, *args: str, workers: int = 2) -> Iterator[tuple[Gunicorn, int]]:
    (tmp_path / "gapp.py").write_text(GUNICORN_APP % "1")
    server = Gunicorn("--bind", "127.0.0.1:0", "--workers", str(workers), *args, "gapp:app", cwd=tmp_path)
    try:
        yield server, server.wait_started(workers)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(START_TIMEOUT)


def test_squall_worker_serves_http(tmp_path: Path) -> None:
    with gunicorn_serving(tmp_path, "--worker-class", "squall.workers.SquallWorker") as (server, port):
        response = httpx.get(f"http://127.0.0.1:{port}/", timeout=5.0)
        assert response.status_code == 200 and response.headers["server"] == "squall"
        assert parse_answer(response.text)[1] == "1"
        assert server.stop() == 0
        assert "Traceback" not in server.output


def test_squall_worker_serves_websocket(tmp_path: Path) -> None:
    with gunicorn_serving(tmp_path, "--worker-class", "squall.workers.SquallWorker", workers=1) as (server, port):
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=5.0) as websocket:
            websocket.send("hello")
            worker_pid, text = str(websocket.recv(timeout=5.0)).split()
        assert text == "hello" and int(worker_pid) != server.proc.pid
        assert server.stop() == 0


def test_sighup_to_gunicorn_reloads_the_app_without_a_failed_request(tmp_path: Path) -> None:
    with gunicorn_serving(tmp_path, "--worker-class", "squall.workers.SquallWorker") as (server, port):
        old = {int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", server.output)}
        assert len(old) == 2, server.output
        with Load(f"http://127.0.0.1:{port}/", requests=600, threads=6, pace=0.03) as load:
            wait_until(lambda: load.answered() >= 60, what="the load to get going")
            (tmp_path / "gapp.py").write_text(GUNICORN_APP % "2")
            server.proc.send_signal(signal.SIGHUP)
            server.wait_for_matches(r"Application startup complete", count=4)  # two new workers
        assert load.result.failures == []

        def new_version_only() -> bool:
            answers = {parse_answer(httpx.get(f"http://127.0.0.1:{port}/", timeout=5.0).text) for _ in range(6)}
            return all(version == "2" and pid not in old for pid, version in answers)

        wait_until(new_version_only, what="only reloaded workers to answer")
        assert server.stop() == 0


def test_gunicorn_reload_option_restarts_the_worker_on_a_change(tmp_path: Path) -> None:
    with gunicorn_serving(tmp_path, "-k", "squall.workers.SquallWorker", "--reload", workers=1) as (server, port):
        (tmp_path / "gapp.py").write_text(GUNICORN_APP % "2")

        def version() -> str | None:
            try:
                return parse_answer(httpx.get(f"http://127.0.0.1:{port}/", timeout=2.0).text)[1]
            except httpx.HTTPError:
                return None

        wait_until(lambda: version() == "2", what="the reloaded app")
        assert server.stop() == 0


def test_workers_do_not_outlive_a_killed_arbiter(tmp_path: Path) -> None:
    with gunicorn_serving(tmp_path, "-k", "squall.workers.SquallWorker") as (server, _):
        workers = [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", server.output)]
        assert len(workers) == 2, server.output
        assert all(is_running(pid) for pid in workers)
        server.proc.kill()
        server.proc.wait(START_TIMEOUT)
        for pid in workers:
            wait_until(lambda pid=pid: not is_running(pid), what=f"worker {pid} to exit")


def test_squall_h11_worker_serves_with_gunicorns_request_limits(tmp_path: Path) -> None:
    limits = ["--limit-request-line", "100", "--limit-request-fields", "5", "--limit-request-field_size", "200"]
    with gunicorn_serving(tmp_path, "--worker-class", "squall.workers.SquallH11Worker", *limits, workers=1) as (server, port):
        response = httpx.get(f"http://127.0.0.1:{port}/", timeout=5.0)
        assert response.status_code == 200 and parse_answer(response.text)[1] == "1"
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(url + "/" + "a" * 100, timeout=5.0).status_code == 414
        assert httpx.get(url, headers={f"x-{n}": "v" for n in range(5)}, timeout=5.0).status_code == 431
        assert httpx.get(url, headers={"x-long": "v" * 200}, timeout=5.0).status_code == 431
        assert server.stop() == 0


def test_squall_worker_serves_tls_from_gunicorn_settings(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    tls = ["--certfile", str(tmp_path / "server.pem"), "--keyfile", str(tmp_path / "server.pem")]
    with gunicorn_serving(tmp_path, "--worker-class", "squall.workers.SquallWorker", *tls, workers=1) as (server, port):
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        response = httpx.get(f"https://127.0.0.1:{port}/", verify=context, timeout=5.0)
        assert response.status_code == 200
        assert server.stop() == 0


def make_worker(worker_class: type[SquallWorker], **settings: Any) -> SquallWorker:
    cfg = GunicornConfig()
    for name, value in settings.items():
        cfg.set(name, value)
    # The arbiter hands its workers half of --timeout.
    return worker_class(1, os.getpid(), [], None, cfg.timeout / 2, cfg, Logger(cfg))


def test_gunicorn_settings_become_squall_settings(tmp_path: Path) -> None:
    worker = make_worker(
        SquallWorker,
        keepalive=7,
        graceful_timeout=12,
        timeout=40,
        max_requests=1000,
        max_requests_jitter=50,
        backlog=64,
        limit_request_line=8000,
        limit_request_fields=50,
        limit_request_field_size=16000,
        forwarded_allow_ips="10.0.0.1",
        certfile=str(tmp_path / "cert.pem"),
        keyfile=str(tmp_path / "key.pem"),
        ca_certs=str(tmp_path / "ca.pem"),
        cert_reqs=ssl.CERT_REQUIRED,
        ciphers="ECDHE+AESGCM",
    )
    config = worker.config
    assert (config.loop, config.http) == ("auto", "auto")
    assert config.timeout_keep_alive == 7
    assert config.timeout_graceful_shutdown == 12
    assert config.callback_notify is not None and worker.timeout == 20  # notified every 20 s
    assert config.limit_max_requests is not None and 1000 <= config.limit_max_requests <= 1050
    assert config.backlog == 64
    assert config.h11_max_incomplete_event_size == 24000
    assert (config.limit_request_line, config.limit_request_fields, config.limit_request_field_size) == (8000, 50, 16000)
    assert config.forwarded_allow_ips == ["10.0.0.1"]
    assert (config.ssl_certfile, config.ssl_keyfile, config.ssl_ca_certs) == (
        str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"), str(tmp_path / "ca.pem"),
    )
    assert (config.ssl_cert_reqs, config.ssl_ciphers) == (ssl.CERT_REQUIRED, "ECDHE+AESGCM")
    assert config.workers == 1


def test_gunicorn_defaults_keep_squall_limits() -> None:
    config = make_worker(SquallH11Worker).config
    assert (config.loop, config.http) == ("asyncio", "h11")
    assert config.limit_max_requests is None
    assert config.h11_max_incomplete_event_size == DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
    assert (config.limit_request_line, config.limit_request_fields, config.limit_request_field_size) == (4094, 100, 8190)
    assert config.ssl_certfile is None


def test_a_worker_that_cannot_boot_stops_gunicorn(tmp_path: Path) -> None:
    """A failed startup exits with Gunicorn's boot-error status: the arbiter stops instead of respawning forever."""
    (tmp_path / "gapp.py").write_text(
        "async def app(scope, receive, send):\n"
        "    await receive()\n"
        "    await send({'type': 'lifespan.startup.failed', 'message': 'no database'})\n"
    )
    server = Gunicorn("--bind", "127.0.0.1:0", "-k", "squall.workers.SquallWorker", "gapp:app", cwd=tmp_path)
    try:
        code = server.proc.wait(START_TIMEOUT)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    server._reader.join(START_TIMEOUT)
    assert code == 3  # Gunicorn's WORKER_BOOT_ERROR
    assert "no database" in server.output
