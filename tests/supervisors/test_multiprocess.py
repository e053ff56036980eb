"""`squall --workers N`, as a real supervisor with real worker processes and real signals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from supervisors.supervised import (
    NO_BYTECODE,
    Load,
    fetch,
    fetch_pid,
    is_running,
    wait_for_pid_to_answer,
    wait_until,
    write_pid_app,
)
from support import SquallProcess, run_squall

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGTTIN"), reason="POSIX signals")

SERVING = r"Worker (\d+) \[(\d+)\] is serving\n"

StartWorkers = Callable[..., AbstractContextManager[tuple[SquallProcess, int, dict[int, int]]]]


@pytest.fixture
def start_workers(tmp_path: Path) -> StartWorkers:
    """`with start_workers(*options) as (process, port, pids):` once every worker serves.

    `pids` maps each worker's slot number to its pid.
    """

    @contextmanager
    def start(*options: str, count: int = 2) -> Iterator[tuple[SquallProcess, int, dict[int, int]]]:
        app = write_pid_app(tmp_path)
        args = ["--port", "0", "--workers", str(count), "--ws", "none", "--lifespan", "off", "--no-access-log"]
        args += options
        with SquallProcess(app, *args, cwd=tmp_path, env=NO_BYTECODE) as process:
            port = process.wait_started()
            assert port is not None
            wait_until(lambda: len(re.findall(SERVING, process.output)) >= count, what=f"{count} workers to serve")
            pids = {int(slot): int(pid) for slot, pid in re.findall(SERVING, process.output)}
            yield process, port, pids

    return start


@contextmanager
def paused(*pids: int) -> Iterator[None]:
    """Stop these workers (SIGSTOP), so that only the others accept from the shared socket."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def test_a_killed_worker_is_replaced_and_sigterm_stops_all(start_workers: StartWorkers) -> None:
    with start_workers() as (process, port, pids):
        os.kill(pids[1], signal.SIGKILL)
        match = process.wait_for_log(rf"Worker 1 \[{pids[1]}\] was killed by SIGKILL; replaced by \[(\d+)\]")
        replacement = int(match.group(1))
        process.wait_for_log(rf"Worker 1 \[{replacement}\] is serving")
        with paused(pids[2]):
            assert fetch_pid(port) == replacement

        process.signal(signal.SIGTERM)
        assert process.wait() == 0
        for pid in (pids[2], replacement):
            assert not is_running(pid)
        assert "Traceback" not in process.output


def test_workers_do_not_outlive_a_killed_supervisor(start_workers: StartWorkers) -> None:
    with start_workers() as (process, _, pids):
        process.proc.kill()
        process.wait()
        for pid in pids.values():
            wait_until(lambda pid=pid: not is_running(pid), what=f"worker {pid} to exit")


def test_sigterm_stops_workers_within_the_graceful_shutdown_timeout(start_workers: StartWorkers) -> None:
    with start_workers("--timeout-graceful-shutdown", "1") as (process, port, _):
        threading.Thread(target=fetch_pid, args=(port, "/slow", 30.0), daemon=True).start()
        process.wait_for_log("slow request started")
        asked_at = time.monotonic()
        process.signal(signal.SIGTERM)
        assert process.wait() == 0
        # The worker cancelled the request itself: the supervisor had no one to kill.
        assert time.monotonic() - asked_at < 4.0
        assert "Cancelling 1 running task(s)" in process.output
        assert "did not stop in time" not in process.output
        assert len(re.findall(r"Worker \d \[\d+\] exited with code 0", process.output)) == 2


def test_sighup_restarts_every_worker_under_load_without_a_failed_request(
    start_workers: StartWorkers, tmp_path: Path
) -> None:
    with start_workers() as (process, port, old):
        with Load(f"http://127.0.0.1:{port}/", requests=720, threads=6, pace=0.03) as load:
            wait_until(lambda: load.answered() >= 60, what="the load to get going")
            write_pid_app(tmp_path, version="2")  # a deploy: the new workers must import it
            process.signal(signal.SIGHUP)
        assert load.result.failures == []

        process.wait_for_log("Rolling restart complete")
        new = {int(pid) for pid in re.findall(r"Worker \d+: \[(\d+)\] is serving; retiring", process.output)}
        assert len(new) == 2 and not new & set(old.values())
        assert load.result.pids & new, "the load ended before any new worker answered"
        assert {answer for pid, answer in load.result.answers if pid in new} == {"2"}
        assert {fetch(port) for _ in range(10)} <= {(pid, "2") for pid in new}

        process.signal(signal.SIGTERM)
        assert process.wait() == 0


def test_sigttin_and_sigttou_add_and_remove_a_worker(start_workers: StartWorkers) -> None:
    with start_workers() as (process, port, pids):
        process.signal(signal.SIGTTIN)
        third = int(process.wait_for_log(r"Received SIGTTIN: started worker 3 \[(\d+)\]").group(1))
        process.wait_for_log(rf"Worker 3 \[{third}\] is serving")
        with paused(pids[1], pids[2]):
            assert fetch_pid(port) == third

        process.signal(signal.SIGTTOU)
        process.wait_for_log(rf"Worker 3 \[{third}\] exited with code 0")
        assert not is_running(third)
        process.signal(signal.SIGTTOU)
        process.wait_for_log(rf"Worker 2 \[{pids[2]}\] exited with code 0")
        process.signal(signal.SIGTTOU)
        process.wait_for_log("one worker is the minimum: keeping it")
        assert fetch_pid(port) == pids[1]

        process.signal(signal.SIGTERM)
        assert process.wait() == 0


def test_a_worker_with_a_blocked_event_loop_fails_the_health_check(start_workers: StartWorkers) -> None:
    with start_workers("--timeout-worker-healthcheck", "1") as (process, port, pids):
        threading.Thread(target=fetch_pid, args=(port, "/block", 30.0), daemon=True).start()
        match = process.wait_for_log(r"Worker (\d+) \[(\d+)\] did not answer the health check within 1s")
        slot, stuck = int(match.group(1)), int(match.group(2))
        match = process.wait_for_log(rf"Worker {slot} \[{stuck}\] was killed by SIGKILL; replaced by \[(\d+)\]")
        replacement = int(match.group(1))
        process.wait_for_log(rf"Worker {slot} \[{replacement}\] is serving")
        other = pids[3 - slot]
        with paused(other):
            assert fetch_pid(port) == replacement

        process.signal(signal.SIGTERM)
        assert process.wait() == 0


def test_a_worker_at_its_request_limit_is_replaced_before_it_leaves(start_workers: StartWorkers) -> None:
    with start_workers("--limit-max-requests", "10") as (process, port, _):
        answers = [fetch_pid(port) for _ in range(30)]
        assert None not in answers

        match = process.wait_for_log(r"Worker \d+ \[(\d+)\] reached its request limit; starting \[(\d+)\] to take over")
        old, new = int(match.group(1)), int(match.group(2))
        process.wait_for_log(rf"\[{new}\] is serving; retiring \[{old}\]")
        process.wait_for_log(rf"\[{old}\] exited with code 0")
        wait_for_pid_to_answer(port, new)

        process.signal(signal.SIGTERM)
        assert process.wait() == 0


def test_an_app_that_cannot_be_imported_stops_the_supervisor_with_one_line(tmp_path: Path) -> None:
    result = run_squall("missing:app", "--workers", "2", "--port", "0", cwd=tmp_path)
    assert result.returncode == 3
    assert 'Could not import module "missing"' in result.stderr
    assert "Traceback" not in result.stderr
    # Found out in the supervisor, before starting any worker.
    assert "Started worker" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_an_unguarded_squall_run_with_workers_is_explained_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "serve.py").write_text(
        "import squall\n\n"
        "async def app(scope, receive, send):\n"
        "    pass\n\n"
        'squall.run("serve:app", workers=2, port=0, ws="none")  # no `if __name__ == "__main__":`\n'
    )
    result = subprocess.run(
        [sys.executable, "serve.py"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 3
    assert 'under `if __name__ == "__main__":`' in result.stderr
    assert "Traceback" not in result.stderr
