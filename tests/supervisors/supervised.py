"""Helpers for tests that drive real server processes with real signals.

Import as `from supervisors.supervised import ...` (`tests/` is on pytest's
pythonpath).  Everything waits on something observable (a log line, an
answer on the port) with a deadline; nothing sleeps for a fixed time to
"let things settle".
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import support

T = TypeVar("T")

# Answers every request with "<process id> <VERSION>"; /block stalls the
# event loop, /slow is a request that takes 30 s.
PID_APP = '''
import asyncio
import os
import time

VERSION = "%s"


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/block":
        time.sleep(30)  # a synchronous call in async code: the event loop is stuck
    if scope["path"] == "/slow":
        print("slow request started", flush=True)
        await asyncio.sleep(30)
    body = f"{os.getpid()} {VERSION}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%%d" %% len(body))]})
    await send({"type": "http.response.body", "body": body})
'''

WORKER_STARTED = r"Started worker (\d+) \[(\d+)\]"


# Environment for processes whose app file a test rewrites: no .pyc can be
# stale when two versions are written within the same second.
NO_BYTECODE = {"PYTHONDONTWRITEBYTECODE": "1"}


def write_pid_app(directory: Path, version: str = "1") -> str:
    """Write the app into `directory`; return its import string."""
    (directory / "pidapp.py").write_text(PID_APP % version)
    return "pidapp:app"


def parse_answer(text: str) -> tuple[int, str]:
    pid, version = text.split()
    return int(pid), version


def wait_until(predicate: Callable[[], T], timeout: float = 15.0, what: str = "the condition") -> T:
    """`support.wait_until` with the longer deadline that process start-ups need."""
    return support.wait_until(predicate, timeout, what, interval=0.02)

def fetch(port: int, path: str = "/", timeout: float = 5.0) -> tuple[int, str] | None:
    """(pid, app version) of the worker that answered, on a fresh connection; None if none did."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}{path}", headers={"connection": "close"}, timeout=timeout)
    except httpx.HTTPError:
        return None
    return parse_answer(response.text) if response.status_code == 200 else None


def fetch_pid(port: int, path: str = "/", timeout: float = 5.0) -> int | None:
    answer = fetch(port, path, timeout)
    return answer[0] if answer else None


def wait_for_pid_to_answer(port: int, pid: int, timeout: float = 15.0) -> None:
    """Make requests (fresh connections) until worker `pid` has answered one."""
    wait_until(lambda: fetch_pid(port) == pid, timeout, f"worker {pid} to answer")


def is_running(pid: int) -> bool:
    """Whether `pid` is alive; an exited process nobody has reaped yet (a zombie) is not."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel directly
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def pids_in_log(pattern: str, output: str) -> list[int]:
    """Every pid captured by the last group of `pattern` in `output`."""
    return [int(match.groups()[-1]) for match in re.finditer(pattern, output)]


@dataclass
class LoadResult:
    answers: list[tuple[int, str]] = field(default_factory=list)  # (pid, version) per response
    failures: list[str] = field(default_factory=list)  # errors and non-2xx answers

    @property
    def pids(self) -> set[int]:
        return {pid for pid, _ in self.answers}


class Load:
    """A fixed number of GETs from a few threads with keep-alive clients, paced
    to last about `requests / threads * pace` seconds."""

    def __init__(self, url: str, requests: int = 600, threads: int = 6, pace: float = 0.03) -> None:
        self.url = url
        self.per_thread = requests // threads
        self.pace = pace
        self.result = LoadResult()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(threads)]

    def _client(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            for _ in range(self.per_thread):
                try:
                    response = client.get(self.url)
                except httpx.HTTPError as exc:
                    outcome: tuple[int, str] | str = f"{type(exc).__name__}: {exc}"
                else:
                    outcome = parse_answer(response.text) if response.is_success else f"HTTP {response.status_code}"
                with self._lock:
                    if isinstance(outcome, tuple):
                        self.result.answers.append(outcome)
                    else:
                        self.result.failures.append(outcome)
                time.sleep(self.pace)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def answered(self) -> int:
        with self._lock:
            return len(self.result.answers) + len(self.result.failures)

    def __exit__(self, *exc: object) -> None:
        for thread in self._threads:
            thread.join(60)
        # A result read while requests are still being made would be missing some.
        assert not any(thread.is_alive() for thread in self._threads), "the load did not finish within 60 s"
