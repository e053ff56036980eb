"""Stopping, as an operator does it: Ctrl+C (SIGINT to the whole process
group, as a terminal sends it), twice, under `timeout`, and what is left
behind.  Every test runs real processes and sends real signals."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from support import LoggedProcess, SquallProcess, wait_past_duplicate_window

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")

# Its shutdown takes a moment (a pool being closed, say), and says when it has run.
LIFESPAN_APP = '''
import asyncio
import os


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await asyncio.sleep(0.2)
                print(f"lifespan shutdown ran in {os.getpid()}", flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/slow":
        print(f"slow request in {os.getpid()}", flush=True)
        await asyncio.sleep(60)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
'''

SERVING = r"Worker \d+ \[(\d+)\] is serving"


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "lifeapp.py").write_text(LIFESPAN_APP)
    return tmp_path


def assert_stopped_cleanly(output: str, worker_pids: list[int]) -> None:
    for pid in worker_pids:
        assert f"lifespan shutdown ran in {pid}" in output, output
    for sign in ("Traceback", "CancelledError", "ERROR"):
        assert sign not in output, output


def test_ctrl_c_with_workers_runs_every_workers_lifespan_shutdown_every_time(app_dir: Path) -> None:
    """Each worker gets the terminal's SIGINT and the supervisor's SIGTERM, in either order."""
    for run in range(10):
        args = ["lifeapp:app", "--port", "0", "--workers", "2", "--no-access-log"]
        with SquallProcess(*args, cwd=app_dir, new_session=True) as process:
            process.wait_for_matches(SERVING, count=2)
            pids = [int(pid) for pid in re.findall(SERVING, process.output)]
            process.interrupt_group()
            assert process.wait(30) == 0, f"run {run}:\n{process.output}"
        assert_stopped_cleanly(process.output, pids)


def test_squall_run_with_workers_under_timeout(app_dir: Path) -> None:
    """`timeout -s INT` sends SIGINT to its command and then to the command's process group."""
    timeout = shutil.which("timeout")
    if timeout is None:
        pytest.skip("coreutils' timeout is not installed")
    (app_dir / "serve.py").write_text(textwrap.dedent('''
        import squall

        if __name__ == "__main__":
            squall.run("lifeapp:app", port=0, workers=2, access_log=False)
    '''))
    for run in range(3):
        # SIGALRM is how `timeout` learns that the time is up: sending it
        # ourselves ends the command now, exactly as the time running out would.
        argv = [timeout, "--preserve-status", "-s", "INT", "600", sys.executable, "serve.py"]
        with LoggedProcess(argv, cwd=app_dir) as process:
            process.wait_for_matches(SERVING, count=2)
            pids = [int(pid) for pid in re.findall(SERVING, process.output)]
            process.signal(signal.SIGALRM)
            assert process.wait(30) == 0, f"run {run}:\n{process.output}"
        assert_stopped_cleanly(process.output, pids)


def slow_request(port: int) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    return client


def test_a_second_ctrl_c_is_one_line_not_an_error(app_dir: Path) -> None:
    with SquallProcess("lifeapp:app", "--port", "0", cwd=app_dir, new_session=True) as process:
        port = process.wait_started()
        assert port is not None
        client = slow_request(port)
        process.wait_for_log("slow request in")
        process.interrupt_group()
        first = time.monotonic()
        process.wait_for_log(r"Waiting for connections to close")
        wait_past_duplicate_window(first)
        process.interrupt_group()
        assert process.wait(10) == 0
        client.close()
    output = process.output
    forced = [line for line in output.splitlines() if "Forced exit" in line]
    assert forced == ["WARNING:  Forced exit: open connections, running tasks and the lifespan shutdown are abandoned."]
    assert output.rstrip().endswith(f"Finished server process [{process.proc.pid}]"), output
    for sign in ("Traceback", "CancelledError", "ERROR"):
        assert sign not in output, output


def test_a_second_ctrl_c_with_workers_is_not_an_error_either(app_dir: Path) -> None:
    with SquallProcess("lifeapp:app", "--port", "0", "--workers", "2", cwd=app_dir, new_session=True) as process:
        port = process.wait_started()
        assert port is not None
        process.wait_for_matches(SERVING, count=2)
        client = slow_request(port)
        process.wait_for_log("slow request in")
        process.interrupt_group()
        first = time.monotonic()
        process.wait_for_log(r"Waiting for connections to close")
        wait_past_duplicate_window(first)
        process.interrupt_group()
        assert process.wait(20) == 0
        client.close()
    output = process.output
    assert "Forced exit" in output
    for sign in ("Traceback", "CancelledError", "ERROR"):
        assert sign not in output, output


# -- --uds: the socket file --------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_unix_socket_file_is_removed_at_exit(app_dir: Path, workers: str) -> None:
    path = app_dir / "app.sock"
    with SquallProcess("lifeapp:app", "--uds", str(path), "--workers", workers, cwd=app_dir) as process:
        process.wait_for_log("unix socket")
        if workers != "1":
            process.wait_for_matches(SERVING, count=2)
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path))) as client:
            assert client.get("http://squall/").status_code == 200
        assert path.exists()
        process.signal(signal.SIGTERM)
        assert process.wait() == 0
    assert not path.exists()


def test_a_socket_file_that_is_no_longer_ours_is_left_alone(app_dir: Path) -> None:
    path = app_dir / "app.sock"
    with SquallProcess("lifeapp:app", "--uds", str(path), cwd=app_dir) as process:
        process.wait_for_log("unix socket")
        # Another server took the path over meanwhile.
        path.unlink()
        other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        other.bind(str(path))
        other.listen()
        try:
            process.signal(signal.SIGTERM)
            assert process.wait() == 0
            assert path.exists()
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.connect(str(path))  # still the other server's
        finally:
            other.close()
